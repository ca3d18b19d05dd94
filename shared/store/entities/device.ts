/**
 * The device record (`DEVICE#<serial>` / `DEVICE`, listed by state in the StateIndex): the
 * allowlist entry and the device's provisioning state in one item. Its item, its checked reading,
 * and the conditional writes that change it.
 */
import * as z from '../../../schemas/zod';
import type { AllowlistEntry } from '../../allowlist/rows';
import { DEVICE_STATES, type DeviceState } from '../../domain/device-state';
import type { StoreDeviceFact } from '../../domain/reconciliation';
import type { Item, StoreClient, WriteItem } from '../client';
import { fromItem, stripUndefined } from '../item';
import { keys } from '../keys';
import type { DeviceRecord, QuarantineInfo } from '../records';

export const quarantineInfoSchema: z.ZodMiniType<QuarantineInfo> = z.lazy(() =>
  z.looseObject({
    reason: z.string(),
    source: z.string(),
    at: z.string(),
    evidence: z.record(z.string(), z.unknown()),
    requestId: z.optional(z.string()),
    certificateIds: z.optional(z.array(z.string())),
    thingName: z.optional(z.string()),
  }),
);

const state = z.enum(DEVICE_STATES);

const deviceSchema: z.ZodMiniType<DeviceRecord> = z.lazy(() =>
  z.looseObject({
    serial: z.string(),
    state,
    version: z.number(),
    productLine: z.optional(z.string()),
    batch: z.optional(z.string()),
    allowedClaim: z.optional(z.string()),
    attributes: z._default(z.record(z.string(), z.string()), () => ({})),
    thingName: z.optional(z.string()),
    certificateId: z.optional(z.string()),
    pendingCertificateId: z.optional(z.string()),
    provisioningDeadline: z.optional(z.string()),
    rotationDeadline: z.optional(z.string()),
    previousState: z.optional(state),
    quarantine: z.optional(quarantineInfoSchema),
    factoryImportedAt: z.optional(z.string()),
    lastTransitionKey: z.optional(z.string()),
    createdAt: z.string(),
    updatedAt: z.string(),
  }),
);

/** What reconciliation reads of a device (a projection: `DEVICE_FACT_PROJECTION`). */
const deviceFactSchema: z.ZodMiniType<StoreDeviceFact> = z.lazy(() =>
  z.object({
    serial: z.string(),
    state: z.string(),
    thingName: z.optional(z.string()),
    certificateId: z.optional(z.string()),
    pendingCertificateId: z.optional(z.string()),
  }),
);

export const DEVICE_FACT_PROJECTION =
  'PK, SK, serial, #state, thingName, certificateId, pendingCertificateId';

/** Attributes a transition's `set` never writes (keys and housekeeping). */
const DEVICE_KEY_ATTRIBUTES: readonly string[] = ['PK', 'SK', 'GSI2PK', 'GSI2SK', 'ttl'];

/** The full item of a device: record and StateIndex keys. */
export function deviceItem(device: DeviceRecord): Item {
  return {
    ...keys.device(device.serial),
    ...keys.stateIndex(device.state, device.serial),
    ...stripUndefined(device),
  };
}

export function deviceFromItem(item: Item): DeviceRecord {
  return fromItem(deviceSchema, 'device', item);
}

/** The device in a failed condition's old image, when the image is of a device item. */
export function deviceFromOldImage(item: Item): DeviceRecord | undefined {
  return item.SK === 'DEVICE' ? deviceFromItem(item) : undefined;
}

export function deviceFactFromItem(item: Item): StoreDeviceFact {
  return fromItem(deviceFactSchema, 'device', item);
}

/**
 * Creates a device record that must not exist yet; with `returnExisting`, a failed condition
 * carries the device that exists (its old image).
 */
export function deviceCreate(device: DeviceRecord, options: { returnExisting?: boolean } = {}): WriteItem {
  return {
    Put: {
      Item: deviceItem(device),
      ConditionExpression: 'attribute_not_exists(PK)',
      ...(options.returnExisting ? { ReturnValuesOnConditionCheckFailure: 'ALL_OLD' as const } : {}),
    },
  };
}

