import { randomUUID } from 'node:crypto';
import { ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { SQSEvent } from 'aws-lambda';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { InvocationError } from '../../../local/lambda-runtime';
import { type LocalStack, startLocalStack } from '../../../local/stack';
import { fixtureCalls } from '../../fixtures/handlers/calls';
import { PROJECT_ROOT, serverlessCopy } from '../../support/serverless-copy';

const CA_ID = 'c'.repeat(64);
const jitrEvent = (certificateId: string) => ({
  certificateId,
  caCertificateId: CA_ID,
  timestamp: 1764000000000,
  certificateStatus: 'PENDING_ACTIVATION',
  awsAccountId: '123456789012',
  certificateRegistrationTimestamp: 1764000000000,
});

async function start(file: string): Promise<LocalStack> {
  return startLocalStack({
    serverlessFile: file,
    root: PROJECT_ROOT,
    dynamodbEndpoint: inject('dynamodbEndpoint'),
    tableName: `local-stack-${randomUUID().slice(0, 8)}`,
    onError: () => undefined,
  });
}

function callsOf(functionSuffix: string) {
  return fixtureCalls().filter((call) => call.functionName.endsWith(`-${functionSuffix}`));
}

function sqsRecords(functionSuffix: string): SQSEvent['Records'] {
  return callsOf(functionSuffix).flatMap((call) => (call.event as SQSEvent).Records);
}

async function drain(stack: LocalStack, queueName: string) {
  const client = new SQSClient({ endpoint: stack.endpoints.sqs, region: stack.region });
  const url = stack.queues[queueName];
  const out = await client.send(
    new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, MessageAttributeNames: ['All'] }),
  );
  client.destroy();
  return out.Messages ?? [];
}

let stack: LocalStack;
beforeAll(async () => {
  stack = await start(await serverlessCopy());
});
afterAll(async () => {
  await stack?.stop();
});
beforeEach(() => {
  fixtureCalls().length = 0;
});

describe('local stack routing', () => {
  it('delivers a JITR event through rule → queue → function, as serverless.yml declares', async () => {
    // Act
    const result = await stack.publish(
      `$aws/events/certificates/registered/${CA_ID}`,
      jitrEvent('a'.repeat(64)),
    );
    await stack.settle(10_000);
    // Assess
    expect(result.rules).toEqual([
      {
        rule: 'RegisterCertificateRule',
        actions: [{ type: 'sqs', queue: 'RegistrationQueue', ok: true, messageId: expect.any(String) }],
      },
    ]);
    const [record] = sqsRecords('recordRegistration');
    expect(record).toMatchObject({
      messageId:
        result.rules[0]?.actions[0] && 'messageId' in result.rules[0].actions[0]
          ? result.rules[0].actions[0].messageId
          : '',
      receiptHandle: expect.any(String),
      attributes: { ApproximateReceiveCount: '1', SentTimestamp: expect.any(String) },
      messageAttributes: {},
      md5OfBody: expect.any(String),
      eventSource: 'aws:sqs',
      eventSourceARN: 'arn:aws:sqs:us-east-1:123456789012:fleetgate-local-registration',
      awsRegion: 'us-east-1',
    });
    expect(JSON.parse(record?.body ?? '{}')).toEqual(jitrEvent('a'.repeat(64)));
    const messageId = record?.messageId ?? '';
    expect(stack.trace(messageId)).toMatchObject({
      functionName: 'recordRegistration',
      status: 'succeeded',
      receives: 1,
    });
  });

  it('gives functions the environment serverless.yml defines, resolved to local values, before cold start', async () => {
    const result = (await stack.invoke('recordRegistration', {})) as { env: Record<string, string> };
    expect(result.env).toEqual({
      TABLE_NAME: stack.tableName,
      QUEUE_URL: stack.queues['fleetgate-local-registration'],
      DLQ_ARN: 'arn:aws:sqs:us-east-1:123456789012:fleetgate-local-registration-dlq',
      LOG_LEVEL: 'DEBUG',
      ACCOUNT: '123456789012',
      STAGE: 'local',
      AWS_ENDPOINT_URL_SQS: stack.endpoints.sqs,
      AWS_ENDPOINT_URL_DYNAMODB: stack.endpoints.dynamodb,
    });
    expect(callsOf('recordRegistration')[0]?.remainingMs).toBeGreaterThan(4000);
  });

  it('evaluates topic(), principal() and clientid() in the rotation rule', async () => {
    await stack.publish(
      'fleetgate/thing-42/rotate/request',
      { csr: 'PEM' },
      { principal: 'b'.repeat(64), clientId: 'thing-42' },
    );
    await stack.settle(10_000);
    expect(JSON.parse(sqsRecords('recordRotation')[0]?.body ?? '{}')).toEqual({
      csr: 'PEM',
      principal: 'b'.repeat(64),
      clientId: 'thing-42',
      thingName: 'thing-42',
    });
  });

  it('retries only the failed record of a batch and dead-letters it with its body intact', async () => {
    // Prepare
    const event = (clientId: string, fail = false) => ({
      clientId,
      timestamp: 1764000000000,
      eventType: 'connected',
      sessionIdentifier: randomUUID(),
      principalIdentifier: 'd'.repeat(64),
      ipAddress: '192.0.2.10',
      versionNumber: 0,
      ...(fail ? { fail: true } : {}),
    });
    // Act
    for (const [clientId, fail] of [
      ['ok-1', false],
      ['bad-1', true],
      ['ok-2', false],
    ] as const) {
      await stack.publish(`$aws/events/presence/connected/${clientId}`, event(clientId, fail));
    }
    await stack.settle(20_000);
    // Assess
    const bodies = sqsRecords('lifecycle').map((record) => JSON.parse(record.body) as { clientId: string });
    const count = (clientId: string) => bodies.filter((body) => body.clientId === clientId).length;
    expect([count('ok-1'), count('ok-2'), count('bad-1')]).toEqual([1, 1, 3]);
    const dead = await drain(stack, 'fleetgate-local-lifecycle-dlq');
    expect(dead).toHaveLength(1);
    expect(JSON.parse(dead[0]?.Body ?? '{}')).toMatchObject({
      clientId: 'bad-1',
      fail: true,
      presenceTopicType: 'connected',
    });
    const failed = sqsRecords('lifecycle').find((record) => record.body.includes('bad-1'));
    expect(stack.trace(failed?.messageId ?? '')).toMatchObject({
      status: 'dead-lettered',
      receives: 3,
      deadLetterQueue: 'LifecycleDLQ',
    });
  });

  it('triggers a schedule with an EventBridge scheduled event', async () => {
    await stack.trigger('sweep', { time: '2026-11-24T12:00:00Z' });
    expect(callsOf('sweep')[0]?.event).toEqual({
      version: '0',
      id: expect.any(String),
      'detail-type': 'Scheduled Event',
      source: 'aws.events',
      account: '123456789012',
      time: '2026-11-24T12:00:00Z',
      region: 'us-east-1',
      resources: ['arn:aws:events:us-east-1:123456789012:rule/fleetgate-local-sweep-rule-1'],
      detail: {},
    });
  });

  it('reports a handler failure and a timeout as invocation errors', async () => {
    await expect(stack.invoke('crash', {})).rejects.toMatchObject({
      errorType: 'Error',
      message: 'fixture crash',
    });
    const timedOut = await stack.invoke('slow', {}).catch((error: unknown) => error);
    expect(timedOut).toBeInstanceOf(InvocationError);
    expect(timedOut).toMatchObject({ errorType: 'Sandbox.Timedout' });
  });

  it('ignores topics no rule selects', async () => {
    expect((await stack.publish('$aws/events/presence/connected', {})).rules).toEqual([]);
    expect((await stack.publish('devices/x/telemetry', {})).rules).toEqual([]);
  });
});

