/**
 * Inventory reconciliation rules (issue #8, part 4): what counts as drift between the IoT registry
 * and the provisioning store. Pure: the caller lists IoT and reads the store; these functions only
 * decide. Report only — nothing here ever asks for a change in IoT or in the store.
 */

/** A certificate status as AWS IoT reports it (ListCertificates / DescribeCertificate). */
export type IotCertificateStatus =
  | 'ACTIVE'
  | 'INACTIVE'
  | 'REVOKED'
  | 'PENDING_TRANSFER'
  | 'REGISTER_INACTIVE'
  | 'PENDING_ACTIVATION'
  | (string & {});

/** What IoT says about one certificate, or that it does not have it (ResourceNotFoundException). */
export type IotCertificateState = IotCertificateStatus | 'NOT_FOUND';

/** One certificate as ListCertificates returns it (no DescribeCertificate needed). */
export interface IotCertificateSummary {
  certificateId: string;
  status: IotCertificateStatus;
  /** ISO-8601 creation date, when IoT returned one. */
  creationDate?: string;
}

/** What the store knows about a certificate, as far as reconciliation cares. */
export interface StoreCertificateFact {
  certificateId: string;
  kind: 'DEVICE' | 'CLAIM' | 'CA';
  /** The store's status (ACTIVE, INACTIVE, REVOKED, RETIRED, DELETED, PENDING). */
  status: string;
  serial?: string;
}

/** A device record as far as reconciliation cares. */
export interface StoreDeviceFact {
  serial: string;
  state: string;
  thingName?: string;
  certificateId?: string;
  pendingCertificateId?: string;
  /** Set on devices `fleetgate factory import` bound (when it did). */
  factoryImportedAt?: string;
}

/** The device states whose certificates must exist and work in IoT. */
export const RECONCILED_STATES = ['ACTIVE', 'ROTATING', 'PROVISIONING'] as const;

export const DRIFT_KINDS = [
  'CERTIFICATE_UNKNOWN_TO_STORE',
  'STORE_CERTIFICATE_GONE',
  'STORE_CERTIFICATE_NOT_ACTIVE',
  'THING_WITHOUT_PRINCIPALS',
  'THING_UNKNOWN_TO_STORE',
  'FACTORY_NEVER_CONNECTED',
] as const;
/**
 * - `CERTIFICATE_UNKNOWN_TO_STORE`: ACTIVE in IoT, no certificate record in the store.
 * - `STORE_CERTIFICATE_GONE`: the store relies on a certificate IoT does not have.
 * - `STORE_CERTIFICATE_NOT_ACTIVE`: the store relies on a certificate that is INACTIVE / REVOKED
 *   (or otherwise unusable) in IoT.
 * - `THING_WITHOUT_PRINCIPALS`: a thing no certificate is attached to.
 * - `THING_UNKNOWN_TO_STORE`: a thing whose name maps to no device record of that thing.
 * - `FACTORY_NEVER_CONNECTED`: a factory-imported device whose certificate was registered more than
 *   `FACTORY_NEVER_CONNECTED_DAYS` ago and that never connected with it (still PROVISIONING): the
 *   "enrolled but never came online" part of a batch.
 */
export type DriftKind = (typeof DRIFT_KINDS)[number];

/** One finding. `key` identifies it across pages and resumptions (the report de-duplicates on it). */
export interface Drift {
  key: string;
  kind: DriftKind;
  certificateId?: string;
  thingName?: string;
  serial?: string;
  /** What the store holds (device state, certificate record status), when it holds anything. */
  storeState?: string;
  /** What IoT holds (certificate status, `NOT_FOUND`, principal count). */
  iotState?: string;
  /** Why the certificate matters: the device's `current` or `pending` one, or a certificate record. */
  role?: CertificateRole;
}

/** Which of the store's references to a certificate is being checked. */
export type CertificateRole = 'current' | 'pending' | 'record';

/** A store reference to a certificate that IoT must back. */
export interface CertificateReference {
  certificateId: string;
  role: CertificateRole;
  serial?: string;
  thingName?: string;
  /** Device state, or the certificate record's kind and status. */
  storeState: string;
}

function driftKey(kind: DriftKind, id: string): string {
  return `${kind}#${id}`;
}

/**
 * Device states whose certificates are meant to be unusable in IoT: quarantine deactivates a
 * device's certificates (and never re-activates one), reject revokes them.
 */
export const HELD_STATES: readonly string[] = ['QUARANTINED', 'REVOKED'];

