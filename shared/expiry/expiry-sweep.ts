/**
 * One expiry sweep run, resumable: reads the store's indexes page by page (never a Scan, never
 * the IoT API), classifies what it reads with the pure rules in `shared/domain/expiry`, commits
 * results with a checkpoint as it goes, and when every partition is read writes the report (JSON,
 * CSV, HTML) to the sink. An invocation that runs short of time commits what it has and returns
 * `incomplete`; the next invocation with the same run id continues where it stopped.
 *
 * It lives in `shared/` rather than in `functions/expiry-sweep/` because the `fleetgate sweep`
 * command runs the same code, and nothing may import `functions/`.
 */
import {
  type AtRiskCertificate,
  addToChart,
  buildExpiryReport,
  chartWeeks,
  classifyCertificate,
  type ExpiryPolicy,
  type ExpiryReport,
  formatIso,
  type PreviousRun,
  type RotationCandidate,
  sweepRanges,
  withDevices,
} from '../domain/expiry';
import { toReportCsv, toReportHtml, toReportJson } from '../reports/expiry-report-files';
import type { ReportSink } from '../reports/report-sink';
import type { LatestSweep, SweepFacts } from '../store/sweep-facts';
import type {
  IndexedCertificate,
  SweepCheckpoint,
  SweepPage,
  SweepSource,
  SweepStore,
} from '../store/sweep-store';

/**
 * The hook the certificate-rotation flow plugs into: called once per completed run with the
 * devices inside the rotation window. The sweep itself only lists them in the report.
 */
export interface RotationRequester {
  requestRotations(candidates: readonly RotationCandidate[], context: { runId: string }): Promise<void>;
}

export interface SweepDeps {
  sweepStore: SweepStore;
  /** The devices behind the certificates at risk, and the table's latest real run (the baseline). */
  facts: Pick<SweepFacts, 'devices' | 'latest' | 'setLatest'>;
  sink: ReportSink;
  /** Milliseconds this invocation may still run (Lambda: `context.getRemainingTimeInMillis()`). */
  remainingMs: () => number;
  /** Stop reading when fewer than this many milliseconds remain. */
  safetyMarginMs: number;
  /** Items per Query page. */
  pageSize: number;
  /** Wall clock (epoch ms) for bookkeeping timestamps; classification uses the run's `now`. */
  clock: () => number;
  rotation?: RotationRequester;
  /** Commit the checkpoint after this many Query pages (fewer writes; a crash re-reads at most this many). */
  pagesPerCommit?: number;
  /**
   * First pages of the next sources read while the current one is examined (default 16; 0: one Query
   * at a time). A run reads ~1500 mostly empty partitions (181 days × 8 shards): one round trip at a
   * time, that was the whole run's time. Pages are still examined and checkpointed in source order.
   */
  readAhead?: number;
}

/** Read-ahead when `SweepDeps.readAhead` is not given. */
export const SWEEP_READ_AHEAD = 16;

export interface SweepFiles {
  json: string;
  csv: string;
  html: string;
}

export type SweepOutcome =
  | { status: 'incomplete'; runId: string; step: number; steps: number; itemsRead: number; readUnits: number }
  | {
      status: 'complete';
      runId: string;
      /** True when an earlier invocation had already finished this run (nothing was read again). */
      alreadyComplete: boolean;
      summary: ExpiryReport['summary'];
      change: { newAtRisk: number; resolved: number; expired: number; agedOut: number; reclassified: number };
      files: SweepFiles;
      report?: ExpiryReport;
    };

/** File names under the destination. */
export const REPORT_FOLDER = 'expiry-reports';
/**
 * A copy of the newest report written to the destination, for people and links. Not the next run's
 * baseline: several stacks may share a destination; the baseline is the table's own previous run.
 */
export const LATEST_REPORT = `${REPORT_FOLDER}/latest.json`;

export function reportNames(runId: string): SweepFiles {
  const base = `${REPORT_FOLDER}/${runId}/expiry-report`;
  return { json: `${base}.json`, csv: `${base}.csv`, html: `${base}.html` };
}

export { runIdFor } from '../domain/run-id';

/**
 * Runs (or resumes) the sweep `runId` at `now` with `policy`. A resumed run keeps the `now`, policy
 * and `simulated` it started with, so every invocation of a run classifies the same way.
 * `simulated` marks a what-if run (`now` chosen, not the time it runs): it is compared with the
 * latest real run before its `now`, and is never the baseline of another run.
 */
