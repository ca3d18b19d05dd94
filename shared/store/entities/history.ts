/**
 * The device history (`DEVICE#<serial>` / `EVENT#<time>#<id>`): append-only audit entries next to
 * the device record, one Query per device. Every entry is written once (`attribute_not_exists`).
 */
import * as z from '../../../schemas/zod';
import { DEVICE_STATES, type DeviceState } from '../../domain/device-state';
import type { Item, WriteItem } from '../client';
import { fromItem } from '../item';
import { keys } from '../keys';
import type { HistoryEntry } from '../records';

/** Who writes an entry and why (the rest comes from the change it records). */
export interface HistoryInput {
  id: string;
  actor: string;
  reason?: string;
  detail?: Record<string, unknown>;
}

const state = z.enum(DEVICE_STATES);

const historySchema: z.ZodMiniType<HistoryEntry> = z.lazy(() =>
  z.looseObject({
    serial: z.string(),
    at: z.string(),
    id: z.string(),
    event: z.string(),
    from: z.optional(state),
    to: z.optional(state),
    actor: z.string(),
    reason: z.optional(z.string()),
    detail: z.optional(z.record(z.string(), z.unknown())),
  }),
);

/** The entry recording `event` (a move from `from` to `to`, when it is one); `extra` goes into the detail. */
export function historyEntry(
  serial: string,
  now: string,
  history: HistoryInput,
  event: string,
  move: { from?: DeviceState; to?: DeviceState } = {},
  extra?: Record<string, unknown>,
): HistoryEntry {
  return {
    serial,
    at: now,
    id: history.id,
    event,
    actor: history.actor,
    ...(move.from ? { from: move.from } : {}),
    ...(move.to ? { to: move.to } : {}),
    ...(history.reason ? { reason: history.reason } : {}),
    ...(history.detail || extra ? { detail: { ...extra, ...history.detail } } : {}),
  };
}

export function historyItem(entry: HistoryEntry): Item {
  return { ...keys.history(entry.serial, entry.at, entry.id), ...entry };
}

/** Appends an entry; a repeat of the same entry (same time and id) fails its condition. */
export function historyPut(entry: HistoryEntry): WriteItem {
  return { Put: { Item: historyItem(entry), ConditionExpression: 'attribute_not_exists(PK)' } };
}

export function historyFromItem(item: Item): HistoryEntry {
  return fromItem(historySchema, 'history', item);
}
