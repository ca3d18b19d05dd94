#!/usr/bin/env node
// `npm run iam:calls`: adopts the function → AWS call list the last test run recorded
// (.fleetgate/iam-calls.json, written by the test run's teardown when it saw calls the committed list
// lacks) as local/iam/function-calls.json, which `fleetgate doctor --target aws` checks on a deployment.
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const recorded = join(root, '.fleetgate', 'iam-calls.json');
const committed = join(root, 'local', 'iam', 'function-calls.json');
if (!existsSync(recorded)) {
  process.stderr.write(
    'no .fleetgate/iam-calls.json: run `npm test` first (it is written when a run sees new calls)\n',
  );
  process.exit(1);
}
const before = existsSync(committed) ? JSON.parse(readFileSync(committed, 'utf8')).length : 0;
copyFileSync(recorded, committed);
const after = JSON.parse(readFileSync(committed, 'utf8')).length;
process.stdout.write(`local/iam/function-calls.json: ${before} → ${after} calls\n`);
