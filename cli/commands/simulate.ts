import type { DemoSummary } from '../../local/simulator/demo';
import { quietStackOptions } from '../../local/simulator/demo';
import {
  FlowUnavailableError,
  runSimulation,
  type SimulationFlow,
  type SimulationSummary,
  type TransportKind,
} from '../../local/simulator/simulate';
import { TransportUnavailableError } from '../../local/simulator/transport';
import { startLocalStack } from '../../local/stack';
import { localHandle, remoteHandle, type StackHandle } from '../../local/stack-control';
import { readStackFile } from '../../local/stack-file';
import type { DeclaredIotNames } from '../../local/stack-model';
import type { QuarantineCounts } from '../../shared/quarantine/operator';
import { CommandFailure, type Output, progressBar, UsageError } from '../io';
import type { CommandRegistry } from '../main';
import { plural } from '../plural';
import { localStackOptions } from '../target';

const FLOWS: readonly SimulationFlow[] = ['fleet', 'jitr', 'jitp', 'factory', 'trusted-user'];
const TRANSPORTS: readonly TransportKind[] = ['http', 'mqtt'];

interface SimulateOptions {
  devices: string;
  flow: string;
  clones: string;
  invalid: string;
  duplicates: string;
  concurrency: string;
  seed: string;
  transport: string;
  burst?: boolean;
  burstTps?: string;
  json?: boolean;
}

function count(name: string, value: string, min = 0): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < min)
    throw new UsageError(`--${name}: expected an integer ≥ ${min}`);
  return parsed;
}

/** Prints a simulation summary for people (the same facts as the JSON document). */
export function printSimulationSummary(
  output: Output,
  summary: SimulationSummary,
  options: { tally?: boolean } = {},
): void {
  const bad = Object.entries(summary.badActors)
    .map(([kind, n]) => plural(n, kind))
    .join(', ');
  output.say(
    `${summary.flow} flow, run ${summary.runId}: ${plural(summary.devices, 'device')}${bad ? ` + ${bad}` : ''}`,
  );
  output.say(
    `  provisioned      ${summary.provisioned} (${summary.active} ACTIVE in the store; expected ${summary.expectedState})`,
  );
  for (const [reason, n] of Object.entries(summary.deniedByReason))
    output.say(`  denied           ${n}  ${reason}`);
  for (const [reason, n] of Object.entries(summary.legitimateFailures))
    output.say(`  FAILED           ${n}  legitimate: ${reason}`);
  for (const [reason, n] of Object.entries(summary.quarantinedByReason))
    output.say(`  quarantined      ${n}  ${reason}`);
  if (options.tally !== false) output.say(`  ${tallyLine(summary.inQuarantine)}`);
  if (summary.admittedBadActors.length > 0)
    output.say(`  ADMITTED BAD ACTORS ${summary.admittedBadActors.length}`);
  if (summary.unquarantinedClones.length > 0)
    output.say(`  CLONES NOT QUARANTINED ${summary.unquarantinedClones.join(', ')}`);
  output.say(`  redelivered      ${summary.redelivered} event(s)`);
  output.say(`  duplicates       ${summary.duplicatesCreated}`);
  output.say(
    `  lost             ${summary.lost}${summary.lost > 0 ? ` (${summary.lostSerials.join(', ')})` : ''}`,
  );
  output.say(
    `  throughput       ${summary.devicesPerSecond} devices/s (${(summary.durationMs / 1000).toFixed(1)} s)`,
  );
  output.say(`  stuck            ${summary.stuck}`);
  if (summary.throttled !== undefined) {
    output.say(
      `  throttled        ${summary.throttled} requests retried; ${summary.freshTokens ?? 0} fresh ownership tokens`,
    );
  }
  if (summary.mqtt)
    output.say(
      `  MQTT             ${summary.mqtt.connections} connection(s), ${summary.mqtt.connectionsPerSecond} connections/s (mutual TLS)`,
    );
  output.say(
    summary.timeToActiveMs
      ? `  time to ACTIVE   p50 ${summary.timeToActiveMs.p50} ms, p99 ${summary.timeToActiveMs.p99} ms`
      : '  time to ACTIVE   n/a (no deviceLifecycle function on this stack)',
  );
  for (const [queue, depth] of Object.entries(summary.unsettled ?? {}))
    output.say(`  still queued     ${depth} message(s) on ${queue} (a retry after the visibility timeout)`);
  for (const error of summary.errors) output.warn(`  error: ${error}`);
}

/** True when the run met its invariants: nothing duplicated, nothing lost, no bad actor admitted. */
export function simulationPassed(summary: SimulationSummary): boolean {
  return (
    summary.duplicatesCreated === 0 &&
    summary.lost === 0 &&
    summary.admittedBadActors.length === 0 &&
    summary.unquarantinedClones.length === 0 &&
    summary.errors.length === 0
  );
}

/**
 * The running local stack, or an ephemeral one whose handlers keep their logs off stdout (the
 * `--json` document must be the only thing there).
 */
async function simulationTarget(output: Output): Promise<{ handle: StackHandle; close(): Promise<void> }> {
  const file = readStackFile();
  if (file && typeof file.control === 'string') {
    return {
      handle: remoteHandle({
        control: file.control,
        endpoints: file.endpoints as unknown as StackHandle['endpoints'],
        region: file.region,
        tableName: file.tableName,
        queues: file.queues ?? {},
        // The IoT names serverless.yml declares (device policy, fleet template): the JITP and fleet flows need them.
        ...(file.declared ? { declared: file.declared as DeclaredIotNames } : {}),
      }),
      close: async () => undefined,
    };
  }
  output.warn(
    'fleetgate: no local stack is running (start one with `fleetgate local up`); using an ephemeral one for this command',
  );
  const stack = await startLocalStack(quietStackOptions(localStackOptions()));
  return { handle: localHandle(stack), close: () => stack.stop() };
}

