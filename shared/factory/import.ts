/**
 * `fleetgate factory import`: a batch of factory-issued device certificates registered in bulk, each
 * row through the same steps, in the same order, as JITR registers one certificate
 * (docs/factory-import.md):
 *
 * 1. **Decide** from the batch and one BatchGetItem (`decideFactoryRow`): rejected rows write
 *    nothing anywhere (a rejection the store's facts decide is read a second time: one BatchGetItem
 *    is not a snapshot); a row imported before costs that one read and no IoT call.
 * 2. **Reserve in the store**, one transaction: the device (created ALLOWLISTED → PROVISIONING, or
 *    an allowlisted one bound) with the pending certificate, the certificate record PENDING (source
 *    FACTORY) carrying this run's lease, the public-key owner, the history. DynamoDB's conditions
 *    decide between two rows (or two runs) for one serial or one key before IoT knows anything.
 * 3. **IoT**, each step idempotent: RegisterCertificate with the batch CA (or
 *    RegisterCertificateWithoutCA) as INACTIVE, AttachPolicy (the shared device policy),
 *    CreateThing, the optional thing group, AttachThingPrincipal, and UpdateCertificate ACTIVE last.
 * 4. **Commit**: the certificate record ACTIVE, the lease released.
 *
 * A run that stops anywhere is finished by the next one (the row is decided `resume`). Every IoT API
 * is called through its own token bucket (`maxTps`, under AWS's default quotas); the SDK's adaptive
 * retries stay the safety net. Nothing here logs or reports a PEM.
 */
import { X509Certificate } from 'node:crypto';
import { TokenBucket } from '../aws/token-bucket';
import { type ParsedCertificate, parseCertificatePem } from '../certificates';
import type { Config } from '../config';
import {
  decideFactoryRow,
  type FactoryDecision,
  type FactoryReason,
  type FactoryRow,
} from '../domain/factory-rules';
import { decideReadingTwiceIf, type Instant } from '../domain/provisioning-rules';
import { ValidationError } from '../errors';
import { awsName, type IotRegistry } from '../iot/iot-registry';
import { FactoryStore } from '../store/factory-store';
import type { ProvisioningStore } from '../store/provisioning-store';
import { type DeviceRecord, deviceCertificateRecord } from '../store/records';
import { RegistrationStore } from '../store/registration-store';
import type { Batch } from './batch';
import { type PreparedRow, prepareRows } from './prepare';

export const FACTORY_ACTOR = 'factoryImport';

export type FactoryRowStatus = 'registered' | 'already-registered' | 'rejected' | 'in-progress' | 'failed';

/** One row of the report: never a PEM, never a key. */
export interface FactoryRowReport {
  row: number;
  source: string;
  status: FactoryRowStatus;
  serial?: string;
  certificateId?: string;
  thingName?: string;
  /** Rejections: the rule's code; failures: the AWS error name or `ERROR`. */
  reason?: FactoryReason | string;
  detail?: string;
  /** Registered rows: whether this run finished an earlier run's reservation. */
  resumed?: boolean;
}

export interface FactoryImportReport {
  batch: string;
  kind: Batch['kind'];
  runId: string;
  mode: 'with-ca' | 'without-ca';
  caCertificateId?: string;
  rows: FactoryRowReport[];
  counts: Record<FactoryRowStatus, number>;
  rejectedByReason: Record<string, number>;
  /** IoT calls made, per API. */
  iotCalls: Record<string, number>;
}

export interface FactoryImportDeps {
  store: ProvisioningStore;
  iot: Pick<
    IotRegistry,
    | 'registerCertificate'
    | 'attachPolicy'
    | 'ensureThing'
    | 'addThingToThingGroup'
    | 'attachThingPrincipal'
    | 'updateCertificateStatus'
    | 'describeCertificate'
    | 'describeCaCertificate'
  >;
  config: Config;
  newId: () => string;
  clock?: () => number;
}

export interface FactoryImportOptions {
  batch: Batch;
  /** The CA that issued the batch (RegisterCertificate); absent: RegisterCertificateWithoutCA. */
  caCertificatePem?: string;
  /** Batch name written on new devices and certificate records (default: the batch's file name). */
  batchName: string;
  productLine?: string;
  runId: string;
  concurrency?: number;
  /** Requests per second per IoT API (AWS's defaults: 10 for RegisterCertificate, UpdateCertificate). */
  maxTps?: number;
  onRow?: (report: FactoryRowReport) => void;
}

/** The batch cannot be imported at all (its CA is unusable): nothing was written. */
export class FactoryImportError extends Error {
  override name = 'FactoryImportError';
}

