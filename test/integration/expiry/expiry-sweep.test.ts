import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { Context } from 'aws-lambda';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHandler, SweepIncompleteError } from '../../../functions/expiry-sweep/create-handler';
import { DAY_MS, type ExpiryPolicy, formatIso } from '../../../shared/domain/expiry';
import { runExpirySweep, type SweepDeps } from '../../../shared/expiry/expiry-sweep';
import { createReportSink } from '../../../shared/reports/report-sink';
import type { CertificateRecord, DeviceRecord } from '../../../shared/store/records';
import { SweepFacts } from '../../../shared/store/sweep-facts';
import { SweepStore } from '../../../shared/store/sweep-store';
import { createTestTable, type TestTable } from '../../support/dynamo';
import { DEFAULT_EXPIRY_POLICY } from '../../support/expiry';

// One minute before a UTC midnight: windows end mid-day-partition, and +1 minute is another day.
const NOW_ISO = '2026-11-24T23:59:00.000Z';
const NOW = Date.parse(NOW_ISO);
const POLICY = DEFAULT_EXPIRY_POLICY;
/** A shorter horizon (fewer day partitions to read) for the tests that run the sweep many times. */
const SHORT: ExpiryPolicy = { ...POLICY, lookbackDays: 2, chartDays: 35 };
const at = (offsetMs: number) => formatIso(NOW + offsetMs);

let table: TestTable;
let sweepStore: SweepStore;
let facts: SweepFacts;
let dir: string;

function certificate(
  id: string,
  notAfterOffset: number,
  overrides: Partial<CertificateRecord> = {},
): CertificateRecord {
  return {
    certificateId: id,
    kind: 'DEVICE',
    status: 'ACTIVE',
    source: 'FLEET_PROVISIONING',
    serial: `SN-${id}`,
    thingName: `thing-${id}`,
    issuer: 'CN=Test CA',
    notBefore: at(-100 * DAY_MS),
    notAfter: at(notAfterOffset),
    createdAt: NOW_ISO,
    updatedAt: NOW_ISO,
    ...overrides,
  };
}

/** Certificates on both sides of every boundary; the expected class, or undefined for "not reported". */
const SEEDED: Array<[CertificateRecord, string | undefined]> = [
  [certificate('expired-1ms', -1), 'EXPIRED'],
  [certificate('expired-89d', -89 * DAY_MS), 'EXPIRED'],
  [certificate('expired-beyond-lookback', -90 * DAY_MS - 1), undefined],
  [certificate('expires-now', 0), 'EXPIRING_7D'],
  [certificate('expires-next-minute', 60_000), 'EXPIRING_7D'],
  [certificate('inside-7d', 7 * DAY_MS - 1), 'EXPIRING_7D'],
  [certificate('on-7d', 7 * DAY_MS), 'EXPIRING_30D'],
  [certificate('inside-30d', 30 * DAY_MS - 1), 'EXPIRING_30D'],
  [certificate('on-30d', 30 * DAY_MS), undefined],
  [certificate('in-60d', 60 * DAY_MS), undefined],
  [certificate('retired-expired', -DAY_MS, { status: 'RETIRED' }), undefined],
  // AWS-issued certificates expire in 2049: only their age gives them away.
  [certificate('too-old', 8400 * DAY_MS, { notBefore: at(-825 * DAY_MS - 1) }), 'TOO_OLD'],
  [certificate('just-young-enough', 8400 * DAY_MS, { notBefore: at(-825 * DAY_MS) }), undefined],
  [certificate('too-old-beyond-lookback', 8400 * DAY_MS, { notBefore: at(-916 * DAY_MS) }), undefined],
  [certificate('old-and-expiring', 3 * DAY_MS, { notBefore: at(-1000 * DAY_MS) }), 'EXPIRING_7D'],
  // CA and claim certificates are always examined, however long ago they expired.
  [
    certificate('claim-expired-long-ago', -400 * DAY_MS, {
      kind: 'CLAIM',
      source: 'CLAIM',
      serial: undefined,
      thingName: undefined,
    }),
    'EXPIRED',
  ],
  [
    certificate('claim-fine', 300 * DAY_MS, {
      kind: 'CLAIM',
      source: 'CLAIM',
      serial: undefined,
      thingName: undefined,
    }),
    undefined,
  ],
  [
    certificate('ca-expiring', 20 * DAY_MS, {
      kind: 'CA',
      source: 'CA',
      serial: undefined,
      thingName: undefined,
      notBefore: at(-3650 * DAY_MS),
    }),
    'EXPIRING_30D',
  ],
];
// Many on one day across every shard, so pages and shards are both crossed.
for (let i = 0; i < 40; i += 1) SEEDED.push([certificate(`bulk-${i}`, 2 * DAY_MS + i * 1000), 'EXPIRING_7D']);

