/**
 * Poison quarantine requests on local SQS (local-aws-sqs, redrive as SQS does it): the real queue
 * poller feeds quarantineDevice, a request that can never be processed is sent to QuarantineDLQ at
 * once with its body intact and its reason, and the dead-letter tools replay them once the cause is
 * fixed — or discard them with a trace. The queues are serverless.yml's, with QuarantineQueue's
 * visibility timeout cut to 1 s so a redrive (five receives) takes seconds, not 15 minutes.
 */
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IoTClient } from '@aws-sdk/client-iot';
import { ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IotEmulator } from '../../../local/iot-emulator/index';
import { type LocalSqs, startLocalSqs } from '../../../local/local-sqs';
import { MessageLedger, QueuePoller } from '../../../local/queue-poller';
import { loadServerlessConfig } from '../../../local/serverless-config';
import {
  buildStackModel,
  deadLetterDeclarations,
  type QueueSpec,
  type StackModel,
} from '../../../local/stack-model';
import {
  DEAD_LETTER_REASON,
  DEAD_LETTER_SOURCE_MESSAGE,
  SqsDeadLetterQueue,
} from '../../../shared/dlq/dead-letter-sender';
import { DeadLetters, deadLetterQueues } from '../../../shared/dlq/dead-letters';
import type { TestTable } from '../../support/dynamo';
import { lambdaContext } from '../../support/lambda';
import {
  buildTestWorker,
  quarantineRequest,
  seedActiveDevice,
  startQuarantineAccount,
  type TestWorker,
} from '../../support/quarantine';
import { queueDepth, waitUntil } from '../../support/wait';

const STAGE = 'dlqtest';
let table: TestTable;
let emulator: IotEmulator;
let iot: IoTClient;
let sqs: LocalSqs;
let model: StackModel;
let worker: TestWorker;
let poller: QueuePoller;
let deadLetters: DeadLetters;

function fastRetries(queue: QueueSpec): QueueSpec {
  if (queue.logicalId !== 'QuarantineQueue') return queue;
  return {
    ...queue,
    visibilityTimeoutSeconds: 1,
    attributes: { ...queue.attributes, VisibilityTimeout: '1' },
  };
}

// Generous: five receives per poison message, on a machine other test runs share.
const WAIT_MS = 90_000;

const url = (logicalId: string) => sqs.urls.get(logicalId) ?? '';

beforeAll(async () => {
  model = buildStackModel(loadServerlessConfig(), { stage: STAGE });
  const queues = model.queues.map(fastRetries);
  [{ table, emulator, iot }, sqs] = await Promise.all([
    startQuarantineAccount('dlq'),
    startLocalSqs({ queues, region: model.region, accountId: model.accountId }),
  ]);
  // Invalid requests go to QuarantineDLQ at once, as DEAD_LETTER_QUEUE_URL: !Ref QuarantineDLQ says.
  worker = buildTestWorker(table, iot, new SqsDeadLetterQueue(sqs.client, url('QuarantineDLQ')));
  const quarantineQueue = queues.find((queue) => queue.logicalId === 'QuarantineQueue');
  const mapping = model.functions.find((fn) => fn.name === 'quarantineDevice')?.sqs[0];
  if (!quarantineQueue || !mapping)
    throw new Error('serverless.yml has no quarantineDevice on QuarantineQueue');
  poller = new QueuePoller({
    client: sqs.client,
    queue: quarantineQueue,
    queueUrl: url('QuarantineQueue'),
    mapping,
    functionName: 'quarantineDevice',
    region: model.region,
    ledger: new MessageLedger(),
    invoke: (event) =>
      worker.handler(event as never, lambdaContext('fleetgate-dlqtest-quarantineDevice', 30_000)),
  });
  poller.start();
  const { declarations, ruleErrors } = deadLetterDeclarations({ queues, rules: model.rules });
  const byName = new Map(queues.map((queue) => [queue.name, url(queue.logicalId)]));
  deadLetters = new DeadLetters(
    sqs.client,
    declarations,
    deadLetterQueues(declarations, ruleErrors),
    async (name) => byName.get(name) ?? '',
  );
});
afterAll(async () => {
  await poller?.stop();
  iot?.destroy();
  await Promise.all([sqs?.stop(), table?.drop(), emulator?.stop()]);
});

