/**
 * The fleet simulator: real keys, CSRs and certificates (local/pki.ts), an allowlist imported through
 * the import code, and every device driven through its flow on a local stack up to its first
 * connection with its own certificate — legitimate devices and bad actors alike — then IoT events
 * redelivered on demand and the outcome checked against the emulator's registry and the store.
 */

import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  AttachPolicyCommand,
  CreateCertificateFromCsrCommand,
  IoTClient,
  RegisterCACertificateCommand,
} from '@aws-sdk/client-iot';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { importAllowlistCsv } from '../../shared/allowlist/import-csv';
import { DEFAULT_SERIAL_PATTERN } from '../../shared/allowlist/rows';
import { parseCertificatePem } from '../../shared/certificates';
import { loadConfig } from '../../shared/config';
import { claimClientId } from '../../shared/domain/client-ids';
import type { Batch } from '../../shared/factory/batch';
import { importFactoryBatch } from '../../shared/factory/import';
import { IotRegistry } from '../../shared/iot/iot-registry';
import { listQuarantine, type QuarantineCounts, quarantineCounts } from '../../shared/quarantine/operator';
import { InstallerStore } from '../../shared/store/installer-store';
import { ProvisioningStore } from '../../shared/store/provisioning-store';
import { QuarantineStore } from '../../shared/store/quarantine-store';
import { anchorCertificateRecord, type DeviceRecord } from '../../shared/store/records';
import { verifiedCaCertificate } from '../ca-registration';
import { type FleetRejection, isRejection } from '../iot-emulator/index';
import { localInstallerToken } from '../local-idp-client';
import { declaredFleet, FleetSetupError } from '../mqtt/fleet-setup';
import {
  type CertificateAuthority,
  type CryptoKeyPair,
  createCertificateAuthority,
  createCsr,
  createDeviceCertificate,
  exportPrivateKeyPem,
  generateKeyPair,
  issueCertificate,
} from '../pki';
import type { StackHandle } from '../stack-control';
import type { EmulatorMessage, EmulatorState } from './device-client';
import {
  type ActorKind,
  BAD_ACTOR_KINDS,
  type Participant,
  planSimulation,
  type SimulationFlow,
  type SimulationPlan,
} from './plan';
import { createTransport, type DeviceTransport, type TransportKind } from './transport';

export type { SimulationFlow } from './plan';
export type { TransportKind } from './transport';

const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };
/** Devices provisioned with one claim certificate (a production batch). */
const DEVICES_PER_CLAIM = 50;
/** RegisterThing attempts per device before it gives up (throttled attempts not counted). */
const REGISTER_ATTEMPTS = 5;
/**
 * Good firmware's retry on a throttled Fleet Provisioning request: exponential backoff with full
 * jitter (a random wait up to min(cap, base × 2^attempt)), so a factory line that powered on at
 * once spreads out instead of hammering the endpoint in lockstep; it gives up after the deadline.
 * @see https://aws.amazon.com/builders-library/timeouts-retries-and-backoff-with-jitter/
 */
const BACKOFF_BASE_MS = 250;
const BACKOFF_CAP_MS = 16_000;
const THROTTLED_RETRY_DEADLINE_MS = 15 * 60_000;

export interface SimulationOptions {
  devices: number;
  flow: SimulationFlow;
  clones?: number;
  invalid?: number;
  /** Each IoT event is delivered this many extra times through the rules engine. */
  duplicates?: number;
  concurrency?: number;
  seed?: number;
  /** How devices reach IoT: the emulator's device routes (`http`, default) or real MQTT connections over mutual TLS. */
  transport?: TransportKind;
  /** Distinguishes the serials of this run from earlier runs on the same stack. */
  runId?: string;
  /** How long legitimate devices may take to turn ACTIVE after the last connection. */
  activationTimeoutMs?: number;
  /** How long to wait for the stack's queues to drain after the run (default 60 s). */
  settleTimeoutMs?: number;
  /**
   * Days until the certificate of legitimate device `index` expires (JITR and JITP, where the
   * simulator's CA issues device certificates; default one year). The demo uses it to give the
   * expiry sweep something to report.
   */
  lifetimeDays?: (index: number) => number;
  onProgress?: (done: number, total: number) => void;
  /**
   * A factory line powering on at once: every device in flight together (concurrency = devices)
   * against the Fleet Provisioning API's own rate quotas (AWS's defaults, turned on in the emulator
   * for the run): throttled requests are answered with ThrottlingException and retried by the devices.
   */
  burst?: boolean;
  /** With `burst`: one TPS for all three Fleet Provisioning operations instead of AWS's defaults. */
  burstTps?: number;
}

/** What happened to one participant. */
export interface ParticipantOutcome {
  kind: ActorKind;
  serial: string;
  /** `provisioned`: connected with its own certificate; `denied`: refused by IoT or the hook. */
  result: 'provisioned' | 'denied' | 'error';
  reason?: string;
  /** The certificate it connected with, when IoT accepted it; for a denied RegisterThing, the one it was issued. */
  certificateId?: string;
  /** Milliseconds from the first request to ACTIVE in the store (legitimate devices). */
  timeToActiveMs?: number;
}

export interface SimulationSummary {
  flow: SimulationFlow;
  runId: string;
  devices: number;
  badActors: Record<string, number>;
  provisioned: number;
  active: number;
  /** State legitimate devices had to reach: ACTIVE when deviceLifecycle runs, else PROVISIONING. */
  expectedState: 'ACTIVE' | 'PROVISIONING';
  deniedByReason: Record<string, number>;
  /** Why legitimate devices failed to provision, when they did (each one is also lost). */
  legitimateFailures: Record<string, number>;
  /** Bad actors (and imitated originals) caught, by who they were and why: one per actor. */
  quarantinedByReason: Record<string, number>;
  /**
   * What is in quarantine on the stack once the run has settled, as `fleetgate quarantine list`
   * counts it: devices, and certificates of no known device (an original and its clone are one
   * device).
   */
  inQuarantine: QuarantineCounts;
  /** Bad actors that were neither denied nor quarantined (must be empty). */
  admittedBadActors: Array<{ kind: ActorKind; serial: string }>;
  /** Clones that were kept out but never reached the quarantine (no record for an operator). */
  unquarantinedClones: string[];
  /** Serials with more than one thing or more than one active certificate (must be 0). */
  duplicatesCreated: number;
  /** Legitimate devices not in the expected state (must be 0). */
  lost: number;
  /** Of those, devices bound (PROVISIONING) that never turned ACTIVE (must be 0). */
  stuck: number;
  /** Fleet Provisioning requests answered with ThrottlingException, and fresh ownership tokens fetched. */
  throttled?: number;
  freshTokens?: number;
  lostSerials: string[];
  redelivered: number;
  durationMs: number;
  devicesPerSecond: number;
  timeToActiveMs: { p50: number; p99: number } | null;
  errors: string[];
  /** Messages still queued (awaiting a retry) when the run stopped waiting, by queue name. */
  unsettled?: Record<string, number>;
  /** Wall time of each phase: prepare, devices, redeliver, settle, verify. */
  phasesMs?: Record<string, number>;
  /** `mqtt` runs: MQTT connections opened (claim, device, retries) and how many per second of the devices phase. */
  mqtt?: { connections: number; connectionsPerSecond: number };
}