const EXPECTED = Object.fromEntries(SEEDED.flatMap(([c, cls]) => (cls ? [[c.certificateId, cls]] : [])));

beforeAll(async () => {
  table = await createTestTable('sweep');
  sweepStore = new SweepStore(table.store);
  facts = new SweepFacts(table.store);
  dir = await mkdtemp(join(tmpdir(), 'fleetgate-sweep-'));
  for (const [record] of SEEDED) expect(await table.store.putCertificateIfAbsent(record)).toBe(true);
});
afterAll(async () => {
  await table.drop();
  await rm(dir, { recursive: true, force: true });
});

function deps(sinkDir: string, overrides: Partial<SweepDeps> = {}): SweepDeps {
  return {
    sweepStore,
    facts,
    sink: createReportSink(`file://${join(dir, sinkDir)}`),
    remainingMs: () => Number.POSITIVE_INFINITY,
    safetyMarginMs: 0,
    pageSize: 3,
    pagesPerCommit: 64,
    clock: () => NOW,
    ...overrides,
  };
}

describe('runExpirySweep against DynamoDB Local', () => {
  it('classifies every certificate through the indexes exactly as the rules say', async () => {
    // Act
    const outcome = await runExpirySweep({ runId: 'full', now: NOW_ISO, policy: POLICY }, deps('full'));
    // Assess
    expect(outcome.status).toBe('complete');
    if (outcome.status !== 'complete' || !outcome.report) throw new Error('not complete');
    const found = Object.fromEntries(outcome.report.atRisk.map((e) => [e.certificateId, e.class]));
    expect(found).toEqual(EXPECTED);
    expect(outcome.summary.counts).toEqual({ EXPIRED: 3, EXPIRING_7D: 44, EXPIRING_30D: 3, TOO_OLD: 1 });
    expect(outcome.report.rotation.map((r) => r.certificateId)).toContain('too-old');
    expect(outcome.report.rotation.map((r) => r.certificateId)).not.toContain('claim-expired-long-ago');
    // The files agree with the outcome.
    const csv = parse(await readFile(outcome.files.csv, 'utf8'), { columns: true }) as Array<
      Record<string, string>
    >;
    expect(csv).toHaveLength(51);
    const html = await readFile(outcome.files.html, 'utf8');
    expect(html).toContain('data-count="EXPIRING_7D">44<');
    expect(JSON.parse(await readFile(join(dir, 'full', 'expiry-reports', 'latest.json'), 'utf8')).runId).toBe(
      'full',
    );
  });

  it('resumes after a timeout with the same report and nothing counted twice', async () => {
    // Prepare: the reference, uninterrupted.
    const reference = await runExpirySweep(
      { runId: 'reference', now: NOW_ISO, policy: SHORT },
      deps('reference'),
    );
    // Act: the first invocation runs out of time after 5 pages, the second after 7 more.
    let calls = 0;
    const shortOfTime = (pages: number) => () => (calls++ < pages ? 60_000 : 0);
    const first = await runExpirySweep(
      { runId: 'resumed', now: NOW_ISO, policy: SHORT },
      deps('resumed', { remainingMs: shortOfTime(5), safetyMarginMs: 1000, pagesPerCommit: 2 }),
    );
    calls = 0;
    const second = await runExpirySweep(
      { runId: 'resumed', now: NOW_ISO, policy: SHORT },
      deps('resumed', { remainingMs: shortOfTime(7), safetyMarginMs: 1000, pagesPerCommit: 3 }),
    );
    // A later invocation passes a different `now` and policy: the run keeps its own.
    const third = await runExpirySweep(
      { runId: 'resumed', now: at(5 * DAY_MS), policy: { ...POLICY, windowsDays: [1] } },
      deps('resumed', { pagesPerCommit: 5 }),
    );
    const again = await runExpirySweep({ runId: 'resumed', now: NOW_ISO, policy: SHORT }, deps('resumed'));
    // Assess
    expect(first.status).toBe('incomplete');
    expect(second.status).toBe('incomplete');
    if (first.status !== 'incomplete' || second.status !== 'incomplete') throw new Error('unexpected');
    expect(second.step).toBeGreaterThan(first.step);
    expect(third.status).toBe('complete');
    if (third.status !== 'complete' || !third.report || reference.status !== 'complete' || !reference.report)
      throw new Error('not complete');
    expect(third.report.atRisk).toEqual(reference.report.atRisk);
    expect(third.report.chart).toEqual(reference.report.chart);
    expect(third.summary.counts).toEqual(reference.summary.counts);
    expect(third.summary.itemsRead).toBe(reference.summary.itemsRead);
    expect(again).toMatchObject({ status: 'complete', alreadyComplete: true, summary: third.summary });
    const checkpoint = await sweepStore.getCheckpoint('resumed');
    expect(checkpoint).toMatchObject({ status: 'COMPLETE', invocations: 3 });
  });

  it('reads the next partitions ahead (several Queries in flight) and reports exactly what one Query at a time does', async () => {
    // Prepare: a store that counts the index Queries in flight (SHORT: ~300 partitions, mostly empty).
    let inFlight = 0;
    let mostInFlight = 0;
    const counting = new SweepStore(table.store);
    const readPage = counting.readPage.bind(counting);
    counting.readPage = async (...args) => {
      inFlight += 1;
      mostInFlight = Math.max(mostInFlight, inFlight);
      try {
        return await readPage(...args);
      } finally {
        inFlight -= 1;
      }
    };
    // Act
    const oneByOne = await runExpirySweep(
      { runId: 'one-by-one', now: NOW_ISO, policy: SHORT },
      deps('one-by-one', { sweepStore: counting, readAhead: 0 }),
    );
    const sequentialMost = mostInFlight;
    mostInFlight = 0;
    const ahead = await runExpirySweep(
      { runId: 'read-ahead', now: NOW_ISO, policy: SHORT },
      deps('read-ahead', { sweepStore: counting, pagesPerCommit: 7 }),
    );
    // Assess
    expect(sequentialMost).toBe(1);
    expect(mostInFlight).toBeGreaterThan(1);
    if (oneByOne.status !== 'complete' || ahead.status !== 'complete' || !oneByOne.report || !ahead.report)
      throw new Error('not complete');
    expect(ahead.report.atRisk).toEqual(oneByOne.report.atRisk);
    expect(ahead.report.chart).toEqual(oneByOne.report.chart);
    expect(ahead.summary.itemsRead).toBe(oneByOne.summary.itemsRead);
    expect(ahead.summary.counts).toEqual(oneByOne.summary.counts);
  });

  it('a Query read ahead that fails fails the run (the error, never an unhandled rejection)', async () => {
    const failing = new SweepStore(table.store);
    const readPage = failing.readPage.bind(failing);
    let calls = 0;
    failing.readPage = async (...args) => {
      calls += 1;
      if (calls === 5) throw new Error('ProvisionedThroughputExceededException on partition 5');
      return readPage(...args);
    };
    await expect(
      runExpirySweep(
        { runId: 'failed-read', now: NOW_ISO, policy: SHORT },
        deps('failed-read', { sweepStore: failing }),
      ),
    ).rejects.toThrow('ProvisionedThroughputExceededException on partition 5');
  });

  it('refuses a page committed twice (a stale invocation cannot double-count)', async () => {
    await sweepStore.startRun({ runId: 'stale', now: NOW_ISO, policy: POLICY, at: NOW_ISO });
    const page = { seq: 0, step: 0, atRisk: [], chart: [], itemsRead: 1, readUnits: 0.5 };
    expect(await sweepStore.commitPage('stale', page, { step: 1 }, NOW_ISO)).toBe('committed');
    expect(await sweepStore.commitPage('stale', page, { step: 1 }, NOW_ISO)).toBe('conflict');
    expect(await sweepStore.getCheckpoint('stale')).toMatchObject({ seq: 1, step: 1, itemsRead: 1 });
  });

  it('reports the change since the previous report read from the destination', async () => {
    // Prepare: a table of its own (the runs above, dated today, would be later than yesterday's
    // run), yesterday's report, then a rotation retires one certificate and a new one appears.
    const daily = await createTestTable('sweep-daily');
    for (const [record] of SEEDED) expect(await daily.store.putCertificateIfAbsent(record)).toBe(true);
    const onDaily = deps('daily', {
      sweepStore: new SweepStore(daily.store),
      facts: new SweepFacts(daily.store),
    });
    const yesterday = NOW - DAY_MS;
    const first = await runExpirySweep({ runId: 'day-1', now: formatIso(yesterday), policy: SHORT }, onDaily);
    expect(first.status).toBe('complete');
    expect(await daily.store.updateCertificateStatus('inside-7d', 'RETIRED', NOW_ISO)).toBe(true);
    expect(await daily.store.putCertificateIfAbsent(certificate('newcomer', 5 * DAY_MS))).toBe(true);
    // Act
    const second = await runExpirySweep({ runId: 'day-2', now: NOW_ISO, policy: SHORT }, onDaily);
    // Assess
    if (second.status !== 'complete' || !second.report || first.status !== 'complete')
      throw new Error('not complete');
    const change = second.report.change;
    expect(change.previousRunId).toBe('day-1');
    expect(change.resolved).toEqual(['inside-7d']);
    expect(change.newAtRisk.sort()).toEqual(['inside-30d', 'newcomer', 'too-old']);
    expect(change.reclassified).toContainEqual({
      certificateId: 'expired-1ms',
      from: 'EXPIRING_7D',
      to: 'EXPIRED',
    });
    for (const [name, count] of Object.entries(second.summary.counts)) {
      expect(change.countsDelta[name]).toBe(count - (first.summary.counts[name] ?? 0));
    }
    await daily.drop();
  });
});

