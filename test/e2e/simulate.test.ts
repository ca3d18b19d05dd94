/**
 * `fleetgate simulate` as a user runs it, on a stack that stays up (`fleetgate local up`): real
 * certificates, bad actors and duplicated events, one JSON document, exit 0 only when every invariant
 * holds. Then what an operator does next on that stack: `quarantine list` counts what simulate said
 * is in quarantine, `quarantine add` quarantines a device by hand through QuarantineQueue (and
 * `release` gives it back), and `devices list` prints a table.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plural } from '../../cli/plural';
import { serialFor } from '../../local/simulator/plan';
import type { SimulationSummary } from '../../local/simulator/simulate';
import { readStackFile } from '../../local/stack-file';
import type { DeviceRecord } from '../../shared/store/records';
import { fleetgate } from '../support/cli';
import { dumpTable } from '../support/dynamo';

/**
 * The simulation's invariants as the store holds them, not as the simulator counts them: every
 * device of the stack's table by state, and per serial the certificates recorded ACTIVE and the
 * things they name (a duplicate is a serial with two of either).
 */
async function storeInvariants(stackEnv: Record<string, string>, serials: ReadonlySet<string>) {
  const stack = readStackFile(stackEnv.FLEETGATE_STACK_FILE);
  if (!stack?.endpoints.dynamodb) throw new Error('no local stack file with a DynamoDB endpoint');
  const client = new DynamoDBClient({
    endpoint: stack.endpoints.dynamodb,
    region: stack.region,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  try {
    const items = await dumpTable(DynamoDBDocumentClient.from(client), stack.tableName);
    const devices = items.filter(
      (item) => item.SK === 'DEVICE' && serials.has(String(item.serial)),
    ) as unknown as DeviceRecord[];
    const byState: Record<string, number> = {};
    for (const device of devices) byState[device.state] = (byState[device.state] ?? 0) + 1;
    const active = new Map<string, Set<string>>();
    const things = new Map<string, Set<string>>();
    for (const item of items) {
      if (item.SK !== 'CERT' || typeof item.serial !== 'string' || !serials.has(item.serial)) continue;
      if (item.status === 'ACTIVE')
        active.set(item.serial, (active.get(item.serial) ?? new Set()).add(String(item.certificateId)));
      if (typeof item.thingName === 'string')
        things.set(item.serial, (things.get(item.serial) ?? new Set()).add(item.thingName));
    }
    const duplicated = [...new Set([...active.keys(), ...things.keys()])].filter(
      (serial) => (active.get(serial)?.size ?? 0) > 1 || (things.get(serial)?.size ?? 0) > 1,
    );
    return { byState, duplicated, devices: devices.length };
  } finally {
    client.destroy();
  }
}

let env: Record<string, string>;
let summary: SimulationSummary;

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'fleetgate-e2e-simulate-'));
  env = { FLEETGATE_STACK_FILE: join(dir, 'stack.json'), USER: 'e2e-operator' };
  const up = await fleetgate(['local', 'up', '--json'], env);
  expect(up.code, up.stderr).toBe(0);
}, 120_000);
afterAll(async () => {
  await fleetgate(['local', 'down'], env);
});