/** Thrown when a flow needs a function that is not in the stack's serverless.yml yet. */
export class FlowUnavailableError extends Error {
  override name = 'FlowUnavailableError';
}

/** The functions each flow needs on the stack (serverless.yml names). */
export const FLOW_FUNCTIONS: Record<SimulationFlow, string[]> = {
  fleet: ['preProvisionHook'],
  jitr: ['registerCertificate', 'deviceLifecycle'],
  jitp: ['deviceLifecycle'],
  factory: ['deviceLifecycle'],
  'trusted-user': ['preProvisionHook', 'installerClaim'],
};

/** Functions the simulation makes run, loaded one at a time before it starts. */
const WARM_UP = ['preProvisionHook', 'registerCertificate', 'deviceLifecycle', 'quarantineDevice'] as const;

/**
 * Loads each function before devices arrive. The local stack's functions share one process and set
 * their environment on `process.env` per invocation, so two cold starts at once can read each
 * other's configuration; one cold start at a time cannot. Loaded, not invoked: an invocation with an
 * empty event would be a decision in the function's log (the hook's INVALID_EVENT denial) that no
 * device asked for — and no event is marked as "only a warm-up", so none can hide its own decision.
 */
async function warmUp(handle: StackHandle, names: ReadonlySet<string>): Promise<void> {
  for (const name of WARM_UP) {
    if (!names.has(name)) continue;
    // Only the cold start matters; a function that fails to load fails again, visibly, when invoked.
    await handle.warm(name).catch(() => undefined);
  }
}

/** The flows this stack can run. */
export async function availableFlows(handle: StackHandle): Promise<SimulationFlow[]> {
  const names = new Set(await handle.functionNames());
  return (Object.keys(FLOW_FUNCTIONS) as SimulationFlow[]).filter((flow) =>
    FLOW_FUNCTIONS[flow].every((name) => names.has(name)),
  );
}

interface Rig {
  handle: StackHandle;
  devices: DeviceTransport;
  iot: IoTClient;
  store: ProvisioningStore;
  prefix: string;
  accountId: string;
  lifecycle: boolean;
  /** Throttled Fleet Provisioning requests and fresh ownership tokens, over the whole run. */
  counters: { throttled: number; freshTokens: number };
}

type FleetClaim = { certificateId: string; certificatePem: string; privateKeyPem: string };

interface FleetContext {
  templateName: string;
  /** Provisioning by trusted user: each device's temporary claim, from the installer API. */
  claimFor?: (participant: Participant) => Promise<FleetClaim | { refused: string }>;
  /** Claim certificates, one per production batch of {@link DEVICES_PER_CLAIM} devices. */
  claims: Array<{ certificateId: string; certificatePem: string; privateKeyPem: string }>;
  expiredCa: CertificateAuthority;
  keys: Map<number, CryptoKeyPair>;
}

/**
 * Runs one simulation against a local stack.
 * @throws FlowUnavailableError when the stack lacks a function the flow needs.
 */
export async function runSimulation(
  handle: StackHandle,
  options: SimulationOptions,
): Promise<SimulationSummary> {
  const names = new Set(await handle.functionNames());
  const missing = FLOW_FUNCTIONS[options.flow].filter((name) => !names.has(name));
  if (missing.length > 0) {
    throw new FlowUnavailableError(
      `the ${options.flow} flow needs ${missing.join(', ')}, which serverless.yml does not declare yet`,
    );
  }
  await warmUp(handle, names);
  const iotEndpoint = handle.endpoints.iot;
  if (!iotEndpoint) throw new FlowUnavailableError('the local stack runs without the IoT emulator');
  const runId = options.runId ?? randomBytes(3).toString('hex').toUpperCase();
  const plan = planSimulation({
    devices: options.devices,
    clones: options.clones ?? 0,
    invalid: options.invalid ?? 0,
    seed: options.seed ?? 1,
    runId,
  });
  const ddb = new DynamoDBClient({
    endpoint: handle.endpoints.dynamodb,
    region: handle.region,
    credentials: LOCAL_CREDENTIALS,
  });
  const iot = new IoTClient({ endpoint: iotEndpoint, region: handle.region, credentials: LOCAL_CREDENTIALS });
  const devices = await createTransport(options.transport ?? 'http', handle);
  try {
    const state = await devices.state();
    const rig: Rig = {
      handle,
      devices,
      iot,
      store: new ProvisioningStore(
        DynamoDBDocumentClient.from(ddb, { marshallOptions: { removeUndefinedValues: true } }),
        handle.tableName,
      ),
      prefix: handle.tableName.replace(/-provisioning$/, ''),
      accountId: state.accountId,
      lifecycle: names.has('deviceLifecycle'),
      counters: { throttled: 0, freshTokens: 0 },
    };
    const faults = options.burst ? await burstQuotas(iotEndpoint, options.burstTps) : undefined;
    try {
      return await simulate(rig, plan, options);
    } finally {
      await faults?.restore();
    }
  } finally {
    await devices.close();
    iot.destroy();
    ddb.destroy();
  }
}