describe('expirySweep handler', () => {
  it('saves the checkpoint and fails when time runs out, then the retried event finishes the run', async () => {
    // Prepare
    let remaining = 500;
    const handler = createHandler({
      policy: SHORT,
      sweepStore,
      facts,
      sink: createReportSink(`file://${join(dir, 'handler')}`),
      logger: new Logger({ logLevel: 'SILENT' }),
      metrics: new Metrics({ namespace: 'test' }),
      safetyMarginMs: 1000,
      pageSize: 50,
      clock: () => NOW,
    });
    const event = JSON.parse(
      await readFile('events/schedule/expiry-sweep-scheduled.json', 'utf8'),
    ) as unknown;
    const context = {
      getRemainingTimeInMillis: () => remaining,
      awsRequestId: 'r1',
      functionName: 'expirySweep',
    } as unknown as Context;
    // Act + Assess
    await expect(handler(event, context)).rejects.toBeInstanceOf(SweepIncompleteError);
    remaining = 600_000;
    const result = await handler(event, context);
    expect(result).toMatchObject({
      status: 'complete',
      runId: 'scheduled-20261124T060000Z',
      alreadyComplete: false,
    });
    await expect(handler({ runId: 'bad id!' }, context)).rejects.toMatchObject({ code: 'VALIDATION' });
  });
});

