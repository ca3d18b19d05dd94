/**
 * Certificate expiry classification and the expiry report, as pure functions of the certificates,
 * the policy and `now` (epoch milliseconds). No I/O, no clock: the sweep reads the store's
 * indexes and hands what it read to these functions.
 *
 * Boundaries (all half-open on the time axis, matching the index reads):
 * - EXPIRED        notAfter < now (X.509 validity includes notAfter itself)
 * - EXPIRING_<W>D  now ≤ notAfter < now + W days, for the smallest configured window W
 * - TOO_OLD        notBefore < now − maxAge days (reported only when not expired or expiring:
 *                  each certificate has exactly one class, the most urgent)
 */

import { ROTATABLE_STATES } from './rotation-rules';

export const DAY_MS = 86_400_000;
/** The report's chart covers this many days ahead, in weeks. */
export const CHART_DAYS = 90;

export type CertificateKindLike = 'DEVICE' | 'CLAIM' | 'CA';

/** The fields of a certificate record the classification looks at. */
export interface ExpiryCandidate {
  certificateId: string;
  kind: CertificateKindLike;
  status: string;
  serial?: string;
  thingName?: string;
  notBefore: string;
  notAfter: string;
}

export interface ExpiryPolicy {
  /** Expiry windows in days, ascending (e.g. 7 and 30). */
  windowsDays: readonly number[];
  /** Expired / too-old certificates are looked for this many days back; older ones drop out. */
  lookbackDays: number;
  maxAgeDays: number;
  /** Devices whose certificate expires within this many days (or is too old) should rotate. */
  rotationWindowDays: number;
  chartDays: number;
}

export type ExpiryClass = 'EXPIRED' | `EXPIRING_${number}D` | 'TOO_OLD';

/** One certificate the report lists. */
export interface AtRiskCertificate extends ExpiryCandidate {
  /** Whole days from now until notAfter, rounded down (negative once expired). */
  daysLeft: number;
  ageDays: number;
  class: ExpiryClass;
  /**
   * The state of the device the certificate belongs to (device certificates of a known serial):
   * a QUARANTINED, REVOKED or DECOMMISSIONED device is listed but never asked to rotate.
   */
  deviceState?: string;
}

/** Only certificates that can still authenticate matter; retired or revoked ones are not at risk. */
const LIVE_STATUSES = new Set(['ACTIVE', 'PENDING']);

export function isLive(candidate: Pick<ExpiryCandidate, 'status'>): boolean {
  return LIVE_STATUSES.has(candidate.status);
}

/** The class labels of a policy, most urgent first. */
export function expiryClasses(policy: Pick<ExpiryPolicy, 'windowsDays'>): ExpiryClass[] {
  return ['EXPIRED', ...sortedWindows(policy).map((days) => windowClass(days)), 'TOO_OLD'];
}

export function windowClass(days: number): ExpiryClass {
  return `EXPIRING_${days}D`;
}

/**
 * The class of one certificate at `now`, or undefined when it is not at risk (or not live).
 * @throws TypeError when notBefore / notAfter are not ISO-8601 times.
 */
export function classifyCertificate(
  candidate: ExpiryCandidate,
  now: number,
  policy: ExpiryPolicy,
): AtRiskCertificate | undefined {
  if (!isLive(candidate)) return undefined;
  const notAfter = parseTime(candidate.notAfter, 'notAfter');
  const notBefore = parseTime(candidate.notBefore, 'notBefore');
  let found: ExpiryClass | undefined;
  if (notAfter < now) found = 'EXPIRED';
  else {
    const window = sortedWindows(policy).find((days) => notAfter < now + days * DAY_MS);
    if (window !== undefined) found = windowClass(window);
    else if (notBefore < now - policy.maxAgeDays * DAY_MS) found = 'TOO_OLD';
  }
  if (!found) return undefined;
  return {
    certificateId: candidate.certificateId,
    kind: candidate.kind,
    status: candidate.status,
    ...(candidate.serial ? { serial: candidate.serial } : {}),
    ...(candidate.thingName ? { thingName: candidate.thingName } : {}),
    notBefore: candidate.notBefore,
    notAfter: candidate.notAfter,
    daysLeft: Math.floor((notAfter - now) / DAY_MS),
    ageDays: Math.floor((now - notBefore) / DAY_MS),
    class: found,
  };
}

