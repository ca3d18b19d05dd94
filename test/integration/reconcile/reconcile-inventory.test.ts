/**
 * Inventory reconciliation against the IoT emulator and DynamoDB Local through the real SDK: a few
 * dozen agreeing devices with drift planted both ways (and decoys that are not drift), found
 * exactly; a run stopped by a tiny time budget and continued through its continuation messages
 * (delivered twice) gives the same report; a continuation that fails is retried, one that is not a
 * continuation is dead-lettered at once; AWS's default quotas throttle and the run still completes.
 */
import type { Metrics } from '@aws-lambda-powertools/metrics';
import { IoTClient } from '@aws-sdk/client-iot';
import type { Context, SQSBatchResponse } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHandler } from '../../../functions/reconcile-inventory/create-handler';
import type { ReconcileContinuation } from '../../../schemas/reconcile-inventory';
import type { Drift } from '../../../shared/domain/reconciliation';
import { IotInventory } from '../../../shared/iot/iot-inventory';
import { createLogger, createMetrics } from '../../../shared/logging';
import {
  type ReconcileOutcome,
  type ReconcileReport,
  runReconciliation,
} from '../../../shared/reconcile/reconcile-inventory';
import { type ReconcileCheckpoint, ReconcileStore } from '../../../shared/store/reconcile-store';
import type { TestTable } from '../../support/dynamo';
import { RecordingDeadLetters, sqsRecord } from '../../support/jitr';
import { lambdaContext } from '../../support/lambda';
import {
  memorySink,
  PLANTED_DRIFT_COUNTS,
  type PlantedFleet,
  plantFleet,
  type ReconcileRig,
  reconcileDeps,
  startReconcileRig,
} from '../../support/reconcile';

const NOW = '2026-11-24T06:00:00.000Z';
/** Only these IoT APIs may be called: reconciliation never changes the registry. */
const READ_ONLY_APIS = ['ListCertificates', 'DescribeCertificate', 'ListThings', 'ListThingPrincipals'];

let table: TestTable;
let rig: ReconcileRig;
let fleet: PlantedFleet;
let reference: ReconcileReport;

const found = (report: Pick<ReconcileReport, 'drift'>) => report.drift.map((drift) => drift.key).sort();

function complete(outcome: ReconcileOutcome) {
  if (outcome.status !== 'complete') throw new Error(`run ended ${outcome.status}`);
  return outcome;
}

beforeAll(async () => {
  rig = await startReconcileRig('reconcile');
  table = rig.table;
  fleet = await plantFleet(table, rig.iot, 36);
}, 60_000);
afterAll(async () => {
  await rig?.stop();
});

describe('runReconciliation', () => {
  it('finds exactly the planted drift, both ways, and calls only read-only IoT APIs', async () => {
    // Prepare
    const sink = memorySink();
    rig.emulator.clearCalls();
    // Act
    const outcome = complete(
      await runReconciliation({ runId: 'plain', now: NOW }, reconcileDeps(table, rig, sink)),
    );
    // Assess
    reference = outcome.report as ReconcileReport;
    expect(found(reference)).toEqual(fleet.expected);
    expect(outcome.summary.counts).toEqual(PLANTED_DRIFT_COUNTS);
    // 36 agreeing + unknown + inactive + quarantined + provisioning + retired + unknown inactive.
    expect(outcome.summary.certificatesListed).toBe(fleet.consistent + 6);
    // ACTIVE: 36 agreeing + gone + inactive; PROVISIONING: one (QUARANTINED is not read).
    expect(outcome.summary.devicesRead).toBe(fleet.consistent + 3);
    const apis = new Set(rig.emulator.calls.map((call) => call.api));
    expect([...apis].filter((api) => !READ_ONLY_APIS.includes(api))).toEqual([]);
    // DescribeCertificate only for what the listing did not settle: the deleted and the inactive one.
    expect(outcome.summary.apiCalls.DescribeCertificate).toBe(2);
    expect(rig.emulator.callCount('DescribeCertificate')).toBe(2);
    // The files: JSON and CSV agree with the summary.
    const json = JSON.parse(sink.files.get('reconcile-reports/plain/reconcile-report.json') ?? '{}');
    expect(json.format).toBe('fleetgate.reconcile-report/1');
    expect(json.drift).toHaveLength(5);
    const csv = sink.files.get('reconcile-reports/plain/reconcile-report.csv') ?? '';
    expect(csv.trim().split('\r\n')).toHaveLength(1 + 5);
    expect(sink.files.get('reconcile-reports/latest.json')).toBe(
      sink.files.get('reconcile-reports/plain/reconcile-report.json'),
    );
  });

  it('answers a repeated run id from the checkpoint without calling IoT again', async () => {
    // Prepare
    rig.emulator.clearCalls();
    // Act
    const again = complete(
      await runReconciliation({ runId: 'plain', now: NOW }, reconcileDeps(table, rig, memorySink())),
    );
    // Assess
    expect(again.alreadyComplete).toBe(true);
    expect(again.summary.counts).toEqual(reference.summary.counts);
    expect(rig.emulator.calls).toHaveLength(0);
  });
});

