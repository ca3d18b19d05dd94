/**
 * What the local IAM checks per request: actions, resource ARNs typed by AWS's Service Authorization
 * Reference, and condition keys — for DynamoDB (transactions item by item), SQS (batch actions as their
 * single-message action) and AWS IoT (resource types from the reference, ids from the request).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { Authorizer, UnmappedCallError } from '../../../local/iam/authorizer';
import { dynamodbChecks, iotCheck, queryPartitionValue, sqsCheck } from '../../../local/iam/requests';
import { ServiceAuthorizationData } from '../../../local/iam/service-data';
import { ROUTES } from '../../../local/iot-emulator/control-plane';

const scope = { region: 'us-east-1', accountId: '123456789012' };
const keys = () => ({ partitionKey: 'PK', indexes: { StateIndex: 'GSI2PK' } });
let data: ServiceAuthorizationData;

beforeAll(async () => {
  data = await ServiceAuthorizationData.load();
});

describe('DynamoDB requests', () => {
  it('authorizes each transaction item as PutItem / UpdateItem / DeleteItem / ConditionCheckItem with its leading key', () => {
    const checks = dynamodbChecks(
      'TransactWriteItems',
      {
        TransactItems: [
          { Put: { TableName: 't', Item: { PK: { S: 'DEVICE#1' }, SK: { S: 'D' } } } },
          { Update: { TableName: 't', Key: { PK: { S: 'CLAIM#c' }, SK: { S: 'C' } } } },
          { Delete: { TableName: 't', Key: { PK: { S: 'KEY#k' }, SK: { S: 'K' } } } },
          { ConditionCheck: { TableName: 't', Key: { PK: { S: 'CERT#x' }, SK: { S: 'X' } } } },
        ],
      },
      scope,
      keys,
    );
    expect(checks.map((check) => [check.action, check.context?.['dynamodb:LeadingKeys']])).toEqual([
      ['dynamodb:PutItem', ['DEVICE#1']],
      ['dynamodb:UpdateItem', ['CLAIM#c']],
      ['dynamodb:DeleteItem', ['KEY#k']],
      ['dynamodb:ConditionCheckItem', ['CERT#x']],
    ]);
    expect(checks[0]?.resources).toEqual([
      { type: 'table', arn: 'arn:aws:dynamodb:us-east-1:123456789012:table/t' },
    ]);
  });

  it('authorizes a Query on an index on the index ARN, with the index partition value as leading key', () => {
    const [check] = dynamodbChecks(
      'Query',
      {
        TableName: 't',
        IndexName: 'StateIndex',
        KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :sk)',
        ExpressionAttributeNames: { '#pk': 'GSI2PK', '#sk': 'GSI2SK' },
        ExpressionAttributeValues: { ':pk': { S: 'STATE#ACTIVE#3' }, ':sk': { S: 'x' } },
      },
      scope,
      keys,
    );
    expect(check?.resources).toEqual([
      { type: 'index', arn: 'arn:aws:dynamodb:us-east-1:123456789012:table/t/index/StateIndex' },
    ]);
    expect(check?.context?.['dynamodb:LeadingKeys']).toEqual(['STATE#ACTIVE#3']);
  });

  it('reads the partition value from an unaliased and a legacy key condition', () => {
    expect(
      queryPartitionValue(
        { KeyConditionExpression: 'PK = :v', ExpressionAttributeValues: { ':v': { S: 'SWEEP#1' } } },
        'PK',
      ),
    ).toBe('SWEEP#1');
    expect(
      queryPartitionValue(
        { KeyConditions: { PK: { ComparisonOperator: 'EQ', AttributeValueList: [{ S: 'RECONCILE#r' }] } } },
        'PK',
      ),
    ).toBe('RECONCILE#r');
  });

  it('authorizes BatchGetItem item by item (the strictest reading of LeadingKeys)', () => {
    const checks = dynamodbChecks(
      'BatchGetItem',
      { RequestItems: { t: { Keys: [{ PK: { S: 'DEVICE#1' } }, { PK: { S: 'CERT#2' } }] } } },
      scope,
      keys,
    );
    expect(checks.map((check) => check.context?.['dynamodb:LeadingKeys'])).toEqual([
      ['DEVICE#1'],
      ['CERT#2'],
    ]);
  });
});

describe('SQS requests', () => {
  it('authorizes batch actions as their single-message action on the queue ARN from the URL', () => {
    expect(
      sqsCheck(
        'DeleteMessageBatch',
        { QueueUrl: 'http://127.0.0.1:9/123456789012/fleetgate-dev-lifecycle' },
        scope,
      ),
    ).toEqual({
      action: 'sqs:DeleteMessage',
      resources: [{ type: 'queue', arn: 'arn:aws:sqs:us-east-1:123456789012:fleetgate-dev-lifecycle' }],
    });
    expect(
      sqsCheck('SendMessageBatch', { QueueUrl: 'https://sqs.us-east-1.amazonaws.com/123456789012/q' }, scope)
        .action,
    ).toBe('sqs:SendMessage');
  });
});

describe('AWS IoT requests', () => {
  it('types AttachThingPrincipal on the certificate (the Service Authorization Reference), with iot:thingArn', () => {
    const check = iotCheck(
      'AttachThingPrincipal',
      { thingName: 'SN-1', principal: 'arn:aws:iot:us-east-1:123456789012:cert/abc' },
      scope,
      data,
    );
    expect(check.resources).toEqual([{ type: 'cert', arn: 'arn:aws:iot:us-east-1:123456789012:cert/abc' }]);
    expect(check.context).toEqual({ 'iot:thingArn': 'arn:aws:iot:us-east-1:123456789012:thing/SN-1' });
  });

  it('types AttachPolicy on its target (certificate or thing group), never on the policy', () => {
    expect(
      iotCheck(
        'AttachPolicy',
        { policyName: 'p', target: 'arn:aws:iot:us-east-1:123456789012:thinggroup/g' },
        scope,
        data,
      ).resources,
    ).toEqual([{ type: 'thinggroup', arn: 'arn:aws:iot:us-east-1:123456789012:thinggroup/g' }]);
  });

  it('maps every operation the emulator serves onto the reference, with each required resource found in its input', () => {
    const sample: Record<string, unknown> = {
      certificateId: 'c0ffee',
      caCertificateId: 'ca0ffee',
      thingName: 'SN-1',
      thingGroupName: 'g',
      policyName: 'p',
      templateName: 't',
      topic: 'fleetgate/SN-1/rotate/accepted',
      principal: 'arn:aws:iot:us-east-1:123456789012:cert/c0ffee',
      target: 'arn:aws:iot:us-east-1:123456789012:cert/c0ffee',
    };
    const authorizer = new Authorizer(data, { ...scope, stack: 'unit' });
    const key = authorizer.registerFunction('probe', 'fleetgate-unit-probe', {
      logicalId: 'ProbeRole',
      roleName: 'probe',
      arn: 'arn:aws:iam::123456789012:role/probe',
      policies: [
        { name: 'all', document: { Statement: [{ Effect: 'Allow', Action: 'iot:*', Resource: '*' }] } },
      ],
    });
    for (const route of ROUTES) {
      expect(
        () => authorizer.authorize(key, iotCheck(route.api, sample, scope, data)),
        route.api,
      ).not.toThrow();
    }
  });

  it('refuses to guess for an action the reference does not have', () => {
    expect(() => iotCheck('MadeUpOperation', {}, scope, data)).toThrow(UnmappedCallError);
  });
});
