/**
 * `fleetgate quarantine …` and `fleetgate dlq …` as a user runs them: a child process against
 * DynamoDB Local, the IoT emulator and local SQS reached through the standard SDK endpoint
 * variables; checks the single JSON document and the exit codes (0 ok, 1 handled failure, 2 usage).
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateKeysAndCertificateCommand, type IoTClient } from '@aws-sdk/client-iot';
import { DeleteMessageCommand, ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IotEmulator } from '../../local/iot-emulator/index';
import { type LocalSqs, startLocalSqs } from '../../local/local-sqs';
import { loadServerlessConfig } from '../../local/serverless-config';
import { buildStackModel } from '../../local/stack-model';
import { fleetgate } from '../support/cli';
import { pendingCertificate } from '../support/devices';
import type { TestTable } from '../support/dynamo';
import { lambdaContext } from '../support/lambda';
import {
  buildTestWorker,
  QUARANTINE_GROUP,
  quarantineRequest,
  seedActiveDevice,
  sqsEvent,
  startQuarantineAccount,
} from '../support/quarantine';

const STAGE = 'e2eq';
let table: TestTable;
let emulator: IotEmulator;
let iot: IoTClient;
let sqs: LocalSqs;
let env: Record<string, string>;
let discardDir: string;

beforeAll(async () => {
  const model = buildStackModel(loadServerlessConfig(), { stage: STAGE });
  [{ table, emulator, iot }, sqs] = await Promise.all([
    startQuarantineAccount('e2e-quarantine'),
    startLocalSqs({ queues: model.queues, region: model.region, accountId: model.accountId }),
  ]);
  discardDir = await mkdtemp(join(tmpdir(), 'fleetgate-discarded-'));
  env = {
    AWS_ENDPOINT_URL_DYNAMODB: table.endpoint,
    TABLE_NAME: table.tableName,
    AWS_ENDPOINT_URL_IOT: emulator.endpoint,
    AWS_ENDPOINT_URL_SQS: sqs.endpoint,
    QUARANTINE_GROUP_NAME: QUARANTINE_GROUP,
    FLEETGATE_DISCARD_DIR: discardDir,
    USER: 'e2e-operator',
  };
});
afterAll(async () => {
  iot?.destroy();
  await Promise.all([sqs?.stop(), table?.drop(), emulator?.stop()]);
});

const url = (logicalId: string) => sqs.urls.get(logicalId) ?? '';

// Each command is a cold CLI process (a few seconds each on a busy machine).
describe('fleetgate quarantine', { timeout: 180_000 }, () => {
  it('lists quarantined devices by reason, releases one and refuses what does not apply', async () => {
    // Prepare
    const worker = buildTestWorker(table, iot);
    const { certificateId } = await seedActiveDevice(table, iot, 'SN-E2E-1');
    await worker.handler(
      sqsEvent([quarantineRequest({ serial: 'SN-E2E-1', reason: 'PUBLIC_KEY_IN_USE' })]),
      lambdaContext('quarantineDevice', 30_000),
    );
    // Act
    // Independent reads and refusals run side by side (each run is a cold CLI process).
    const [empty, listed, unknown, noReason, lowerCase] = await Promise.all([
      fleetgate(['quarantine', 'list', '--reason', 'SOMETHING_ELSE', '--json'], env),
      fleetgate(['quarantine', 'list', '--reason', 'PUBLIC_KEY_IN_USE', '--json'], env),
      fleetgate(['quarantine', 'reject', 'SN-NOBODY', '--reason', 'x', '--json'], env),
      fleetgate(['quarantine', 'reject', 'SN-E2E-1', '--json'], env),
      fleetgate(['quarantine', 'list', '--reason', 'public_key_in_use'], env),
    ]);
    const released = await fleetgate(
      ['quarantine', 'release', 'SN-E2E-1', '--reason', 'key reuse explained', '--json'],
      env,
    );
    const again = await fleetgate(['quarantine', 'release', 'SN-E2E-1', '--reason', 'twice', '--json'], env);
    // Assess
    // A filter that is not a reason code could only list nothing: a usage error naming the rule.
    expect(lowerCase.code).toBe(2);
    expect(lowerCase.stderr).toContain('--reason: "public_key_in_use" is not a reason code (UPPER_SNAKE');
    expect(empty.code).toBe(0);
    expect(empty.json()).toEqual({
      reason: 'SOMETHING_ELSE',
      devices: [],
      certificates: [],
      counts: { devices: 0, certificates: 0 },
    });
    expect(listed.code).toBe(0);
    expect(listed.json()).toMatchObject({
      devices: [
        {
          serial: 'SN-E2E-1',
          previousState: 'ACTIVE',
          reason: 'PUBLIC_KEY_IN_USE',
          source: 'deviceLifecycle',
          certificateIds: [certificateId],
        },
      ],
      counts: { devices: 1, certificates: 0 },
    });
    expect(released.code).toBe(0);
    expect(released.json()).toEqual({
      subject: 'device',
      serial: 'SN-E2E-1',
      decision: 'RELEASE',
      from: 'QUARANTINED',
      to: 'ACTIVE',
      certificates: [{ certificateId, result: 'changed', from: 'INACTIVE' }],
      thingName: 'SN-E2E-1',
      alreadyDone: false,
    });
    expect((await table.store.history('SN-E2E-1')).at(-1)).toMatchObject({
      event: 'RELEASE',
      actor: 'cli:e2e-operator',
      reason: 'key reuse explained',
    });
    expect(again.code).toBe(1);
    expect(again.json()).toMatchObject({ ok: false, error: { code: 'ILLEGAL_TRANSITION' } });
    expect(unknown.code).toBe(1);
    expect(unknown.json()).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    expect(noReason.code).toBe(2);
    expect(noReason.json()).toMatchObject({ ok: false, error: { code: 'USAGE' } });
  });

  it('rejects a quarantined device: certificate and device REVOKED', async () => {
    // Prepare
    const worker = buildTestWorker(table, iot);
    const { certificateId } = await seedActiveDevice(table, iot, 'SN-E2E-2');
    await worker.handler(sqsEvent([quarantineRequest({ serial: 'SN-E2E-2' })]), lambdaContext('q', 30_000));
    // Act
    const rejected = await fleetgate(
      ['quarantine', 'reject', 'SN-E2E-2', '--reason', 'clone', '--json'],
      env,
    );
    // Assess
    expect(rejected.code).toBe(0);
    expect(rejected.json()).toMatchObject({
      subject: 'device',
      decision: 'REJECT',
      to: 'REVOKED',
      certificates: [{ certificateId, result: 'changed', from: 'INACTIVE' }],
    });
    expect(await table.store.getDevice('SN-E2E-2')).toMatchObject({ state: 'REVOKED' });
  });
});

describe('fleetgate quarantine: certificate ids as listed (a unique prefix of 8+ hex)', {
  timeout: 180_000,
}, () => {
  it('resolves a prefix against the store, then the IoT registry; refuses ambiguous, unknown, short and non-hex ones with the rule', async () => {
    // Prepare: a quarantined certificate of no known device (store + registry), a certificate only the
    // registry knows, and two store certificates sharing their first 8 hex characters.
    const worker = buildTestWorker(table, iot);
    const [quarantinedCert, registryOnly] = await Promise.all([
      iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true })),
      iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true })),
    ]);
    const quarantinedId = quarantinedCert.certificateId ?? '';
    const registryOnlyId = registryOnly.certificateId ?? '';
    await worker.handler(
      sqsEvent([quarantineRequest({ certificateId: quarantinedId, reason: 'CLONE_PUBLIC_KEY' })]),
      lambdaContext('quarantineDevice', 30_000),
    );
    const twins = ['feedface0', 'feedface1'].map((head) => head + head.at(-1)?.repeat(64 - head.length));
    for (const id of twins) await table.store.putCertificateIfAbsent(pendingCertificate(id));
    // Act
    const listed = await fleetgate(['quarantine', 'list'], env);
    // The id as the table shows it: 12 hex characters and an ellipsis.
    const shown = listed.stdout.match(new RegExp(`${quarantinedId.slice(0, 12)}…`))?.[0] ?? '';
    const [added, ambiguous, unknown, short, notHex] = await Promise.all([
      fleetgate(
        [
          'quarantine',
          'add',
          registryOnlyId.slice(0, 10),
          '--reason',
          'STOLEN',
          '--wait',
          '0',
          '--stage',
          STAGE,
          '--json',
        ],
        env,
      ),
      fleetgate(['quarantine', 'add', 'FEEDFACE', '--reason', 'STOLEN', '--json'], env),
      fleetgate(['quarantine', 'reject', '0badc0de0badc0de', '--reason', 'x', '--json'], env),
      fleetgate(['quarantine', 'add', 'feedfa', '--reason', 'STOLEN', '--json'], env),
      fleetgate(['quarantine', 'release', 'not-a-cert', '--reason', 'x', '--json'], env),
    ]);
    const released = await fleetgate(['quarantine', 'release', shown, '--reason', 'test key', '--json'], env);
    const queued = await sqs.client.send(
      new ReceiveMessageCommand({ QueueUrl: url('QuarantineQueue'), MaxNumberOfMessages: 10 }),
    );
    for (const message of queued.Messages ?? [])
      await sqs.client.send(
        new DeleteMessageCommand({ QueueUrl: url('QuarantineQueue'), ReceiptHandle: message.ReceiptHandle }),
      );
    // Assess
    expect(shown).not.toBe('');
    expect(released.code, released.stderr).toBe(0);
    expect(released.json()).toMatchObject({
      subject: 'certificate',
      certificateId: quarantinedId,
      decision: 'RELEASE',
    });
    // The registry's certificate (the store has no record of it), queued under its full id.
    expect(added.code, added.stderr).toBe(0);
    expect(added.json()).toMatchObject({
      processed: false,
      requestId: expect.stringContaining(`operator:${registryOnlyId}:`),
    });
    expect(queued.Messages?.map((message) => JSON.parse(message.Body ?? '{}').certificateId)).toEqual([
      registryOnlyId,
    ]);
    expect(ambiguous.code).toBe(1);
    expect(ambiguous.stderr).toContain(
      `feedface is ambiguous, 2 certificates in the store (${table.tableName}) start with it: ${twins.join(', ')}`,
    );
    expect(ambiguous.json()).toMatchObject({ ok: false, result: { prefix: 'feedface', candidates: twins } });
    expect(unknown.code).toBe(1);
    expect(unknown.json()).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    expect(unknown.stderr).toContain(
      `no certificate starting with 0badc0de0badc0de in the store (${table.tableName})`,
    );
    expect(short.code).toBe(1);
    expect(short.stderr).toContain('"feedfa" is 6 hex characters, too short for a prefix');
    expect(short.stderr).toContain('a certificate id is 64 hex characters, or a unique prefix of at least 8');
    expect(notHex.code).toBe(1);
    expect(notHex.stderr).toContain('no device not-a-cert');
    expect(notHex.stderr).toContain('"not-a-cert" is not hexadecimal');
    expect(notHex.stderr).toContain(
      'a certificate id is 64 hex characters, or a unique prefix of at least 8',
    );
  });
});

describe('fleetgate dlq', { timeout: 180_000 }, () => {
  const long = `{"requestId":"r-long","pad":"${'x'.repeat(300)}"}`;

  it('lists, replays to the source queue with body and attributes intact, and discards with a trace', async () => {
    // Prepare
    const first = await sqs.client.send(
      new SendMessageCommand({
        QueueUrl: url('QuarantineDLQ'),
        MessageBody: long,
        MessageAttributes: { producer: { DataType: 'String', StringValue: 'registerCertificate' } },
      }),
    );
    await sqs.client.send(
      new SendMessageCommand({ QueueUrl: url('QuarantineDLQ'), MessageBody: 'not json' }),
    );
    // Act
    const listed = await fleetgate(['dlq', 'list', '--messages', '--stage', STAGE, '--json'], env);
    const replayed = await fleetgate(
      ['dlq', 'replay', 'quarantine-dlq', '--max', '1', '--stage', STAGE, '--json'],
      env,
    );
    const moved = await sqs.client.send(
      new ReceiveMessageCommand({
        QueueUrl: url('QuarantineQueue'),
        MessageAttributeNames: ['All'],
        MaxNumberOfMessages: 10,
      }),
    );
    const discarded = await fleetgate(
      ['dlq', 'discard', 'QuarantineDLQ', '--reason', 'garbage from a test', '--stage', STAGE, '--json'],
      env,
    );
    // Assess
    expect(listed.code).toBe(0);
    const document = listed.json<{ queues: Array<Record<string, unknown>>; total: number }>();
    expect(document.total).toBe(2);
    const quarantineDlq = document.queues.find((queue) => queue.logicalId === 'QuarantineDLQ');
    expect(quarantineDlq).toMatchObject({
      queue: `fleetgate-${STAGE}-quarantine-dlq`,
      kind: 'dlq',
      source: `fleetgate-${STAGE}-quarantine`,
      count: 2,
    });
    const messages = (quarantineDlq?.messages ?? []) as Array<{ messageId: string; body: string }>;
    const bodies = messages.map((m) => m.body);
    expect(bodies).toEqual(expect.arrayContaining([long.slice(0, 200), 'not json']));
    expect(document.queues.map((queue) => queue.logicalId)).toEqual(
      expect.arrayContaining([
        'RegistrationDLQ',
        'LifecycleDLQ',
        'QuarantineDLQ',
        'RotationDLQ',
        'RuleErrorsQueue',
      ]),
    );

    expect(replayed.code).toBe(0);
    const replay = replayed.json<{
      replayed: Array<{ messageId: string }>;
      failed: unknown[];
      target: string;
    }>();
    expect(replay).toMatchObject({
      target: `fleetgate-${STAGE}-quarantine`,
      mode: 'send-to-source',
      failed: [],
    });
    expect(replay.replayed).toHaveLength(1);
    const [movedMessage] = moved.Messages ?? [];
    const original = replay.replayed[0]?.messageId === first.MessageId ? long : 'not json';
    expect(movedMessage?.Body).toBe(original);
    if (original === long)
      expect(movedMessage?.MessageAttributes?.producer?.StringValue).toBe('registerCertificate');

    expect(discarded.code).toBe(0);
    const discard = discarded.json<{
      discarded: Array<{ messageId: string }>;
      file: string;
      reason: string;
    }>();
    expect(discard.discarded).toHaveLength(1);
    expect(discard.file.startsWith(discardDir)).toBe(true);
    expect(existsSync(discard.file)).toBe(true);
    expect(JSON.parse(readFileSync(discard.file, 'utf8').trim())).toMatchObject({
      reason: 'garbage from a test',
      queue: `fleetgate-${STAGE}-quarantine-dlq`,
    });
  });

  it('answers a missing message id with exit 1, an unknown queue with exit 2, rule-error replay off the local stack with exit 1', async () => {
    // Act
    const [missing, unknown, ruleErrors] = await Promise.all([
      fleetgate(
        [
          'dlq',
          'discard',
          'quarantine-dlq',
          '--reason',
          'r',
          '--message-id',
          'nope',
          '--stage',
          STAGE,
          '--json',
        ],
        env,
      ),
      fleetgate(['dlq', 'replay', 'no-such-queue', '--stage', STAGE, '--json'], env),
      fleetgate(['dlq', 'replay', 'rule-errors', '--stage', STAGE, '--json'], env),
    ]);
    // Assess
    expect(missing.code).toBe(1);
    expect(missing.json()).toMatchObject({
      ok: false,
      error: { code: 'FAILED' },
      result: { notFound: 'nope' },
    });
    expect(unknown.code).toBe(2);
    expect(unknown.json()).toMatchObject({ ok: false, error: { code: 'USAGE' } });
    expect(ruleErrors.code).toBe(1);
    expect(ruleErrors.json()).toMatchObject({
      ok: false,
      error: { message: expect.stringContaining('rules engine') },
    });
  });
});