/** `fleetgate simulate --devices N --flow fleet|jitr|jitp …` */
export function registerSimulateCommand({ program, run }: CommandRegistry): void {
  program
    .command('simulate')
    .description('Drive generated devices (real keys, CSRs, certificates) and bad actors through a flow')
    .option('--devices <n>', 'legitimate devices', '50')
    .option('--flow <flow>', 'fleet, jitr, jitp, factory or trusted-user', 'fleet')
    .option('--clones <k>', 'clones of legitimate devices (same serial and key, another certificate)', '0')
    .option('--invalid <m>', 'unknown serials, expired certificates and takeover attempts', '0')
    .option('--duplicates <d>', 'deliver every IoT event d more times through the rules engine', '0')
    .option('--concurrency <c>', 'devices in flight at once', '8')
    .option('--seed <s>', 'seed for picking which devices are cloned', '1')
    .option(
      '--transport <t>',
      "http (the emulator's device routes) or mqtt (real MQTT connections over mutual TLS)",
      'http',
    )
    .option(
      '--burst',
      "power every device on at once against Fleet Provisioning's own rate quotas (AWS's defaults; throttled requests are retried with jittered backoff)",
    )
    .option(
      '--burst-tps <n>',
      "with --burst: this TPS for each Fleet Provisioning operation instead of AWS's defaults",
    )
    .option('--json', 'print one JSON document')
    .action(async (options: SimulateOptions) => {
      await run(options.json, async (output) => {
        const flow = options.flow as SimulationFlow;
        if (!FLOWS.includes(flow)) throw new UsageError(`--flow must be one of ${FLOWS.join(', ')}`);
        const transport = options.transport as TransportKind;
        if (!TRANSPORTS.includes(transport))
          throw new UsageError(`--transport must be one of ${TRANSPORTS.join(', ')}`);
        const settings = {
          devices: count('devices', options.devices, 1),
          flow,
          clones: count('clones', options.clones),
          invalid: count('invalid', options.invalid),
          duplicates: count('duplicates', options.duplicates),
          concurrency: count('concurrency', options.concurrency, 1),
          seed: count('seed', options.seed),
          transport,
          burst: Boolean(options.burst),
          ...(options.burstTps === undefined ? {} : { burstTps: count('burst-tps', options.burstTps, 1) }),
        };
        const target = await simulationTarget(output);
        const bar = progressBar(output, 'simulating');
        try {
          const summary = await runSimulation(target.handle, {
            ...settings,
            onProgress: (done, total) => bar.update(`${done}/${total}`),
          }).catch((error: unknown) => {
            if (error instanceof FlowUnavailableError || error instanceof TransportUnavailableError)
              throw new CommandFailure(error.message);
            throw error;
          });
          bar.done();
          printSimulationSummary(output, summary);
          if (!simulationPassed(summary)) {
            throw new CommandFailure(
              'the simulation broke an invariant (duplicates, lost devices, admitted or unquarantined bad actors, or errors)',
              summary,
            );
          }
          return summary;
        } finally {
          await target.close();
        }
      });
    });
}

/** What is in quarantine, as `fleetgate quarantine list` counts and lists it. */
export function tallyLine(counts: QuarantineCounts): string {
  return `in quarantine    ${counts.devices} device(s), ${counts.certificates} certificate(s) of no known device on this stack: \`fleetgate quarantine list\``;
}

/** The `fleetgate dev` demo summary: what happened, where the report is, what to try next. */
export function printDemoSummary(output: Output, demo: DemoSummary, exiting: boolean): void {
  output.say('');
  output.say(`demo finished in ${(demo.durationMs / 1000).toFixed(1)} s`);
  for (const summary of demo.flows) {
    output.say('');
    printSimulationSummary(output, summary, { tally: false });
  }
  output.say('');
  output.say(tallyLine(demo.quarantine));
  output.say('  (the "quarantined" lines count caught actors: an original and its clone are one device)');
  if (demo.skippedFlows.length > 0)
    output.say(
      `\n(skipped ${demo.skippedFlows.join(', ')}: this stack's serverless.yml lacks their functions)`,
    );
  output.say('');
  if (demo.sweep) {
    const counts = Object.entries(demo.sweep.counts)
      .map(([name, n]) => `${n} ${name}`)
      .join(', ');
    output.say(`expiry sweep ${demo.sweep.runId}: ${counts} (${demo.sweep.atRisk} at risk)`);
    output.say(`  HTML report  ${demo.sweep.files.html}`);
  }
  output.say(
    demo.ok
      ? 'every legitimate device provisioned exactly once; every bad actor denied or quarantined'
      : `INVARIANT BROKEN: ${demo.duplicatesCreated} duplicates, ${demo.lost} lost, ${demo.admittedBadActors} bad actors admitted`,
  );
  output.say('');
  if (exiting) {
    // The stack, and the demo's devices with it, are gone: a fresh `local up` would list nothing.
    output.say('the stack stopped with the demo (--exit); to explore its devices, keep it running:');
    output.say('  npm start            (the same demo, then serves until Ctrl-C)');
    output.say('then, in another terminal:');
  } else {
    output.say('try next, in another terminal:');
  }
  output.say('  npx fleetgate devices list --state ACTIVE');
  output.say('  npx fleetgate devices list --state PROVISIONING');
  output.say('  npx fleetgate quarantine list');
  output.say('  npx fleetgate simulate --devices 200 --flow fleet --clones 5 --invalid 5 --duplicates 2');
  output.say('  npx fleetgate sweep');
}
