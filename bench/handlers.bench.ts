/**
 * Per-function bundle size (esbuild with serverless.yml's custom.esbuild settings: the code the zip
 * carries, source maps stay beside it) against 500 KB, cold module load of the bundle (median wall
 * and CPU time of `import()` in fresh `node` processes, the hook first) against 100 ms, for the
 * hook also with the SDK left external (loaded from node_modules, as the Lambda runtime's own SDK
 * would be), and peak RSS of a fresh process handling 1,000 events. I/O goes to DynamoDB Local and the IoT emulator (real
 * round trips, so the SDK's buffers and sockets count); SQS sends go to an address nothing listens on
 * only where a handler would send (quarantine), which the sample events do not trigger.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { build, type Metafile } from 'esbuild';
import { startIotEmulator } from '../local/iot-emulator/index';
import { projectRoot } from '../local/paths';
import { loadServerlessConfig } from '../local/serverless-config';
import { buildStackModel, type FunctionSpec } from '../local/stack-model';
import { ensureTable } from '../local/table';
import { childOutput } from '../test/support/cli';
import {
  lambdaBuildOptions,
  reachableOutputs,
  serverlessEsbuildSettings,
} from '../test/support/lambda-bundle';
import type { BenchContext, BenchRow } from './types';

const LOAD_RUNS = 9;
const SIZE_TARGET_KB = 500;
const LOAD_TARGET_MS = 100;
const EVENTS = 1000;
const RSS_TARGET_MB = 128;

/** Sample events each function is driven with for the RSS run (cycled). */
const RSS_EVENTS: Record<string, string[]> = {
  preProvisionHook: [
    'events/hook/allowed.json',
    'events/hook/unknown-serial.json',
    'events/hook/invalid-serial.json',
  ],
  deviceLifecycle: ['events/sqs/lifecycle-connected.json', 'events/sqs/lifecycle-disconnected.json'],
  registerCertificate: ['events/sqs/registration-jitr.json'],
};