/**
 * Moves a device from `expected` (state and version as the caller read them) to `to`: bumps the
 * version, records the transition key, moves the StateIndex partition, sets and removes the given
 * attributes. Returns the old image when the condition fails.
 */
export function deviceTransition(input: {
  serial: string;
  expected: { state: DeviceState; version: number };
  to: DeviceState;
  set: Record<string, unknown>;
  remove: readonly string[];
  transitionKey: string;
  now: string;
}): WriteItem {
  const names: Record<string, string> = { '#state': 'state', '#version': 'version' };
  const values: Record<string, unknown> = {
    ':from': input.expected.state,
    ':v': input.expected.version,
    ':to': input.to,
    ':one': 1,
    ':now': input.now,
    ':key': input.transitionKey,
    ':gsi2pk': keys.stateIndex(input.to, input.serial).GSI2PK,
  };
  const assignments = [
    '#state = :to',
    '#version = #version + :one',
    'updatedAt = :now',
    'lastTransitionKey = :key',
    'GSI2PK = :gsi2pk',
  ];
  let index = 0;
  for (const [name, value] of Object.entries(input.set)) {
    if (value === undefined || DEVICE_KEY_ATTRIBUTES.includes(name)) continue;
    index += 1;
    names[`#a${index}`] = name;
    values[`:a${index}`] = value;
    assignments.push(`#a${index} = :a${index}`);
  }
  const removals = input.remove.map((name, i) => {
    names[`#r${i}`] = name;
    return `#r${i}`;
  });
  return {
    Update: {
      Key: keys.device(input.serial),
      UpdateExpression: `SET ${assignments.join(', ')}${removals.length ? ` REMOVE ${removals.join(', ')}` : ''}`,
      ConditionExpression: '#state = :from AND #version = :v',
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    },
  };
}

/**
 * The device as it stands after `deviceTransition` applied: the condition proved the record was
 * exactly `before` and what was written is known, so no second round trip is needed.
 */
export function transitionedDevice(
  before: DeviceRecord,
  change: { transitionKey: string; now: string; to: DeviceState; set: Record<string, unknown> },
  remove: ReadonlySet<string>,
): DeviceRecord {
  const device: DeviceRecord = {
    ...before,
    ...stripUndefined(change.set),
    state: change.to,
    version: before.version + 1,
    lastTransitionKey: change.transitionKey,
    updatedAt: change.now,
  };
  for (const name of remove) Reflect.deleteProperty(device, name);
  return device;
}

const ALLOWLIST_FIELDS = ['productLine', 'batch', 'allowedClaim'] as const;

/** Replaces a device's allowlist fields (never its state), if its version is still `version`. */
export function allowlistUpdate(entry: AllowlistEntry, version: number, now: string): WriteItem {
  const present = ALLOWLIST_FIELDS.filter((field) => entry[field] !== undefined);
  const absent = ALLOWLIST_FIELDS.filter((field) => entry[field] === undefined);
  const names: Record<string, string> = { '#version': 'version', '#attributes': 'attributes' };
  const values: Record<string, unknown> = {
    ':attributes': entry.attributes,
    ':one': 1,
    ':now': now,
    ':v': version,
  };
  for (const field of ALLOWLIST_FIELDS) names[`#${field}`] = field;
  for (const field of present) values[`:${field}`] = entry[field];
  return {
    Update: {
      Key: keys.device(entry.serial),
      UpdateExpression:
        `SET #attributes = :attributes, #version = #version + :one, updatedAt = :now${present.map((f) => `, #${f} = :${f}`).join('')}` +
        (absent.length ? ` REMOVE ${absent.map((f) => `#${f}`).join(', ')}` : ''),
      ConditionExpression: 'attribute_exists(PK) AND #version = :v',
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
    },
  };
}

/** The device record of `serial` (one strongly consistent GetItem), or undefined. */
export function readDevice(db: StoreClient, serial: string): Promise<DeviceRecord | undefined> {
  return db.readAs(keys.device(serial), deviceFromItem);
}