describe('reconcileInventory handler: checkpoint and continuation', () => {
  it('stops on a tiny time budget, continues through duplicated continuation messages, and reports the same drift', async () => {
    // Prepare: each invocation may do two units of work before its budget is "spent".
    const sink = memorySink();
    const queue: ReconcileContinuation[] = [];
    const handler = createHandler({
      ...reconcileDeps(table, rig, sink),
      safetyMarginMs: 500,
      continuations: { send: async (continuation) => void queue.push(continuation) },
      deadLetters: new RecordingDeadLetters(),
      logger: createLogger('reconcileInventory'),
      metrics: createMetrics('reconcileInventory') as Metrics,
    });
    const context = (): Context => {
      let checks = 0;
      return {
        ...lambdaContext('fleetgate-dev-reconcileInventory'),
        getRemainingTimeInMillis: () => (++checks <= 2 ? 1000 : 0),
      };
    };
    const sqsEvent = (continuation: ReconcileContinuation) => ({
      Records: [sqsRecord(JSON.stringify(continuation), `m-${continuation.seq}`)],
    });
    // Act: the scheduled event, then every continuation delivered twice at once (at-least-once SQS).
    const first = await handler(
      {
        version: '0',
        'detail-type': 'Scheduled Event',
        source: 'aws.events',
        id: 'e1',
        time: NOW,
        account: '123456789012',
        region: 'us-east-1',
        resources: [],
        detail: {},
      },
      context(),
    );
    expect(first).toMatchObject({ status: 'incomplete' });
    let deliveries = 0;
    while (queue.length > 0) {
      const continuation = queue.shift() as ReconcileContinuation;
      const results = (await Promise.all([
        handler(sqsEvent(continuation), context()),
        handler(sqsEvent(continuation), context()),
      ])) as SQSBatchResponse[];
      for (const result of results) expect(result.batchItemFailures).toEqual([]);
      deliveries += 2;
      if (deliveries > 400) throw new Error('the run never finished');
    }
    // Assess
    const runId = 'reconcile-20261124T060000Z';
    const report = JSON.parse(
      sink.files.get(`reconcile-reports/${runId}/reconcile-report.json`) ?? '{}',
    ) as ReconcileReport;
    expect(found(report)).toEqual(fleet.expected);
    expect(report.summary.invocations).toBeGreaterThan(5);
    // Not double-counted: the same totals as the uninterrupted run.
    expect(report.summary.certificatesListed).toBe(reference.summary.certificatesListed);
    expect(report.summary.devicesRead).toBe(reference.summary.devicesRead);
    expect(report.summary.thingsListed).toBe(reference.summary.thingsListed);
    expect(report.summary.units).toBe(reference.summary.units);
    // A late duplicate after completion changes nothing.
    const before = sink.files.get(`reconcile-reports/${runId}/reconcile-report.json`);
    await handler(sqsEvent({ runId, seq: 1, now: NOW }), context());
    expect(sink.files.get(`reconcile-reports/${runId}/reconcile-report.json`)).toBe(before);
    expect(queue).toEqual([]);
  }, 60_000);
});