describe('local stack read from an edited serverless.yml', () => {
  it('routes by the rule topic the file says, and sends failed actions to the ErrorAction', async () => {
    // Prepare: the registration rule listens elsewhere, and a new rule invokes a missing function.
    const file = await serverlessCopy((text) =>
      text
        .replace(
          "FROM '$aws/events/certificates/registered/+'",
          "FROM 'factory/+/registered' WHERE line = 'A'",
        )
        .replace(
          '    PresenceRule:\n',
          `    BrokenRule:
      Type: AWS::IoT::TopicRule
      Properties:
        TopicRulePayload:
          Sql: "SELECT * FROM 'broken/#'"
          Actions:
            - Lambda: { FunctionArn: !GetAtt MissingLambdaFunction.Arn }
            - Lambda: { FunctionArn: !GetAtt SweepLambdaFunction.Arn }
          ErrorAction:
            Sqs: { QueueUrl: !Ref RuleErrorsQueue, RoleArn: !GetAtt IotTopicRulesRole.Arn }
    PresenceRule:\n`,
        ),
    );
    const edited = await start(file);
    try {
      // Act
      const before = await edited.publish(
        `$aws/events/certificates/registered/${CA_ID}`,
        jitrEvent('e'.repeat(64)),
      );
      const lineB = await edited.publish('factory/f1/registered', {
        ...jitrEvent('f'.repeat(64)),
        line: 'B',
      });
      const lineA = await edited.publish('factory/f1/registered', {
        ...jitrEvent('1'.repeat(64)),
        line: 'A',
      });
      const broken = await edited.publish('broken/a/b', { hello: 'world' }, { clientId: 'dev-1' });
      await edited.settle(10_000);
      // Assess
      expect([before.rules, lineB.rules]).toEqual([[], []]);
      expect(lineA.rules.map((rule) => rule.rule)).toEqual(['RegisterCertificateRule']);
      expect(sqsRecords('recordRegistration').map((record) => JSON.parse(record.body).certificateId)).toEqual(
        ['1'.repeat(64)],
      );
      expect(broken.rules[0]).toMatchObject({
        rule: 'BrokenRule',
        actions: [
          { type: 'lambda', ok: false, target: 'MissingLambdaFunction' },
          { type: 'lambda', ok: true, function: 'sweep' },
        ],
        errorAction: { type: 'sqs', queue: 'RuleErrorsQueue', ok: true },
      });
      expect(callsOf('sweep')[0]?.event).toEqual({ hello: 'world' });
      const [error] = await drain(edited, 'fleetgate-local-rule-errors');
      expect(JSON.parse(error?.Body ?? '{}')).toEqual({
        ruleName: 'BrokenRule',
        topic: 'broken/a/b',
        cloudwatchTraceId: expect.any(String),
        clientId: 'dev-1',
        base64OriginalPayload: Buffer.from('{"hello":"world"}').toString('base64'),
        failures: [
          {
            failedAction: 'LambdaAction',
            failedResource: 'MissingLambdaFunction',
            errorMessage: expect.any(String),
          },
        ],
      });
    } finally {
      await edited.stop();
    }
  });
});