/** The time ranges the sweep must read so that every class is found (half-open, epoch ms). */
export function sweepRanges(
  now: number,
  policy: ExpiryPolicy,
): { expiry: { from: number; to: number }; issued: { from: number; to: number } } {
  const horizonDays = Math.max(...policy.windowsDays, policy.rotationWindowDays, policy.chartDays);
  const ageLimit = now - policy.maxAgeDays * DAY_MS;
  return {
    expiry: { from: now - policy.lookbackDays * DAY_MS, to: now + horizonDays * DAY_MS },
    issued: { from: ageLimit - policy.lookbackDays * DAY_MS, to: ageLimit },
  };
}

/** Number of chart weeks: the last one is partial when chartDays is not a multiple of 7. */
export function chartWeeks(policy: Pick<ExpiryPolicy, 'chartDays'>): number {
  return Math.ceil(policy.chartDays / 7);
}

/**
 * Adds one certificate to weekly expiry counts: week i is [now + 7i days, now + 7(i+1) days),
 * clipped at now + chartDays. Certificates outside the chart (or not live) are not counted.
 */
export function addToChart(
  counts: number[],
  candidate: ExpiryCandidate,
  now: number,
  policy: Pick<ExpiryPolicy, 'chartDays'>,
): void {
  if (!isLive(candidate)) return;
  const notAfter = parseTime(candidate.notAfter, 'notAfter');
  if (notAfter < now || notAfter >= now + policy.chartDays * DAY_MS) return;
  const week = Math.floor((notAfter - now) / (7 * DAY_MS));
  counts[week] = (counts[week] ?? 0) + 1;
}

/** A rotation the sweep asks for (the rotation flow acts on it; the sweep only lists it). */
export interface RotationCandidate {
  serial: string;
  thingName?: string;
  certificateId: string;
  notAfter: string;
  daysLeft: number;
  reason: 'EXPIRING' | 'TOO_OLD';
  /** The device's state when the sweep looked (ACTIVE or ROTATING: `askedToRotate`). */
  deviceState?: string;
}

/**
 * Whether the sweep asks the device in `state` to rotate: only a device the rotation flow accepts a
 * request from (ACTIVE or ROTATING, `ROTATABLE_STATES`). A quarantined device is cut off until an
 * operator decides, a revoked or decommissioned one for good, and one that has never connected
 * (ALLOWLISTED, PROVISIONING: a factory certificate nearing its end before the first connect) has
 * no connection to rotate over; rotation would refuse them all with DEVICE_NOT_ACTIVE. A certificate
 * whose serial has no device record (state unknown) is asked as before.
 */
export function askedToRotate(state: string | undefined): boolean {
  return state === undefined || (ROTATABLE_STATES as readonly string[]).includes(state);
}

/** States whose devices are listed but held back from rotation for good or until an operator decides. */
const HELD_STATES: readonly string[] = ['QUARANTINED', 'REVOKED', 'DECOMMISSIONED'];

/** Why a device in `state` is not asked to rotate (undefined when it is asked). */
export function notAskedReason(state: string | undefined): 'held' | 'not connected' | undefined {
  if (askedToRotate(state)) return undefined;
  return HELD_STATES.includes(state as string) ? 'held' : 'not connected';
}

/** What the sweep knows about the device behind a certificate. */
export interface ReportDevice {
  state: string;
  thingName?: string;
}

/**
 * The at-risk certificates with their device's state (and its thing name when the certificate
 * record has none: records written before JITR recorded it).
 */
export function withDevices(
  atRisk: readonly AtRiskCertificate[],
  devices: ReadonlyMap<string, ReportDevice>,
): AtRiskCertificate[] {
  return atRisk.map((entry) => {
    const device = entry.kind === 'DEVICE' && entry.serial ? devices.get(entry.serial) : undefined;
    if (!device) return entry;
    const thingName = entry.thingName ?? device.thingName;
    return { ...entry, ...(thingName ? { thingName } : {}), deviceState: device.state };
  });
}

/**
 * Device certificates inside the rotation window (not yet expired) or too old, by serial; only
 * devices the sweep asks to rotate (`askedToRotate`).
 */
