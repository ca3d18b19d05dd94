/**
 * The store's side of an allowlist import: up to 100 entries at a time, compared with what is
 * stored in one BatchGetItem. New serials are created only if still absent: TransactWriteItems of
 * up to 50 serials (100 items: each device Put conditional on `attribute_not_exists(PK)` with its
 * CREATED history entry), so an import whose read is stale — the serial created by a concurrent
 * import, and maybe bound by the hook, since — never resets a device. A cancelled transaction names
 * the serials that exist by now (their devices come back as the failed conditions' old images, or
 * are read again); those are treated as read (unchanged or changed) and the rest is retried, so each
 * serial, and its CREATED entry, is created exactly once however many imports race. Changed serials
 * are updated one conditional transaction each (only the allowlist fields; state is never touched).
 */
import { type AllowlistEntry, sameEntry } from '../allowlist/rows';
import { TransientError } from '../errors';
import type { StoreClient, WriteItem } from './client';
import {
  allowlistUpdate,
  deviceCreate,
  deviceFromItem,
  deviceFromOldImage,
  readDevice,
} from './entities/device';
import { historyEntry, historyPut } from './entities/history';
import { keys } from './keys';
import type { DeviceRecord } from './records';
import { type FailedConditions, RETRIES } from './retry';

export interface ImportContext {
  now: string;
  actor: string;
  idFor: (serial: string) => string;
}

export interface ImportCounts {
  imported: number;
  updated: number;
  unchanged: number;
}

/** Serials created per transaction: two items each, 100 items (DynamoDB's limit) a transaction. */
const SERIALS_PER_TRANSACTION = 50;

export async function importAllowlistEntries(
  db: StoreClient,
  entries: readonly AllowlistEntry[],
  context: ImportContext,
): Promise<ImportCounts> {
  if (entries.length > 100) throw new RangeError('importAllowlistEntries takes at most 100 entries');
  const { absent, existing } = await readEntries(db, entries);
  const created = await createAbsent(db, absent, context);
  existing.push(...created.existing);
  let updated = 0;
  let unchanged = 0;
  for (const { entry, device } of existing) {
    if (sameEntry(device, entry)) unchanged += 1;
    else if (await updateAllowlistFields(db, entry, device, context)) updated += 1;
    else unchanged += 1;
  }
  return { imported: created.imported, updated, unchanged };
}

export type Existing = Array<{ entry: AllowlistEntry; device: DeviceRecord }>;

/** The entries' devices, in one BatchGetItem: the entries absent, and those stored with their device. */
async function readEntries(
  db: StoreClient,
  entries: readonly AllowlistEntry[],
): Promise<{ absent: AllowlistEntry[]; existing: Existing }> {
  const stored = new Map<string, DeviceRecord>();
  for (const item of await db.batchGet(entries.map((entry) => keys.device(entry.serial)))) {
    const device = deviceFromItem(item);
    stored.set(device.serial, device);
  }
  const absent: AllowlistEntry[] = [];
  const existing: Existing = [];
  for (const entry of entries) {
    const device = stored.get(entry.serial);
    if (device) existing.push({ entry, device });
    else absent.push(entry);
  }
  return { absent, existing };
}

/**
 * Creates the serials of `entries` that are still absent, a transaction per 50 serials (the
 * transactions of a chunk run concurrently). Returns how many this import created and the device of
 * every serial that turned out to exist (created by a concurrent writer since it was read). The
 * import's write step on its own: the store benchmark's ceiling for the import calls it directly.
 */
export async function createAbsent(
  db: StoreClient,
  entries: readonly AllowlistEntry[],
  context: ImportContext,
): Promise<{ imported: number; existing: Existing }> {
  const existing: Existing = [];
  const groups: AllowlistEntry[][] = [];
  for (let start = 0; start < entries.length; start += SERIALS_PER_TRANSACTION) {
    groups.push(entries.slice(start, start + SERIALS_PER_TRANSACTION));
  }
  const created = await Promise.all(groups.map((group) => createGroup(db, group, context, existing)));
  return { imported: created.reduce((sum, n) => sum + n, 0), existing };
}

