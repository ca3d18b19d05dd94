/**
 * Devices per second through each flow the local stack can run, end to end: real keys and
 * certificates, the IoT emulator, DynamoDB Local, the rules engine, SQS and the functions in-process,
 * up to ACTIVE in the store. Bad actors and one redelivery of every event ride along.
 */
import { quietStackOptions } from '../local/simulator/demo';
import { availableFlows, runSimulation, type SimulationFlow } from '../local/simulator/simulate';
import { startLocalStack } from '../local/stack';
import { localHandle } from '../local/stack-control';
import type { BenchContext, BenchRow } from './types';

const DEVICES: Record<SimulationFlow, number> = {
  fleet: 100,
  jitr: 50,
  jitp: 50,
  factory: 50,
  'trusted-user': 50,
};
/** The factory burst: all at once against Fleet Provisioning's own quotas (BENCH_BURST_DEVICES). */
const BURST_DEVICES = Number(process.env.BENCH_BURST_DEVICES ?? 300);
/**
 * The quota-limited ideal of fleet provisioning by claim with a CSR: each device needs one
 * CreateCertificateFromCsr (15 TPS) and one RegisterThing (10 TPS), so 10 devices/s at most.
 */
const FLEET_IDEAL_DEVICES_PER_SECOND = 10;

// The stack's own table name (fleetgate-local-provisioning): the simulator derives the template,
// policy and hook names from it, as serverless.yml does for stage `local`.
export async function run(context: BenchContext): Promise<BenchRow[]> {
  const stack = await startLocalStack(quietStackOptions({ dynamodbEndpoint: await context.dynamodb() }));
  const rows: BenchRow[] = [];
  try {
    const handle = localHandle(stack);
    for (const flow of await availableFlows(handle)) {
      const summary = await runSimulation(handle, {
        flow,
        devices: DEVICES[flow],
        clones: 2,
        invalid: flow === 'jitp' ? 2 : 3,
        duplicates: 1,
        concurrency: 8,
      });
      rows.push({
        name: `${flow}: devices/s (${summary.devices} + bad actors)`,
        value: summary.devicesPerSecond,
        unit: 'devices/s',
      });
      if (summary.timeToActiveMs) {
        rows.push({ name: `${flow}: time to ACTIVE p50`, value: summary.timeToActiveMs.p50, unit: 'ms' });
        rows.push({ name: `${flow}: time to ACTIVE p99`, value: summary.timeToActiveMs.p99, unit: 'ms' });
      }
      rows.push({
        name: `${flow}: duplicates + lost`,
        value: summary.duplicatesCreated + summary.lost,
        unit: 'devices',
        target: '0',
      });
    }
    const burst = await runSimulation(handle, { flow: 'fleet', devices: BURST_DEVICES, burst: true });
    rows.push({
      name: `fleet burst: ${BURST_DEVICES} devices powered on at once, AWS's Fleet Provisioning quotas`,
      value: burst.devicesPerSecond,
      unit: 'devices/s',
      target: `${FLEET_IDEAL_DEVICES_PER_SECOND} (quota-limited ideal)`,
      ratio: burst.devicesPerSecond / FLEET_IDEAL_DEVICES_PER_SECOND,
    });
    rows.push({
      name: 'fleet burst: lost / duplicates / stuck (from the store)',
      value: burst.lost + burst.duplicatesCreated + burst.stuck,
      unit: `devices (${burst.lost} / ${burst.duplicatesCreated} / ${burst.stuck})`,
      target: '0',
    });
    rows.push({
      name: 'fleet burst: throttled requests retried (ThrottlingException)',
      value: burst.throttled ?? 0,
      unit: 'requests',
    });
  } finally {
    await stack.stop();
  }
  return rows;
}
