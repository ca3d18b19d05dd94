/**
 * One unit of reconciliation work: one page of the current phase, classified. Nothing is committed
 * here; `runReconciliation` commits the findings together with the checkpoint that moves past them.
 */
import {
  type CertificateReference,
  certificateReferences,
  classifyIotCertificates,
  classifyNeverConnected,
  classifyReference,
  classifyThing,
  type Drift,
  type IotCertificateState,
  isIntendedUnusable,
  needsConfirmation,
  RECONCILED_STATES,
  serialOfThing,
  serialsToCheck,
} from '../domain/reconciliation';
import type { InventoryCallStats, IotInventory } from '../iot/iot-inventory';
import type { ReportSink } from '../reports/report-sink';
import type { ProvisioningStore } from '../store/provisioning-store';
import type { ReconcileCheckpoint, ReconcileStore } from '../store/reconcile-store';

/** What a reconciliation run works with (also exported by reconcile-inventory.ts). */
export interface ReconcileDeps {
  reconcileStore: ReconcileStore;
  provisioningStore: ProvisioningStore;
  inventory: IotInventory;
  sink: ReportSink;
  /** Milliseconds left in this invocation. */
  remainingMs: () => number;
  /** Stop (and checkpoint) when less than this would remain after the next unit. */
  safetyMarginMs: number;
  /** Items per page (ListCertificates ≤ 250, ListThings ≤ 250, StateIndex Query). */
  pageSize: number;
  /** Thing name = prefix + serial. */
  thingNamePrefix: string;
  /** Epoch milliseconds. */
  clock: () => number;
  /** Factory-imported devices not connected this many days after the import are reported (default 30). */
  neverConnectedDays?: number;
}

export interface UnitResult {
  /** The checkpoint's position after this unit (seq and totals are set by the caller). */
  next: ReconcileCheckpoint;
  drift: Drift[];
  totals: Record<string, number>;
}

/** ListCertificates and ListThings return at most 250 per page. */
const IOT_MAX_PAGE = 250;

export async function runUnit(checkpoint: ReconcileCheckpoint, deps: ReconcileDeps): Promise<UnitResult> {
  const before = snapshot(deps.inventory.stats);
  const result =
    checkpoint.phase === 'CERTIFICATES'
      ? await certificatesUnit(checkpoint, deps)
      : checkpoint.phase === 'DEVICES'
        ? await devicesUnit(checkpoint, deps)
        : await thingsUnit(checkpoint, deps);
  return { ...result, totals: { ...result.totals, ...callDelta(before, deps.inventory.stats) } };
}

/** IoT → store: one ListCertificates page against the certificate records. */
async function certificatesUnit(checkpoint: ReconcileCheckpoint, deps: ReconcileDeps): Promise<UnitResult> {
  const page = await deps.inventory.listCertificates(
    checkpoint.cursor,
    Math.min(deps.pageSize, IOT_MAX_PAGE),
  );
  const records = await deps.reconcileStore.certificateRecords(page.items.map((c) => c.certificateId));
  // What the listing saw, for the devices phase; only certificates the store has a record of can be
  // referenced by a device (a reference without a record is described instead).
  await deps.reconcileStore.markSeen(
    checkpoint,
    page.items.filter((certificate) => records.has(certificate.certificateId)),
  );
  // Only a page with ACTIVE records of unusable certificates reads devices: is it a quarantine?
  const serials = serialsToCheck(page.items, records);
  const devices = serials.length > 0 ? await deps.reconcileStore.devices(serials) : new Map();
  const totals: Record<string, number> = {
    certificatesListed: page.items.length,
    storeRecordsFound: records.size,
  };
  for (const certificate of page.items) {
    totals[`status.${certificate.status}`] = (totals[`status.${certificate.status}`] ?? 0) + 1;
    const record = records.get(certificate.certificateId);
    if (record?.status === 'ACTIVE' && isIntendedUnusable(record, certificate.status, devices))
      totals.heldByQuarantine = (totals.heldByQuarantine ?? 0) + 1;
  }
  return {
    next: page.next
      ? { ...checkpoint, cursor: page.next }
      : { ...withoutCursor(checkpoint), phase: 'DEVICES', stateIndex: 0 },
    drift: classifyIotCertificates(page.items, records, devices),
    totals,
  };
}

/**
 * Each reference against the state the listing saw (described again where the listing cannot
 * settle it); `described`: how many DescribeCertificate calls that took.
 */