/** Runs the import of one batch; the report lists every row. */
export async function importFactoryBatch(
  options: FactoryImportOptions,
  deps: FactoryImportDeps,
): Promise<FactoryImportReport> {
  const clock = deps.clock ?? Date.now;
  const calls: Record<string, number> = {};
  const buckets = new Map<string, TokenBucket>();
  const limited = async <T>(api: string, call: () => Promise<T>): Promise<T> => {
    let bucket = buckets.get(api);
    if (!bucket) {
      bucket = new TokenBucket(options.maxTps ?? 5);
      buckets.set(api, bucket);
    }
    await bucket.take();
    calls[api] = (calls[api] ?? 0) + 1;
    return call();
  };
  const ca = await checkCa(options.caCertificatePem, deps, limited);
  const prepared = prepareRows(options.batch.rows, ca?.x509, deps.config);
  const context: RowContext = {
    options,
    deps,
    limited,
    factoryStore: new FactoryStore(deps.store.db),
    registrations: new RegistrationStore(deps.store.db),
    clock,
  };
  const reports: FactoryRowReport[] = new Array(prepared.length);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const index = next;
      next += 1;
      const row = prepared[index];
      if (row === undefined) return;
      const report = await importRow(row, context);
      reports[index] = report;
      options.onRow?.(report);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 4) }, worker));
  const counts: Record<FactoryRowStatus, number> = {
    registered: 0,
    'already-registered': 0,
    rejected: 0,
    'in-progress': 0,
    failed: 0,
  };
  const rejectedByReason: Record<string, number> = {};
  for (const report of reports) {
    counts[report.status] += 1;
    if (report.status === 'rejected' && report.reason)
      rejectedByReason[report.reason] = (rejectedByReason[report.reason] ?? 0) + 1;
  }
  return {
    batch: options.batchName,
    kind: options.batch.kind,
    runId: options.runId,
    mode: ca ? 'with-ca' : 'without-ca',
    ...(ca ? { caCertificateId: ca.certificateId } : {}),
    rows: reports,
    counts,
    rejectedByReason,
    iotCalls: calls,
  };
}

type Limited = <T>(api: string, call: () => Promise<T>) => Promise<T>;

/** The batch CA: a CA certificate, registered in IoT and ACTIVE — checked before any row. */
async function checkCa(
  pem: string | undefined,
  deps: FactoryImportDeps,
  limited: Limited,
): Promise<{ certificateId: string; x509: X509Certificate } | undefined> {
  if (pem === undefined) return undefined;
  let parsed: ParsedCertificate;
  try {
    parsed = parseCertificatePem(pem, { field: 'caCertificatePem' });
  } catch (error) {
    if (error instanceof ValidationError) throw new FactoryImportError(`--ca: ${error.message}`);
    throw error;
  }
  if (!parsed.isCa)
    throw new FactoryImportError(
      '--ca: is not a CA certificate (its basicConstraints extension does not say cA=TRUE)',
    );
  const described = await limited('DescribeCACertificate', () =>
    deps.iot.describeCaCertificate(parsed.certificateId),
  );
  if (!described) {
    throw new FactoryImportError(
      `--ca: CA ${parsed.certificateId} is not registered in AWS IoT (register it first: aws iot register-ca-certificate)`,
    );
  }
  if (described.status !== 'ACTIVE') {
    throw new FactoryImportError(`--ca: CA ${parsed.certificateId} is ${described.status} in AWS IoT`);
  }
  return { certificateId: parsed.certificateId, x509: new X509Certificate(parsed.der) };
}

interface RowContext {
  options: FactoryImportOptions;
  deps: FactoryImportDeps;
  limited: Limited;
  factoryStore: FactoryStore;
  registrations: RegistrationStore;
  clock: () => number;
}

/** Rounds of decide → reserve when a concurrent writer moves the row under us. */
const DECIDE_ROUNDS = 4;
/** How long a row another run is importing is waited for before it is reported in progress. */
const HELD_WAIT_MS = 15_000;

async function importRow(row: PreparedRow, context: RowContext): Promise<FactoryRowReport> {
  const base = { row: row.input.row, source: row.input.source };
  if (!row.factory || !row.certificate || row.pem === undefined) {
    return {
      ...base,
      status: 'rejected',
      reason: 'INVALID_CERTIFICATE',
      detail: row.unreadable ?? 'certificate: unreadable',
      ...(row.input.manifestSerial !== undefined ? { serial: row.input.manifestSerial } : {}),
    };
  }
  const certificate = row.certificate;
  const withCertificate = { ...base, certificateId: certificate.certificateId };
  try {
    for (let round = 0; round < DECIDE_ROUNDS; round += 1) {
      const report = await importRound(
        { ...row, factory: row.factory },
        certificate,
        withCertificate,
        context,
      );
      if (report) return report;
    }
    return {
      ...withCertificate,
      status: 'failed',
      reason: 'CONTENDED',
      detail: 'the device kept changing while the row was imported; run the import again',
    };
  } catch (error) {
    await context.factoryStore
      .releaseLease(certificate.certificateId, context.options.runId)
      .catch(() => undefined);
    return {
      ...withCertificate,
      ...(row.input.manifestSerial !== undefined ? { serial: row.input.manifestSerial } : {}),
      status: 'failed',
      reason: failureCode(error),
      detail: `${error instanceof Error ? error.message.split('\n')[0] : String(error)}; the row is resumed by the next run`,
    };
  }
}