async function simulate(
  rig: Rig,
  plan: SimulationPlan,
  options: SimulationOptions,
): Promise<SimulationSummary> {
  const concurrency = options.burst
    ? plan.legitimate.length + plan.badActors.length
    : (options.concurrency ?? 8);
  const errors: string[] = [];
  const phasesMs: Record<string, number> = {};
  let phaseStart = performance.now();
  const phase = (name: string) => {
    const now = performance.now();
    phasesMs[name] = Math.round(now - phaseStart);
    phaseStart = now;
  };
  const publishedBefore = (await rig.devices.published('$aws/events/')).length;
  const runParticipant = await prepareFlow(rig, plan, options.flow, options.lifetimeDays);
  phase('prepare');
  const started = performance.now();
  const startedAt = new Map<string, number>();
  const outcomes: ParticipantOutcome[] = [];
  const total = plan.legitimate.length + plan.badActors.length;
  let done = 0;
  const progress = () => {
    done += 1;
    options.onProgress?.(done, total);
  };
  const run = async (participant: Participant) => {
    startedAt.set(participant.serial, startedAt.get(participant.serial) ?? performance.now());
    try {
      outcomes.push(await runParticipant(participant));
    } catch (error) {
      errors.push(`${participant.serial}: ${error instanceof Error ? error.message : String(error)}`);
      outcomes.push({ kind: participant.kind, serial: participant.serial, result: 'error' });
    }
    progress();
  };
  const legitimateDone = pool(plan.legitimate, concurrency, run);
  const activation = rig.lifecycle
    ? watchActivation(rig.store, plan.legitimate, startedAt, legitimateDone, options.activationTimeoutMs)
    : Promise.resolve(new Map<string, number>());
  await legitimateDone;
  // Bad actors imitate devices that exist by now: clones and takeovers must meet a bound serial.
  await pool(plan.badActors, concurrency, run);
  const activeAt = await activation;
  const provisioningMs = performance.now() - started;
  const connections = rig.devices.connections;
  phase('devices');

  const events = (await rig.devices.published('$aws/events/')).slice(publishedBefore);
  const redelivered = await redeliver(rig.handle, events, options.duplicates ?? 0, concurrency);
  phase('redeliver');
  // A message a consumer reported as a partial batch failure waits out its queue's visibility
  // timeout (180 s) before the retry: report what is still queued rather than wait for it.
  let unsettled: Record<string, number> = {};
  await rig.handle.settle(options.settleTimeoutMs ?? 20_000).catch(async () => {
    unsettled = Object.fromEntries(
      Object.entries(await rig.handle.depths()).filter(
        ([name, depth]) => depth > 0 && !name.endsWith('-dlq'),
      ),
    );
  });
  phase('settle');
  const summary = await summarize(rig, plan, options.flow, outcomes, {
    activeAt,
    startedAt,
    redelivered,
    provisioningMs,
    errors,
  });
  phase('verify');
  return {
    ...summary,
    unsettled,
    phasesMs,
    ...(options.flow === 'fleet' || options.flow === 'trusted-user'
      ? { throttled: rig.counters.throttled, freshTokens: rig.counters.freshTokens }
      : {}),
    ...(rig.devices.kind === 'mqtt'
      ? {
          mqtt: {
            connections,
            connectionsPerSecond: Math.round((connections / (provisioningMs / 1000)) * 10) / 10,
          },
        }
      : {}),
  };
}

type ParticipantRunner = (participant: Participant) => Promise<ParticipantOutcome>;

/**
 * The flow's own setup on an account the local stack prepared from serverless.yml (quarantine group
 * and policy, registry events, the device policy, the claim policy and the fleet-provisioning
 * template, as a deploy creates them); resolves with the function that runs one participant.
 */
async function prepareFlow(
  rig: Rig,
  plan: SimulationPlan,
  flow: SimulationFlow,
  lifetimeDays?: (index: number) => number,
): Promise<ParticipantRunner> {
  if (flow === 'fleet') {
    const context = await prepareFleet(rig, plan);
    return (participant) => runFleetParticipant(rig, context, participant);
  }
  if (flow === 'trusted-user') {
    const context = await prepareTrustedUser(rig, plan);
    return (participant) => runFleetParticipant(rig, context, participant);
  }
  if (flow === 'factory') {
    const context = await prepareFactory(rig, plan, lifetimeDays);
    return (participant) => runFactoryParticipant(rig, context, participant);
  }
  const context = { ...(await prepareDeviceCa(rig, plan, flow)), lifetimeDays };
  return (participant) => runCaParticipant(rig, context, participant);
}

async function prepareFleet(rig: Rig, plan: SimulationPlan): Promise<FleetContext> {
  // What serverless.yml deploys and the local stack created at start: the template (with its hook)
  // and the claim policy.
  const { templateName, claimPolicyName } = await declaredFleet(rig.iot, rig.handle.declared);
  // Claim certificates issued by the emulator (AWS's CA) and active, one per batch of devices, as a
  // factory line would use: each stays under the hook's per-claim rate limit (60/min by default).
  const batches = Math.max(1, Math.ceil(plan.legitimate.length / DEVICES_PER_CLAIM));
  const claims: FleetContext['claims'] = [];
  for (let batch = 0; batch < batches; batch += 1) {
    const claimCsr = await createCsr({ subject: { commonName: `fleetgate claim ${plan.runId} ${batch}` } });
    const claim = await rig.iot.send(
      new CreateCertificateFromCsrCommand({ certificateSigningRequest: claimCsr.csrPem, setAsActive: true }),
    );
    if (!claim.certificateId || !claim.certificatePem)
      throw new Error('the emulator issued no claim certificate');
    // The claim policy serverless.yml deploys: the Fleet Provisioning MQTT API of this template only.
    await rig.iot.send(
      new AttachPolicyCommand({ policyName: claimPolicyName, target: claim.certificateArn }),
    );
    // Known to the store like a claim registered with `fleetgate certificates register`.
    await rig.store.putCertificateIfAbsent(
      anchorCertificateRecord(parseCertificatePem(claim.certificatePem), {
        kind: 'CLAIM',
        now: new Date().toISOString(),
      }),
    );
    claims.push({
      certificateId: claim.certificateId,
      certificatePem: claim.certificatePem,
      privateKeyPem: await exportPrivateKeyPem(claimCsr.keys.privateKey),
    });
  }
  const expiredCa = await createCertificateAuthority({
    subject: { commonName: `fleetgate expired ${plan.runId}` },
  });
  await importAllowlist(rig, plan, (device) => claimOf(claims, device).certificateId);
  return {
    templateName,
    claims,
    expiredCa,
    keys: new Map(),
  };
}