export function rotationCandidates(
  atRisk: readonly AtRiskCertificate[],
  policy: Pick<ExpiryPolicy, 'rotationWindowDays'>,
): RotationCandidate[] {
  const out: RotationCandidate[] = [];
  for (const entry of atRisk) {
    if (!isRotationCandidate(entry, policy)) continue;
    out.push({
      serial: entry.serial ?? '',
      ...(entry.thingName ? { thingName: entry.thingName } : {}),
      certificateId: entry.certificateId,
      notAfter: entry.notAfter,
      daysLeft: entry.daysLeft,
      reason: entry.class === 'TOO_OLD' ? 'TOO_OLD' : 'EXPIRING',
      ...(entry.deviceState ? { deviceState: entry.deviceState } : {}),
    });
  }
  return out.sort((a, b) => a.notAfter.localeCompare(b.notAfter) || a.serial.localeCompare(b.serial));
}

export interface ExpiryReport {
  format: 'fleetgate.expiry-report/1';
  runId: string;
  generatedAt: string;
  policy: ExpiryPolicy;
  summary: {
    /** Certificates at risk per class (every class of the policy, zero included). */
    counts: Record<string, number>;
    /** At-risk certificates per kind (DEVICE / CLAIM / CA). */
    byKind: Record<string, number>;
    /** At-risk device certificates per state of their device (`UNKNOWN` when the store has no device). */
    byDeviceState: Record<string, number>;
    /**
     * Devices (distinct serials) with a certificate at risk that the sweep does not ask to rotate
     * (`notAskedReason`): held (quarantined, revoked, decommissioned) and never connected
     * (ALLOWLISTED, PROVISIONING). Their certificates are listed in the report only.
     */
    notAskedToRotate: { held: number; neverConnected: number };
    atRisk: number;
    rotationCandidates: number;
    /** Index items the sweep read, and read capacity units consumed. */
    itemsRead: number;
    readUnits: number;
  };
  chart: { weekStarts: string[]; counts: number[] };
  atRisk: AtRiskCertificate[];
  rotation: RotationCandidate[];
  change: ReportChange;
}

export interface ReportChange {
  previousRunId?: string;
  previousGeneratedAt?: string;
  /** At risk now, not in the previous report. */
  newAtRisk: string[];
  /**
   * In the previous report, not at risk any more, and dealt with: the device now has another
   * certificate (rotated, renewed), or the certificate left the live statuses (retired, revoked)
   * while it was still valid — or after it had expired, when the previous report already listed it
   * as expired. Never a certificate that expired since the previous report (see `expired`).
   */
  resolved: string[];
  /**
   * In the previous report before its notAfter, not in this one, and its notAfter has passed since:
   * the certificate expired (whether it is still read or has already left the look-back), and its
   * device has no other certificate.
   */
  expired: string[];
  /**
   * In the previous report, no longer read because it left the look-back: it was already expired
   * then, or it is too old and was issued before the look-back of the age check (still valid).
   */
  agedOut: string[];
  /** Same certificate, more urgent (or different) class than before. */
  reclassified: Array<{ certificateId: string; from: ExpiryClass; to: ExpiryClass }>;
  /** counts − previous counts, per class (every class of either report). */
  countsDelta: Record<string, number>;
}

/**
 * Assembles the report from what the sweep found. `atRisk` may hold one certificate several
 * times (read from two indexes): it is kept once.
 */
export function buildExpiryReport(input: {
  runId: string;
  now: number;
  policy: ExpiryPolicy;
  atRisk: readonly AtRiskCertificate[];
  chartCounts: readonly number[];
  itemsRead: number;
  readUnits: number;
  previous?: PreviousRun;
  /**
   * The current certificate of each device the store has, by serial (for the devices of the
   * previous report's certificates): a certificate whose device has another one was replaced.
   */
  deviceCertificates?: ReadonlyMap<string, string | undefined>;
}): ExpiryReport {
  const { now, policy } = input;
  const unique = new Map<string, AtRiskCertificate>();
  for (const entry of input.atRisk) unique.set(entry.certificateId, entry);
  const atRisk = [...unique.values()].sort(
    (a, b) => a.notAfter.localeCompare(b.notAfter) || a.certificateId.localeCompare(b.certificateId),
  );
  const { counts, byKind, byDeviceState, notAskedToRotate } = tally(atRisk, policy);
  const weeks = chartWeeks(policy);
  const rotation = rotationCandidates(atRisk, policy);
  return {
    format: 'fleetgate.expiry-report/1',
    runId: input.runId,
    generatedAt: isoOf(now),
    policy: { ...policy, windowsDays: [...policy.windowsDays] },
    summary: {
      counts,
      byKind,
      byDeviceState,
      notAskedToRotate,
      atRisk: atRisk.length,
      rotationCandidates: rotation.length,
      itemsRead: input.itemsRead,
      readUnits: round(input.readUnits),
    },
    chart: {
      weekStarts: Array.from({ length: weeks }, (_, i) => isoOf(now + i * 7 * DAY_MS).slice(0, 10)),
      counts: Array.from({ length: weeks }, (_, i) => input.chartCounts[i] ?? 0),
    },
    atRisk,
    rotation,
    change: compareReports(atRisk, counts, now, policy, input.previous, input.deviceCertificates),
  };
}