describe('report rows carry the device state; the baseline is the same table', () => {
  let a: TestTable;
  let b: TestTable;
  const shared = () => join(dir, 'shared-destination');
  const on = (t: TestTable, overrides: Partial<SweepDeps> = {}): SweepDeps => ({
    ...deps('unused'),
    sweepStore: new SweepStore(t.store),
    facts: new SweepFacts(t.store),
    sink: createReportSink(`file://${shared()}`),
    ...overrides,
  });
  const device = (serial: string, state: DeviceRecord['state'], thingName?: string): DeviceRecord => ({
    serial,
    state,
    version: 1,
    attributes: {},
    ...(thingName ? { thingName } : {}),
    createdAt: NOW_ISO,
    updatedAt: NOW_ISO,
  });

  beforeAll(async () => {
    [a, b] = await Promise.all([createTestTable('sweep-state-a'), createTestTable('sweep-state-b')]);
    const history = { id: 'h1', actor: 'test' };
    expect(await a.store.createDevice(device('SN-HELD', 'QUARANTINED', 'fg-SN-HELD'), history)).toBe(true);
    expect(await a.store.createDevice(device('SN-LIVE', 'ACTIVE', 'fg-SN-LIVE'), history)).toBe(true);
    // A JITR certificate recorded without a thing name: the report takes the device's.
    await a.store.putCertificateIfAbsent(
      certificate('held', 3 * DAY_MS, { serial: 'SN-HELD', thingName: undefined, source: 'JITR' }),
    );
    await a.store.putCertificateIfAbsent(certificate('live', 3 * DAY_MS, { serial: 'SN-LIVE' }));
    // A factory certificate whose device has never connected (the factory import leaves it
    // PROVISIONING with the certificate PENDING): no connection to rotate over.
    expect(await a.store.createDevice(device('SN-UNBOXED', 'PROVISIONING'), history)).toBe(true);
    await a.store.putCertificateIfAbsent(
      certificate('unboxed', 3 * DAY_MS, { serial: 'SN-UNBOXED', status: 'PENDING', source: 'FACTORY' }),
    );
    await b.store.putCertificateIfAbsent(certificate('other', 3 * DAY_MS, { serial: 'SN-OTHER' }));
  });
  afterAll(async () => {
    await Promise.all([a?.drop(), b?.drop()]);
  });

  it('quarantined and never-connected devices are listed with their state, never rotation candidates (JSON, CSV, HTML)', async () => {
    const outcome = await runExpirySweep({ runId: 'state-1', now: NOW_ISO, policy: POLICY }, on(a));
    if (outcome.status !== 'complete' || !outcome.report) throw new Error('not complete');
    const rows = Object.fromEntries(outcome.report.atRisk.map((entry) => [entry.certificateId, entry]));
    expect(rows.held).toMatchObject({
      deviceState: 'QUARANTINED',
      thingName: 'fg-SN-HELD',
      status: 'ACTIVE',
    });
    expect(rows.live).toMatchObject({ deviceState: 'ACTIVE' });
    expect(rows.unboxed).toMatchObject({ deviceState: 'PROVISIONING' });
    expect(outcome.report.rotation.map((candidate) => candidate.serial)).toEqual(['SN-LIVE']);
    expect(outcome.summary).toMatchObject({
      rotationCandidates: 1,
      byDeviceState: { QUARANTINED: 1, ACTIVE: 1, PROVISIONING: 1 },
    });
    const csv = parse(await readFile(outcome.files.csv, 'utf8'), { columns: true }) as Array<
      Record<string, string>
    >;
    expect(csv.find((row) => row.certificateId === 'held')).toMatchObject({
      deviceState: 'QUARANTINED',
      thingName: 'fg-SN-HELD',
    });
    const html = await readFile(outcome.files.html, 'utf8');
    expect(html).toContain('<th>Device state</th>');
    expect(html).toContain('data-device-state="QUARANTINED"><span class="state held">QUARANTINED</span>');
    expect(html).toContain('data-device-state="PROVISIONING"><span class="state held">PROVISIONING</span>');
    expect(html).toContain(
      '1 on quarantined, revoked or decommissioned devices, 1 on devices that have never connected (no connection to rotate over) not asked',
    );
  });

  it("compares with the table's own previous run, never with another table's report in the same destination", async () => {
    // Table B's first run, written where table A's report already is (latest.json is A's).
    const latestInDestination = JSON.parse(
      await readFile(join(shared(), 'expiry-reports', 'latest.json'), 'utf8'),
    ) as { runId: string };
    expect(latestInDestination.runId).toBe('state-1');
    const first = await runExpirySweep({ runId: 'other-1', now: NOW_ISO, policy: POLICY }, on(b));
    if (first.status !== 'complete' || !first.report) throw new Error('not complete');
    expect(first.report.change.previousRunId).toBeUndefined();
    expect(first.report.change.newAtRisk).toEqual(['other']);
    expect(first.report.change.resolved).toEqual([]);
    // Table A's next run compares with A's previous one, although B's report is the newest file.
    const second = await runExpirySweep({ runId: 'state-2', now: NOW_ISO, policy: POLICY }, on(a));
    if (second.status !== 'complete' || !second.report) throw new Error('not complete');
    expect(second.report.change).toMatchObject({ previousRunId: 'state-1', newAtRisk: [], resolved: [] });
  });
});

