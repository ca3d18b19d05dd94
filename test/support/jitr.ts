/**
 * A JITR / lifecycle rig for integration tests and the benchmark: the IoT emulator with a registered
 * device CA (auto-registration on) and the shared device policy, a provisioning table on DynamoDB
 * Local, both functions built around them, and an SQS-like delivery loop: AWS-shaped SQS events
 * built from what the emulator publishes, partial batch failures redelivered with the same message
 * id (up to maxReceiveCount, then "dead-lettered"), duplication and shuffling on demand.
 */

import { randomUUID } from 'node:crypto';
import { Logger } from '@aws-lambda-powertools/logger';
import { CreatePolicyCommand, IoTClient, UpdateEventConfigurationsCommand } from '@aws-sdk/client-iot';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { createHandler as createLifecycleHandler } from '../../functions/device-lifecycle/create-handler';
import { CaTrust } from '../../functions/register-certificate/ca-trust';
import { createHandler as createRegistrationHandler } from '../../functions/register-certificate/create-handler';
import {
  type IotEmulator,
  type IotEmulatorOptions,
  type PublishedMessage,
  startIotEmulator,
} from '../../local/iot-emulator';
import {
  type CertificateAuthority,
  createCertificateAuthority,
  createDeviceCertificate,
  type KeyedCertificate,
} from '../../local/pki';
import { seededRandom } from '../../local/seeded-random';
import type { QuarantineRequest } from '../../schemas/quarantine-request';
import { type Config, configFor } from '../../shared/config';
import type { DeadLetterSender } from '../../shared/dlq/dead-letter-sender';
import { IotRegistry } from '../../shared/iot/iot-registry';
import type { QuarantineSender } from '../../shared/quarantine-sender';
import type { ProvisioningStore } from '../../shared/store/provisioning-store';
import { RegistrationStore } from '../../shared/store/registration-store';
import { registerTrustedCa } from './device-ca';
import { type RecordedOutcome, recordingMetrics } from './hook';
import { lambdaContext } from './lambda';

export const ACCOUNT = '123456789012';
export const POLICY_NAME = 'fleetgate-test-device';
const POLICY = JSON.stringify({
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Action: ['iot:Connect'], Resource: '*' }],
});

/** Collects quarantine requests instead of sending them to SQS. */
export class RecordingQuarantine implements QuarantineSender {
  readonly requests: QuarantineRequest[] = [];
  async send(request: QuarantineRequest): Promise<void> {
    this.requests.push(request);
  }
  /** Distinct request ids (the worker's dedup identity). */
  get distinct(): QuarantineRequest[] {
    return [...new Map(this.requests.map((request) => [request.requestId, request])).values()];
  }
}

/** Collects what a consumer sends to its DLQ at once (invalid messages) instead of sending it to SQS. */
export class RecordingDeadLetters implements DeadLetterSender {
  readonly records: Array<{ record: SQSRecord; reason: string }> = [];
  async send(record: SQSRecord, reason: string): Promise<void> {
    this.records.push({ record, reason });
  }
  get bodies(): string[] {
    return this.records.map(({ record }) => record.body);
  }
}

type Handler = (event: SQSEvent, context: ReturnType<typeof lambdaContext>) => Promise<SQSBatchResponse>;

export interface DeliveryStats {
  invocations: number;
  deliveries: number;
  retried: number;
  deadLettered: SQSRecord[];
}

export interface Rig {
  emulator: IotEmulator;
  iot: IoTClient;
  ca: CertificateAuthority;
  caCertificateId: string;
  config: Config;
  quarantine: RecordingQuarantine;
  /** What the registration and lifecycle consumers sent to their DLQ at once. */
  deadLetters: RecordingDeadLetters;
  registration: Handler;
  lifecycle: Handler;
  registrationOutcomes: RecordedOutcome[];
  lifecycleOutcomes: RecordedOutcome[];
  /** Messages published on registration / lifecycle topics since the last `take`. */
  take(kind: 'registration' | 'lifecycle'): PublishedMessage[];
  setNow(epochMs: number): void;
  stop(): Promise<void>;
}