/** The certificates at risk before and now whose class changed. */
function reclassifiedSince(
  atRisk: readonly AtRiskCertificate[],
  before: ReadonlyMap<string, AtRiskCertificate>,
): ReportChange['reclassified'] {
  const reclassified: ReportChange['reclassified'] = [];
  for (const entry of atRisk) {
    const old = before.get(entry.certificateId);
    if (old && old.class !== entry.class)
      reclassified.push({ certificateId: entry.certificateId, from: old.class, to: entry.class });
  }
  return reclassified;
}

/** Per class, how many more (or fewer) than in the previous report. */
function countsDeltaSince(
  counts: Record<string, number>,
  previousCounts: Record<string, number>,
): Record<string, number> {
  const countsDelta: Record<string, number> = {};
  for (const name of new Set([...Object.keys(counts), ...Object.keys(previousCounts)])) {
    countsDelta[name] = (counts[name] ?? 0) - (previousCounts[name] ?? 0);
  }
  return countsDelta;
}

function isRotationCandidate(
  entry: AtRiskCertificate,
  policy: Pick<ExpiryPolicy, 'rotationWindowDays'>,
): boolean {
  if (entry.kind !== 'DEVICE' || !entry.serial || entry.class === 'EXPIRED') return false;
  if (!askedToRotate(entry.deviceState)) return false;
  return entry.class === 'TOO_OLD' || entry.daysLeft < policy.rotationWindowDays;
}

/** The previous run a report is compared with (what `compareReports` reads of it). */
export interface PreviousRun {
  runId: string;
  generatedAt: string;
  atRisk: readonly AtRiskCertificate[];
  summary: { counts: Record<string, number> };
}

/**
 * Counts per class (every class of the policy), per kind and per device state; the devices not
 * asked to rotate, by reason.
 */
function tally(
  atRisk: readonly AtRiskCertificate[],
  policy: Pick<ExpiryPolicy, 'windowsDays'>,
): Pick<ExpiryReport['summary'], 'counts' | 'byKind' | 'byDeviceState' | 'notAskedToRotate'> {
  const counts: Record<string, number> = Object.fromEntries(expiryClasses(policy).map((name) => [name, 0]));
  const byKind: Record<string, number> = { DEVICE: 0, CLAIM: 0, CA: 0 };
  const byDeviceState: Record<string, number> = {};
  const notAsked = { held: new Set<string>(), 'not connected': new Set<string>() };
  for (const entry of atRisk) {
    counts[entry.class] = (counts[entry.class] ?? 0) + 1;
    byKind[entry.kind] = (byKind[entry.kind] ?? 0) + 1;
    if (entry.kind === 'DEVICE') {
      const state = entry.deviceState ?? 'UNKNOWN';
      byDeviceState[state] = (byDeviceState[state] ?? 0) + 1;
      const reason = notAskedReason(entry.deviceState);
      if (reason) notAsked[reason].add(entry.serial ?? entry.certificateId);
    }
  }
  const notAskedToRotate = { held: notAsked.held.size, neverConnected: notAsked['not connected'].size };
  return { counts, byKind, byDeviceState, notAskedToRotate };
}

/**
 * What changed since the previous report (everything is "new" when there is none). A certificate of
 * the previous report that is not in this one is, in this order:
 * - resolved when its device now has another certificate (`deviceCertificates`: rotated, renewed);
 * - expired when its notAfter has passed since the previous report (it was not EXPIRED then):
 *   whether it has left the look-back or was retired after its notAfter cannot be told apart, and
 *   either way the certificate ran out — an expiry is never counted as resolved;
 * - left the look-back (`agedOut`) when this run no longer reads it: expired before the previous
 *   report and notAfter now before the look-back, or too old, still valid, and issued before the
 *   age check's look-back;
 * - resolved otherwise: this run read where it is and it is no longer live (retired, revoked).
 */
