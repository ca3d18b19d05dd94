/**
 * The one SQS consumer (shared/sqs-consumer.ts): how each class of failure maps to an SQS outcome,
 * for both invalid-message policies; what the DLQ copy carries; the metrics logMetrics flushes; and
 * that serverless.yml gives every consumer the DLQ its queue's redrive policy names.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { loadServerlessConfig } from '../../local/serverless-config';
import { buildStackModel } from '../../local/stack-model';
import * as z from '../../schemas/zod';
import {
  DEAD_LETTER_REASON,
  DEAD_LETTER_SOURCE_MESSAGE,
  deadLetterAttributes,
} from '../../shared/dlq/dead-letter-sender';
import { ConfigError, InvalidMessageError, PermanentError, TransientError } from '../../shared/errors';
import { createSqsConsumer, type InvalidMessagePolicy } from '../../shared/sqs-consumer';
import { type RecordedOutcome, recordingMetrics } from '../support/hook';
import { RecordingDeadLetters, sqsRecord } from '../support/jitr';
import { lambdaContext } from '../support/lambda';

const Body = z.object({
  id: z.string().check(z.regex(/^[a-z]+$/, 'must be lower-case letters')),
  n: z.number().check(z.int()),
});

function build(options: {
  invalid?: 'dead-letter' | 'acknowledge';
  process?: (message: z.infer<typeof Body>, record: SQSRecord) => Promise<void>;
  answerInvalid?: (record: SQSRecord, reason: string) => Promise<boolean>;
}) {
  const deadLetters = new RecordingDeadLetters();
  const outcomes: RecordedOutcome[] = [];
  const stored: RecordedOutcome[] = [];
  const processed: Array<z.infer<typeof Body>> = [];
  const invalid: InvalidMessagePolicy =
    options.invalid === 'acknowledge' ? { action: 'acknowledge' } : { action: 'dead-letter', deadLetters };
  const handler = createSqsConsumer({
    name: 'Test',
    logger: new Logger({ serviceName: 'fleetgate', logLevel: 'SILENT' }),
    metrics: recordingMetrics(outcomes, stored),
    body: Body,
    invalid,
    process: async (message, { record }) => {
      processed.push(message);
      await options.process?.(message, record);
    },
    ...(options.answerInvalid ? { answerInvalid: options.answerInvalid } : {}),
  });
  const run = (records: SQSRecord[]) =>
    handler({ Records: records } as SQSEvent, lambdaContext()) as Promise<SQSBatchResponse>;
  return { run, deadLetters, outcomes, stored, processed };
}

const valid = (id = 'abc', messageId?: string) => sqsRecord(JSON.stringify({ id, n: 1 }), messageId);

describe('createSqsConsumer: valid messages', () => {
  it('parses the body with the schema (JSON transformer) and acknowledges what was processed', async () => {
    const { run, processed, stored } = build({});
    const response = await run([valid('abc', 'm-1'), valid('def', 'm-2')]);
    expect(response).toEqual({ batchItemFailures: [] });
    expect(processed.map((message) => message.id).sort()).toEqual(['abc', 'def']);
    expect(stored).toEqual([{ name: 'SqsRecords' }, { name: 'SqsRecordsRetried' }]);
  });
});

describe('createSqsConsumer: invalid messages (can never succeed)', () => {
  it.each([
    ['not json', /^body: Invalid JSON/],
    ['{"id":"ABC","n":1}', /^body\.id: must be lower-case letters$/],
    ['{"id":"abc"}', /^body\.n: /],
  ])('dead-letter: %s goes to the DLQ at once with its reason, and is acknowledged', async (body, reason) => {
    const { run, deadLetters, outcomes, processed } = build({ invalid: 'dead-letter' });
    const response = await run([sqsRecord(body, 'm-bad'), valid('ok', 'm-ok')]);
    expect(response).toEqual({ batchItemFailures: [] });
    expect(deadLetters.records.map(({ record }) => record.messageId)).toEqual(['m-bad']);
    expect(deadLetters.records[0]?.reason).toMatch(reason);
    expect(processed.map((message) => message.id)).toEqual(['ok']);
    expect(outcomes).toEqual([{ name: 'TestInvalid', reason: 'body' }]);
  });

  it('acknowledge: an invalid body is recorded and acknowledged, not dead-lettered', async () => {
    const { run, deadLetters, outcomes } = build({ invalid: 'acknowledge' });
    const response = await run([sqsRecord('{"id":1}', 'm-bad')]);
    expect(response).toEqual({ batchItemFailures: [] });
    expect(deadLetters.records).toEqual([]);
    expect(outcomes).toEqual([{ name: 'TestInvalid', reason: 'body' }]);
  });

  it('treats an InvalidMessageError from processing (a request that can never succeed) the same way', async () => {
    const { run, deadLetters, outcomes } = build({
      process: async () => {
        throw new InvalidMessageError([{ field: 'id', rule: 'names nothing that exists' }]);
      },
    });
    const response = await run([valid('abc', 'm-1')]);
    expect(response).toEqual({ batchItemFailures: [] });
    expect(deadLetters.records.map(({ reason }) => reason)).toEqual(['id: names nothing that exists']);
    expect(outcomes).toEqual([{ name: 'TestInvalid', reason: 'request' }]);
  });

  it('lets the function answer an invalid body (acknowledged), and falls back to the policy when it cannot', async () => {
    const answered: string[] = [];
    const { run, deadLetters } = build({
      answerInvalid: async (record, reason) => {
        if (record.messageId !== 'm-answerable') return false;
        answered.push(reason);
        return true;
      },
    });
    const response = await run([sqsRecord('{"id":"X","n":1}', 'm-answerable'), sqsRecord('nope', 'm-not')]);
    expect(response).toEqual({ batchItemFailures: [] });
    expect(answered).toEqual(['body.id: must be lower-case letters']);
    expect(deadLetters.records.map(({ record }) => record.messageId)).toEqual(['m-not']);
  });

  it('fails the record when the DLQ does not take it (nothing dropped)', async () => {
    const { run, deadLetters, outcomes } = build({});
    deadLetters.send = async () => {
      throw new TransientError('SendMessage to the dead-letter queue failed');
    };
    const response = await run([sqsRecord('nope', 'm-1')]);
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: 'm-1' }] });
    expect(outcomes).toEqual([{ name: 'TestRetried', reason: 'TRANSIENT' }]);
  });

  it('treats a record without the SQS envelope Lambda delivers as invalid, body kept', async () => {
    const { run, deadLetters } = build({});
    const record = { ...valid('abc', 'm-1'), eventSource: 'aws:kinesis' } as unknown as SQSRecord;
    const response = await run([record]);
    expect(response).toEqual({ batchItemFailures: [] });
    expect(deadLetters.records[0]?.reason).toMatch(/^eventSource: /);
  });
});

describe('createSqsConsumer: everything else is retried (then redriven), never acknowledged', () => {
  const aws = (name: string, status: number) =>
    Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status } });
  it.each([
    ['ThrottlingException', new TransientError('throttled', { cause: aws('ThrottlingException', 400) })],
    ['AccessDeniedException', aws('AccessDeniedException', 403)],
    [
      'ResourceNotFoundException',
      new PermanentError('AttachPolicy failed', { cause: aws('ResourceNotFoundException', 404) }),
    ],
    ['CONFIG', new ConfigError(['QUARANTINE_QUEUE_URL: is required'])],
    ['TypeError', new TypeError('a bug')],
  ])('%s fails just that record', async (reason, error) => {
    const { run, deadLetters, outcomes, stored } = build({
      process: async (message) => {
        if (message.id === 'bad') throw error;
      },
    });
    const response = await run([valid('bad', 'm-bad'), valid('good', 'm-good')]);
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: 'm-bad' }] });
    expect(deadLetters.records).toEqual([]);
    expect(outcomes).toEqual([{ name: 'TestRetried', reason }]);
    expect(stored).toEqual([{ name: 'SqsRecords' }, { name: 'SqsRecordsRetried' }]);
  });

  it('reports every record of a batch that failed entirely (no exception out of the handler)', async () => {
    const { run } = build({
      process: async () => {
        throw new Error('down');
      },
    });
    const response = await run([valid('a', 'm-1'), valid('b', 'm-2')]);
    expect(response.batchItemFailures.map((failure) => failure.itemIdentifier).sort()).toEqual([
      'm-1',
      'm-2',
    ]);
  });
});

describe('deadLetterAttributes', () => {
  it('keeps the original attributes and adds the reason and source message id while SQS allows (10)', () => {
    const record = sqsRecord('{}', 'm-1');
    record.messageAttributes = {
      producer: { dataType: 'String', stringValue: 'deviceLifecycle' },
      blob: { dataType: 'Binary', binaryValue: Buffer.from('hi').toString('base64') },
      [DEAD_LETTER_REASON]: { dataType: 'String', stringValue: 'an older reason' },
    };
    const attributes = deadLetterAttributes(record, 'body: Invalid JSON');
    expect(attributes).toEqual({
      producer: { DataType: 'String', StringValue: 'deviceLifecycle' },
      blob: { DataType: 'Binary', BinaryValue: Buffer.from('hi') },
      [DEAD_LETTER_REASON]: { DataType: 'String', StringValue: 'body: Invalid JSON' },
      [DEAD_LETTER_SOURCE_MESSAGE]: { DataType: 'String', StringValue: 'm-1' },
    });
    const full = sqsRecord('{}', 'm-2');
    full.messageAttributes = Object.fromEntries(
      Array.from({ length: 9 }, (_, i) => [`a${i}`, { dataType: 'String', stringValue: String(i) }]),
    );
    const capped = deadLetterAttributes(full, 'why');
    expect(Object.keys(capped)).toHaveLength(10);
    expect(capped[DEAD_LETTER_REASON]?.StringValue).toBe('why');
  });
});

describe('serverless.yml: the DLQ of every SQS consumer', () => {
  it('gives each SQS-triggered function DEAD_LETTER_QUEUE_URL = the DLQ its queue redrives to', () => {
    const model = buildStackModel(loadServerlessConfig(), { stage: 'local' });
    const consumers = model.functions.filter((fn) => fn.sqs.length > 0);
    expect(consumers.map((fn) => fn.name).sort()).toEqual([
      'deviceLifecycle',
      'quarantineDevice',
      'reconcileInventory',
      'registerCertificate',
      'rotateCertificate',
    ]);
    for (const fn of consumers) {
      for (const mapping of fn.sqs) {
        const queue = model.queues.find((candidate) => candidate.logicalId === mapping.queue);
        const dlq = model.queues.find((candidate) => candidate.logicalId === queue?.redrive?.deadLetterQueue);
        expect(dlq, `${fn.name}: ${mapping.queue} has a redrive policy`).toBeDefined();
        expect(fn.environment.DEAD_LETTER_QUEUE_URL, fn.name).toMatch(new RegExp(`/${dlq?.name}$`));
        expect(mapping.reportBatchItemFailures, fn.name).toBe(true);
      }
    }
  });
});