export async function startRig(
  store: ProvisioningStore,
  options: {
    env?: Record<string, string>;
    maxAttempts?: number;
    now?: () => number;
    /** The functions' logger (default: a silent one). */
    logger?: Logger;
    /** How the emulator's RegisterThing calls a template's pre-provisioning hook. */
    invokeHook?: IotEmulatorOptions['invokeHook'];
  } = {},
): Promise<Rig> {
  let nowMs: number | undefined;
  const clock = () => nowMs ?? options.now?.() ?? Date.now();
  const emulator = await startIotEmulator({
    accountId: ACCOUNT,
    now: () => new Date(clock()),
    ...(options.invokeHook ? { invokeHook: options.invokeHook } : {}),
  });
  const iot = new IoTClient({ ...emulator.clientConfig(), maxAttempts: options.maxAttempts ?? 1 });
  const ca = await createCertificateAuthority({
    subject: { commonName: 'Acme Device CA', organization: 'Acme' },
  });
  // Registered in IoT and recorded in the store, as an operator trusts a CA (JITR fails closed).
  const certificateId = await registerTrustedCa(iot, store, ca);
  await iot.send(new CreatePolicyCommand({ policyName: POLICY_NAME, policyDocument: POLICY }));
  // Registry thing events are off by default in AWS IoT; fleetgate needs THING (JITP follow-up).
  await iot.send(new UpdateEventConfigurationsCommand({ eventConfigurations: { THING: { Enabled: true } } }));
  const config = configFor({
    TABLE_NAME: store.tableName,
    DEVICE_POLICY_NAME: POLICY_NAME,
    QUARANTINE_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/fleetgate-test-quarantine',
    ...options.env,
  });
  const registry = new IotRegistry(iot);
  const quarantine = new RecordingQuarantine();
  const deadLetters = new RecordingDeadLetters();
  const logger =
    options.logger ??
    new Logger({
      serviceName: 'fleetgate',
      logLevel: (process.env.JITR_TEST_LOG_LEVEL ?? 'SILENT') as 'SILENT',
    });
  const registrationOutcomes: RecordedOutcome[] = [];
  const lifecycleOutcomes: RecordedOutcome[] = [];
  const registrations = new RegistrationStore(store);
  const registration = createRegistrationHandler({
    config,
    store,
    registrations,
    iot: registry,
    caTrust: new CaTrust(registry, {
      ttlMs: config.caCacheTtlSeconds * 1000,
      trustedCaIds: config.trustedCaIds,
      store,
    }),
    quarantine,
    deadLetters,
    logger,
    metrics: recordingMetrics(registrationOutcomes),
    clock,
  }) as unknown as Handler;
  const lifecycle = createLifecycleHandler({
    config,
    store,
    registrations,
    iot: registry,
    quarantine,
    deadLetters,
    logger,
    metrics: recordingMetrics(lifecycleOutcomes),
    clock,
  }) as unknown as Handler;
  emulator.clearCalls();
  const inbox = { registration: [] as PublishedMessage[], lifecycle: [] as PublishedMessage[] };
  emulator.onPublish((message) => {
    if (message.topic.startsWith('$aws/events/certificates/registered/')) inbox.registration.push(message);
    else if (
      message.topic.startsWith('$aws/events/presence/') ||
      message.topic.startsWith('$aws/events/thing/')
    )
      inbox.lifecycle.push(message);
  });
  return {
    emulator,
    iot,
    ca,
    caCertificateId: certificateId ?? '',
    config,
    quarantine,
    deadLetters,
    registration,
    lifecycle,
    registrationOutcomes,
    lifecycleOutcomes,
    take: (kind) => inbox[kind].splice(0, inbox[kind].length),
    setNow: (epochMs) => {
      nowMs = epochMs;
    },
    stop: async () => {
      iot.destroy();
      await emulator.stop();
    },
  };
}

/** A device certificate from `ca` whose CN is the serial (or whatever `subject` says). */
export function deviceCertificate(
  ca: CertificateAuthority,
  serial: string,
  options: { commonName?: string; serialNumber?: string; notBefore?: Date; notAfter?: Date } = {},
): Promise<KeyedCertificate> {
  return createDeviceCertificate(ca, {
    subject: {
      commonName: options.commonName ?? serial,
      ...(options.serialNumber ? { serialNumber: options.serialNumber } : {}),
    },
    ...(options.notBefore ? { notBefore: options.notBefore } : {}),
    ...(options.notAfter ? { notAfter: options.notAfter } : {}),
  });
}

/**
 * What a rule puts on the queue for a published message: the event itself, plus `presenceTopicType`
 * for presence events (PresenceRule's `topic(4)`).
 */
export function ruleOutput(message: PublishedMessage): string {
  const json = message.json as Record<string, unknown>;
  if (message.topic.startsWith('$aws/events/presence/')) {
    return JSON.stringify({ ...json, presenceTopicType: message.topic.split('/')[3] });
  }
  return JSON.stringify(json);
}