async function classifyReferences(
  references: readonly CertificateReference[],
  listed: ReadonlyMap<string, IotCertificateState>,
  deps: ReconcileDeps,
): Promise<{ drift: Drift[]; described: number }> {
  const drift: Drift[] = [];
  let described = 0;
  for (const reference of references) {
    let state: IotCertificateState | undefined = listed.get(reference.certificateId);
    if (needsConfirmation(reference, state)) {
      state = await deps.inventory.certificateState(reference.certificateId);
      described += 1;
    }
    const finding = state === undefined ? undefined : classifyReference(reference, state);
    if (finding) drift.push(finding);
  }
  return { drift, described };
}

/** Store → IoT: one StateIndex page of devices in a reconciled state. */
async function devicesUnit(checkpoint: ReconcileCheckpoint, deps: ReconcileDeps): Promise<UnitResult> {
  const state = RECONCILED_STATES[checkpoint.stateIndex];
  if (state === undefined)
    return { next: { ...withoutCursor(checkpoint), phase: 'THINGS' }, drift: [], totals: {} };
  const page = await deps.provisioningStore.listDevicesByState(state, {
    limit: deps.pageSize,
    ...(checkpoint.cursor ? { cursor: checkpoint.cursor } : {}),
  });
  const references: CertificateReference[] = page.items.flatMap((device) => certificateReferences(device));
  const listed = await deps.reconcileStore.seen(
    checkpoint.runId,
    references.map((reference) => reference.certificateId),
  );
  const { drift, described } = await classifyReferences(references, listed, deps);
  for (const device of page.items) {
    const finding = classifyNeverConnected(device, Date.parse(checkpoint.now), deps.neverConnectedDays ?? 30);
    if (finding) drift.push(finding);
  }
  const next: ReconcileCheckpoint = page.cursor
    ? { ...checkpoint, cursor: page.cursor }
    : checkpoint.stateIndex + 1 < RECONCILED_STATES.length
      ? { ...withoutCursor(checkpoint), stateIndex: checkpoint.stateIndex + 1 }
      : { ...withoutCursor(checkpoint), phase: 'THINGS' };
  return {
    next,
    drift,
    totals: {
      devicesRead: page.items.length,
      referencesChecked: references.length,
      referencesDescribed: described,
    },
  };
}

/** Things: one ListThings page, a ListThingPrincipals each, device records by serial. */
async function thingsUnit(checkpoint: ReconcileCheckpoint, deps: ReconcileDeps): Promise<UnitResult> {
  const page = await deps.inventory.listThings(checkpoint.cursor, Math.min(deps.pageSize, IOT_MAX_PAGE));
  const serials = new Map<string, string>();
  for (const thing of page.items) {
    const serial = serialOfThing(thing.thingName, deps.thingNamePrefix);
    if (serial !== undefined) serials.set(thing.thingName, serial);
  }
  const devices = await deps.reconcileStore.devices([...new Set(serials.values())]);
  // The token bucket paces these; issuing them together lets the waits overlap the round trips.
  const principals = await Promise.all(
    page.items.map((thing) => deps.inventory.hasPrincipals(thing.thingName)),
  );
  const drift: Drift[] = [];
  page.items.forEach((thing, index) => {
    const has = principals[index];
    if (has === 'NOT_FOUND' || has === undefined) return;
    const serial = serials.get(thing.thingName);
    const device = serial === undefined ? undefined : devices.get(serial);
    const knownToStore =
      device !== undefined && (device.thingName === undefined || device.thingName === thing.thingName);
    drift.push(...classifyThing({ thingName: thing.thingName, principals: has ? 1 : 0, knownToStore }));
  });
  return {
    next: page.next
      ? { ...checkpoint, cursor: page.next }
      : { ...withoutCursor(checkpoint), phase: 'REPORT' },
    drift,
    totals: { thingsListed: page.items.length },
  };
}

function withoutCursor(checkpoint: ReconcileCheckpoint): ReconcileCheckpoint {
  const { cursor: _cursor, ...rest } = checkpoint;
  return rest;
}

function snapshot(stats: InventoryCallStats): InventoryCallStats {
  return { calls: { ...stats.calls }, retries: stats.retries };
}

function callDelta(before: InventoryCallStats, after: InventoryCallStats): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [api, count] of Object.entries(after.calls)) {
    const delta = count - (before.calls[api as keyof InventoryCallStats['calls']] ?? 0);
    if (delta > 0) out[`iot.${api}`] = delta;
  }
  if (after.retries > before.retries) out.sdkRetries = after.retries - before.retries;
  return out;
}
