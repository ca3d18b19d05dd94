/**
 * What IAM checks for a request, per service: the action, the resource ARNs and the condition keys,
 * as the services document them.
 * - DynamoDB: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/specifying-conditions.html
 *   (each item of a transaction is authorized as its own PutItem/UpdateItem/DeleteItem/
 *   ConditionCheckItem/GetItem; `dynamodb:LeadingKeys` is the item's partition key value).
 * - SQS: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-api-permissions-reference.html
 *   (batch actions are authorized as their single-message action).
 * - AWS IoT: https://docs.aws.amazon.com/iot/latest/developerguide/security_iam_service-with-iam.html
 *   (the resource types come from the Service Authorization Reference; the ids from the request).
 * - S3: https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-with-s3-policy-actions.html
 */
import { type CallCheck, type ResourceRef, UnmappedCallError } from './authorizer';
import type { ServiceAuthorizationData } from './service-data';
import { formatArn } from './service-data';

export interface AccountScope {
  region: string;
  accountId: string;
}

// ─── DynamoDB ────────────────────────────────────────────────────────────────────────────────────

type AttributeValue = Record<string, unknown>;

/** A table's key attributes: its partition key and each index's. */
export interface TableKeys {
  partitionKey: string;
  indexes: Record<string, string>;
}

const TRANSACT_WRITE: Record<string, string> = {
  Put: 'dynamodb:PutItem',
  Update: 'dynamodb:UpdateItem',
  Delete: 'dynamodb:DeleteItem',
  ConditionCheck: 'dynamodb:ConditionCheckItem',
};

/** The string IAM compares for an attribute value (S, N or B). */
function scalar(value: AttributeValue | undefined): string | undefined {
  if (!value) return undefined;
  for (const type of ['S', 'N', 'B']) {
    const inner = value[type];
    if (typeof inner === 'string') return inner;
  }
  return undefined;
}

/**
 * The checks for one DynamoDB JSON request (`X-Amz-Target: DynamoDB_20120810.<Operation>`).
 * `keys(table)` gives a table's key attributes (undefined when the table does not exist: the call
 * then needs the permission on the table all the same, and DynamoDB answers what it answers).
 */
