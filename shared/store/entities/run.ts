/**
 * Checkpointed runs: the expiry sweep (`SWEEP#<runId>`) and reconciliation (`RECONCILE#<runId>`).
 * A run is one checkpoint item (`CHECKPOINT`) and one item per committed unit of work
 * (`PAGE#<seq>`), all TTL'd. The common shape is `RunCheckpoint`; each kind adds its position and
 * counters, and says what its pages hold.
 */

import { AtRiskCertificateSchema } from '../../../schemas/at-risk-certificate';
import * as z from '../../../schemas/zod';
import type { AtRiskCertificate, ExpiryPolicy } from '../../domain/expiry';
import { DRIFT_KINDS, type Drift } from '../../domain/reconciliation';
import type { Item } from '../client';
import { epochSeconds, fromItem, stripUndefined } from '../item';
import { type Key, keys } from '../keys';

/** What every run's checkpoint holds. */
export interface RunCheckpoint {
  runId: string;
  status: 'RUNNING' | 'COMPLETE';
  /** Units of work committed so far. */
  seq: number;
  invocations: number;
  result?: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
}

/** One kind of run: its keys, how long its items live, and the schemas its items are read with. */
export interface RunKind<C extends RunCheckpoint, P> {
  entity: string;
  checkpointKey(runId: string): Key;
  pageKey(runId: string, seq: number): Key;
  pagePrefix: string;
  ttlSeconds: number;
  checkpoint: z.ZodMiniType<C>;
  page: z.ZodMiniType<P>;
}

/** The checkpoint item of a run: its key, the checkpoint, and a TTL counted from the run's start. */
export function runCheckpointItem<C extends RunCheckpoint, P>(kind: RunKind<C, P>, checkpoint: C) {
  return {
    ...kind.checkpointKey(checkpoint.runId),
    ...stripUndefined(checkpoint),
    ttl: epochSeconds(checkpoint.createdAt) + kind.ttlSeconds,
  };
}

/** The item of unit `seq`'s page of a run, with a TTL counted from `at`. */
export function runPageItem<C extends RunCheckpoint, P extends object>(
  kind: RunKind<C, P>,
  runId: string,
  page: { seq: number; body: P; at: string },
) {
  return {
    ...kind.pageKey(runId, page.seq),
    ...stripUndefined(page.body),
    ttl: epochSeconds(page.at) + kind.ttlSeconds,
  };
}

export function runCheckpointFromItem<C extends RunCheckpoint, P>(kind: RunKind<C, P>, item: Item): C {
  return fromItem(kind.checkpoint, `${kind.entity} checkpoint`, item);
}

export function runPageFromItem<C extends RunCheckpoint, P>(kind: RunKind<C, P>, item: Item): P {
  return fromItem(kind.page, `${kind.entity} page`, item);
}

const runFields = {
  runId: z.string(),
  status: z.enum(['RUNNING', 'COMPLETE']),
  seq: z.number(),
  invocations: z.number(),
  result: z.optional(z.record(z.string(), z.unknown())),
  createdAt: z.string(),
  updatedAt: z.string(),
};

// ---- expiry sweep ------------------------------------------------------------------------------

export interface SweepCheckpoint extends RunCheckpoint {
  /** The instant the run classifies against (kept, so a resumed run sees the same `now`). */
  now: string;
  /**
   * True for a what-if run: one that classifies as of a chosen instant rather than the time it ran
   * (`fleetgate sweep --now`, a manual `{"now": …}` invocation). Kept, so a resumed run stays one.
   * A what-if run is never the baseline ("previous run") of another run.
   */
  simulated?: boolean;
  policy: ExpiryPolicy;
  /** Index into the run's source list, and where in that source the next page starts. */
  step: number;
  startKey?: Record<string, unknown>;
  itemsRead: number;
  readUnits: number;
}

/** What one committed page found. */
export interface SweepPage {
  seq: number;
  step: number;
  atRisk: AtRiskCertificate[];
  /** Live certificates expiring per chart week, for this page only. */
  chart: number[];
  itemsRead: number;
  readUnits: number;
}

const policySchema: z.ZodMiniType<ExpiryPolicy> = z.lazy(() =>
  z.looseObject({
    windowsDays: z.array(z.number()),
    lookbackDays: z.number(),
    maxAgeDays: z.number(),
    rotationWindowDays: z.number(),
    chartDays: z.number(),
  }),
);

const atRiskSchema: z.ZodMiniType<AtRiskCertificate> = AtRiskCertificateSchema;