describe('fleetgate simulate', () => {
  it('JITP with clones, takeovers, unknown serials and duplicated events: nothing duplicated, lost or let through', async () => {
    // Act
    const result = await fleetgate(
      [
        'simulate',
        ...['--devices', '16', '--flow', 'jitp', '--clones', '2', '--invalid', '3', '--duplicates', '2'],
        ...['--seed', '11', '--json'],
      ],
      env,
    );
    // Assess
    expect(result.code, `${result.stderr}\n${result.stdout.slice(0, 4000)}`).toBe(0);
    summary = result.json<SimulationSummary>();
    expect(summary).toMatchObject({
      flow: 'jitp',
      devices: 16,
      provisioned: 16,
      duplicatesCreated: 0,
      lost: 0,
      admittedBadActors: [],
      unquarantinedClones: [],
      errors: [],
    });
    const quarantinedClones = Object.entries(summary.quarantinedByReason)
      .filter(([reason]) => reason.startsWith('clone:'))
      .reduce((sum, [, n]) => sum + n, 0);
    expect(quarantinedClones).toBe(2);
    // The same, from the table: every legitimate device ACTIVE, or in quarantine when a clone or
    // takeover imitated it (the backend cannot tell which is the copy); none stuck in PROVISIONING,
    // none left ALLOWLISTED (lost), no serial with two active certificates or two things.
    const legitimate = new Set(Array.from({ length: 16 }, (_, index) => serialFor(summary.runId, index)));
    const store = await storeInvariants(env, legitimate);
    expect(store.devices).toBe(16);
    expect(store.duplicated).toEqual([]);
    expect(store.byState.PROVISIONING ?? 0).toBe(0);
    expect(store.byState.ALLOWLISTED ?? 0).toBe(0);
    const imitated = store.byState.QUARANTINED ?? 0;
    expect(imitated).toBeLessThanOrEqual(2);
    expect((store.byState.ACTIVE ?? 0) + imitated).toBe(16);
    // The simulation warmed the hook (loaded, not invoked), and JITP never calls it: the hook's log
    // has no decision — no INVALID_EVENT denial of a warm-up nobody made.
    const hookLog = await fleetgate(['logs', '--function', 'preProvisionHook', '--json'], env);
    expect(hookLog.code, hookLog.stderr).toBe(0);
    const decisions = hookLog
      .json<{ lines: Array<Record<string, unknown>> }>()
      .lines.filter((line) => 'reason' in line || /^provisioning |denying/.test(String(line.message)));
    expect(decisions).toEqual([]);
  }, 240_000);

  it('--burst: a factory line powering on at once is throttled by Fleet Provisioning, backs off, and every device provisions', async () => {
    // Act: 30 devices at once against 3 TPS per operation (AWS's 15 / 10 TPS are not reached by 30
    // devices on a loaded 2-core machine: generating their keys spreads them out over seconds)
    const result = await fleetgate([
      'simulate',
      ...['--devices', '30', '--flow', 'fleet', '--burst', '--burst-tps', '3', '--json'],
    ]);
    // Assess
    expect(result.code, `${result.stderr}\n${result.stdout.slice(0, 4000)}`).toBe(0);
    const summary = result.json<SimulationSummary>();
    expect(summary).toMatchObject({
      flow: 'fleet',
      provisioned: 30,
      duplicatesCreated: 0,
      lost: 0,
      stuck: 0,
      errors: [],
    });
    expect(summary.throttled).toBeGreaterThan(0);
  }, 240_000);

  it('refuses an unknown flow with a usage error (exit 2) naming the option', async () => {
    const result = await fleetgate(['simulate', '--flow', 'bluetooth', '--json'], env);
    expect(result.code).toBe(2);
    expect(result.stdout + result.stderr).toMatch(/flow/);
  });
});

interface Listing {
  devices: Array<{ serial: string; reason?: string; source?: string }>;
  certificates: Array<{ certificateId: string }>;
  counts: { devices: number; certificates: number };
}