export function dynamodbChecks(
  operation: string,
  body: Record<string, unknown>,
  scope: AccountScope,
  keys: (table: string) => TableKeys | undefined,
): CallCheck[] {
  const tableArn = (table: string) => `arn:aws:dynamodb:${scope.region}:${scope.accountId}:table/${table}`;
  const table = (name: string): ResourceRef => ({ type: 'table', arn: tableArn(name) });
  const leading = (name: string, item: Record<string, AttributeValue> | undefined): string[] => {
    const key = keys(name)?.partitionKey;
    const value = key ? scalar(item?.[key]) : undefined;
    return value === undefined ? [] : [value];
  };
  const itemCheck = (
    action: string,
    name: string,
    item: Record<string, AttributeValue> | undefined,
    extra: Record<string, string> = {},
  ): CallCheck => ({
    action,
    resources: [table(name)],
    context: { 'dynamodb:LeadingKeys': leading(name, item), ...extra },
  });
  const tableName = typeof body.TableName === 'string' ? body.TableName : undefined;
  const returnValues: Record<string, string> =
    typeof body.ReturnValues === 'string' ? { 'dynamodb:ReturnValues': body.ReturnValues } : {};
  const select: Record<string, string> =
    typeof body.Select === 'string' ? { 'dynamodb:Select': body.Select } : {};
  switch (operation) {
    case 'GetItem':
    case 'UpdateItem':
    case 'DeleteItem':
      return [
        itemCheck(
          `dynamodb:${operation}`,
          need(tableName, operation),
          body.Key as Record<string, AttributeValue>,
          returnValues,
        ),
      ];
    case 'PutItem':
      return [
        itemCheck(
          'dynamodb:PutItem',
          need(tableName, operation),
          body.Item as Record<string, AttributeValue>,
          returnValues,
        ),
      ];
    case 'Query':
    case 'Scan': {
      const name = need(tableName, operation);
      const index = typeof body.IndexName === 'string' ? body.IndexName : undefined;
      const resource: ResourceRef = index
        ? { type: 'index', arn: `${tableArn(name)}/index/${index}` }
        : table(name);
      const context: Record<string, string | string[]> = { ...select };
      if (operation === 'Query') {
        const tableKeys = keys(name);
        const partitionKey = index ? tableKeys?.indexes[index] : tableKeys?.partitionKey;
        const value = partitionKey ? queryPartitionValue(body, partitionKey) : undefined;
        context['dynamodb:LeadingKeys'] = value === undefined ? [] : [value];
      }
      return [{ action: `dynamodb:${operation}`, resources: [resource], context }];
    }
    case 'BatchGetItem': {
      const checks: CallCheck[] = [];
      for (const [name, request] of Object.entries(
        (body.RequestItems ?? {}) as Record<string, { Keys?: unknown[] }>,
      )) {
        for (const key of request.Keys ?? []) {
          checks.push(itemCheck('dynamodb:BatchGetItem', name, key as Record<string, AttributeValue>));
        }
      }
      return checks;
    }
    case 'BatchWriteItem': {
      const checks: CallCheck[] = [];
      for (const [name, requests] of Object.entries((body.RequestItems ?? {}) as Record<string, unknown[]>)) {
        for (const request of requests) {
          const entry = request as { PutRequest?: { Item?: unknown }; DeleteRequest?: { Key?: unknown } };
          const item = (entry.PutRequest?.Item ?? entry.DeleteRequest?.Key) as Record<string, AttributeValue>;
          checks.push(itemCheck('dynamodb:BatchWriteItem', name, item));
        }
      }
      return checks;
    }
    case 'TransactWriteItems':
      return ((body.TransactItems ?? []) as Array<Record<string, Record<string, unknown>>>).map((entry) => {
        const [kind, request] = Object.entries(entry)[0] ?? [];
        const action = kind ? TRANSACT_WRITE[kind] : undefined;
        if (!action || !request) throw new UnmappedCallError(`TransactWriteItems: unknown item ${kind}`);
        const item = (request.Item ?? request.Key) as Record<string, AttributeValue>;
        const values: Record<string, string> =
          typeof request.ReturnValuesOnConditionCheckFailure === 'string'
            ? { 'dynamodb:ReturnValues': request.ReturnValuesOnConditionCheckFailure }
            : {};
        return itemCheck(action, need(request.TableName as string | undefined, operation), item, {
          'dynamodb:EnclosingOperation': 'TransactWriteItems',
          ...values,
        });
      });
    case 'TransactGetItems':
      return ((body.TransactItems ?? []) as Array<{ Get?: Record<string, unknown> }>).map((entry) =>
        itemCheck(
          'dynamodb:GetItem',
          need(entry.Get?.TableName as string | undefined, operation),
          entry.Get?.Key as Record<string, AttributeValue>,
          { 'dynamodb:EnclosingOperation': 'TransactGetItems' },
        ),
      );
    default:
      // Table-level operations (DescribeTable, CreateTable, UpdateTimeToLive, …) and account-level
      // ones (ListTables): the authorizer decides from the reference whether a resource applies.
      return [{ action: `dynamodb:${operation}`, resources: tableName ? [table(tableName)] : [] }];
  }
}

function need(value: string | undefined, operation: string): string {
  if (!value) throw new UnmappedCallError(`${operation} without a TableName`);
  return value;
}