export async function runExpirySweep(
  input: { runId: string; now: string; policy: ExpiryPolicy; simulated?: boolean },
  deps: SweepDeps,
): Promise<SweepOutcome> {
  const { sweepStore } = deps;
  const at = () => formatIso(deps.clock());
  let checkpoint = await sweepStore.startRun({
    runId: input.runId,
    now: input.now,
    policy: input.policy,
    at: at(),
    ...(input.simulated ? { simulated: true } : {}),
  });
  if (checkpoint.status === 'COMPLETE') return completedEarlier(checkpoint);
  await sweepStore.touchRun(input.runId, at());
  const now = Date.parse(checkpoint.now);
  const policy = checkpoint.policy;
  const ranges = sweepRanges(now, policy);
  const sources = sweepStore.sources({
    expiryFrom: formatIso(ranges.expiry.from),
    expiryTo: formatIso(ranges.expiry.to),
    issuedFrom: formatIso(ranges.issued.from),
    issuedTo: formatIso(ranges.issued.to),
  });
  const pagesPerCommit = deps.pagesPerCommit ?? 64;
  const pages = readAheadReader(sweepStore, sources, deps.pageSize, deps.readAhead ?? SWEEP_READ_AHEAD);
  let buffer = emptyBuffer(policy);
  let position: { step: number; startKey?: Record<string, unknown> } = positionOf(checkpoint);

  const commit = async (): Promise<'committed' | 'conflict'> => {
    if (buffer.pages === 0) return 'committed';
    const page: SweepPage = {
      seq: checkpoint.seq,
      step: checkpoint.step,
      atRisk: buffer.atRisk,
      chart: buffer.chart,
      itemsRead: buffer.itemsRead,
      readUnits: buffer.readUnits,
    };
    const outcome = await sweepStore.commitPage(input.runId, page, position, at());
    if (outcome === 'committed') {
      checkpoint = {
        ...checkpoint,
        seq: checkpoint.seq + 1,
        step: position.step,
        itemsRead: checkpoint.itemsRead + buffer.itemsRead,
        readUnits: checkpoint.readUnits + buffer.readUnits,
        ...(position.startKey ? { startKey: position.startKey } : { startKey: undefined }),
      };
    } else {
      // Another invocation of the same run moved the checkpoint: drop what we read, follow it.
      const current = await sweepStore.getCheckpoint(input.runId);
      if (!current) throw new Error(`sweep ${input.runId}: checkpoint disappeared`);
      checkpoint = current;
      position = positionOf(current);
      pages.clear();
    }
    buffer = emptyBuffer(policy);
    return outcome;
  };

  while (position.step < sources.length) {
    if (isComplete(checkpoint)) return completedEarlier(checkpoint);
    if (deps.remainingMs() < deps.safetyMarginMs) {
      await commit();
      return {
        status: 'incomplete',
        runId: input.runId,
        step: checkpoint.step,
        steps: sources.length,
        itemsRead: checkpoint.itemsRead,
        readUnits: checkpoint.readUnits,
      };
    }
    const source = sources[position.step] as SweepSource;
    const page = await pages.read(position.step, position.startKey);
    examine(source, page.items, now, policy, ranges.expiry, buffer);
    buffer.pages += 1;
    buffer.itemsRead += page.items.length;
    buffer.readUnits += page.readUnits;
    position = page.nextKey ? { step: position.step, startKey: page.nextKey } : { step: position.step + 1 };
    if (buffer.pages >= pagesPerCommit || buffer.atRisk.length >= 500) await commit();
  }
  await commit();
  if (isComplete(checkpoint)) return completedEarlier(checkpoint);
  return finish(input.runId, now, policy, checkpoint.simulated === true, deps);
}

/**
 * The pages of the sources in order: each source's first page is read up to `ahead` sources ahead
 * of the one asked for, its further pages (`startKey`) one at a time. Reads only: a page read ahead
 * and never used — the run stopped short of time, or followed another invocation's checkpoint —
 * costs its read units and nothing else.
 */
function readAheadReader(
  sweepStore: SweepStore,
  sources: readonly SweepSource[],
  pageSize: number,
  ahead: number,
): {
  read(step: number, startKey?: Record<string, unknown>): ReturnType<SweepStore['readPage']>;
  clear(): void;
} {
  const pending = new Map<number, ReturnType<SweepStore['readPage']>>();
  const start = (step: number) => {
    const source = sources[step];
    if (!source || pending.has(step)) return;
    const page = sweepStore.readPage(source, undefined, pageSize);
    // Awaited when its turn comes; until then a failure must not count as unhandled.
    page.catch(() => undefined);
    pending.set(step, page);
  };
  return {
    read(step, startKey) {
      if (startKey) return sweepStore.readPage(sources[step] as SweepSource, startKey, pageSize);
      start(step);
      for (let next = step + 1; next <= step + ahead; next += 1) start(next);
      const page = pending.get(step) as ReturnType<SweepStore['readPage']>;
      pending.delete(step);
      return page;
    },
    clear: () => pending.clear(),
  };
}

