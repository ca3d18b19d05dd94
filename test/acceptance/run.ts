/**
 * `npm run test:acceptance [-- --target local|aws --stage S --region R …]`: parses the options,
 * checks an AWS target before anything runs (credentials, stack, endpoint: one clear line and exit
 * 1 when the suite cannot run there), passes the options on in environment variables and runs vitest
 * with the acceptance config. Exit code: vitest's; 1 when the AWS target is unusable; 2 on a usage
 * error.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { awsClients, resolveAwsTarget, TargetUnavailableError } from './aws-target';
import { stopLocalStack } from './local-target';
import { PROJECT_ROOT, serviceName } from './names';
import {
  type AcceptanceOptions,
  ENV,
  newRunId,
  optionsToEnv,
  parseAcceptanceArgs,
  USAGE,
  UsageError,
} from './options';

async function main(): Promise<number> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  let options: AcceptanceOptions;
  try {
    options = parseAcceptanceArgs(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    if (error.message !== 'help') process.stderr.write(`test:acceptance: ${error.message}\n`);
    process.stderr.write(`${USAGE}\n`);
    return error.message === 'help' ? 0 : 2;
  }
  const env: Record<string, string> = { ...optionsToEnv(options) };
  if (options.target === 'aws') {
    const clients = awsClients(options.region as string);
    try {
      const descriptor = await resolveAwsTarget(
        {
          service: serviceName(),
          stage: options.stage as string,
          region: options.region as string,
          runId: newRunId(),
        },
        clients,
      );
      env[ENV.descriptor] = JSON.stringify(descriptor);
    } catch (error) {
      if (!(error instanceof TargetUnavailableError)) throw error;
      process.stderr.write(`test:acceptance: ${error.message}\n`);
      return 1;
    } finally {
      clients.cloudformation.destroy();
      clients.iot.destroy();
      clients.lambda.destroy();
    }
  }
  // The stack a local run starts is stopped by the suite; if vitest is interrupted before its
  // teardown, the runner stops it here, so no stack outlives the run.
  let ownStackFile: string | undefined;
  if (options.target === 'local' && !options.stackFile) {
    ownStackFile = join(mkdtempSync(join(tmpdir(), 'fleetgate-acceptance-run-')), 'stack.json');
    env[ENV.ownStackFile] = ownStackFile;
  }
  const vitest = join(dirname(createRequire(import.meta.url).resolve('vitest/package.json')), 'vitest.mjs');
  const child = spawn(
    process.execPath,
    [
      vitest,
      'run',
      '--config',
      join(PROJECT_ROOT, 'test', 'acceptance', 'vitest.config.ts'),
      ...options.vitestArgs,
    ],
    {
      cwd: PROJECT_ROOT,
      stdio: 'inherit',
      env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...process.env, ...env },
    },
  );
  // Ctrl-C reaches vitest directly (same process group) and may reach this process more than once
  // (npm and tsx pass it on too): every one is handled, so the stack is stopped below.
  const forward = (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  const code = await new Promise<number>((resolve) => {
    child.on('exit', (exitCode, signal) => resolve(exitCode ?? (signal ? 1 : 0)));
  });
  if (ownStackFile) {
    if (existsSync(ownStackFile)) await stopLocalStack(ownStackFile);
    // The stack's log is next to its stack file: kept when something failed.
    const log = ownStackFile.replace(/\.json$/, '.log');
    if (code === 0) rmSync(dirname(ownStackFile), { recursive: true, force: true });
    else if (existsSync(log)) process.stderr.write(`test:acceptance: the local stack's log is ${log}\n`);
  }
  return code;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(
      `test:acceptance: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exitCode = 1;
  },
);