/** The partition key value a Query's key condition fixes (`#pk = :v`, or legacy KeyConditions EQ). */
export function queryPartitionValue(body: Record<string, unknown>, partitionKey: string): string | undefined {
  const names = (body.ExpressionAttributeNames ?? {}) as Record<string, string>;
  const values = (body.ExpressionAttributeValues ?? {}) as Record<string, AttributeValue>;
  const expression = typeof body.KeyConditionExpression === 'string' ? body.KeyConditionExpression : '';
  const equality = /(#?[A-Za-z0-9_.]+)\s*=\s*(:[A-Za-z0-9_]+)|(:[A-Za-z0-9_]+)\s*=\s*(#?[A-Za-z0-9_.]+)/g;
  for (const match of expression.matchAll(equality)) {
    const nameToken = match[1] ?? match[4] ?? '';
    const valueToken = match[2] ?? match[3] ?? '';
    const name = nameToken.startsWith('#') ? names[nameToken] : nameToken;
    if (name === partitionKey) return scalar(values[valueToken]);
  }
  const legacy = (body.KeyConditions ?? {}) as Record<
    string,
    { ComparisonOperator?: string; AttributeValueList?: AttributeValue[] }
  >;
  const condition = legacy[partitionKey];
  if (condition?.ComparisonOperator === 'EQ') return scalar(condition.AttributeValueList?.[0]);
  return undefined;
}

// ─── SQS ─────────────────────────────────────────────────────────────────────────────────────────

const SQS_BATCH: Record<string, string> = {
  SendMessageBatch: 'SendMessage',
  DeleteMessageBatch: 'DeleteMessage',
  ChangeMessageVisibilityBatch: 'ChangeMessageVisibility',
};

/** The check for one SQS request (JSON protocol `AmazonSQS.<Operation>`, or query `Action=`). */
export function sqsCheck(operation: string, body: Record<string, unknown>, scope: AccountScope): CallCheck {
  const action = `sqs:${SQS_BATCH[operation] ?? operation}`;
  const queueUrl = typeof body.QueueUrl === 'string' ? body.QueueUrl : undefined;
  let queueName: string | undefined;
  let account = scope.accountId;
  if (queueUrl) {
    const path = safeUrl(queueUrl)?.pathname.split('/').filter(Boolean) ?? [];
    queueName = path[path.length - 1];
    if (path.length >= 2 && /^\d{12}$/.test(path[path.length - 2] ?? ''))
      account = path[path.length - 2] ?? account;
  } else if (typeof body.QueueName === 'string') {
    queueName = body.QueueName;
  }
  return {
    action,
    resources: queueName
      ? [{ type: 'queue', arn: `arn:aws:sqs:${scope.region}:${account}:${queueName}` }]
      : [],
  };
}

function safeUrl(text: string): URL | undefined {
  try {
    return new URL(text);
  } catch {
    return undefined;
  }
}

// ─── AWS IoT ─────────────────────────────────────────────────────────────────────────────────────

/** Where each IoT resource type's id is in an operation's input. */
const IOT_IDS: Record<string, (input: Record<string, unknown>, api: string) => string | undefined> = {
  cert: (input, api) =>
    /CACertificate/.test(api)
      ? undefined
      : (idFromArn(input.principal, 'cert') ?? idFromArn(input.target, 'cert') ?? str(input.certificateId)),
  cacert: (input, api) =>
    str(input.caCertificateId) ?? (/CACertificate/.test(api) ? str(input.certificateId) : undefined),
  thing: (input) => str(input.thingName) ?? idFromArn(input.thingArn, 'thing'),
  thinggroup: (input) =>
    idFromArn(input.target, 'thinggroup') ??
    str(input.thingGroupName) ??
    idFromArn(input.thingGroupArn, 'thinggroup'),
  dynamicthinggroup: (input) => str(input.thingGroupName),
  policy: (input) => str(input.policyName),
  provisioningtemplate: (input) => str(input.templateName),
  topic: (input) => str(input.topic),
  thingtype: (input) => str(input.thingTypeName),
  billinggroup: (input) => str(input.billingGroupName),
  rule: (input) => str(input.ruleName),
  rolealias: (input) => str(input.roleAlias),
  index: (input) => str(input.indexName),
};

const str = (value: unknown): string | undefined =>
  typeof value === 'string' && value !== '' ? value : undefined;

/** `arn:aws:iot:r:a:cert/<id>` → `<id>` when the ARN is of that type; a bare id for `cert`. */
function idFromArn(value: unknown, type: string): string | undefined {
  if (typeof value !== 'string' || value === '') return undefined;
  const match = /^arn:[^:]+:iot:[^:]*:[^:]*:([a-z]+)\/(.+)$/.exec(value);
  if (match) return match[1] === type ? match[2] : undefined;
  return undefined;
}

/**
 * The check for one AWS IoT control- or data-plane operation, its resources typed and formatted by
 * the Service Authorization Reference. Data-plane `Publish` is `iot:Publish` on the topic.
 */
export function iotCheck(
  api: string,
  input: Record<string, unknown>,
  scope: AccountScope,
  data: ServiceAuthorizationData,
): CallCheck {
  const action = `iot:${api}`;
  const details = data.action(action);
  if (!details)
    throw new UnmappedCallError(`${action} is not an action of the Service Authorization Reference`);
  const resources: ResourceRef[] = [];
  for (const type of details.resourceTypes) {
    const extract = IOT_IDS[type.name];
    // Tag operations (TagResource, UntagResource, ListTagsForResource) name their resource by ARN.
    const id = extract?.(input, api) ?? idFromArn(input.resourceArn, type.name);
    if (id === undefined) continue;
    resources.push({
      type: type.name,
      arn: formatArn(type.arnFormat, { region: scope.region, account: scope.accountId, resource: [id] }),
    });
  }
  const context: Record<string, string> = {};
  if (details.conditionKeys.includes('iot:thingArn') && typeof input.thingName === 'string') {
    context['iot:thingArn'] = `arn:aws:iot:${scope.region}:${scope.accountId}:thing/${input.thingName}`;
  }
  return { action: details.action, resources, context };
}

// ─── S3 ──────────────────────────────────────────────────────────────────────────────────────────

export function s3ObjectArn(bucket: string, key: string): ResourceRef {
  return { type: 'object', arn: `arn:aws:s3:::${bucket}/${key}` };
}

export function s3BucketArn(bucket: string): ResourceRef {
  return { type: 'bucket', arn: `arn:aws:s3:::${bucket}` };
}
