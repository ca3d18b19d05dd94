/**
 * Inventory reconciliation (issue #8, part 4): walks the IoT registry and the store and reports
 * drift both ways. Report only — it never changes anything in IoT or in the store's records.
 *
 * A run is a sequence of units of work, each one page: a ListCertificates page (IoT → store), a
 * StateIndex page of ACTIVE / ROTATING / PROVISIONING devices (store → IoT), a ListThings page
 * (things without principals, things unknown to the store). Each unit is committed with the
 * checkpoint that moves past it (`ReconcileStore.commit`, conditional on the sequence number). When
 * the remaining time runs short the run stops with `incomplete`; whoever invoked it continues it
 * later with the same run id (the Lambda handler through `ReconcileQueue`, the CLI in a loop).
 * Then the report is built from the committed pages and written to the report sink.
 */
import {
  countDrift,
  type Drift,
  type DriftKind,
  mergeDrift,
  RECONCILED_STATES,
} from '../domain/reconciliation';
import { csvCell } from '../reports/csv';
import type { ReconcileCheckpoint } from '../store/reconcile-store';
import { type ReconcileDeps, runUnit } from './units';

export interface ReconcileRequest {
  runId: string;
  /** The instant the run is reported as of (kept by the checkpoint across resumptions). */
  now: string;
}

export type { ReconcileDeps };

export interface ReconcileSummary {
  counts: Record<DriftKind, number>;
  drift: number;
  certificatesListed: number;
  certificatesByStatus: Record<string, number>;
  /**
   * Certificates the store holds as ACTIVE that IoT has INACTIVE / REVOKED because their device is
   * quarantined or revoked: intended, not drift.
   */
  heldByQuarantine: number;
  devicesRead: number;
  referencesChecked: number;
  thingsListed: number;
  apiCalls: Record<string, number>;
  /** IoT calls per certificate listed (all APIs). */
  apiCallsPerCertificate: number;
  sdkRetries: number;
  invocations: number;
  units: number;
  /** Wall time spent working on the run, over all invocations. */
  workMs: number;
}

export interface ReconcileReport {
  format: 'fleetgate.reconcile-report/1';
  runId: string;
  now: string;
  generatedAt: string;
  summary: ReconcileSummary;
  drift: Drift[];
}

export interface ReconcileFiles {
  json: string;
  csv: string;
}

export type ReconcileOutcome =
  | {
      status: 'complete';
      runId: string;
      now: string;
      summary: ReconcileSummary;
      files: ReconcileFiles;
      /** True when an earlier invocation had finished the run (nothing was done now). */
      alreadyComplete: boolean;
      report?: ReconcileReport;
    }
  | { status: 'incomplete'; runId: string; seq: number; phase: ReconcileCheckpoint['phase'] }
  /** Another invocation committed first; this one stopped without doing anything more. */
  | { status: 'superseded'; runId: string; seq: number };

export const REPORT_PREFIX = 'reconcile-reports';

/**
 * Works on the run until it is complete or the time runs short. Safe to call any number of times,
 * concurrently too: only the invocation whose commit matches the checkpoint's sequence advances it.
 */
export async function runReconciliation(
  request: ReconcileRequest,
  deps: ReconcileDeps,
): Promise<ReconcileOutcome> {
  let checkpoint = await start(request, deps);
  if (checkpoint.status === 'COMPLETE') return completed(checkpoint, true);
  checkpoint = { ...checkpoint, invocations: checkpoint.invocations + 1 };
  let longestUnitMs = 0;
  while (checkpoint.phase !== 'REPORT') {
    if (deps.remainingMs() < deps.safetyMarginMs + 2 * longestUnitMs) {
      return { status: 'incomplete', runId: checkpoint.runId, seq: checkpoint.seq, phase: checkpoint.phase };
    }
    const started = deps.clock();
    const unit = await runUnit(checkpoint, deps);
    const elapsed = deps.clock() - started;
    longestUnitMs = Math.max(longestUnitMs, elapsed);
    const next: ReconcileCheckpoint = {
      ...unit.next,
      seq: checkpoint.seq + 1,
      totals: add(add(checkpoint.totals, unit.totals), { units: 1, workMs: elapsed }),
      updatedAt: new Date(deps.clock()).toISOString(),
    };
    if ((await deps.reconcileStore.commit(checkpoint.seq, next, unit.drift)) === 'conflict') {
      return { status: 'superseded', runId: checkpoint.runId, seq: checkpoint.seq };
    }
    checkpoint = next;
  }
  return finish(checkpoint, deps);
}

async function start(request: ReconcileRequest, deps: ReconcileDeps): Promise<ReconcileCheckpoint> {
  const existing = await deps.reconcileStore.getCheckpoint(request.runId);
  if (existing) return existing;
  const at = new Date(deps.clock()).toISOString();
  const fresh: ReconcileCheckpoint = {
    runId: request.runId,
    now: request.now,
    status: 'RUNNING',
    seq: 0,
    phase: 'CERTIFICATES',
    stateIndex: 0,
    totals: {},
    invocations: 0,
    createdAt: at,
    updatedAt: at,
  };
  if (await deps.reconcileStore.createCheckpoint(fresh)) return fresh;
  const raced = await deps.reconcileStore.getCheckpoint(request.runId);
  if (!raced)
    throw new Error(`reconciliation ${request.runId}: checkpoint vanished after a conflicting create`);
  return raced;
}