export const SWEEP_RUN: RunKind<SweepCheckpoint, SweepPage> = {
  entity: 'sweep',
  checkpointKey: keys.sweepCheckpoint,
  pageKey: keys.sweepPage,
  pagePrefix: keys.sweepPagePrefix,
  /** Sweep items are kept this long after their run started. */
  ttlSeconds: 30 * 86_400,
  // Built on the first item read (z.lazy): a function that never reads a sweep does not build them.
  checkpoint: z.lazy(() =>
    z.looseObject({
      ...runFields,
      now: z.string(),
      simulated: z.optional(z.boolean()),
      policy: policySchema,
      step: z.number(),
      startKey: z.optional(z.record(z.string(), z.unknown())),
      itemsRead: z.number(),
      readUnits: z.number(),
    }),
  ),
  page: z.lazy(() =>
    z.looseObject({
      seq: z.number(),
      step: z.number(),
      atRisk: z.array(atRiskSchema),
      chart: z.array(z.number()),
      itemsRead: z.number(),
      readUnits: z.number(),
    }),
  ),
};

/**
 * The table's newest completed sweep (`SWEEP#` / `LATEST`): the next run's "since previous"
 * baseline. It lives in the table the run read, so a report is only ever compared with an earlier
 * run of the same table (the same stack and stage).
 */
export interface LatestSweep {
  runId: string;
  /**
   * The instant that run classified against: the pointer only moves to a run of a later (or the
   * same) instant. Absent from pointers written before it was recorded.
   */
  now?: string;
  /** The run that one was compared with (a repeated finish compares with it again). */
  previousRunId?: string;
  at: string;
}

const latestSweepSchema: z.ZodMiniType<LatestSweep> = z.lazy(() =>
  z.looseObject({
    runId: z.string(),
    now: z.optional(z.string()),
    previousRunId: z.optional(z.string()),
    at: z.string(),
  }),
);

export function latestSweepItem(latest: LatestSweep): Item {
  return { ...keys.sweepLatest(), ...stripUndefined(latest) };
}

export function latestSweepFromItem(item: Item): LatestSweep {
  return fromItem(latestSweepSchema, 'sweep latest pointer', item);
}

// ---- reconciliation ----------------------------------------------------------------------------

export const RECONCILE_PHASES = ['CERTIFICATES', 'DEVICES', 'THINGS', 'REPORT'] as const;
/** Where a run stands. */
export type ReconcilePhase = (typeof RECONCILE_PHASES)[number];

export interface ReconcileCheckpoint extends RunCheckpoint {
  /** The instant the run is reported as of. */
  now: string;
  phase: ReconcilePhase;
  /** DEVICES: index into the reconciled states. */
  stateIndex: number;
  /** Where the phase's next page starts (ListCertificates marker, store cursor, ListThings token). */
  cursor?: string;
  /** Running counts (certificates listed, by status, API calls, …). */
  totals: Record<string, number>;
}

/** The findings of one committed unit. */
export interface ReconcilePage {
  drift: Drift[];
}

const driftSchema: z.ZodMiniType<Drift> = z.lazy(() =>
  z.looseObject({
    key: z.string(),
    kind: z.enum(DRIFT_KINDS),
    certificateId: z.optional(z.string()),
    thingName: z.optional(z.string()),
    serial: z.optional(z.string()),
    storeState: z.optional(z.string()),
    iotState: z.optional(z.string()),
    role: z.optional(z.enum(['current', 'pending', 'record'])),
  }),
);

/** Reconciliation items are kept this long after their run started. */
export const RECONCILE_TTL_SECONDS = 30 * 86_400;

export const RECONCILE_RUN: RunKind<ReconcileCheckpoint, ReconcilePage> = {
  entity: 'reconciliation',
  checkpointKey: keys.reconcileCheckpoint,
  pageKey: keys.reconcilePage,
  pagePrefix: keys.reconcilePagePrefix,
  ttlSeconds: RECONCILE_TTL_SECONDS,
  // Built on the first item read (z.lazy), as the sweep's.
  checkpoint: z.lazy(() =>
    z.looseObject({
      ...runFields,
      now: z.string(),
      phase: z.enum(RECONCILE_PHASES),
      stateIndex: z.number(),
      cursor: z.optional(z.string()),
      totals: z.record(z.string(), z.number()),
    }),
  ),
  page: z.lazy(() => z.looseObject({ drift: z._default(z.array(driftSchema), () => []) })),
};
