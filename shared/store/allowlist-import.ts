/**
 * The store's side of an allowlist import: up to 100 entries at a time, compared with what is
 * stored in one BatchGetItem; new serials written with BatchWriteItem (device + first history
 * entry), changed serials updated one conditional transaction each (only the allowlist fields;
 * state is never touched).
 */
import { type AllowlistEntry, sameEntry } from '../allowlist/rows';
import type { Item, StoreClient } from './client';
import { allowlistUpdate, deviceFromItem, deviceItem, readDevice } from './entities/device';
import { historyEntry, historyItem, historyPut } from './entities/history';
import { keys } from './keys';
import type { DeviceRecord } from './records';
import { RETRIES } from './retry';

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

export async function importAllowlistEntries(
  db: StoreClient,
  entries: readonly AllowlistEntry[],
  context: ImportContext,
): Promise<ImportCounts> {
  if (entries.length > 100) throw new RangeError('importAllowlistEntries takes at most 100 entries');
  const existing = new Map<string, DeviceRecord>();
  for (const item of await db.batchGet(entries.map((entry) => keys.device(entry.serial)))) {
    const device = deviceFromItem(item);
    existing.set(device.serial, device);
  }
  const fresh: Item[] = [];
  const changed: Array<{ entry: AllowlistEntry; device: DeviceRecord }> = [];
  let unchanged = 0;
  for (const entry of entries) {
    const device = existing.get(entry.serial);
    if (!device) {
      fresh.push(...newDeviceItems(entry, context));
    } else if (sameEntry(device, entry)) {
      unchanged += 1;
    } else {
      changed.push({ entry, device });
    }
  }
  await db.batchPut(fresh);
  let updated = 0;
  for (const { entry, device } of changed) {
    if (await updateAllowlistFields(db, entry, device, context)) updated += 1;
    else unchanged += 1;
  }
  return { imported: fresh.length / 2, updated, unchanged };
}

/** A new serial: its ALLOWLISTED device item and its CREATED history item. */
function newDeviceItems(entry: AllowlistEntry, context: ImportContext): [Item, Item] {
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
  return [deviceItem(record), historyItem(history)];
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
