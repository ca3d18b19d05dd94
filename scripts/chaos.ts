/**
 * `npm run chaos [-- --devices N --flows fleet,jitr,jitp --rate 0.1 --seed S]`: fault injection on a
 * fresh local stack (local/chaos.ts) — the emulator's 5xx and throttling, crashes between an IoT call
 * and a store write, duplicated and reordered deliveries — then the counts of duplicates, orphan
 * certificates and things, and lost events, from the store and the emulator's registry. Exit 0 when
 * every flow converged (all counts 0), 1 otherwise.
 */
import { parseArgs } from 'node:util';
import { formatChaos, runChaos } from '../local/chaos';
import type { SimulationFlow } from '../local/simulator/simulate';

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '200' },
    flows: { type: 'string', default: 'fleet,jitr,jitp' },
    rate: { type: 'string', default: '0.1' },
    seed: { type: 'string', default: '15' },
    json: { type: 'boolean', default: false },
  },
});
const devices = Number(values.devices);
const rate = Number(values.rate);
const flows = String(values.flows).split(',') as SimulationFlow[];
if (!Number.isInteger(devices) || devices < 1 || !(rate >= 0 && rate <= 1)) {
  process.stderr.write(
    'usage: npm run chaos -- [--devices N] [--flows fleet,jitr,jitp] [--rate 0..1] [--seed S]\n',
  );
  process.exit(2);
}
const started = performance.now();
const result = await runChaos({
  devices,
  flows,
  errorRate: rate,
  throttleRate: rate,
  crashRate: rate,
  seed: Number(values.seed),
  onProgress: (line) => process.stderr.write(`${line}\n`),
});
process.stdout.write(
  values.json
    ? `${JSON.stringify(result, null, 2)}\n`
    : `${formatChaos(result)}\n(${((performance.now() - started) / 1000).toFixed(0)} s)\n`,
);
process.exitCode = result.ok ? 0 : 1;
