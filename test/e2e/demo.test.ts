import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { DemoSummary } from '../../local/simulator/demo';
import { isAlive } from '../../local/stack-file';
import { type CliResult, fleetgate } from '../support/cli';

interface DevResult {
  running: boolean;
  pids: { dynamodb?: number };
  demo: DemoSummary;
}

let dir: string;
let result: CliResult;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetgate-e2e-demo-'));
  result = await fleetgate(['dev', '--exit', '--json'], {
    FLEETGATE_STACK_FILE: join(dir, 'stack.json'),
    FLEETGATE_REPORTS_DIR: join(dir, 'reports'),
  });
}, 300_000);

describe('fleetgate dev --exit (the npm start demo)', () => {
  it('runs the demo and prints one JSON document with its summary', () => {
    // On failure, show the summary too: it says which invariant broke and for which device.
    expect(result.code, `${result.stderr}\n${result.stdout.slice(0, 6000)}`).toBe(0);
    const { demo } = result.json<DevResult>();
    expect(demo).toMatchObject({ ok: true, duplicatesCreated: 0, lost: 0, admittedBadActors: 0 });
    expect(demo.flows.map((flow) => flow.flow)).toContain('fleet');
    expect(demo.flows.reduce((sum, flow) => sum + flow.devices, 0)).toBeGreaterThanOrEqual(25);
  });

  it('provisions every legitimate device and stops every bad actor', () => {
    const { demo } = result.json<DevResult>();
    for (const flow of demo.flows) {
      const badActors = Object.values(flow.badActors).reduce((sum, n) => sum + n, 0);
      const stopped = [
        ...Object.values(flow.deniedByReason),
        ...Object.values(flow.quarantinedByReason),
      ].reduce((sum, n) => sum + n, 0);
      expect(flow.provisioned, flow.flow).toBe(flow.devices);
      expect(flow.admittedBadActors, flow.flow).toEqual([]);
      expect(flow.unquarantinedClones, flow.flow).toEqual([]);
      expect(stopped, flow.flow).toBeGreaterThanOrEqual(badActors);
      expect(flow.duplicatesCreated, flow.flow).toBe(0);
      expect(flow.lost, flow.flow).toBe(0);
    }
  });

  it('writes the expiry report and leaves no process behind', () => {
    const { demo, pids } = result.json<DevResult>();
    expect(demo.sweep?.files.html).toMatch(/expiry-report\.html$/);
    expect(existsSync(demo.sweep?.files.html ?? '')).toBe(true);
    expect(pids.dynamodb === undefined || !isAlive(pids.dynamodb)).toBe(true);
  });
});
