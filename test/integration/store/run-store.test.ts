import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MalformedItemError } from '../../../shared/errors';
import {
  RECONCILE_RUN,
  type ReconcileCheckpoint,
  type ReconcilePage,
  type RunCheckpoint,
  type RunKind,
  SWEEP_RUN,
  type SweepCheckpoint,
  type SweepPage,
} from '../../../shared/store/entities/run';
import { keys } from '../../../shared/store/keys';
import { ReconcileStore } from '../../../shared/store/reconcile-store';
import { RunStore } from '../../../shared/store/run-store';
import { SweepStore } from '../../../shared/store/sweep-store';
import { createTestTable, type TestTable } from '../../support/dynamo';

const AT = '2026-11-24T12:00:00.000Z';
const LATER = '2026-11-24T12:05:00.000Z';

let table: TestTable;
beforeAll(async () => {
  table = await createTestTable('runs');
});
afterAll(async () => {
  await table.drop();
});

/** A fresh checkpoint and a page of each kind of run, so both are held to the same semantics. */
interface RunCase<C extends RunCheckpoint, P extends object> {
  name: string;
  kind: RunKind<C, P>;
  fresh(runId: string): C;
  page(seq: number): P;
  advance: { set: Record<string, unknown>; add?: Record<string, number> };
}

/** What every run's fresh checkpoint holds (and the instant both kinds run as of). */
function started(runId: string) {
  return { runId, status: 'RUNNING', seq: 0, invocations: 0, createdAt: AT, updatedAt: AT, now: AT } as const;
}

const sweep: RunCase<SweepCheckpoint, SweepPage> = {
  name: 'expiry sweep',
  kind: SWEEP_RUN,
  fresh: (runId) => ({
    ...started(runId),
    policy: {
      windowsDays: [7, 30],
      lookbackDays: 30,
      maxAgeDays: 365,
      rotationWindowDays: 30,
      chartDays: 90,
    },
    step: 0,
    itemsRead: 0,
    readUnits: 0,
  }),
  page: (seq) => ({ seq, step: seq, atRisk: [], chart: [1, 2], itemsRead: 10, readUnits: 1 }),
  advance: { set: { step: 1, updatedAt: LATER }, add: { itemsRead: 10, readUnits: 1 } },
};

const reconcile: RunCase<ReconcileCheckpoint, ReconcilePage> = {
  name: 'reconciliation',
  kind: RECONCILE_RUN,
  fresh: (runId) => ({
    ...started(runId),
    phase: 'CERTIFICATES',
    stateIndex: 0,
    totals: {},
  }),
  page: () => ({
    drift: [{ key: 'THING_WITHOUT_PRINCIPALS#t', kind: 'THING_WITHOUT_PRINCIPALS', thingName: 't' }],
  }),
  advance: { set: { phase: 'DEVICES', totals: { units: 1 }, updatedAt: LATER } },
};

let runs = 0;
function runId(prefix: string): string {
  runs += 1;
  return `${prefix}-${runs}`;
}