describe('the change since the previous run never counts an expiry as resolved', () => {
  let t: TestTable;
  const on = (): SweepDeps => ({
    ...deps('unused'),
    sweepStore: new SweepStore(t.store),
    facts: new SweepFacts(t.store),
    sink: createReportSink(`file://${join(dir, 'expired-not-resolved')}`),
  });
  const history = { id: 'h1', actor: 'test' };

  beforeAll(async () => {
    t = await createTestTable('sweep-expired');
    // A device that never connected, and one whose certificate the next run finds replaced.
    expect(
      await t.store.createDevice(
        {
          serial: 'SN-WAITING',
          state: 'PROVISIONING',
          version: 1,
          attributes: {},
          certificateId: 'waiting',
          createdAt: NOW_ISO,
          updatedAt: NOW_ISO,
        },
        history,
      ),
    ).toBe(true);
    await t.store.putCertificateIfAbsent(
      certificate('waiting', 5 * DAY_MS, { serial: 'SN-WAITING', status: 'PENDING', source: 'FACTORY' }),
    );
    await t.store.putCertificateIfAbsent(certificate('unbound', 5 * DAY_MS, { serial: 'SN-UNBOUND' }));
    await t.store.putCertificateIfAbsent(certificate('rotated-old', 5 * DAY_MS, { serial: 'SN-ROTATED' }));
  });
  afterAll(async () => {
    await t?.drop();
  });

  it('lists certificates whose notAfter passed as expired, and a replaced one as resolved', async () => {
    // Prepare: the run at NOW lists the three; then SN-ROTATED gets a new certificate.
    const first = await runExpirySweep({ runId: 'exp-1', now: NOW_ISO, policy: POLICY }, on());
    if (first.status !== 'complete' || !first.report) throw new Error('not complete');
    expect(first.report.atRisk.map((entry) => entry.certificateId).sort()).toEqual([
      'rotated-old',
      'unbound',
      'waiting',
    ]);
    await t.store.putCertificateIfAbsent(certificate('rotated-new', 400 * DAY_MS, { serial: 'SN-ROTATED' }));
    expect(
      await t.store.createDevice(
        {
          serial: 'SN-ROTATED',
          state: 'ACTIVE',
          version: 1,
          attributes: {},
          certificateId: 'rotated-new',
          createdAt: NOW_ISO,
          updatedAt: NOW_ISO,
        },
        history,
      ),
    ).toBe(true);
    // Act: six months on, all three notAfter are before the look-back.
    const later = formatIso(NOW + 180 * DAY_MS);
    const second = await runExpirySweep({ runId: 'exp-2', now: later, policy: POLICY }, on());
    // Assess
    if (second.status !== 'complete' || !second.report) throw new Error('not complete');
    expect(second.report.change).toMatchObject({
      previousRunId: 'exp-1',
      resolved: ['rotated-old'],
      expired: ['unbound', 'waiting'],
      agedOut: [],
    });
    expect(second.change).toMatchObject({ resolved: 1, expired: 2, agedOut: 0 });
    const json = JSON.parse(await readFile(second.files.json, 'utf8')) as typeof second.report;
    expect(json.change.expired).toEqual(['unbound', 'waiting']);
  });
});