type RowBase = { row: number; source: string; certificateId: string };

/** One round of decide → act; undefined when the row moved under us and is decided again. */
async function importRound(
  row: PreparedRow & { factory: FactoryRow },
  certificate: ParsedCertificate,
  withCertificate: RowBase,
  context: RowContext,
): Promise<FactoryRowReport | undefined> {
  const now = instant(context.clock());
  const decision = await decide(row.factory, certificate, context, now);
  switch (decision.action) {
    case 'reject':
      return {
        ...withCertificate,
        status: 'rejected',
        reason: decision.reason,
        detail: decision.detail,
        ...(decision.serial !== undefined ? { serial: decision.serial } : {}),
      };
    case 'already-registered':
      return {
        ...withCertificate,
        status: 'already-registered',
        serial: decision.serial,
        thingName: decision.thingName,
      };
    case 'resume':
      return resumeRow(row, decision, withCertificate, context);
    case 'register': {
      const reserved = await reserve(row, certificate, decision, context, now);
      if (reserved.status === 'changed') return undefined;
      await registerInIot(row, decision, context);
      return registered(withCertificate, decision, false);
    }
  }
}

/** A row an earlier run reserved: finished by whoever holds its lease. */
async function resumeRow(
  row: PreparedRow,
  decision: { serial: string; thingName: string },
  withCertificate: RowBase,
  context: RowContext,
): Promise<FactoryRowReport | undefined> {
  const lease = await waitForLease(withCertificate.certificateId, context);
  if (lease === 'done') {
    return {
      ...withCertificate,
      status: 'already-registered',
      serial: decision.serial,
      thingName: decision.thingName,
    };
  }
  if (lease === 'held') {
    return {
      ...withCertificate,
      status: 'in-progress',
      serial: decision.serial,
      detail: 'another import run holds the row; run the import again to confirm it',
    };
  }
  if (lease === 'missing') return undefined;
  await registerInIot(row, decision, context);
  return registered(withCertificate, decision, true);
}

function registered(
  withCertificate: RowBase,
  decision: { serial: string; thingName: string },
  resumed: boolean,
): FactoryRowReport {
  return {
    ...withCertificate,
    status: 'registered',
    serial: decision.serial,
    thingName: decision.thingName,
    resumed,
  };
}

async function decide(
  row: FactoryRow,
  certificate: ParsedCertificate,
  context: RowContext,
  now: Instant,
): Promise<FactoryDecision> {
  // The batch-level and request checks first: bad input never costs a read.
  const offline = decideFactoryRow(row, {}, context.deps.config, now);
  if (offline.action === 'reject') return offline;
  const read = () =>
    context.deps.store.loadProvisioningFacts({
      serial: offline.serial,
      certificateId: certificate.certificateId,
      publicKeyHash: certificate.publicKeyHash,
    });
  // The facts are one BatchGetItem, which is read-committed item by item but not one snapshot
  // ("Isolation levels for DynamoDB transactions", Amazon DynamoDB Developer Guide): while another
  // run's reservation of this very row commits, the read can hold its certificate record beside the
  // device as it was before, or the reverse, and look like someone else's binding. Once one item of
  // a transaction is visible, all of it is, so a second read confirms or clears a rejection.
  const { decision } = await decideReadingTwiceIf(
    read,
    (facts) => decideFactoryRow(row, facts, context.deps.config, now),
    (decided) => decided.action === 'reject',
  );
  return decision;
}