describe.each([sweep, reconcile] as Array<RunCase<RunCheckpoint, object>>)(
  'checkpointed run: $name',
  (run) => {
    const store = () => new RunStore(table.store, run.kind);

    it('claims a run once: a second claim of the same id resumes the first checkpoint', async () => {
      const id = runId('claim');
      const first = await store().claim(run.fresh(id));
      expect(first).toMatchObject({ runId: id, status: 'RUNNING', seq: 0 });
      const again = await store().claim({ ...run.fresh(id), createdAt: LATER, updatedAt: LATER });
      expect(again.createdAt).toBe(AT);
      expect(await store().create(run.fresh(id))).toBe(false);
      expect(await store().get(id)).toEqual(first);
      expect(await store().get(runId('absent'))).toBeUndefined();
    });

    it('commits a unit once, in one round trip: a repeat from the same sequence is a conflict', async () => {
      const id = runId('commit');
      await store().claim(run.fresh(id));
      const before = table.store.stats.roundTrips;
      expect(await store().commit(id, 0, run.advance, { seq: 1, body: run.page(1), at: LATER })).toBe(
        'committed',
      );
      expect(table.store.stats.roundTrips - before).toBe(1);
      expect(await store().commit(id, 0, run.advance, { seq: 1, body: run.page(1), at: LATER })).toBe(
        'conflict',
      );
      const checkpoint = await store().get(id);
      expect(checkpoint).toMatchObject({ seq: 1, ...run.advance.set });
      // Counters start at 0, so after one unit they hold what the unit added.
      expect(checkpoint).toMatchObject(run.advance.add ?? {});
      expect(await store().pages(id)).toEqual([run.page(1)]);
    });

    it('lets exactly one of concurrent commits from the same sequence win', async () => {
      const id = runId('race');
      await store().claim(run.fresh(id));
      const outcomes = await Promise.all(
        Array.from({ length: 6 }, () =>
          store().commit(id, 0, run.advance, { seq: 1, body: run.page(1), at: LATER }),
        ),
      );
      expect(outcomes.filter((outcome) => outcome === 'committed')).toHaveLength(1);
      expect((await store().get(id))?.seq).toBe(1);
      expect(await store().pages(id)).toHaveLength(1);
    });

    it('resumes from the checkpoint: later units follow in order; pages come back in order', async () => {
      const id = runId('resume');
      await store().claim(run.fresh(id));
      for (let seq = 0; seq < 3; seq += 1) {
        const resumed = await store().claim(run.fresh(id));
        expect(resumed.seq).toBe(seq);
        const page = { seq: seq + 1, body: run.page(seq + 1), at: LATER };
        expect(await store().commit(id, resumed.seq, run.advance, page)).toBe('committed');
      }
      expect(await store().pages(id)).toEqual([run.page(1), run.page(2), run.page(3)]);
    });

    it('counts invocations, completes once, and commits nothing after completion', async () => {
      const id = runId('complete');
      await store().claim(run.fresh(id));
      await store().touch(id, LATER);
      await store().touch(id, LATER);
      expect((await store().get(id))?.invocations).toBe(2);
      expect(await store().complete(id, { summary: 'done' }, LATER)).toBe(true);
      expect(await store().complete(id, { summary: 'again' }, LATER)).toBe(false);
      expect(await store().get(id)).toMatchObject({ status: 'COMPLETE', result: { summary: 'done' } });
      expect(await store().commit(id, 0, run.advance)).toBe('conflict');
    });

    it('removes a checkpoint attribute the advance leaves undefined', async () => {
      const id = runId('remove');
      await store().claim({ ...run.fresh(id), result: { partial: true } });
      expect(await store().commit(id, 0, { set: { result: undefined } })).toBe('committed');
      expect((await store().get(id))?.result).toBeUndefined();
    });

    it('commits a whole next checkpoint in place of the old one, conditional the same way', async () => {
      const id = runId('replace');
      const fresh = { ...run.fresh(id), result: { partial: true } };
      await store().claim(fresh);
      const { result: _result, ...next } = { ...fresh, seq: 1, invocations: 1, updatedAt: LATER };
      expect(await store().commit(id, 0, { next }, { seq: 1, body: run.page(1), at: AT })).toBe('committed');
      expect(await store().get(id)).toEqual(next);
      expect(await store().commit(id, 0, { next })).toBe('conflict');
      await expect(store().commit(id, 1, { next })).rejects.toThrow(RangeError);
      expect(await store().pages(id)).toEqual([run.page(1)]);
    });

    it('refuses a malformed checkpoint with its key and field', async () => {
      const id = runId('malformed');
      await table.doc.send(
        new PutCommand({
          TableName: table.tableName,
          Item: { ...run.kind.checkpointKey(id), ...run.fresh(id), seq: 'zero' },
        }),
      );
      const error = await store()
        .get(id)
        .catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(MalformedItemError);
      expect(error).toMatchObject({ key: `PK=${run.kind.checkpointKey(id).PK} SK=CHECKPOINT`, field: 'seq' });
    });
  },
);

describe('the sweep and reconciliation stores on the one run store', () => {
  it('sweep: commitPage adds its counters and clears the position once a source is done', async () => {
    const sweeps = new SweepStore(table.store);
    const policy = {
      windowsDays: [7],
      lookbackDays: 30,
      maxAgeDays: 365,
      rotationWindowDays: 30,
      chartDays: 90,
    };
    const started = await sweeps.startRun({ runId: 'sweep-wrap', now: AT, policy, at: AT });
    const page = { seq: 0, step: 0, atRisk: [], chart: [0], itemsRead: 5, readUnits: 2 };
    expect(await sweeps.commitPage('sweep-wrap', page, { step: 0, startKey: { PK: 'x' } }, LATER)).toBe(
      'committed',
    );
    expect(await sweeps.commitPage('sweep-wrap', { ...page, seq: 1 }, { step: 1 }, LATER)).toBe('committed');
    const checkpoint = await sweeps.getCheckpoint('sweep-wrap');
    expect(checkpoint).toMatchObject({
      seq: 2,
      step: 1,
      itemsRead: 10,
      readUnits: 4,
      createdAt: started.createdAt,
    });
    expect(checkpoint?.startKey).toBeUndefined();
    expect((await sweeps.pages('sweep-wrap')).map((p) => p.seq)).toEqual([0, 1]);
    // The sweep's pages are numbered from 0, as they always were.
    const items = await table.dump();
    expect(
      items.filter((item) => item.PK === keys.sweepCheckpoint('sweep-wrap').PK).map((item) => item.SK),
    ).toEqual(['CHECKPOINT', keys.sweepPage('sweep-wrap', 0).SK, keys.sweepPage('sweep-wrap', 1).SK]);
  });

  it('reconciliation: commit moves the checkpoint to `next` as a whole, findings only when there are some', async () => {
    const reconciles = new ReconcileStore(table.store);
    const fresh = reconcile.fresh('reconcile-wrap');
    expect(await reconciles.createCheckpoint(fresh)).toBe(true);
    const first = { ...fresh, seq: 1, cursor: 'marker-1', totals: { units: 1 }, invocations: 1 };
    expect(await reconciles.commit(0, first, reconcile.page(1).drift)).toBe('committed');
    const second = { ...first, seq: 2, phase: 'DEVICES' as const, cursor: undefined, totals: { units: 2 } };
    expect(await reconciles.commit(1, second, [])).toBe('committed');
    expect(await reconciles.commit(1, second, [])).toBe('conflict');
    const stored = await reconciles.getCheckpoint('reconcile-wrap');
    expect(stored).toEqual({ ...second, cursor: undefined });
    expect(stored).not.toHaveProperty('cursor');
    expect(await reconciles.readPages('reconcile-wrap')).toEqual([reconcile.page(1).drift]);
  });
});