describe('the baseline is the latest real run of the table, never a what-if run', () => {
  let t: TestTable;
  const HOUR = 3_600_000;
  const on = (clockMs: number): SweepDeps => ({
    ...deps('unused'),
    sweepStore: new SweepStore(t.store),
    facts: new SweepFacts(t.store),
    sink: createReportSink(`file://${join(dir, 'what-if')}`),
    clock: () => clockMs,
  });
  const previousOf = async (outcome: Awaited<ReturnType<typeof runExpirySweep>>) => {
    if (outcome.status !== 'complete' || !outcome.report) throw new Error('not complete');
    return outcome.report.change.previousRunId;
  };

  beforeAll(async () => {
    t = await createTestTable('sweep-what-if');
    await t.store.putCertificateIfAbsent(certificate('soon', 5 * DAY_MS));
  });
  afterAll(async () => {
    await t?.drop();
  });

  it('compares a what-if run with the latest real run, and the next real run never with the what-if', async () => {
    // Prepare: a real run, then a what-if six months on, written to another folder.
    expect(
      await previousOf(await runExpirySweep({ runId: 'real-1', now: NOW_ISO, policy: POLICY }, on(NOW))),
    ).toBe(undefined);
    const whatIf = { runId: 'what-if', now: at(180 * DAY_MS), policy: POLICY, simulated: true };
    expect(
      await previousOf(
        await runExpirySweep(whatIf, {
          ...on(NOW),
          sink: createReportSink(`file://${join(dir, 'what-if-out')}`),
        }),
      ),
    ).toBe('real-1');
    // Act: the next real run, an hour later.
    const next = await runExpirySweep({ runId: 'real-2', now: at(HOUR), policy: POLICY }, on(NOW + HOUR));
    // Assess
    expect(await previousOf(next)).toBe('real-1');
    if (next.status !== 'complete' || !next.report) throw new Error('not complete');
    expect(next.report.change).toMatchObject({ newAtRisk: [], resolved: [], expired: [] });
    expect(await new SweepFacts(t.store).latest()).toMatchObject({ runId: 'real-2', now: at(HOUR) });
    // A what-if run resumed later stays one: it never becomes the baseline.
    expect(await runExpirySweep({ ...whatIf, simulated: false }, on(NOW + 2 * HOUR))).toMatchObject({
      alreadyComplete: true,
    });
    expect(
      (
        await t.store.client.send(
          new GetCommand({ TableName: t.tableName, Key: { PK: 'SWEEP#', SK: 'LATEST' } }),
        )
      ).Item,
    ).toMatchObject({ runId: 'real-2' });
  });

  it('skips a what-if run a pointer written before the fix names, and a run dated later than this one', async () => {
    // Prepare: the pointer as the previous code left it after a what-if run (no instant on it).
    const future = await runExpirySweep(
      { runId: 'legacy-what-if', now: at(180 * DAY_MS), policy: POLICY, simulated: true },
      on(NOW + 3 * HOUR),
    );
    expect(await previousOf(future)).toBe('real-2');
    await t.store.client.send(
      new PutCommand({
        TableName: t.tableName,
        Item: {
          PK: 'SWEEP#',
          SK: 'LATEST',
          runId: 'legacy-what-if',
          previousRunId: 'real-2',
          at: at(3 * HOUR),
        },
      }),
    );
    // Act
    const real = await runExpirySweep(
      { runId: 'real-3', now: at(4 * HOUR), policy: POLICY },
      on(NOW + 4 * HOUR),
    );
    // A real run dated before real-3 (a backfill finishing late) compares with real-2, and leaves the pointer.
    const late = await runExpirySweep(
      { runId: 'real-late', now: at(3 * HOUR), policy: POLICY },
      on(NOW + 5 * HOUR),
    );
    // Assess
    expect(await previousOf(real)).toBe('real-2');
    expect(await previousOf(late)).toBe('real-2');
    expect(await new SweepFacts(t.store).latest()).toMatchObject({
      runId: 'real-3',
      previousRunId: 'real-2',
    });
  });
});