/** Assembles the report from every committed page, writes the files, marks the run complete. */
async function finish(
  runId: string,
  now: number,
  policy: ExpiryPolicy,
  simulated: boolean,
  deps: SweepDeps,
): Promise<SweepOutcome> {
  const { atRisk, chart, itemsRead, readUnits } = mergePages(await deps.sweepStore.pages(runId), policy);
  const previous = await findPrevious(runId, now, await deps.facts.latest(), deps.sweepStore);
  const previousRunId = previous?.runId;
  // The devices of the certificates at risk now and of those in the previous report: whether a
  // certificate that is gone from the report was replaced depends on its device's current one.
  const serials = [...atRisk, ...(previous?.atRisk ?? [])].flatMap((entry) =>
    entry.kind === 'DEVICE' && entry.serial ? [entry.serial] : [],
  );
  const devices = await deps.facts.devices(serials);
  const deviceCertificates = new Map([...devices].map(([serial, device]) => [serial, device.certificateId]));
  const report = buildExpiryReport({
    runId,
    now,
    policy,
    atRisk: withDevices(atRisk, devices),
    chartCounts: chart,
    itemsRead,
    readUnits,
    ...(previous ? { previous } : {}),
    deviceCertificates,
  });
  const names = reportNames(runId);
  const json = toReportJson(report);
  const files: SweepFiles = {
    json: await deps.sink.put(names.json, json, 'application/json'),
    csv: await deps.sink.put(names.csv, toReportCsv(report), 'text/csv; charset=utf-8'),
    html: await deps.sink.put(names.html, toReportHtml(report), 'text/html; charset=utf-8'),
  };
  await deps.sink.put(LATEST_REPORT, json, 'application/json');
  // Last: the next run of this table compares with this one only once all its files exist. A
  // what-if run, or one dated after the clock, is no baseline: later real runs must not compare
  // with a simulated future.
  if (!simulated && now <= deps.clock()) {
    await deps.facts.setLatest({
      runId,
      now: formatIso(now),
      ...(previousRunId ? { previousRunId } : {}),
      at: formatIso(deps.clock()),
    });
  }
  const change = {
    newAtRisk: report.change.newAtRisk.length,
    resolved: report.change.resolved.length,
    expired: report.change.expired.length,
    agedOut: report.change.agedOut.length,
    reclassified: report.change.reclassified.length,
  };
  await deps.sweepStore.completeRun(
    runId,
    { summary: report.summary, change, files, ...(previousRunId ? { previousRunId } : {}) },
    formatIso(deps.clock()),
  );
  if (deps.rotation && report.rotation.length > 0) {
    await deps.rotation.requestRotations(report.rotation, { runId });
  }
  return {
    status: 'complete',
    runId,
    alreadyComplete: false,
    summary: report.summary,
    change,
    files,
    report,
  };
}

/** What every committed page of a run found, together. */
function mergePages(
  pages: readonly SweepPage[],
  policy: ExpiryPolicy,
): { atRisk: AtRiskCertificate[]; chart: number[]; itemsRead: number; readUnits: number } {
  const chart = Array.from({ length: chartWeeks(policy) }, () => 0);
  const atRisk: AtRiskCertificate[] = [];
  let itemsRead = 0;
  let readUnits = 0;
  for (const page of pages) {
    atRisk.push(...page.atRisk);
    page.chart.forEach((count, week) => {
      chart[week] = (chart[week] ?? 0) + count;
    });
    itemsRead += page.itemsRead;
    readUnits += page.readUnits;
  }
  return { atRisk, chart, itemsRead, readUnits };
}

/** Runs of the baseline chain looked at before giving up (each costs one GetItem). */
const PREVIOUS_HOPS = 32;

/**
 * The run `runId` (at `now`) compares with: the latest completed real run of the same table whose
 * `now` is not after this one's, from its checkpoint and committed pages (kept 30 days). It starts
 * at the table's pointer (for a repeated finish of this run, at the run before it) and follows each
 * run's own previous run back past runs that do not qualify: what-if runs and runs dated later (a
 * pointer written before what-if runs were kept out of it may name one). Undefined when there is
 * none, or when the chain's items are gone.
 */
