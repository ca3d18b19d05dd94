/**
 * What every entity module (`entities/`) shares: a checked `fromItem` (an item read from the table
 * is parsed against its entity's schema, never cast), and the small conversions items need.
 */
import type * as z from '../../schemas/zod';
import { MalformedItemError } from '../errors';
import type { Item } from './client';

/** The attributes that are keys or housekeeping, never part of a record. */
const KEY_ATTRIBUTES = ['PK', 'SK', 'GSI1PK', 'GSI1SK', 'GSI2PK', 'GSI2SK', 'GSI3PK', 'GSI3SK', 'ttl'];

/**
 * The record an item holds, checked against `schema`: its keys and TTL removed, every field the
 * entity requires present with the right type (attributes the schema does not name pass through).
 * A malformed item throws a `MalformedItemError` naming the item's key and the first bad field.
 */
export function fromItem<T>(schema: z.ZodMiniType<T>, entity: string, item: Item): T {
  const result = schema.safeParse(withoutKeys(item));
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue && issue.path.length > 0 ? issue.path.map(String).join('.') : '(item)';
  throw new MalformedItemError(entity, describeKey(item), field, issue?.message ?? 'invalid');
}

/** `PK=… SK=…` of an item, for messages. */
export function describeKey(item: Item): string {
  return item.PK === undefined ? '(no key read)' : `PK=${String(item.PK)} SK=${String(item.SK)}`;
}

export function withoutKeys(item: Item): Item {
  const rest: Item = {};
  for (const [name, value] of Object.entries(item)) if (!KEY_ATTRIBUTES.includes(name)) rest[name] = value;
  return rest;
}

export function stripUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

export function normalizeIso(value: string): string {
  const time = Date.parse(value);
  if (Number.isNaN(time)) throw new TypeError(`not an ISO-8601 time: ${value}`);
  return new Date(time).toISOString();
}

export function epochSeconds(iso: string): number {
  return Math.floor(Date.parse(iso) / 1000);
}

export function plusSeconds(iso: string, seconds: number): string {
  return new Date(Date.parse(iso) + seconds * 1000).toISOString();
}