export async function run(context: BenchContext): Promise<BenchRow[]> {
  const root = projectRoot();
  const config = loadServerlessConfig(join(root, 'serverless.yml'));
  const model = buildStackModel(config, {
    stage: 'local',
    region: 'us-east-1',
    sqsEndpoint: 'http://127.0.0.1:9',
  });
  const esbuildSettings = serverlessEsbuildSettings(root);
  const out = mkdtempSync(join(tmpdir(), 'fleetgate-bench-handlers-'));
  const dynamodb = await context.dynamodb();
  const ddb = new DynamoDBClient({ endpoint: dynamodb, region: 'us-east-1' });
  await ensureTable(ddb, model.tableName);
  ddb.destroy();
  const emulator = await startIotEmulator();
  const baseEnv = {
    ...process.env,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'local',
    AWS_SECRET_ACCESS_KEY: 'local',
    AWS_ENDPOINT_URL_DYNAMODB: dynamodb,
    AWS_ENDPOINT_URL_IOT: emulator.endpoint,
    AWS_ENDPOINT_URL_SQS: 'http://127.0.0.1:9',
    POWERTOOLS_LOG_LEVEL: 'SILENT',
    POWERTOOLS_METRICS_DISABLED: 'true',
    // Lambda's nodejs22.x never emits the SDK's NodeVersionSupportWarning; on Node 20 it would add
    // its cost (an Error, a stack, a stderr write) to what is measured here.
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
  const rows: BenchRow[] = [];
  // One folder per function, as serverless-esbuild builds: with `splitting`, a dynamic import()'s
  // module is a chunk beside the handler, loaded when reached.
  const extension = esbuildSettings.outputFileExtension ?? '.js';
  const bundleOptions = (entry: string, outdir: string, external: string[] = []) =>
    lambdaBuildOptions(esbuildSettings, entry, outdir, external, root);
  // The hook first: its cold start counts against AWS IoT's 5 s.
  const functions = [...model.functions].sort(
    (a, b) => Number(b.name === 'preProvisionHook') - Number(a.name === 'preProvisionHook'),
  );
  try {
    for (const fn of functions) {
      const entry = handlerFile(root, fn);
      const outdir = join(out, fn.name);
      const bundle = join(outdir, `${basename(entry, '.ts')}${extension}`);
      const { metafile } = await build(bundleOptions(entry, outdir));
      // REPORT_DESTINATION names the bucket by its logical id locally; the bench writes no report.
      const env = {
        ...baseEnv,
        ...fn.environment,
        NODE_OPTIONS: '',
        REPORT_DESTINATION: `file://${out}/reports`,
      };
      const sizes = outputSizes(metafile ?? { inputs: {}, outputs: {} }, bundle);
      const kb = Math.round(sizes.coldStart / 1000);
      rows.push({
        name: `${fn.name} bundle (minified; handler and the chunks it imports statically)`,
        value: kb,
        unit: 'KB',
        target: `≤ ${SIZE_TARGET_KB} KB`,
        ratio: SIZE_TARGET_KB / kb,
      });
      if (sizes.all > sizes.coldStart) {
        rows.push({
          name: `${fn.name} zip code (with the chunks loaded by dynamic import() when reached)`,
          value: Math.round(sizes.all / 1000),
          unit: 'KB',
          target: '',
          ratio: 1,
        });
      }
      try {
        rows.push(...(await measure(fn, bundle, env, out, root)));
        if (fn.name === 'preProvisionHook') {
          // The runtime's own SDK instead of the bundled one: what loading it from files costs.
          // Inside the project (.esbuild/ is git-ignored) so that node_modules resolves the SDK.
          const sdkExternalDir = join(root, '.esbuild', 'bench', `${fn.name}-sdk-external`);
          await build(bundleOptions(entry, sdkExternalDir, ['@aws-sdk/*', '@smithy/*']));
          const sdkExternal = join(sdkExternalDir, `${basename(entry, '.ts')}${extension}`);
          const external = loadTimes(sdkExternal, env);
          rows.push({
            name: `${fn.name} cold load, SDK not bundled (node_modules, like the runtime's SDK)`,
            value: external.wall,
            unit: `ms (median; CPU ${external.cpu} ms)`,
            target: 'bundled faster',
            ratio:
              external.wall /
              (rows.find((row) => row.name === `${fn.name} cold load`)?.value ?? external.wall),
          });
        }
      } catch (error) {
        process.stderr.write(
          `bench: ${fn.name}: ${error instanceof Error ? error.message : String(error)}\n`,
        );
      }
    }
  } finally {
    await emulator.stop();
  }
  return rows;
}

async function measure(
  fn: FunctionSpec,
  bundle: string,
  env: NodeJS.ProcessEnv,
  out: string,
  root: string,
): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const load = loadTimes(bundle, env);
  rows.push({
    name: `${fn.name} cold load`,
    value: load.wall,
    unit: `ms (median; CPU ${load.cpu} ms)`,
    target: `≤ ${LOAD_TARGET_MS} ms`,
    ratio: LOAD_TARGET_MS / load.wall,
  });
  const events = RSS_EVENTS[fn.name];
  if (events) {
    const rss = await peakRssMb(
      bundle,
      events.map((file) => join(root, file)),
      env,
      out,
      fn.name,
    );
    rows.push({
      name: `${fn.name} peak RSS, ${EVENTS} events`,
      value: rss,
      unit: 'MB',
      target: `< ${RSS_TARGET_MB} MB`,
      ratio: RSS_TARGET_MB / rss,
    });
  }
  return rows;
}

/**
 * Bytes of what a cold start loads (the handler and, transitively, the chunks it imports
 * statically) and of everything it can load (also through `import()`: what the zip carries, since
 * the serverless build drops chunks nothing imports; source maps are not counted).
 */
