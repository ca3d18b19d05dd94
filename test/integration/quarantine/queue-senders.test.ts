/**
 * shared/queue-senders.ts against the local SQS server: the dead-letter and quarantine senders the
 * queue functions build at cold start create no SQS client until the first send, then deliver like
 * `SqsDeadLetterQueue` / `QuarantineQueue` (body and attributes intact, the reason attribute; the
 * request validated), share one client, and load it once however many sends race.
 */
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import type { SQSRecord } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalSqs, startLocalSqs } from '../../../local/local-sqs';
import { DEAD_LETTER_REASON } from '../../../shared/dlq/dead-letter-sender';
import { ValidationError } from '../../../shared/errors';
import { deadLettersOnFirstUse, quarantineOnFirstUse, sqsOnFirstUse } from '../../../shared/queue-senders';

let sqs: LocalSqs;
const queue = (logicalId: string, name: string) => ({
  logicalId,
  name,
  arn: `arn:aws:sqs:us-east-1:123456789012:${name}`,
  visibilityTimeoutSeconds: 30,
  attributes: {},
});

beforeAll(async () => {
  sqs = await startLocalSqs({
    queues: [queue('DLQ', 'senders-dlq'), queue('Quarantine', 'senders-quarantine')],
    region: 'us-east-1',
    accountId: '123456789012',
  });
});
afterAll(async () => {
  await sqs?.stop();
});

function record(messageId: string, body: string): SQSRecord {
  return {
    messageId,
    receiptHandle: 'r',
    body,
    attributes: {} as SQSRecord['attributes'],
    messageAttributes: { source: { dataType: 'String', stringValue: 'jitr' } as never },
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:us-east-1:123456789012:x',
    awsRegion: 'us-east-1',
  };
}

async function receiveAll(url: string, expected: number) {
  const messages = [];
  // At least one receive, so that "nothing arrived" is checked too.
  for (let round = 0; round === 0 || (round < 20 && messages.length < expected); round += 1) {
    const out = await sqs.client.send(
      new ReceiveMessageCommand({
        QueueUrl: url,
        MaxNumberOfMessages: 10,
        MessageAttributeNames: ['All'],
        WaitTimeSeconds: 1,
      }),
    );
    messages.push(...(out.Messages ?? []));
  }
  return messages;
}

describe('senders loaded on first use', () => {
  it('creates one client on the first of concurrent sends and delivers every message intact', async () => {
    let clients = 0;
    const client = sqsOnFirstUse({
      endpoint: sqs.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      maxAttempts: 2,
    });
    const counted = async () => {
      const created = await client();
      clients += 1;
      return created;
    };
    const dlqUrl = sqs.urls.get('DLQ') ?? '';
    const deadLetters = deadLettersOnFirstUse(counted, dlqUrl);
    await Promise.all(
      Array.from({ length: 8 }, (_, i) => deadLetters.send(record(`m-${i}`, `{"n":${i}}`), `body: bad ${i}`)),
    );
    const received = await receiveAll(dlqUrl, 8);
    expect(received.map((message) => message.Body).sort()).toEqual(
      Array.from({ length: 8 }, (_, i) => `{"n":${i}}`).sort(),
    );
    expect(received.every((message) => message.MessageAttributes?.source?.StringValue === 'jitr')).toBe(true);
    expect(
      received.map((message) => message.MessageAttributes?.[DEAD_LETTER_REASON]?.StringValue).sort(),
    ).toEqual(Array.from({ length: 8 }, (_, i) => `body: bad ${i}`).sort());
    // The sender asked for the client once, and every caller gets the same client.
    expect(clients).toBe(1);
    expect(await client()).toBe(await client());

    const quarantineUrl = sqs.urls.get('Quarantine') ?? '';
    const quarantine = quarantineOnFirstUse(client, quarantineUrl);
    await expect(quarantine.send({ serial: '' } as never)).rejects.toBeInstanceOf(ValidationError);
    expect(await receiveAll(quarantineUrl, 0)).toEqual([]);
  });
});