export function compareReports(
  atRisk: readonly AtRiskCertificate[],
  counts: Record<string, number>,
  now: number,
  policy: ExpiryPolicy,
  previous?: PreviousRun,
  deviceCertificates: ReadonlyMap<string, string | undefined> = new Map(),
): ReportChange {
  const before = new Map((previous?.atRisk ?? []).map((entry) => [entry.certificateId, entry]));
  const current = new Map(atRisk.map((entry) => [entry.certificateId, entry]));
  const newAtRisk = atRisk.filter((entry) => !before.has(entry.certificateId)).map((e) => e.certificateId);
  const gone = { resolved: [] as string[], expired: [] as string[], agedOut: [] as string[] };
  for (const [certificateId, entry] of before) {
    if (!current.has(certificateId)) gone[goneAs(entry, now, policy, deviceCertificates)].push(certificateId);
  }
  const { resolved, expired, agedOut } = gone;
  const reclassified = reclassifiedSince(atRisk, before);
  const countsDelta = countsDeltaSince(counts, previous?.summary.counts ?? {});
  return {
    ...(previous ? { previousRunId: previous.runId, previousGeneratedAt: previous.generatedAt } : {}),
    newAtRisk,
    resolved: resolved.sort(),
    expired: expired.sort(),
    agedOut: agedOut.sort(),
    reclassified,
    countsDelta,
  };
}

/** What became of a certificate of the previous report that this one does not list (`compareReports`). */
function goneAs(
  entry: AtRiskCertificate,
  now: number,
  policy: ExpiryPolicy,
  deviceCertificates: ReadonlyMap<string, string | undefined>,
): 'resolved' | 'expired' | 'agedOut' {
  const deviceCertificate =
    entry.kind === 'DEVICE' && entry.serial ? deviceCertificates.get(entry.serial) : undefined;
  if (deviceCertificate !== undefined && deviceCertificate !== entry.certificateId) return 'resolved';
  const notAfter = parseTime(entry.notAfter, 'notAfter');
  if (notAfter < now && entry.class !== 'EXPIRED') return 'expired';
  // Did this run read where the certificate is? CA and claim certificates are always read.
  const ranges = sweepRanges(now, policy);
  const within = (time: number, range: { from: number; to: number }) => time >= range.from && time < range.to;
  const read =
    entry.kind !== 'DEVICE' ||
    within(notAfter, ranges.expiry) ||
    within(parseTime(entry.notBefore, 'notBefore'), ranges.issued);
  return read ? 'resolved' : 'agedOut';
}

function sortedWindows(policy: Pick<ExpiryPolicy, 'windowsDays'>): number[] {
  return [...policy.windowsDays].sort((a, b) => a - b);
}

function parseTime(value: string, field: string): number {
  const time = parseIso(value);
  if (time === undefined) throw new TypeError(`${field}: not an ISO-8601 time: ${value}`);
  return time;
}

const ISO_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;

/**
 * Epoch milliseconds of an ISO-8601 date-time with a zone (`Z` or `±hh:mm`); undefined for anything
 * else, including dates that do not exist (February 30th).
 */
export function parseIso(value: string): number | undefined {
  const match = ISO_TIME.exec(value);
  if (!match) return undefined;
  const [, y, mo, d, h, mi, s, fraction, zone] = match;
  // Date.parse takes milliseconds: finer fractions are truncated, as before.
  const millis = (fraction ?? '').padEnd(3, '0').slice(0, 3);
  const time = Date.parse(`${y}-${mo}-${d}T${h}:${mi}:${s}.${millis}${zone}`);
  if (Number.isNaN(time)) return undefined;
  // Date.parse rolls a day past the month's end over (2026-02-30 → March 2nd); the calendar does not.
  const local = new Date(time + zoneOffsetMs(zone ?? 'Z'));
  if (local.getUTCDate() !== Number(d) || local.getUTCMonth() + 1 !== Number(mo)) return undefined;
  return time;
}

function zoneOffsetMs(zone: string): number {
  if (zone === 'Z') return 0;
  const sign = zone.startsWith('-') ? -1 : 1;
  return sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6))) * 60_000;
}

function isoOf(epochMs: number): string {
  return formatIso(epochMs);
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

/** ISO-8601 (UTC, milliseconds) of an epoch-milliseconds instant — formatting a given instant, not reading the clock. */
export function formatIso(instant: number): string {
  return new Date(Math.floor(instant)).toISOString();
}