async function finish(checkpoint: ReconcileCheckpoint, deps: ReconcileDeps): Promise<ReconcileOutcome> {
  const drift = mergeDrift(await deps.reconcileStore.readPages(checkpoint.runId));
  const summary = summarize(checkpoint, drift);
  const report: ReconcileReport = {
    format: 'fleetgate.reconcile-report/1',
    runId: checkpoint.runId,
    now: checkpoint.now,
    generatedAt: new Date(deps.clock()).toISOString(),
    summary,
    drift,
  };
  // Writing the same run's files twice (a duplicate finish) writes the same findings.
  const base = `${REPORT_PREFIX}/${checkpoint.runId}/reconcile-report`;
  const json = `${JSON.stringify(report, null, 2)}\n`;
  const files: ReconcileFiles = {
    json: await deps.sink.put(`${base}.json`, json, 'application/json'),
    csv: await deps.sink.put(`${base}.csv`, toReconcileCsv(report), 'text/csv; charset=utf-8'),
  };
  await deps.sink.put(`${REPORT_PREFIX}/latest.json`, json, 'application/json');
  const done: ReconcileCheckpoint = {
    ...checkpoint,
    status: 'COMPLETE',
    seq: checkpoint.seq + 1,
    result: { summary, files },
    updatedAt: new Date(deps.clock()).toISOString(),
  };
  if ((await deps.reconcileStore.commit(checkpoint.seq, done, [])) === 'conflict') {
    const winner = await deps.reconcileStore.getCheckpoint(checkpoint.runId);
    if (winner?.status === 'COMPLETE') return completed(winner, true);
    return { status: 'superseded', runId: checkpoint.runId, seq: checkpoint.seq };
  }
  return {
    status: 'complete',
    runId: checkpoint.runId,
    now: checkpoint.now,
    summary,
    files,
    alreadyComplete: false,
    report,
  };
}

function completed(checkpoint: ReconcileCheckpoint, alreadyComplete: boolean): ReconcileOutcome {
  const result = checkpoint.result as { summary: ReconcileSummary; files: ReconcileFiles } | undefined;
  if (!result) throw new Error(`reconciliation ${checkpoint.runId} is complete but has no result`);
  return { status: 'complete', runId: checkpoint.runId, now: checkpoint.now, ...result, alreadyComplete };
}

/** The report's summary from the run's totals and its merged findings. */
export function summarize(
  checkpoint: Pick<ReconcileCheckpoint, 'totals' | 'invocations'>,
  drift: readonly Drift[],
): ReconcileSummary {
  const totals = checkpoint.totals;
  const prefixed = (prefix: string) =>
    Object.fromEntries(
      Object.entries(totals)
        .filter(([name]) => name.startsWith(prefix))
        .map(([name, value]) => [name.slice(prefix.length), value])
        .sort(([a], [b]) => (String(a) < String(b) ? -1 : 1)),
    ) as Record<string, number>;
  const apiCalls = prefixed('iot.');
  const certificatesListed = totals.certificatesListed ?? 0;
  const calls = Object.values(apiCalls).reduce((sum, value) => sum + value, 0);
  return {
    counts: countDrift(drift),
    drift: drift.length,
    certificatesListed,
    certificatesByStatus: prefixed('status.'),
    heldByQuarantine: totals.heldByQuarantine ?? 0,
    devicesRead: totals.devicesRead ?? 0,
    referencesChecked: totals.referencesChecked ?? 0,
    thingsListed: totals.thingsListed ?? 0,
    apiCalls,
    apiCallsPerCertificate:
      certificatesListed > 0 ? Math.round((calls / certificatesListed) * 1000) / 1000 : 0,
    sdkRetries: totals.sdkRetries ?? 0,
    invocations: checkpoint.invocations,
    units: totals.units ?? 0,
    workMs: totals.workMs ?? 0,
  };
}

export const RECONCILE_CSV_COLUMNS = [
  'kind',
  'certificateId',
  'thingName',
  'serial',
  'role',
  'storeState',
  'iotState',
] as const;

/** One row per finding, RFC 4180, cells that a spreadsheet would run as formulas neutralised. */
export function toReconcileCsv(report: Pick<ReconcileReport, 'drift'>): string {
  const lines = [RECONCILE_CSV_COLUMNS.map((name) => csvCell(name)).join(',')];
  for (const entry of report.drift) {
    lines.push(RECONCILE_CSV_COLUMNS.map((column) => csvCell(entry[column] ?? '')).join(','));
  }
  return `${lines.join('\r\n')}\r\n`;
}

/** Sums two count maps. */
export function add(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out = { ...a };
  for (const [name, value] of Object.entries(b)) out[name] = (out[name] ?? 0) + value;
  return out;
}

export { RECONCILED_STATES };