function outputSizes(metafile: Metafile, handler: string): { coldStart: number; all: number } {
  const bytes = (dynamic: boolean) => {
    let total = 0;
    for (const output of reachableOutputs(metafile, handler, { dynamic }).values()) total += output.bytes;
    return total;
  };
  return { coldStart: bytes(false), all: bytes(true) };
}

function handlerFile(root: string, fn: FunctionSpec): string {
  const modulePath = fn.handler.slice(0, fn.handler.lastIndexOf('.'));
  return join(root, `${modulePath}.ts`);
}

/** Wall and CPU (user + system) time of importing the module, as `<wall> <cpu>` in ms. */
function loadScript(file: string): string {
  return `const c = process.cpuUsage(); const t = performance.now(); await import(${JSON.stringify(file)}); const u = process.cpuUsage(c); process.stdout.write((performance.now() - t) + ' ' + (u.user + u.system) / 1000);`;
}

/** Medians over `LOAD_RUNS` fresh processes: wall time (what the target is) and CPU time (less noisy under load). */
function loadTimes(bundle: string, env: NodeJS.ProcessEnv): { wall: number; cpu: number } {
  const walls: number[] = [];
  const cpus: number[] = [];
  for (let i = 0; i < LOAD_RUNS; i += 1) {
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', loadScript(bundle)], {
      env,
      encoding: 'utf8',
      cwd: projectRoot(),
    });
    if (child.status !== 0) throw new Error(`loading failed: ${lastLines(child.stderr)}`);
    const [wall, cpu] = child.stdout.trim().split(' ').map(Number);
    walls.push(wall ?? 0);
    cpus.push(cpu ?? 0);
  }
  const median = (values: number[]) => {
    values.sort((a, b) => a - b);
    return Math.round((values[Math.floor(values.length / 2)] ?? 0) * 10) / 10;
  };
  return { wall: median(walls), cpu: median(cpus) };
}

/** Runs the bundled handler on `EVENTS` events in a fresh process and returns its peak RSS. */
async function peakRssMb(
  bundle: string,
  eventFiles: string[],
  env: NodeJS.ProcessEnv,
  dir: string,
  name: string,
): Promise<number> {
  const events = eventFiles.map((file) => JSON.parse(readFileSync(file, 'utf8')));
  const eventsFile = join(dir, `${name}-events.json`);
  writeFileSync(eventsFile, JSON.stringify(events));
  const script = `
    import { readFileSync } from 'node:fs';
    const { handler } = await import(${JSON.stringify(bundle)});
    const events = JSON.parse(readFileSync(${JSON.stringify(eventsFile)}, 'utf8'));
    const context = { functionName: ${JSON.stringify(name)}, functionVersion: '$LATEST', memoryLimitInMB: '256',
      invokedFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:${name}', awsRequestId: 'bench',
      logGroupName: 'bench', logStreamName: 'bench', getRemainingTimeInMillis: () => 30000,
      callbackWaitsForEmptyEventLoop: true, done() {}, fail() {}, succeed() {} };
    for (let i = 0; i < ${EVENTS}; i += 1) {
      const event = structuredClone(events[i % events.length]);
      try { await handler(event, { ...context, awsRequestId: 'bench-' + i }); } catch {}
    }
    process.stdout.write(String(process.resourceUsage().maxRSS / 1024));
  `;
  // Asynchronous: the IoT emulator this process serves must keep answering the child.
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env, cwd: projectRoot() });
  const output = childOutput(child);
  if ((await output.closed) !== 0) throw new Error(`${name} RSS run failed: ${lastLines(output.stderr)}`);
  return Math.round(Number(output.stdout) * 10) / 10;
}

/** The error lines of a child's stderr (a minified bundle prints its source line first). */
function lastLines(stderr: string): string {
  return stderr
    .split('\n')
    .filter((line) => line.trim() !== '' && line.length < 400 && !line.trim().startsWith('at '))
    .slice(-3)
    .join(' | ');
}