describe('reconcileInventory handler: failures', () => {
  it('fails a continuation whose run cannot reach IoT (retried, then dead-lettered) and sends one that is not a continuation to the DLQ at once', async () => {
    // Prepare: an IoT endpoint nobody listens on.
    const unreachable = new IoTClient({
      ...rig.emulator.clientConfig(),
      endpoint: 'http://127.0.0.1:9',
      maxAttempts: 1,
    });
    const sent: ReconcileContinuation[] = [];
    const deadLetters = new RecordingDeadLetters();
    const handler = createHandler({
      ...reconcileDeps(table, rig, memorySink()),
      inventory: new IotInventory(unreachable, 100),
      continuations: { send: async (continuation) => void sent.push(continuation) },
      deadLetters,
      logger: createLogger('reconcileInventory'),
      metrics: createMetrics('reconcileInventory') as Metrics,
    });
    const body = JSON.stringify({ runId: 'unreachable', seq: 0, now: NOW });
    // Act
    const result = (await handler(
      {
        Records: [sqsRecord(body, 'broken-run'), sqsRecord('{"hello":1}', 'not-a-continuation')],
      },
      lambdaContext('fleetgate-dev-reconcileInventory', 60_000),
    )) as SQSBatchResponse;
    unreachable.destroy();
    // Assess
    expect(result.batchItemFailures).toEqual([{ itemIdentifier: 'broken-run' }]);
    expect(sent).toEqual([]);
    expect(deadLetters.records.map(({ record }) => record.messageId)).toEqual(['not-a-continuation']);
    expect(deadLetters.records[0]?.reason).toMatch(/body\.runId: /);
  });

  it('refuses an event that is neither a schedule, a manual run nor an SQS event (the schedule entry point)', async () => {
    const handler = createHandler({
      ...reconcileDeps(table, rig, memorySink()),
      continuations: { send: async () => undefined },
      deadLetters: new RecordingDeadLetters(),
      logger: createLogger('reconcileInventory'),
      metrics: createMetrics('reconcileInventory') as Metrics,
    });
    await expect(
      handler({ runId: 'bad id with spaces' }, lambdaContext('fleetgate-dev-reconcileInventory', 60_000)),
    ).rejects.toMatchObject({ code: 'VALIDATION' });
  });
});

describe('ReconcileStore', () => {
  it('commits a unit once: a second commit from the same checkpoint is a conflict and writes nothing', async () => {
    // Prepare
    const store = new ReconcileStore(table.store);
    const checkpoint: ReconcileCheckpoint = {
      runId: 'commit-once',
      now: NOW,
      status: 'RUNNING',
      seq: 0,
      phase: 'CERTIFICATES',
      stateIndex: 0,
      totals: {},
      invocations: 1,
      createdAt: NOW,
      updatedAt: NOW,
    };
    expect(await store.createCheckpoint(checkpoint)).toBe(true);
    expect(await store.createCheckpoint(checkpoint)).toBe(false);
    const drift: Drift[] = [
      { key: 'THING_WITHOUT_PRINCIPALS#T1', kind: 'THING_WITHOUT_PRINCIPALS', thingName: 'T1' },
    ];
    const next = { ...checkpoint, seq: 1, cursor: 'm1', totals: { certificatesListed: 250 } };
    // Act
    const first = await store.commit(0, next, drift);
    const duplicate = await store.commit(0, { ...next, totals: { certificatesListed: 500 } }, drift);
    // Assess
    expect([first, duplicate]).toEqual(['committed', 'conflict']);
    expect(await store.readPages('commit-once')).toEqual([drift]);
    expect((await store.getCheckpoint('commit-once'))?.totals).toEqual({ certificatesListed: 250 });
  });
});

describe('within API quotas', () => {
  afterAll(() => rig.emulator.setFaults({}));

  it('stays under AWS default quotas with its token buckets (no throttling) and finds the same drift', async () => {
    // Prepare
    rig.emulator.setFaults({ quotas: 'aws-default' });
    rig.emulator.clearCalls();
    // Act
    const outcome = complete(
      await runReconciliation(
        { runId: 'quota', now: NOW },
        reconcileDeps(table, rig, memorySink(), { maxTps: 5 }),
      ),
    );
    // Assess
    expect(found(outcome.report as ReconcileReport)).toEqual(fleet.expected);
    expect(rig.emulator.calls.filter((call) => call.outcome === 'ThrottlingException')).toHaveLength(0);
    expect(outcome.summary.sdkRetries).toBe(0);
  }, 60_000);

  it('completes when pushed past the quotas: throttled calls are retried by the SDK', async () => {
    // Prepare: buckets at 5× the quota, so the emulator throttles.
    rig.emulator.setFaults({ quotas: 'aws-default' });
    rig.emulator.clearCalls();
    // Act
    const outcome = complete(
      await runReconciliation(
        { runId: 'over-quota', now: NOW },
        reconcileDeps(table, rig, memorySink(), { maxTps: 50 }),
      ),
    );
    // Assess
    expect(found(outcome.report as ReconcileReport)).toEqual(fleet.expected);
    const throttled = rig.emulator.calls.filter((call) => call.outcome === 'ThrottlingException').length;
    expect(throttled).toBeGreaterThan(0);
    expect(outcome.summary.sdkRetries).toBe(throttled);
  }, 60_000);
});