/** Installers of a trusted-user run: each gets this many devices (under the API's per-minute limit). */
const DEVICES_PER_INSTALLER = 8;

/**
 * Provisioning by trusted user: the allowlist (no product claim), installers bound to the run's
 * batch, and for each device a temporary claim from the installer API (`POST /claims` with the
 * installer's token from the local issuer), used through the trusted-user template. A refused claim
 * (a serial nobody allowlisted, 429 after backing off) is the device's outcome.
 */
async function prepareTrustedUser(rig: Rig, plan: SimulationPlan): Promise<FleetContext> {
  const api = rig.handle.endpoints.httpApi;
  const templateName = rig.handle.declared.installerTemplateName;
  if (!api || !templateName) {
    throw new FlowUnavailableError(
      'the trusted-user flow needs the installer API (installerClaim) and its template',
    );
  }
  await importAllowlist(rig, plan);
  const installers = new InstallerStore(rig.store);
  const count = Math.max(1, Math.ceil(plan.legitimate.length / DEVICES_PER_INSTALLER));
  const names = Array.from({ length: count }, (_, index) => `simulator-${plan.runId}-${index}`);
  const now = new Date().toISOString();
  await installers.bind(
    names.map((installer) => ({
      installer,
      scope: 'BATCH' as const,
      value: plan.runId,
      boundBy: 'cli:simulate',
      boundAt: now,
    })),
  );
  const tokens = new Map<string, Promise<string>>();
  const tokenOf = (installer: string) => {
    let token = tokens.get(installer);
    if (!token) {
      token = localInstallerToken(api, installer);
      tokens.set(installer, token);
    }
    return token;
  };
  const claimFor = async (participant: Participant): Promise<FleetClaim | { refused: string }> => {
    const installer =
      names[Math.floor((participant.victim ?? participant.index) / DEVICES_PER_INSTALLER) % count] ?? '';
    const retry = throttledRetry(rig.counters);
    for (;;) {
      const response = await fetch(`${api}/claims`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${await tokenOf(installer)}` },
        body: JSON.stringify({ serial: participant.serial }),
      });
      const body = (await response.json()) as Record<string, unknown>;
      if (response.status === 201) {
        return {
          certificateId: String(body.certificateId),
          certificatePem: String(body.certificatePem),
          privateKeyPem: String(body.privateKey),
        };
      }
      // The app backs off on 429 / 5xx as good firmware does on a throttled RegisterThing.
      if ((response.status === 429 || response.status >= 500) && (await retry.wait())) continue;
      return { refused: String(body.error ?? response.status) };
    }
  };
  const expiredCa = await createCertificateAuthority({
    subject: { commonName: `fleetgate expired ${plan.runId}` },
  });
  return { templateName, claims: [], claimFor, expiredCa, keys: new Map() };
}

/** Imports the allowlist through the CSV import: legitimate devices and expired ones (their certificate is what is wrong). */
async function importAllowlist(
  rig: Rig,
  plan: SimulationPlan,
  allowedClaim: (device: Participant) => string = () => '',
): Promise<void> {
  const allowlisted = [
    ...plan.legitimate,
    ...plan.badActors.filter((actor) => actor.kind === 'expired-certificate'),
  ];
  const csv = [
    'serial,productLine,batch,allowedClaim',
    ...allowlisted.map((device) => `${device.serial},simulator,${plan.runId},${allowedClaim(device)}`),
  ].join('\n');
  let historyId = 0;
  const imported = await importAllowlistCsv(Readable.from([Buffer.from(csv)]), {
    store: rig.store,
    serialPattern: new RegExp(DEFAULT_SERIAL_PATTERN, 'u'),
    now: new Date().toISOString(),
    actor: 'cli:simulate',
    newId: () => `simulate-${plan.runId}-${historyId++}`,
  });
  if (imported.rejected.length > 0) {
    throw new Error(`the allowlist import rejected ${imported.rejected.length} row(s)`);
  }
}

interface CaContext {
  flow: 'jitr' | 'jitp';
  ca: CertificateAuthority;
  keys: Map<number, CryptoKeyPair>;
  lifetimeDays?: (index: number) => number;
}

/** A device CA registered with auto-registration (JITR), and with a provisioning template for JITP. */
async function prepareDeviceCa(rig: Rig, plan: SimulationPlan, flow: 'jitr' | 'jitp'): Promise<CaContext> {
  const ca = await createCertificateAuthority({
    subject: {
      commonName: `fleetgate simulator ${flow} CA ${plan.runId}`,
      organization: 'fleetgate simulator',
    },
  });
  await rig.iot.send(
    new RegisterCACertificateCommand({
      ...(await verifiedCaCertificate(rig.iot, ca)),
      setAsActive: true,
      allowAutoRegistration: true,
      ...(flow === 'jitp'
        ? {
            registrationConfig: {
              templateBody: jitpTemplate(devicePolicyOf(rig)),
              roleArn: `arn:aws:iam::${rig.accountId}:role/${rig.prefix}-jitp`,
            },
          }
        : {}),
    }),
  );
  // JITR trusts only CAs the operator named (TRUSTED_CA_IDS) or recorded in the store, as
  // `fleetgate certificates register <ca.pem> --kind ca` does: the simulator records its own.
  await rig.store.putCertificateIfAbsent(
    anchorCertificateRecord(parseCertificatePem(ca.certificatePem), {
      kind: 'CA',
      now: new Date().toISOString(),
    }),
  );
  await importAllowlist(rig, plan);
  return { flow, ca, keys: new Map() };
}

interface FactoryContext {
  ca: CertificateAuthority;
  /** Certificates (and their keys) of the legitimate devices, issued and imported in prepare. */
  issued: Map<number, { certificatePem: string; privateKeyPem: string; keys: CryptoKeyPair }>;
  importRow: (serial: string, certificatePem: string) => Promise<{ status: string; reason?: string }>;
}

/**
 * Factory-issued certificates: the batch CA registered in IoT (no auto-registration: a certificate
 * that was not imported never gets in), every legitimate device's certificate issued at "the
 * factory" and imported with `importFactoryBatch` before any device ships. Bad actors bring their
 * certificate to a later import (clone: the original's key; takeover: another key for a bound
 * serial; expired) or none at all (unknown serial), then try to connect.
 */
async function prepareFactory(
  rig: Rig,
  plan: SimulationPlan,
  lifetimeDays?: (index: number) => number,
): Promise<FactoryContext> {
  const ca = await createCertificateAuthority({
    subject: {
      commonName: `fleetgate simulator factory CA ${plan.runId}`,
      organization: 'fleetgate simulator',
    },
  });
  await rig.iot.send(
    new RegisterCACertificateCommand({
      ...(await verifiedCaCertificate(rig.iot, ca)),
      setAsActive: true,
      allowAutoRegistration: false,
    }),
  );
  const config = loadConfig({
    ...process.env,
    TABLE_NAME: rig.handle.tableName,
    DEVICE_POLICY_NAME: devicePolicyOf(rig),
  });
  let historyId = 0;
  let rows = 0;
  const importBatch = (batch: Batch) =>
    importFactoryBatch(
      {
        batch,
        caCertificatePem: ca.certificatePem,
        batchName: `simulator-${plan.runId}`,
        productLine: 'simulator',
        runId: `simulate-${plan.runId}-${rows}`,
        concurrency: 8,
        maxTps: 50,
      },
      {
        store: rig.store,
        iot: new IotRegistry(rig.iot),
        config,
        newId: () => `simulate-${plan.runId}-f${historyId++}`,
      },
    );
  const issued: FactoryContext['issued'] = new Map();
  const batch: Batch = { kind: 'manifest', path: 'simulator', rows: [] };
  for (const device of plan.legitimate) {
    const keys = await generateKeyPair();
    const certificate = await issueCertificate(ca, {
      publicKey: keys.publicKey,
      subject: { commonName: device.serial },
      ...(lifetimeDays ? { notAfter: new Date(Date.now() + lifetimeDays(device.index) * 86_400_000) } : {}),
    });
    issued.set(device.index, {
      certificatePem: certificate.certificatePem,
      privateKeyPem: await exportPrivateKeyPem(keys.privateKey),
      keys,
    });
    rows += 1;
    batch.rows.push({
      row: rows,
      source: device.serial,
      manifestSerial: device.serial,
      pem: certificate.certificatePem,
    });
  }
  const report = await importBatch(batch);
  const failed = report.rows.filter(
    (row) => row.status !== 'registered' && row.status !== 'already-registered',
  );
  if (failed.length > 0) {
    throw new Error(
      `the factory import did not register ${failed.length} row(s): ${failed[0]?.reason ?? ''}`,
    );
  }
  return {
    ca,
    issued,
    importRow: async (serial, certificatePem) => {
      rows += 1;
      const single = await importBatch({
        kind: 'manifest',
        path: 'simulator',
        rows: [{ row: rows, source: serial, manifestSerial: serial, pem: certificatePem }],
      });
      const row = single.rows[0];
      return { status: row?.status ?? 'failed', ...(row?.reason ? { reason: row.reason } : {}) };
    },
  };
}

/**
 * A factory device connects with the certificate it left the factory with; a bad actor first gets
 * its certificate into an import (the import refuses it), then tries to connect anyway.
 */
async function runFactoryParticipant(
  rig: Rig,
  context: FactoryContext,
  participant: Participant,
): Promise<ParticipantOutcome> {
  const { kind, serial } = participant;
  let certificatePem: string;
  let privateKeyPem: string;
  let importRefused: string | undefined;
  const own = context.issued.get(participant.index);
  if (kind === 'legitimate' && own) {
    ({ certificatePem, privateKeyPem } = own);
  } else {
    const victim = participant.victim === undefined ? undefined : context.issued.get(participant.victim);
    const keys = kind === 'clone' && victim ? victim.keys : await generateKeyPair();
    const certificate = await issueCertificate(context.ca, {
      publicKey: keys.publicKey,
      subject: { commonName: serial },
      ...(kind === 'expired-certificate'
        ? {
            notBefore: new Date(Date.now() - 400 * 86_400_000),
            notAfter: new Date(Date.now() - 30 * 86_400_000),
          }
        : {}),
    });
    certificatePem = certificate.certificatePem;
    privateKeyPem = await exportPrivateKeyPem(keys.privateKey);
    // An unknown serial never went through an import: its certificate is simply not registered.
    if (kind !== 'unknown-serial') {
      const imported = await context.importRow(serial, certificatePem);
      if (imported.status === 'rejected') importRefused = `import:${imported.reason ?? 'rejected'}`;
    }
  }
  const outcome = await rig.devices.connect({ certificatePem, privateKeyPem, clientId: serial });
  if (outcome.accepted) return { kind, serial, result: 'provisioned', certificateId: outcome.certificateId };
  return {
    kind,
    serial,
    result: 'denied',
    reason: importRefused ?? `connect:${outcome.reason}`,
    ...(outcome.certificateId ? { certificateId: outcome.certificateId } : {}),
  };
}

/** The shared device policy serverless.yml declares (the local stack created it at start). */
function devicePolicyOf(rig: Rig): string {
  const name = rig.handle.declared.devicePolicyName;
  if (!name) throw new FleetSetupError('serverless.yml declares no device policy (custom.devicePolicyName)');
  return name;
}

/** A JITP template: the thing is named after the certificate's CN (the serial), shared device policy. */
function jitpTemplate(policyName: string): string {
  return JSON.stringify({
    Parameters: {
      'AWS::IoT::Certificate::CommonName': { Type: 'String' },
      'AWS::IoT::Certificate::Id': { Type: 'String' },
    },
    Resources: {
      thing: {
        Type: 'AWS::IoT::Thing',
        Properties: {
          ThingName: { Ref: 'AWS::IoT::Certificate::CommonName' },
          AttributePayload: { serial: { Ref: 'AWS::IoT::Certificate::CommonName' } },
        },
      },
      certificate: {
        Type: 'AWS::IoT::Certificate',
        Properties: { CertificateId: { Ref: 'AWS::IoT::Certificate::Id' }, Status: 'Active' },
      },
      policy: { Type: 'AWS::IoT::Policy', Properties: { PolicyName: policyName } },
    },
  });
}

/** How long a JITR / JITP device keeps reconnecting before it gives up. */
// Devices keep retrying with backoff (capped at 2 s) for a minute, as firmware would under a slow backend.
const RECONNECT_FOR_MS = 60_000;

/**
 * JITR / JITP: the device connects with a certificate from the registered CA and reconnects with
 * backoff while IoT refuses it (PENDING_ACTIVATION until registerCertificate activates it; the
 * JITP connection that provisions is refused once), until it is accepted or gives up.
 */
async function runCaParticipant(
  rig: Rig,
  context: CaContext,
  participant: Participant,
): Promise<ParticipantOutcome> {
  const { kind, serial } = participant;
  const expired = kind === 'expired-certificate';
  const victimKeys = participant.victim === undefined ? undefined : context.keys.get(participant.victim);
  const keys = kind === 'clone' && victimKeys ? victimKeys : await generateKeyPair();
  if (kind === 'legitimate') context.keys.set(participant.index, keys);
  const issued = await issueCertificate(context.ca, {
    publicKey: keys.publicKey,
    subject: { commonName: serial },
    ...(expired
      ? {
          notBefore: new Date(Date.now() - 400 * 86_400_000),
          notAfter: new Date(Date.now() - 30 * 86_400_000),
        }
      : kind === 'legitimate' && context.lifetimeDays
        ? { notAfter: new Date(Date.now() + context.lifetimeDays(participant.index) * 86_400_000) }
        : {}),
  });
  // Clones and takeovers present the original's client id, as copied firmware would.
  const clientId = serial;
  const privateKeyPem = await exportPrivateKeyPem(keys.privateKey);
  const deadline = performance.now() + RECONNECT_FOR_MS;
  let delay = 100;
  for (;;) {
    const outcome = await rig.devices.connect({
      certificatePem: issued.certificatePem,
      privateKeyPem,
      clientId,
    });
    if (outcome.accepted)
      return { kind, serial, result: 'provisioned', certificateId: outcome.certificateId };
    const retryable = outcome.reason === 'PENDING_ACTIVATION' || outcome.reason === 'JITP_PROVISIONED';
    if (!retryable || performance.now() + delay > deadline) {
      return {
        kind,
        serial,
        result: 'denied',
        reason: `connect:${outcome.reason}`,
        ...(outcome.certificateId ? { certificateId: outcome.certificateId } : {}),
      };
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 2000);
  }
}

/** The claim certificate of a participant's batch (an imitator uses its victim's). */
function claimOf<T>(claims: readonly T[], participant: Participant): T {
  const index = participant.victim ?? participant.index;
  return claims[Math.floor(index / DEVICES_PER_CLAIM) % claims.length] as T;
}

/** Claim connection → CreateCertificateFromCsr → RegisterThing (hook) → connect with the new certificate. */
async function runFleetParticipant(
  rig: Rig,
  context: FleetContext,
  participant: Participant,
): Promise<ParticipantOutcome> {
  const { kind, serial } = participant;
  const denied = (reason: string): ParticipantOutcome => ({ kind, serial, result: 'denied', reason });
  if (kind === 'expired-certificate') {
    // A device whose claim certificate expired on the shelf never gets past the TLS handshake.
    const expired = await createDeviceCertificate(context.expiredCa, {
      subject: { commonName: serial },
      notBefore: new Date(Date.now() - 400 * 86_400_000),
      notAfter: new Date(Date.now() - 30 * 86_400_000),
    });
    const outcome = await rig.devices.connect({
      certificatePem: expired.certificatePem,
      privateKeyPem: await exportPrivateKeyPem(expired.keys.privateKey),
      clientId: serial,
    });
    return outcome.accepted ? { kind, serial, result: 'provisioned' } : denied(`connect:${outcome.reason}`);
  }
  const claim = context.claimFor ? await context.claimFor(participant) : claimOf(context.claims, participant);
  if ('refused' in claim) return denied(`claim:${claim.refused}`);
  const claimSession = await rig.devices.connect({
    certificatePem: claim.certificatePem,
    privateKeyPem: claim.privateKeyPem,
    clientId: claimClientId(`${serial}-${participant.index}`),
  });
  if (!claimSession.accepted) return denied(`claim-connect:${claimSession.reason}`);
  try {
    const victimKeys = participant.victim === undefined ? undefined : context.keys.get(participant.victim);
    const keys = kind === 'clone' && victimKeys ? victimKeys : await generateKeyPair();
    if (kind === 'legitimate') context.keys.set(participant.index, keys);
    const { csrPem } = await createCsr({ subject: { commonName: serial }, keys });
    const retry = throttledRetry(rig.counters);
    const createCertificate = async () => {
      let created = await rig.devices.createCertificateFromCsr(csrPem, claimSession.clientId);
      while (isThrottled(created) && (await retry.wait())) {
        created = await rig.devices.createCertificateFromCsr(csrPem, claimSession.clientId);
      }
      return created;
    };
    let created = await createCertificate();
    if (isRejection(created)) return denied(`CreateCertificateFromCsr:${created.errorCode}`);
    const register = (token: string) =>
      rig.devices.registerThing({
        templateName: context.templateName,
        certificateOwnershipToken: token,
        parameters: { SerialNumber: serial },
        claimCertificateId: claim.certificateId,
        clientId: claimSession.clientId,
      });
    // Devices retry RegisterThing with the same ownership token, as the AWS IoT Device SDK samples
    // do: a hook that answered too late may have bound the serial, and the same certificate is then
    // allowed again, where a fresh one would be a second certificate for the serial. A throttled
    // request backs off (jittered) without counting as an attempt; an expired ownership token (one
    // hour) is replaced by a fresh CreateCertificateFromCsr, as it cannot be used again.
    let registered = await register(created.certificateOwnershipToken);
    for (let attempt = 1; isRejection(registered) && attempt < REGISTER_ATTEMPTS; ) {
      if (isThrottled(registered)) {
        if (!(await retry.wait())) break;
      } else if (isExpiredToken(registered)) {
        const fresh = await createCertificate();
        if (isRejection(fresh)) return denied(`CreateCertificateFromCsr:${fresh.errorCode}`);
        created = fresh;
        rig.counters.freshTokens += 1;
      } else {
        await sleep(200 * 2 ** attempt);
        attempt += 1;
      }
      registered = await register(created.certificateOwnershipToken);
    }
    if (isRejection(registered)) {
      return { ...denied(`RegisterThing:${registered.errorCode}`), certificateId: created.certificateId };
    }
    const connected = await rig.devices.connect({
      certificatePem: created.certificatePem,
      privateKeyPem: await exportPrivateKeyPem(keys.privateKey),
      clientId: registered.thingName,
    });
    if (!connected.accepted) return denied(`connect:${connected.reason}`);
    return { kind, serial, result: 'provisioned', certificateId: connected.certificateId };
  } finally {
    await rig.devices.disconnect(claimSession.clientId);
  }
}

/** A Fleet Provisioning request refused by the API's rate quota (ThrottlingException on `/rejected`). */
function isThrottled(response: object): response is FleetRejection {
  return isRejection(response) && response.errorCode === 'ThrottlingException';
}

function isExpiredToken(response: object): boolean {
  return (
    isRejection(response) &&
    response.errorCode === 'InvalidCertificateOwnershipToken' &&
    /expired/i.test(response.errorMessage)
  );
}

/** One device's backoff on throttling: full jitter, exponential up to the cap, until the deadline. */
function throttledRetry(counters: Rig['counters']): { wait(): Promise<boolean> } {
  const deadline = performance.now() + THROTTLED_RETRY_DEADLINE_MS;
  let attempt = 0;
  return {
    async wait() {
      counters.throttled += 1;
      if (performance.now() > deadline) return false;
      const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
      attempt += 1;
      await sleep(Math.random() * ceiling);
      return true;
    },
  };
}

/**
 * Turns on AWS's default Fleet Provisioning quotas in the emulator for a burst run (over its
 * `/_emulator/faults` route, so a stack started elsewhere is throttled too); `restore` puts the
 * previous settings back.
 */
async function burstQuotas(iotEndpoint: string, tps?: number): Promise<{ restore(): Promise<void> }> {
  const url = `${iotEndpoint}/_emulator/faults`;
  const before = (await (await fetch(url)).json()) as Record<string, unknown>;
  const set = async (settings: Record<string, unknown>) => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(settings),
    });
    if (!response.ok) throw new Error(`setting the emulator's quotas failed: HTTP ${response.status}`);
  };
  const fleetQuotas =
    tps === undefined
      ? 'aws-default'
      : { CreateKeysAndCertificate: tps, CreateCertificateFromCsr: tps, RegisterThing: tps };
  await set({ ...before, fleetQuotas });
  return { restore: () => set(before) };
}

/**
 * Why a certificate was quarantined, if it was: as the device's own quarantine, as evidence added
 * to an already quarantined device, or as a certificate of no known device.
 */
async function quarantineReasonOf(
  store: ProvisioningStore,
  certificateId: string,
  device: DeviceRecord | undefined,
): Promise<string | undefined> {
  if (device?.quarantine?.certificateIds?.includes(certificateId)) return device.quarantine.reason;
  if (device?.state === 'QUARANTINED' || device?.state === 'REVOKED') {
    for (const entry of await store.history(device.serial)) {
      const certificates = entry.detail?.certificates;
      const named =
        Array.isArray(certificates) &&
        certificates.some((c) => (c as { certificateId?: unknown })?.certificateId === certificateId);
      if (entry.event.startsWith('QUARANTINE') && named) return entry.reason ?? entry.event;
    }
  }
  return (await store.getCertificate(certificateId))?.quarantine?.reason;
}

/**
 * Polls the store until every legitimate device is ACTIVE (or the deadline passes after `finished`),
 * and resolves with the instant each one was first seen ACTIVE.
 */
async function watchActivation(
  store: ProvisioningStore,
  legitimate: readonly Participant[],
  startedAt: ReadonlyMap<string, number>,
  finished: Promise<unknown>,
  timeoutMs = 30_000,
): Promise<Map<string, number>> {
  const activeAt = new Map<string, number>();
  let deadline = Number.POSITIVE_INFINITY;
  void finished.then(() => {
    deadline = performance.now() + timeoutMs;
  });
  while (activeAt.size < legitimate.length && performance.now() < deadline) {
    const pending = legitimate.filter(
      (device) => startedAt.has(device.serial) && !activeAt.has(device.serial),
    );
    await pool(pending, 8, async (device) => {
      const record = await store.getDevice(device.serial);
      if (record?.state === 'ACTIVE') activeAt.set(device.serial, performance.now());
    });
    await sleep(pending.length === 0 ? 50 : 20);
  }
  return activeAt;
}

/** Publishes every captured IoT event `times` more times through the rules engine. */
async function redeliver(
  handle: StackHandle,
  events: readonly EmulatorMessage[],
  times: number,
  concurrency: number,
): Promise<number> {
  if (times <= 0) return 0;
  const copies = events.flatMap((event) => Array.from({ length: times }, () => event));
  await pool(copies, concurrency, async (event) => {
    const payload =
      event.encoding === 'json'
        ? event.payload
        : Buffer.from(String(event.payload), 'base64').toString('utf8');
    await handle.publish(event.topic, payload);
  });
  return copies.length;
}

async function summarize(
  rig: Rig,
  plan: SimulationPlan,
  flow: SimulationFlow,
  outcomes: readonly ParticipantOutcome[],
  run: {
    activeAt: Map<string, number>;
    startedAt: Map<string, number>;
    redelivered: number;
    provisioningMs: number;
    errors: string[];
  },
): Promise<SimulationSummary> {
  const expectedState = rig.lifecycle ? 'ACTIVE' : 'PROVISIONING';
  const records = new Map<string, DeviceRecord | undefined>();
  const serials = [...new Set([...plan.legitimate, ...plan.badActors].map((p) => p.serial))];
  await pool(serials, 8, async (serial) => {
    records.set(serial, await rig.store.getDevice(serial));
  });

  // A device whose serial a clone or takeover used may be quarantined for review (the backend
  // cannot tell the original from the copy): that is the expected outcome, not a lost device.
  const imitated = new Map<string, ActorKind>();
  for (const actor of plan.badActors) if (actor.victim !== undefined) imitated.set(actor.serial, actor.kind);
  const quarantinedByReason: Record<string, number> = {};
  for (const device of plan.legitimate) {
    const record = records.get(device.serial);
    const imitator = imitated.get(device.serial);
    if (imitator && record?.state === 'QUARANTINED') {
      const key = `original imitated by a ${imitator}: ${record.quarantine?.reason ?? 'QUARANTINED'}`;
      quarantinedByReason[key] = (quarantinedByReason[key] ?? 0) + 1;
    }
  }
  const stuck = plan.legitimate.filter(
    (device) => expectedState === 'ACTIVE' && records.get(device.serial)?.state === 'PROVISIONING',
  ).length;
  const lostSerials = plan.legitimate
    .filter((device) => {
      const state = records.get(device.serial)?.state;
      return state !== expectedState && !(imitated.has(device.serial) && state === 'QUARANTINED');
    })
    .map((device) => {
      const record = records.get(device.serial);
      const why = record?.quarantine
        ? `${record.state}: ${record.quarantine.reason}`
        : (record?.state ?? 'missing');
      return `${device.serial} (${why})`;
    });
  const deniedByReason: Record<string, number> = {};
  const admittedBadActors: SimulationSummary['admittedBadActors'] = [];
  const unquarantinedClones: string[] = [];
  const emulatorState = await rig.devices.state();
  const certificateStatus = new Map(emulatorState.certificates.map((c) => [c.certificateId, c.status]));
  const legitimateFailures: Record<string, number> = {};
  for (const outcome of outcomes) {
    if (outcome.kind === 'legitimate') {
      if (outcome.result !== 'provisioned') {
        const key = outcome.reason ?? outcome.result;
        legitimateFailures[key] = (legitimateFailures[key] ?? 0) + 1;
      }
      continue;
    }
    if (outcome.result === 'denied') {
      const key = `${outcome.kind}: ${outcome.reason ?? 'denied'}`;
      deniedByReason[key] = (deniedByReason[key] ?? 0) + 1;
      // Denied and also reported: the hook sends clone and takeover evidence to quarantine.
      const reason = outcome.certificateId
        ? await quarantineReasonOf(rig.store, outcome.certificateId, records.get(outcome.serial))
        : undefined;
      if (reason) {
        const quarantined = `${outcome.kind}: ${reason}`;
        quarantinedByReason[quarantined] = (quarantinedByReason[quarantined] ?? 0) + 1;
      } else if (
        outcome.kind === 'clone' &&
        rig.lifecycle &&
        !outcome.reason?.startsWith('import:') &&
        !outcome.reason?.startsWith('claim:')
      ) {
        // A clone the factory import refused (KEY_REUSED), or one the installer API gave no claim,
        // never presented its key to IoT: nothing to quarantine.
        unquarantinedClones.push(outcome.serial);
      }
      continue;
    }
    // Admitted by IoT: it must have been caught afterwards (certificate deactivated by the quarantine).
    const status = outcome.certificateId ? certificateStatus.get(outcome.certificateId) : undefined;
    if (status !== undefined && status !== 'ACTIVE') {
      const certificate = outcome.certificateId
        ? await rig.store.getCertificate(outcome.certificateId)
        : undefined;
      const device = records.get(outcome.serial);
      const reason = certificate?.quarantine?.reason ?? device?.quarantine?.reason ?? `certificate ${status}`;
      const key = `${outcome.kind}: ${reason}`;
      quarantinedByReason[key] = (quarantinedByReason[key] ?? 0) + 1;
    } else {
      admittedBadActors.push({ kind: outcome.kind, serial: outcome.serial });
    }
  }

  const duplicatesCreated = countDuplicates(emulatorState, new Set(serials));
  const times = [...run.activeAt.entries()]
    .map(([serial, at]) => at - (run.startedAt.get(serial) ?? at))
    .sort((a, b) => a - b);
  const badActors: Record<string, number> = {};
  for (const kind of BAD_ACTOR_KINDS) {
    const count = plan.badActors.filter((actor) => actor.kind === kind).length;
    if (count > 0) badActors[kind] = count;
  }
  const participants = plan.legitimate.length + plan.badActors.length;
  const inQuarantine = quarantineCounts(
    await listQuarantine({ store: rig.store, quarantineStore: new QuarantineStore(rig.store) }),
  );
  return {
    flow,
    runId: plan.runId,
    devices: plan.legitimate.length,
    badActors,
    provisioned: outcomes.filter((o) => o.kind === 'legitimate' && o.result === 'provisioned').length,
    active: plan.legitimate.filter((device) => records.get(device.serial)?.state === 'ACTIVE').length,
    expectedState,
    deniedByReason,
    legitimateFailures,
    quarantinedByReason,
    inQuarantine,
    admittedBadActors,
    unquarantinedClones,
    duplicatesCreated,
    lost: lostSerials.length,
    stuck,
    lostSerials: lostSerials.slice(0, 20),
    redelivered: run.redelivered,
    durationMs: Math.round(run.provisioningMs),
    devicesPerSecond: Math.round((participants / (run.provisioningMs / 1000)) * 10) / 10,
    timeToActiveMs:
      times.length > 0
        ? { p50: Math.round(percentile(times, 0.5)), p99: Math.round(percentile(times, 0.99)) }
        : null,
    errors: run.errors.slice(0, 20),
  };
}

/** Serials with more than one thing, or more than one ACTIVE certificate on their things. */
function countDuplicates(state: EmulatorState, serials: ReadonlySet<string>): number {
  const thingsBySerial = new Map<string, string[]>();
  for (const thing of state.things) {
    const serial = thing.attributes.serial;
    if (serial === undefined || !serials.has(serial)) continue;
    thingsBySerial.set(serial, [...(thingsBySerial.get(serial) ?? []), thing.thingName]);
  }
  let duplicates = 0;
  for (const things of thingsBySerial.values()) {
    const names = new Set(things);
    const activeCertificates = state.certificates.filter(
      (certificate) => certificate.status === 'ACTIVE' && certificate.things.some((name) => names.has(name)),
    );
    if (things.length > 1 || activeCertificates.length > 1) duplicates += 1;
  }
  return duplicates;
}

function percentile(sorted: readonly number[], p: number): number {
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[index] ?? 0;
}

/** Runs `work` over `items` with at most `concurrency` in flight. */
export async function pool<T>(
  items: readonly T[],
  concurrency: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await work(item);
    }
  });
  await Promise.all(workers);
}