/**
 * Whether an unusable certificate (INACTIVE / REVOKED in IoT) is what the store intends: the
 * certificate of a device that is QUARANTINED (its certificates INACTIVE, or REVOKED before) or
 * REVOKED. The certificate record keeps the status it had; the device's state says why.
 */
export function isIntendedUnusable(
  record: Pick<StoreCertificateFact, 'serial'>,
  iot: IotCertificateStatus,
  devices: ReadonlyMap<string, Pick<StoreDeviceFact, 'state'>>,
): boolean {
  if (!isUnusable(iot) || record.serial === undefined) return false;
  const state = devices.get(record.serial)?.state;
  return state !== undefined && HELD_STATES.includes(state);
}

/**
 * The serials whose device state decides whether a page's unusable certificates are drift: those of
 * the certificate records the store holds as ACTIVE that IoT lists as INACTIVE / REVOKED.
 */
export function serialsToCheck(
  page: readonly IotCertificateSummary[],
  records: ReadonlyMap<string, StoreCertificateFact>,
): string[] {
  const serials = new Set<string>();
  for (const certificate of page) {
    const record = records.get(certificate.certificateId);
    if (record?.status === 'ACTIVE' && record.serial !== undefined && isUnusable(certificate.status))
      serials.add(record.serial);
  }
  return [...serials];
}

/**
 * IoT → store for one ListCertificates page: an ACTIVE certificate without a certificate record is
 * unknown to the store; a certificate record the store holds as ACTIVE whose certificate IoT lists
 * as INACTIVE / REVOKED is stale — unless its device is quarantined or revoked (`devices`), which is
 * why it is unusable. Certificates IoT holds inactive and the store does not know are not drift
 * (nothing can connect with them).
 */
export function classifyIotCertificates(
  page: readonly IotCertificateSummary[],
  records: ReadonlyMap<string, StoreCertificateFact>,
  devices: ReadonlyMap<string, Pick<StoreDeviceFact, 'state'>> = new Map(),
): Drift[] {
  const drift: Drift[] = [];
  for (const certificate of page) {
    const record = records.get(certificate.certificateId);
    if (!record) {
      if (certificate.status === 'ACTIVE') {
        drift.push({
          key: driftKey('CERTIFICATE_UNKNOWN_TO_STORE', certificate.certificateId),
          kind: 'CERTIFICATE_UNKNOWN_TO_STORE',
          certificateId: certificate.certificateId,
          iotState: certificate.status,
        });
      }
      continue;
    }
    if (
      record.status === 'ACTIVE' &&
      isUnusable(certificate.status) &&
      !isIntendedUnusable(record, certificate.status, devices)
    ) {
      drift.push({
        key: driftKey('STORE_CERTIFICATE_NOT_ACTIVE', certificate.certificateId),
        kind: 'STORE_CERTIFICATE_NOT_ACTIVE',
        certificateId: certificate.certificateId,
        ...(record.serial !== undefined ? { serial: record.serial } : {}),
        storeState: `${record.kind} ${record.status}`,
        iotState: certificate.status,
        role: 'record',
      });
    }
  }
  return drift;
}

/**
 * The certificates a device in the store relies on: the current one in ACTIVE, ROTATING and
 * PROVISIONING (a re-provisioning device still has one), and the pending one in ROTATING and
 * PROVISIONING. Other states rely on nothing.
 */
export function certificateReferences(device: StoreDeviceFact): CertificateReference[] {
  if (!(RECONCILED_STATES as readonly string[]).includes(device.state)) return [];
  const base = {
    serial: device.serial,
    storeState: device.state,
    ...(device.thingName !== undefined ? { thingName: device.thingName } : {}),
  };
  const references: CertificateReference[] = [];
  if (device.certificateId)
    references.push({ ...base, certificateId: device.certificateId, role: 'current' });
  if (device.pendingCertificateId && device.state !== 'ACTIVE') {
    references.push({ ...base, certificateId: device.pendingCertificateId, role: 'pending' });
  }
  return references;
}

/**
 * Store → IoT for one reference, given what IoT says now. A current certificate must be ACTIVE.
 * A pending one may still be INACTIVE or PENDING_ACTIVATION (fleet provisioning and JITR activate
 * last), but must exist and must not be REVOKED.
 */
