/**
 * The local IAM on a running stack: a function's call is authorized against its role from
 * serverless.yml, on every service the functions use, and a call the role does not allow fails as AWS
 * fails it — AccessDenied naming the action and the resource. Each denial test first shows the same
 * call allowed with the shipped role, then removes one permission (or restores the grant that was
 * wrong before the fix) and sees the call refused.
 */
import { DynamoDBClient, TransactWriteItemsCommand } from '@aws-sdk/client-dynamodb';
import {
  AttachThingPrincipalCommand,
  CreateKeysAndCertificateCommand,
  CreateThingCommand,
  IoTClient,
} from '@aws-sdk/client-iot';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { functionAccessKeyId } from '../../../local/iam/authorizer';
import type { PolicyStatement } from '../../../local/iam/policy';
import type { RoleSpec } from '../../../local/stack-model';
import { startTestStack, type TestStack } from '../../support/stack';

let test: TestStack;

beforeAll(async () => {
  test = await startTestStack('iam');
}, 120_000);

afterAll(async () => {
  await test?.stop();
});

const credentials = (fn: string) => ({ accessKeyId: functionAccessKeyId(fn), secretAccessKey: 'local' });

/** Client settings for calls to `endpoint` as function `fn` (its role decides; no retries). */
const asFunction = (fn: string, endpoint: string) => ({
  endpoint,
  region: test.stack.region,
  credentials: credentials(fn),
  maxAttempts: 1,
});

function role(fn: string): RoleSpec {
  const spec = test.stack.functions.spec(fn).role;
  return structuredClone(spec);
}

/** The role with `action` removed from every statement (statements left with no action dropped). */
function without(spec: RoleSpec, action: string): RoleSpec {
  for (const policy of spec.policies) {
    const statements = ([] as PolicyStatement[]).concat(policy.document.Statement);
    policy.document.Statement = statements
      .map((statement) => {
        if (statement.Action === undefined) return statement;
        const actions = ([] as string[]).concat(statement.Action).filter((name) => name !== action);
        return actions.length > 0 ? { ...statement, Action: actions } : undefined;
      })
      .filter((statement): statement is PolicyStatement => statement !== undefined);
  }
  return spec;
}

async function attempt(
  call: () => Promise<unknown>,
): Promise<{ name: string; message: string; status?: number }> {
  try {
    await call();
    return { name: 'ok', message: '' };
  } catch (error) {
    const failure = error as { name: string; message: string; $metadata?: { httpStatusCode?: number } };
    return { name: failure.name, message: failure.message, status: failure.$metadata?.httpStatusCode };
  }
}

describe('the scheduled functions on the stack, each with its own role', () => {
  it('expirySweep, reconcileInventory and sweepRotations run with no denial; the sweep writes its reports to the reports bucket', async () => {
    const sweep = (await test.stack.trigger('expirySweep')) as { status: string; files: { json: string } };
    expect(sweep.status).toBe('complete');
    const bucket = test.stack.model.buckets[0] ?? '';
    expect(sweep.files.json).toMatch(new RegExp(`^s3://${bucket}/expiry/`));
    // The second run compares with the first (its baseline is read from the table, not the bucket).
    expect(((await test.stack.trigger('expirySweep')) as { status: string }).status).toBe('complete');
    await test.stack.trigger('reconcileInventory');
    await test.stack.trigger('sweepRotations');
    const used = new Set(test.stack.iam.log.map((entry) => `${entry.functionName} ${entry.action}`));
    for (const call of [
      'expirySweep s3:PutObject',
      'expirySweep dynamodb:Query',
      'reconcileInventory iot:ListCertificates',
    ]) {
      expect(used, call).toContain(call);
    }
    // Least privilege: the role has no S3 read, and the sweep never needs one.
    expect(used).not.toContain('expirySweep s3:GetObject');
    expect(test.stack.iam.denials()).toEqual([]);
  });
});