/** An AWS-shaped SQS record. */
export function sqsRecord(body: string, messageId: string = randomUUID(), receiveCount = 1): SQSRecord {
  return {
    messageId,
    receiptHandle: `rh-${messageId}-${receiveCount}`,
    body,
    attributes: {
      ApproximateReceiveCount: String(receiveCount),
      SentTimestamp: String(Date.now()),
      SenderId: 'AIDAIOTRULES',
      ApproximateFirstReceiveTimestamp: String(Date.now()),
    },
    messageAttributes: {},
    md5OfBody: 'not-checked',
    eventSource: 'aws:sqs',
    eventSourceARN: `arn:aws:sqs:us-east-1:${ACCOUNT}:fleetgate-test-queue`,
    awsRegion: 'us-east-1',
  };
}

/**
 * Delivers `bodies` like SQS + Lambda would: each body `times` times (distinct message ids, as IoT
 * publishing twice does), optionally shuffled, in batches of `batchSize`, `concurrency` invocations
 * at a time; failed records come back with the same message id after `redeliveryMs`, at most
 * `maxReceiveCount` receives, then they are dead-lettered.
 */
export async function deliver(
  handler: Handler,
  bodies: readonly string[],
  options: {
    times?: number;
    shuffle?: boolean;
    batchSize?: number;
    concurrency?: number;
    maxReceiveCount?: number;
    redeliveryMs?: number;
  } = {},
): Promise<DeliveryStats> {
  const times = options.times ?? 1;
  const batchSize = options.batchSize ?? 10;
  const concurrency = options.concurrency ?? 4;
  const maxReceiveCount = options.maxReceiveCount ?? 5;
  const stats: DeliveryStats = { invocations: 0, deliveries: 0, retried: 0, deadLettered: [] };
  let queue: SQSRecord[] = [];
  for (const body of bodies) for (let i = 0; i < times; i += 1) queue.push(sqsRecord(body));
  if (options.shuffle) queue = shuffled(queue);
  while (queue.length > 0) {
    const batches: SQSRecord[][] = [];
    for (let i = 0; i < queue.length; i += batchSize) batches.push(queue.slice(i, i + batchSize));
    queue = [];
    const retry: SQSRecord[] = [];
    let next = 0;
    const worker = async () => {
      while (next < batches.length) {
        const batch = batches[next];
        next += 1;
        if (!batch) continue;
        stats.invocations += 1;
        stats.deliveries += batch.length;
        const response = await handler({ Records: batch }, lambdaContext('fleetgate-test', 30_000));
        const failed = new Set(response.batchItemFailures.map((failure) => failure.itemIdentifier));
        for (const record of batch) {
          if (!failed.has(record.messageId)) continue;
          const receives = Number(record.attributes.ApproximateReceiveCount);
          if (receives >= maxReceiveCount) stats.deadLettered.push(record);
          else {
            stats.retried += 1;
            retry.push(sqsRecord(record.body, record.messageId, receives + 1));
          }
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    if (retry.length > 0) {
      await new Promise((resolve) => setTimeout(resolve, options.redeliveryMs ?? 50));
      queue = options.shuffle ? shuffled(retry) : retry;
    }
  }
  return stats;
}

/**
 * The seed of the tests' shuffles (`FLEETGATE_TEST_SEED` to replay another order): the same seed
 * delivers in the same order, so a failure found by a shuffle can be reproduced.
 */
export const SHUFFLE_SEED = Number(process.env.FLEETGATE_TEST_SEED ?? 16_2026);
const shuffleRandom = seededRandom(SHUFFLE_SEED);

/** A Fisher–Yates shuffle on the seeded `random` (the tests' shared seeded sequence by default). */
export function shuffled<T>(items: readonly T[], random: () => number = shuffleRandom): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i -= 1) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j] as T, copy[i] as T];
  }
  return copy;
}

/** Allowlists serials (state ALLOWLISTED) with a product line and batch. */
export async function allowlist(store: ProvisioningStore, serials: readonly string[]): Promise<void> {
  const now = new Date().toISOString();
  for (let i = 0; i < serials.length; i += 100) {
    await store.importAllowlistEntries(
      serials
        .slice(i, i + 100)
        .map((serial) => ({ serial, productLine: 'sensor', batch: 'B-1', attributes: {} })),
      { now, actor: 'test', idFor: () => randomUUID() },
    );
  }
}