export function classifyReference(
  reference: CertificateReference,
  iot: IotCertificateState,
): Drift | undefined {
  const fields = {
    certificateId: reference.certificateId,
    ...(reference.serial !== undefined ? { serial: reference.serial } : {}),
    ...(reference.thingName !== undefined ? { thingName: reference.thingName } : {}),
    storeState: reference.storeState,
    iotState: iot,
    role: reference.role,
  };
  if (iot === 'NOT_FOUND') {
    return {
      key: driftKey('STORE_CERTIFICATE_GONE', reference.certificateId),
      kind: 'STORE_CERTIFICATE_GONE',
      ...fields,
    };
  }
  const bad = reference.role === 'pending' ? iot === 'REVOKED' : iot !== 'ACTIVE';
  if (!bad) return undefined;
  return {
    key: driftKey('STORE_CERTIFICATE_NOT_ACTIVE', reference.certificateId),
    kind: 'STORE_CERTIFICATE_NOT_ACTIVE',
    ...fields,
  };
}

/**
 * A factory-imported device still waiting for its first connection `days` after the import (its
 * certificate is registered and ACTIVE, the device never used it), or undefined.
 */
export function classifyNeverConnected(
  device: StoreDeviceFact,
  nowMs: number,
  days: number,
): Drift | undefined {
  if (device.state !== 'PROVISIONING' || device.factoryImportedAt === undefined) return undefined;
  const importedMs = Date.parse(device.factoryImportedAt);
  if (Number.isNaN(importedMs) || nowMs - importedMs < days * 86_400_000) return undefined;
  return {
    key: driftKey('FACTORY_NEVER_CONNECTED', device.serial),
    kind: 'FACTORY_NEVER_CONNECTED',
    serial: device.serial,
    ...(device.pendingCertificateId !== undefined ? { certificateId: device.pendingCertificateId } : {}),
    ...(device.thingName !== undefined ? { thingName: device.thingName } : {}),
    storeState: `PROVISIONING since ${device.factoryImportedAt}`,
    role: 'pending',
  };
}

/**
 * Whether a reference needs a DescribeCertificate to be decided: when the certificate was not in
 * the run's listing (gone, or created after the listing passed it), or was listed in a state the
 * reference would report (IoT may have changed since; the describe confirms). A reference whose
 * certificate was listed healthy is decided without an API call.
 */
export function needsConfirmation(
  reference: CertificateReference,
  listed: IotCertificateState | undefined,
): boolean {
  if (listed === undefined) return true;
  return classifyReference(reference, listed) !== undefined;
}

/**
 * One thing from ListThings with its principal count (ListThingPrincipals, capped at one page) and
 * whether the store has a device record of that thing.
 */
export function classifyThing(thing: {
  thingName: string;
  principals: number;
  knownToStore: boolean;
}): Drift[] {
  const drift: Drift[] = [];
  if (thing.principals === 0) {
    drift.push({
      key: driftKey('THING_WITHOUT_PRINCIPALS', thing.thingName),
      kind: 'THING_WITHOUT_PRINCIPALS',
      thingName: thing.thingName,
      iotState: '0 principals',
    });
  }
  if (!thing.knownToStore) {
    drift.push({
      key: driftKey('THING_UNKNOWN_TO_STORE', thing.thingName),
      kind: 'THING_UNKNOWN_TO_STORE',
      thingName: thing.thingName,
    });
  }
  return drift;
}

/**
 * The serial a thing name stands for (thing name = prefix + serial), or undefined when the name
 * does not carry the prefix.
 */
export function serialOfThing(thingName: string, thingNamePrefix: string): string | undefined {
  if (!thingName.startsWith(thingNamePrefix)) return undefined;
  const serial = thingName.slice(thingNamePrefix.length);
  return serial.length > 0 ? serial : undefined;
}

/**
 * All findings of a run, de-duplicated on `key` (the same certificate can be found from its
 * certificate record and from its device; a resumed page can be seen twice) and sorted, so the
 * same registry and store always give the same report.
 */
export function mergeDrift(pages: ReadonlyArray<readonly Drift[]>): Drift[] {
  const byKey = new Map<string, Drift>();
  for (const page of pages) {
    for (const drift of page) {
      const existing = byKey.get(drift.key);
      // Prefer the finding that names the device (from a device reference) over the bare record.
      if (!existing || (existing.role === 'record' && drift.role !== 'record')) byKey.set(drift.key, drift);
    }
  }
  return [...byKey.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** Counts per drift kind, every kind present (zeros included). */
export function countDrift(drift: readonly Drift[]): Record<DriftKind, number> {
  const counts = Object.fromEntries(DRIFT_KINDS.map((kind) => [kind, 0])) as Record<DriftKind, number>;
  for (const finding of drift) counts[finding.kind] += 1;
  return counts;
}

function isUnusable(status: IotCertificateStatus): boolean {
  return status === 'INACTIVE' || status === 'REVOKED';
}