describe('local IAM on the stack', () => {
  // These tests probe what roles refuse with the functions' own keys: their calls are not the
  // functions' real calls (kept out of the recorded call list) and their denials are expected.
  beforeAll(() => {
    for (const fn of ['registerCertificate', 'expirySweep', 'deviceLifecycle'])
      test.stack.iam.expectDenials(fn);
  });

  it('DynamoDB: each item of a transaction is authorized as its own action (ConditionCheckItem)', async () => {
    const ddb = new DynamoDBClient(asFunction('registerCertificate', test.stack.endpoints.dynamodb));
    const transaction = () =>
      ddb.send(
        new TransactWriteItemsCommand({
          TransactItems: [
            {
              ConditionCheck: {
                TableName: test.stack.tableName,
                Key: { PK: { S: 'DEVICE#iam-test' }, SK: { S: 'DEVICE' } },
                ConditionExpression: 'attribute_exists(PK)',
              },
            },
            {
              Put: {
                TableName: test.stack.tableName,
                Item: { PK: { S: 'IAMTEST#1' }, SK: { S: 'IAMTEST' } },
              },
            },
          ],
        }),
      );
    // Allowed by the shipped role: DynamoDB itself answers (the condition fails: no such device).
    const allowed = await attempt(transaction);
    expect(allowed.name).toBe('TransactionCanceledException');
    test.stack.iam.setRole(
      'registerCertificate',
      without(role('registerCertificate'), 'dynamodb:ConditionCheckItem'),
    );
    const denied = await attempt(transaction);
    expect(denied.name).toBe('AccessDeniedException');
    expect(denied.message).toContain('is not authorized to perform: dynamodb:ConditionCheckItem');
    expect(denied.message).toContain(
      `on resource: arn:aws:dynamodb:us-east-1:123456789012:table/${test.stack.tableName}`,
    );
    expect(denied.message).toContain('assumed-role/fleetgate-local-RegisterCertificateRole-local/');
    test.stack.iam.setRole('registerCertificate', role('registerCertificate'));
    expect((await attempt(transaction)).name).toBe('TransactionCanceledException');
    ddb.destroy();
  });

  it('DynamoDB: dynamodb:LeadingKeys conditions are evaluated (the sweep writes only its own SWEEP# items)', async () => {
    const ddb = new DynamoDBClient(asFunction('expirySweep', test.stack.endpoints.dynamodb));
    const put = (pk: string) =>
      attempt(() =>
        ddb.send(
          new TransactWriteItemsCommand({
            TransactItems: [
              { Put: { TableName: test.stack.tableName, Item: { PK: { S: pk }, SK: { S: 'RUN' } } } },
            ],
          }),
        ),
      );
    expect((await put('SWEEP#iam-test')).name).toBe('ok');
    test.stack.iam.expectDenials('expirySweep');
    const denied = await put('DEVICE#SN-0001');
    expect(denied.name).toBe('AccessDeniedException');
    expect(denied.message).toContain('dynamodb:PutItem');
    ddb.destroy();
  });

  it('SQS: SendMessage to the quarantine queue needs the role to name the queue', async () => {
    const sqs = new SQSClient(asFunction('deviceLifecycle', test.stack.endpoints.sqs));
    const url = test.stack.queueUrls.QuarantineQueue ?? '';
    const send = () =>
      attempt(() => sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: '{"probe":true}' })));
    // Denied for a queue the role does not name.
    test.stack.iam.expectDenials('deviceLifecycle');
    const other = await attempt(() =>
      sqs.send(
        new SendMessageCommand({ QueueUrl: test.stack.queueUrls.RotationQueue ?? '', MessageBody: '{}' }),
      ),
    );
    expect(other.message).toContain('is not authorized to perform: sqs:SendMessage');
    expect(other.status).toBe(403);
    test.stack.iam.setRole('deviceLifecycle', without(role('deviceLifecycle'), 'sqs:SendMessage'));
    const denied = await send();
    expect(denied.message).toContain(
      `sqs:SendMessage on resource: arn:aws:sqs:us-east-1:123456789012:${url.split('/').pop()}`,
    );
    test.stack.iam.setRole('deviceLifecycle', role('deviceLifecycle'));
    expect((await send()).name).toBe('ok');
    sqs.destroy();
  });

  it('IoT: AttachThingPrincipal is authorized on the certificate, so a grant on thing/* alone is refused', async () => {
    const admin = test.iot;
    const keys = await admin.send(new CreateKeysAndCertificateCommand({ setAsActive: false }));
    await admin.send(new CreateThingCommand({ thingName: 'iam-thing' }));
    const iot = new IoTClient({
      ...test.emulator.clientConfig(),
      credentials: credentials('registerCertificate'),
      maxAttempts: 1,
    });
    const attach = () =>
      attempt(() =>
        iot.send(
          new AttachThingPrincipalCommand({ thingName: 'iam-thing', principal: keys.certificateArn ?? '' }),
        ),
      );
    expect((await attach()).name).toBe('ok');
    // The grant as it was before the fix: AttachThingPrincipal on thing/* only.
    const broken = role('registerCertificate');
    for (const policy of broken.policies) {
      for (const statement of ([] as PolicyStatement[]).concat(policy.document.Statement)) {
        if (([] as string[]).concat(statement.Action ?? []).includes('iot:AttachThingPrincipal')) {
          statement.Resource = 'arn:aws:iot:us-east-1:123456789012:thing/*';
        }
      }
    }
    test.stack.iam.setRole('registerCertificate', broken);
    const denied = await attach();
    expect(denied.name).toBe('AccessDeniedException');
    expect(denied.status).toBe(403);
    expect(denied.message).toContain(
      `iot:AttachThingPrincipal on resource: arn:aws:iot:us-east-1:123456789012:cert/${keys.certificateId}`,
    );
    test.stack.iam.setRole('registerCertificate', role('registerCertificate'));
    iot.destroy();
  });

  it("S3: the sweep's role cannot read the bucket at all; a missing object is a 404 only with s3:ListBucket, a 403 with ListBucket conditioned on a prefix (GetObject, Permissions)", async () => {
    // @see https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html ("Permissions")
    const bucket = test.stack.model.buckets[0] ?? '';
    const s3 = new S3Client({ ...asFunction('expirySweep', test.stack.endpoints.s3), forcePathStyle: true });
    const read = () =>
      attempt(() => s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'expiry/latest.json' })));
    // The role as packaged: writes only.
    expect(await read()).toMatchObject({ name: 'AccessDenied', status: 403 });
    // A role that may read under expiry/ and list the bucket: a missing object is a 404.
    const withRead = (listCondition?: PolicyStatement['Condition']): RoleSpec => {
      const spec = role('expirySweep');
      const bucketArn = `arn:aws:s3:::${bucket}`;
      spec.policies.push({
        name: 'test-read',
        document: {
          Version: '2012-10-17',
          Statement: [
            { Effect: 'Allow', Action: 's3:GetObject', Resource: `${bucketArn}/expiry/*` },
            {
              Effect: 'Allow',
              Action: 's3:ListBucket',
              Resource: bucketArn,
              ...(listCondition ? { Condition: listCondition } : {}),
            },
          ],
        },
      });
      return spec;
    };
    test.stack.iam.setRole('expirySweep', withRead());
    expect(await read()).toMatchObject({ name: 'NoSuchKey', status: 404 });
    // ListBucket conditioned on a prefix: GetObject's request context has no s3:prefix → 403.
    test.stack.iam.setRole('expirySweep', withRead({ StringLike: { 's3:prefix': ['expiry/*'] } }));
    expect(await read()).toMatchObject({ name: 'AccessDenied', status: 403 });
    test.stack.iam.setRole('expirySweep', role('expirySweep'));
    // Writes outside the role's prefix are refused; inside, allowed.
    const put = (key: string) =>
      attempt(() =>
        s3.send(
          new PutObjectCommand({ Bucket: bucket, Key: key, Body: '{}', ContentType: 'application/json' }),
        ),
      );
    expect((await put('expiry/iam-test.json')).name).toBe('ok');
    expect((await put('reconcile/iam-test.json')).name).toBe('AccessDenied');
    s3.destroy();
  });

  it("a topic rule's action sends as its RoleArn role: without sqs:SendMessage the message goes to the error action", async () => {
    const rule = 'iot-rule:IotTopicRulesRole';
    const delivered = await test.stack.publish('$aws/events/presence/connected/iam-probe', {
      clientId: 'iam-probe',
      eventType: 'connected',
      timestamp: Date.now(),
    });
    expect(delivered.rules[0]?.actions[0]).toMatchObject({ ok: true });
    const spec = structuredClone(test.stack.model.roles.IotTopicRulesRole);
    if (!spec) throw new Error('serverless.yml has no IotTopicRulesRole');
    test.stack.iam.setRole(rule, without(spec, 'sqs:SendMessage'));
    const refused = await test.stack.publish('$aws/events/presence/connected/iam-probe', {
      clientId: 'iam-probe',
      eventType: 'connected',
      timestamp: Date.now(),
    });
    const outcome = refused.rules[0];
    expect(outcome?.actions[0]).toMatchObject({ ok: false });
    expect(JSON.stringify(outcome?.actions[0])).toContain('is not authorized to perform: sqs:SendMessage');
    test.stack.iam.setRole(rule, spec);
  });

  it("the operator's own credentials are not restricted (like an administrator's)", async () => {
    const s3 = new S3Client({
      endpoint: test.stack.endpoints.s3,
      region: test.stack.region,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      forcePathStyle: true,
    });
    const bucket = test.stack.model.buckets[0] ?? '';
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'operator/note.txt', Body: 'hello' }));
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'operator/note.txt' }));
    expect(await out.Body?.transformToString()).toBe('hello');
    s3.destroy();
  });
});