describe('what the operator finds afterwards', () => {
  it('quarantine list counts what simulate said is in quarantine', async () => {
    const list = await fleetgate(['quarantine', 'list', '--json'], env);
    expect(list.code, list.stderr).toBe(0);
    const listing = list.json<Listing>();
    expect(listing.counts).toEqual({
      devices: listing.devices.length,
      certificates: listing.certificates.length,
    });
    expect(summary.inQuarantine).toEqual(listing.counts);
    expect(listing.counts.devices + listing.counts.certificates).toBeGreaterThan(0);
    const human = await fleetgate(['quarantine', 'list'], env);
    expect(human.stdout).toContain(
      `${plural(listing.counts.devices, 'device')}, ${plural(listing.counts.certificates, 'certificate')} in quarantine`,
    );
  });

  it('quarantine add: a stolen ACTIVE device is quarantined through the queue, in the history, and released', async () => {
    const active = await fleetgate(['devices', 'list', '--state', 'ACTIVE', '--json'], env);
    const [device, other] = active.json<{ devices: DeviceRecord[] }>().devices;
    if (!device?.certificateId || !other?.certificateId) throw new Error('simulate left no ACTIVE devices');

    const added = await fleetgate(['quarantine', 'add', device.serial, '--reason', 'STOLEN', '--json'], env);
    expect(added.code, added.stderr).toBe(0);
    expect(added.json()).toMatchObject({
      processed: true,
      subject: 'device',
      serial: device.serial,
      state: 'QUARANTINED',
      outcome: 'quarantined',
      previousState: 'ACTIVE',
      reason: 'STOLEN',
      actor: 'cli:e2e-operator',
      queue: expect.stringContaining('fleetgate-local-quarantine'),
      quarantine: { reason: 'STOLEN', source: 'operator', certificateIds: [device.certificateId] },
    });
    const history = await fleetgate(['devices', 'history', device.serial, '--json'], env);
    expect(history.json<{ history: unknown[] }>().history).toContainEqual(
      expect.objectContaining({
        event: 'QUARANTINE',
        from: 'ACTIVE',
        to: 'QUARANTINED',
        actor: 'cli:e2e-operator',
        reason: 'STOLEN',
      }),
    );
    const listed = await fleetgate(['quarantine', 'list', '--reason', 'STOLEN', '--json'], env);
    expect(listed.json<Listing>().devices).toEqual([
      expect.objectContaining({ serial: device.serial, reason: 'STOLEN', source: 'operator' }),
    ]);

    // By certificate id as `devices list` shows it (12 hex and an ellipsis, here upper-cased), with a
    // free-text reason: resolved to the full id, recorded under OPERATOR_REPORTED with the note.
    const byCertificate = await fleetgate(
      [
        'quarantine',
        'add',
        `${other.certificateId.slice(0, 12).toUpperCase()}…`,
        '--reason',
        'seen for sale online',
        '--json',
      ],
      env,
    );
    expect(byCertificate.code, byCertificate.stderr).toBe(0);
    expect(byCertificate.json()).toMatchObject({
      requestId: expect.stringContaining(`operator:${other.certificateId}:`),
      serial: other.serial,
      state: 'QUARANTINED',
      quarantine: { reason: 'OPERATOR_REPORTED', evidence: { note: 'seen for sale online' } },
    });

    const released = await fleetgate(
      ['quarantine', 'release', device.serial, '--reason', 'found in the warehouse', '--json'],
      env,
    );
    expect(released.code, released.stderr).toBe(0);
    expect(released.json()).toMatchObject({ from: 'QUARANTINED', to: 'ACTIVE' });
  });

  it('quarantine add refuses what it cannot carry out, with the rule', async () => {
    const unknown = await fleetgate(
      ['quarantine', 'add', 'NO-SUCH-DEVICE', '--reason', 'STOLEN', '--json'],
      env,
    );
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no device NO-SUCH-DEVICE');
    const empty = await fleetgate(['quarantine', 'add', 'NO-SUCH-DEVICE', '--reason', ' ', '--json'], env);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain('--reason must not be empty');
    const wait = await fleetgate(
      ['quarantine', 'add', 'X', '--reason', 'STOLEN', '--wait', 'soon', '--json'],
      env,
    );
    expect(wait.code).toBe(2);
    expect(wait.stderr).toContain('--wait');
  });

  it('devices list prints a table: a header, then columns that line up', async () => {
    const result = await fleetgate(['devices', 'list', '--state', 'ACTIVE'], env);
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    const [header, ...rest] = lines;
    expect(header).toMatch(/^SERIAL\s+STATE\s+THING\s+CERTIFICATE\s+UPDATED$/);
    const rows = rest.slice(0, -1);
    expect(rows.length).toBeGreaterThan(0);
    for (const column of ['STATE', 'THING', 'CERTIFICATE', 'UPDATED']) {
      const at = header?.indexOf(column) ?? -1;
      for (const row of rows) expect(row[at - 1], `${column} in "${row}"`).toBe(' ');
      for (const row of rows) expect(row[at], `${column} in "${row}"`).not.toBe(' ');
    }
    expect(lines.at(-1)).toMatch(/^\d+ device\(s\)$/);
  });
});