describe('dead letters of the quarantine queue', { timeout: 150_000 }, () => {
  const poison = '{"requestId": "r-poison", "serial": "SN-P-1", "reason": ';
  const tooEarly = quarantineRequest({ requestId: 'r-too-early', serial: 'SN-LATE-1' });

  it('lists every DLQ of serverless.yml with the source queue from its RedrivePolicy, and the rule-errors queue', async () => {
    // Act
    const listing = await deadLetters.list();
    // Assess
    expect(listing.map(({ queue, source, kind }) => ({ queue, source, kind }))).toEqual(
      expect.arrayContaining([
        {
          queue: `fleetgate-${STAGE}-registration-dlq`,
          source: `fleetgate-${STAGE}-registration`,
          kind: 'dlq',
        },
        { queue: `fleetgate-${STAGE}-lifecycle-dlq`, source: `fleetgate-${STAGE}-lifecycle`, kind: 'dlq' },
        { queue: `fleetgate-${STAGE}-quarantine-dlq`, source: `fleetgate-${STAGE}-quarantine`, kind: 'dlq' },
        { queue: `fleetgate-${STAGE}-rotation-dlq`, source: `fleetgate-${STAGE}-rotation`, kind: 'dlq' },
        { queue: `fleetgate-${STAGE}-rule-errors`, source: null, kind: 'rule-errors' },
      ]),
    );
  });

  it('sends a poison body and a request for an unknown serial to the DLQ at once, bodies intact, the reason logged by messageId', async () => {
    // Act
    const sent = await sqs.client.send(
      new SendMessageCommand({ QueueUrl: url('QuarantineQueue'), MessageBody: poison }),
    );
    await sqs.client.send(
      new SendMessageCommand({
        QueueUrl: url('QuarantineQueue'),
        MessageBody: JSON.stringify(tooEarly),
        MessageAttributes: { producer: { DataType: 'String', StringValue: 'deviceLifecycle' } },
      }),
    );
    await waitUntil(async () => (await queueDepth(sqs.client, url('QuarantineDLQ'))) === 2, WAIT_MS);
    const listing = await deadLetters.list({ messages: true });
    // Assess
    const dlq = listing.find((queue) => queue.logicalId === 'QuarantineDLQ');
    expect(dlq?.count).toBe(2);
    expect(dlq?.messages?.map((message) => message.body).sort()).toEqual(
      [JSON.stringify(tooEarly), poison].sort(),
    );
    // `dlq list --messages` says why: the reason attribute of each copy.
    expect(dlq?.messages?.find((message) => message.body === poison)?.reason).toMatch(/^body: Invalid JSON/);
    expect(dlq?.messages?.every((message) => typeof message.reason === 'string')).toBe(true);
    expect(await queueDepth(sqs.client, url('QuarantineQueue'))).toBe(0);
    // At once: one receive each, not maxReceiveCount of them.
    const logged = worker.errorLogs.filter((log) => log.fields.messageId === sent.MessageId);
    expect(logged).toHaveLength(1);
    expect(logged[0]?.fields).toMatchObject({ receiveCount: '1' });
    expect(String(logged[0]?.fields.reason)).toMatch(/^body: Invalid JSON/);
    // The copy keeps the original attributes and says why and where it came from.
    const received = await sqs.client.send(
      new ReceiveMessageCommand({
        QueueUrl: url('QuarantineDLQ'),
        MaxNumberOfMessages: 10,
        MessageAttributeNames: ['All'],
        VisibilityTimeout: 0,
      }),
    );
    const request = received.Messages?.find((message) => message.Body === JSON.stringify(tooEarly));
    expect(request?.MessageAttributes?.producer?.StringValue).toBe('deviceLifecycle');
    expect(request?.MessageAttributes?.[DEAD_LETTER_REASON]?.StringValue).toBe(
      'serial: serial SN-LATE-1 is unknown and no certificateId was given',
    );
    expect(request?.MessageAttributes?.[DEAD_LETTER_SOURCE_MESSAGE]?.StringValue).toEqual(expect.any(String));
  });

  it('replays after the cause is fixed: the request is processed, the poison comes back to the DLQ', async () => {
    // Prepare: the serial the request named is now known.
    await seedActiveDevice(table, iot, 'SN-LATE-1');
    // Act
    const result = await deadLetters.replay('quarantine-dlq');
    await waitUntil(async () => (await table.store.getDevice('SN-LATE-1'))?.state === 'QUARANTINED', WAIT_MS);
    await waitUntil(async () => (await queueDepth(sqs.client, url('QuarantineDLQ'))) === 1, WAIT_MS);
    // Assess
    expect(result).toMatchObject({
      queue: `fleetgate-${STAGE}-quarantine-dlq`,
      target: `fleetgate-${STAGE}-quarantine`,
      mode: 'send-to-source',
      failed: [],
    });
    expect(result.replayed).toHaveLength(2);
    const [left] =
      (await deadLetters.list({ messages: true })).find((q) => q.logicalId === 'QuarantineDLQ')?.messages ??
      [];
    expect(left?.body).toBe(poison);
  });

  it('discards only the message asked for, after writing it with the reason', async () => {
    // Prepare
    const [left] =
      (await deadLetters.list({ messages: true })).find((q) => q.logicalId === 'QuarantineDLQ')?.messages ??
      [];
    const file = join(tmpdir(), `fleetgate-discard-${Date.now()}.jsonl`);
    // Act
    const missing = await deadLetters.discard('QuarantineDLQ', {
      reason: 'truncated by a broken producer',
      messageId: 'no-such-message',
      file,
      now: new Date().toISOString(),
    });
    const result = await deadLetters.discard('QuarantineDLQ', {
      reason: 'truncated by a broken producer',
      messageId: left?.messageId ?? '',
      file,
      now: new Date().toISOString(),
    });
    // Assess
    expect(missing).toMatchObject({ notFound: 'no-such-message', discarded: [] });
    expect(result.discarded).toEqual([{ messageId: left?.messageId }]);
    const lines = (await readFile(file, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines).toEqual([
      expect.objectContaining({
        messageId: left?.messageId,
        body: poison,
        reason: 'truncated by a broken producer',
      }),
    ]);
    expect(await queueDepth(sqs.client, url('QuarantineDLQ'))).toBe(0);
  });

  it('refuses to replay rule errors without the local rules engine, and leaves them in place', async () => {
    // Prepare
    await sqs.client.send(
      new SendMessageCommand({
        QueueUrl: url('RuleErrorsQueue'),
        MessageBody: JSON.stringify({
          ruleName: 'r',
          topic: 't/1',
          base64OriginalPayload: 'e30=',
          failures: [],
        }),
      }),
    );
    // Act / Assess
    await expect(deadLetters.replay('rule-errors')).rejects.toMatchObject({ code: 'REPLAY_UNSUPPORTED' });
    const republished: Array<{ topic: string; payload: string }> = [];
    const result = await deadLetters.replay('rule-errors', {
      republish: async (topic, payload) => {
        republished.push({ topic, payload: payload.toString('utf8') });
      },
    });
    expect(result).toMatchObject({ mode: 'republish', replayed: [{ topic: 't/1' }], failed: [] });
    expect(republished).toEqual([{ topic: 't/1', payload: '{}' }]);
  });
});