async function reserve(
  row: PreparedRow,
  certificate: ParsedCertificate,
  decision: Extract<FactoryDecision, { action: 'register' }>,
  context: RowContext,
  now: Instant,
) {
  const { options, deps } = context;
  const device = decision.deviceExists ? await deps.store.getDevice(decision.serial) : undefined;
  if (decision.deviceExists && device?.state !== 'ALLOWLISTED') return { status: 'changed' as const };
  const record = RegistrationStore.withLease(
    deviceCertificateRecord(certificate, {
      status: 'PENDING',
      source: 'FACTORY',
      now: now.iso,
      serial: decision.serial,
      thingName: decision.thingName,
    }),
    {
      leaseOwner: options.runId,
      leaseUntil: new Date(now.epochMs + deps.config.registrationLeaseSeconds * 1000).toISOString(),
    },
  );
  return context.factoryStore.reserve({
    serial: decision.serial,
    thingName: decision.thingName,
    certificate: { ...record, batch: options.batchName } as typeof record,
    publicKeyHash: certificate.publicKeyHash,
    ...(device ? { device } : {}),
    allowlist: {
      batch: options.batchName,
      ...(options.productLine !== undefined ? { productLine: options.productLine } : {}),
      attributes: {},
    },
    // The factory certificate holds its serial for its whole life: no other certificate may take
    // the serial while the device is still on the shelf (the hook and JITR deny PROVISIONING_IN_PROGRESS).
    provisioningDeadline: certificate.notAfter,
    now: now.iso,
    history: {
      id: deps.newId(),
      actor: FACTORY_ACTOR,
      reason: 'factory-issued certificate imported',
      detail: { source: 'FACTORY', batch: options.batchName, runId: options.runId, row: row.input.source },
    },
  });
}

/** Takes the row's lease for this run; waits a while for another run that holds it. */
async function waitForLease(certificateId: string, context: RowContext) {
  const deadline = context.clock() + HELD_WAIT_MS;
  for (;;) {
    const lease = await context.registrations.acquireRegistrationLease(
      certificateId,
      context.options.runId,
      new Date(context.clock()).toISOString(),
      context.deps.config.registrationLeaseSeconds,
    );
    if (lease !== 'held' || context.clock() >= deadline) return lease;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** Steps 3 and 4: every IoT side effect, each idempotent, activation last; then the commit. */
async function registerInIot(
  row: PreparedRow,
  decision: { serial: string; thingName: string },
  context: RowContext,
): Promise<void> {
  const { deps, limited, options } = context;
  const certificateId = row.certificate?.certificateId as string;
  const registered = await limited(
    options.caCertificatePem ? 'RegisterCertificate' : 'RegisterCertificateWithoutCA',
    () =>
      deps.iot.registerCertificate({
        certificatePem: row.pem as string,
        ...(options.caCertificatePem ? { caCertificatePem: options.caCertificatePem } : {}),
        status: 'INACTIVE',
      }),
  );
  let status = registered.created ? 'INACTIVE' : undefined;
  if (status === undefined) {
    const described = await limited('DescribeCertificate', () => deps.iot.describeCertificate(certificateId));
    status = described?.status;
    if (status === 'REVOKED')
      throw new Error('certificate: is REVOKED in AWS IoT; fleetgate never re-activates it');
  }
  await limited('AttachPolicy', () =>
    deps.iot.attachPolicy(deps.config.devicePolicyName, registered.certificateArn),
  );
  const device = await deps.store.getDevice(decision.serial);
  await limited('CreateThing', () =>
    deps.iot.ensureThing(decision.thingName, thingAttributes(device, decision.serial)),
  );
  if (deps.config.deviceThingGroup) {
    const group = deps.config.deviceThingGroup;
    await limited('AddThingToThingGroup', () => deps.iot.addThingToThingGroup(group, decision.thingName));
  }
  await limited('AttachThingPrincipal', () =>
    deps.iot.attachThingPrincipal(decision.thingName, registered.certificateArn),
  );
  if (status !== 'ACTIVE') {
    await limited('UpdateCertificate', () => deps.iot.updateCertificateStatus(certificateId, 'ACTIVE'));
  }
  await context.registrations.completeRegistration(certificateId, new Date(context.clock()).toISOString());
}

/** The thing's attributes: serial, batch and product line, then the allowlist's own (at most 50). */
function thingAttributes(device: DeviceRecord | undefined, serial: string): Record<string, string> {
  const attributes: Record<string, string> = { serial };
  if (device?.productLine !== undefined) attributes.productLine = device.productLine;
  if (device?.batch !== undefined) attributes.batch = device.batch;
  for (const [name, value] of Object.entries(device?.attributes ?? {})) {
    if (Object.keys(attributes).length >= 50) break;
    if (!(name in attributes) && value !== '') attributes[name] = value;
  }
  return attributes;
}

/** The AWS error name behind a failure (`ThrottlingException`, …), or ERROR. */
function failureCode(error: unknown): string {
  const name = awsName((error as { cause?: unknown }).cause ?? error);
  return name === 'Unknown' || name === 'Error' ? 'ERROR' : name;
}

function instant(epochMs: number): Instant {
  return { epochMs, iso: new Date(epochMs).toISOString() };
}
