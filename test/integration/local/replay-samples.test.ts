/**
 * A poison message does not loop: replaying the shipped events/iot samples through the local stack
 * (serverless.yml as it is: 180 s visibility timeouts) settles in seconds. The quarantine request
 * deviceLifecycle sends for the samples' unknown serial ("serial SN-000001 is unknown and no
 * certificateId was given") can never succeed: it is in QuarantineDLQ at once with its reason,
 * not redelivered every 180 s.
 */
import { join } from 'node:path';
import { ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readRecordedEvents } from '../../../cli/commands/replay';
import { DEAD_LETTER_REASON } from '../../../shared/dlq/dead-letter-sender';
import { PROJECT_ROOT } from '../../support/serverless-copy';
import { startTestStack, type TestStack } from '../../support/stack';

let testStack: TestStack;

beforeAll(async () => {
  testStack = await startTestStack('replay-samples');
}, 120_000);

afterAll(async () => {
  await testStack?.stop();
});

describe('replaying events/iot on the local stack', () => {
  it('settles: the request that can never succeed is in QuarantineDLQ at once with its reason', async () => {
    // Prepare
    const { stack } = testStack;
    const events = readRecordedEvents(join(PROJECT_ROOT, 'events', 'iot'));
    // Act
    for (const event of events) await stack.publish(event.topic, event.payload as object);
    // Assess: well within one visibility timeout (180 s), nothing is left in flight.
    await stack.settle(30_000);
    const depths = await stack.depths();
    expect(depths['fleetgate-local-quarantine']).toBe(0);
    expect(depths['fleetgate-local-quarantine-dlq']).toBe(1);
    const sqs = new SQSClient({
      endpoint: stack.endpoints.sqs,
      region: stack.region,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    try {
      const received = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: stack.queues['fleetgate-local-quarantine-dlq'],
          MessageAttributeNames: ['All'],
          VisibilityTimeout: 0,
        }),
      );
      const [message] = received.Messages ?? [];
      expect(JSON.parse(message?.Body ?? '{}')).toMatchObject({
        serial: 'SN-000001',
        source: 'deviceLifecycle',
      });
      expect(message?.MessageAttributes?.[DEAD_LETTER_REASON]?.StringValue).toBe(
        'serial: serial SN-000001 is unknown and no certificateId was given',
      );
    } finally {
      sqs.destroy();
    }
  });
});