/** One transaction's serials, created if absent; those that exist are added to `existing`. */
async function createGroup(
  db: StoreClient,
  group: readonly AllowlistEntry[],
  context: ImportContext,
  existing: Existing,
): Promise<number> {
  let pending = group;
  // Each cancellation settles at least one serial, but for one whose device is absent after all
  // (only its history entry's condition failed): only such rounds are counted against the retries.
  for (let stalled = 0; pending.length > 0; ) {
    if (stalled > RETRIES) throw new TransientError('allowlist import: serials kept failing to be created');
    const failed = await db.transact(pending.flatMap((entry) => newDeviceWrites(entry, context)));
    if (!failed) return pending.length;
    const before = pending.length;
    pending = await settleFailed(db, pending, failed, existing);
    if (pending.length === before) stalled += 1;
  }
  return 0;
}

/**
 * After a cancelled creation (nothing of it written): the serials whose conditions failed exist by
 * now and are added to `existing` (the device's old image, or read again); the rest is returned, to
 * be tried again.
 */
async function settleFailed(
  db: StoreClient,
  pending: readonly AllowlistEntry[],
  failed: FailedConditions,
  existing: Existing,
): Promise<AllowlistEntry[]> {
  const retry: AllowlistEntry[] = [];
  const unread: AllowlistEntry[] = [];
  pending.forEach((entry, i) => {
    const deviceOld = failed[2 * i];
    if (deviceOld === undefined && failed[2 * i + 1] === undefined) retry.push(entry);
    else {
      const device = deviceOld ? deviceFromOldImage(deviceOld) : undefined;
      if (device) existing.push({ entry, device });
      else unread.push(entry);
    }
  });
  if (unread.length === 0) return retry;
  const found = new Map<string, DeviceRecord>();
  for (const item of await db.batchGet(unread.map((entry) => keys.device(entry.serial)))) {
    const device = deviceFromItem(item);
    found.set(device.serial, device);
  }
  for (const entry of unread) {
    const device = found.get(entry.serial);
    // Absent after all (only its history entry's condition failed): tried again.
    if (device) existing.push({ entry, device });
    else retry.push(entry);
  }
  return retry;
}

/** A new serial: its ALLOWLISTED device, created only if absent, and its CREATED history entry. */
function newDeviceWrites(entry: AllowlistEntry, context: ImportContext): [WriteItem, WriteItem] {
  const record: DeviceRecord = {
    ...entry,
    state: 'ALLOWLISTED',
    version: 1,
    createdAt: context.now,
    updatedAt: context.now,
  };
  const history = historyEntry(
    entry.serial,
    context.now,
    { id: context.idFor(entry.serial), actor: context.actor },
    'CREATED',
    { to: 'ALLOWLISTED' },
  );
  return [deviceCreate(record, { returnExisting: true }), historyPut(history)];
}

/** Rewrites the allowlist fields of a changed serial; false when it turned out unchanged or kept moving. */
async function updateAllowlistFields(
  db: StoreClient,
  entry: AllowlistEntry,
  read: DeviceRecord,
  context: ImportContext,
): Promise<boolean> {
  let device: DeviceRecord | undefined = read;
  for (let attempt = 0; attempt < RETRIES && device; attempt += 1) {
    if (sameEntry(device, entry)) return false;
    const history = historyEntry(
      entry.serial,
      context.now,
      { id: context.idFor(entry.serial), actor: context.actor },
      'ALLOWLIST_UPDATED',
      {},
      { productLine: entry.productLine, batch: entry.batch, allowedClaim: entry.allowedClaim },
    );
    const failed = await db.transact([
      allowlistUpdate(entry, device.version, context.now),
      historyPut(history),
    ]);
    if (!failed) return true;
    device = await readDevice(db, entry.serial);
  }
  return false;
}