async function findPrevious(
  runId: string,
  now: number,
  latest: LatestSweep | undefined,
  sweepStore: SweepStore,
): Promise<PreviousRun | undefined> {
  let candidate = latest?.runId === runId ? latest.previousRunId : latest?.runId;
  for (let hop = 0; candidate !== undefined && hop < PREVIOUS_HOPS; hop += 1) {
    const checkpoint = await sweepStore.getCheckpoint(candidate);
    if (!checkpoint) return undefined;
    const result = (checkpoint.result ?? {}) as {
      summary?: { counts?: Record<string, number> };
      previousRunId?: string;
    };
    const counts = result.summary?.counts;
    const qualifies =
      checkpoint.status === 'COMPLETE' &&
      counts !== undefined &&
      checkpoint.simulated !== true &&
      Date.parse(checkpoint.now) <= now &&
      candidate !== runId;
    if (qualifies) {
      const { atRisk } = mergePages(await sweepStore.pages(candidate), checkpoint.policy);
      return {
        runId: candidate,
        generatedAt: formatIso(Date.parse(checkpoint.now)),
        atRisk,
        summary: { counts },
      };
    }
    // Runs completed before they recorded their previous run: the pointer still names it.
    candidate = result.previousRunId ?? (candidate === latest?.runId ? latest.previousRunId : undefined);
  }
  return undefined;
}

/** What an invocation read since its last commit. */
interface Buffer {
  pages: number;
  atRisk: AtRiskCertificate[];
  chart: number[];
  itemsRead: number;
  readUnits: number;
}

function emptyBuffer(policy: ExpiryPolicy): Buffer {
  return {
    pages: 0,
    atRisk: [],
    chart: Array.from({ length: chartWeeks(policy) }, () => 0),
    itemsRead: 0,
    readUnits: 0,
  };
}

/**
 * Classifies one page. Each certificate is examined from exactly one source: CA and claim
 * certificates from their own partitions, device certificates from the expiry index when their
 * notAfter is in its range and otherwise from the issued index.
 */
function examine(
  source: SweepSource,
  items: readonly IndexedCertificate[],
  now: number,
  policy: ExpiryPolicy,
  expiryRange: { from: number; to: number },
  buffer: Buffer,
): void {
  for (const certificate of items) {
    if (source.index !== 'anchor' && certificate.kind !== 'DEVICE') continue;
    if (source.index === 'issued') {
      const notAfter = Date.parse(certificate.notAfter);
      if (notAfter >= expiryRange.from && notAfter < expiryRange.to) continue;
    }
    addToChart(buffer.chart, certificate, now, policy);
    const found = classifyCertificate(certificate, now, policy);
    if (found) buffer.atRisk.push(found);
  }
}

/** A helper, so the check is not narrowed away: `commit` may replace the checkpoint. */
function isComplete(checkpoint: SweepCheckpoint): boolean {
  return checkpoint.status === 'COMPLETE';
}

function positionOf(checkpoint: SweepCheckpoint): { step: number; startKey?: Record<string, unknown> } {
  return checkpoint.startKey
    ? { step: checkpoint.step, startKey: checkpoint.startKey }
    : { step: checkpoint.step };
}

function completedEarlier(checkpoint: SweepCheckpoint): SweepOutcome {
  const result = (checkpoint.result ?? {}) as {
    summary?: ExpiryReport['summary'];
    /** `expired` is absent from runs completed before it was counted. */
    change?: { newAtRisk: number; resolved: number; expired?: number; agedOut: number; reclassified: number };
    files?: SweepFiles;
  };
  return {
    status: 'complete',
    runId: checkpoint.runId,
    alreadyComplete: true,
    summary: result.summary ?? {
      counts: {},
      byKind: {},
      byDeviceState: {},
      notAskedToRotate: { held: 0, neverConnected: 0 },
      atRisk: 0,
      rotationCandidates: 0,
      itemsRead: checkpoint.itemsRead,
      readUnits: checkpoint.readUnits,
    },
    change: { expired: 0, ...(result.change ?? { newAtRisk: 0, resolved: 0, agedOut: 0, reclassified: 0 }) },
    files: result.files ?? reportNames(checkpoint.runId),
  };
}

/** The sweep policy from configuration values. */
export function sweepPolicy(config: {
  expiryWindowsDays: readonly number[];
  expiryLookbackDays: number;
  maxCertificateAgeDays: number;
  rotationWindowDays: number;
  chartDays?: number;
}): ExpiryPolicy {
  return {
    windowsDays: [...config.expiryWindowsDays].sort((a, b) => a - b),
    lookbackDays: config.expiryLookbackDays,
    maxAgeDays: config.maxCertificateAgeDays,
    rotationWindowDays: config.rotationWindowDays,
    chartDays: config.chartDays ?? 90,
  };
}
