/**
 * Where a command acts: the running local stack, explicit endpoints from the environment, AWS
 * (`--target aws`), or — when none is running — an ephemeral local stack for this command only.
 */
import { dirname, join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IoTClient } from '@aws-sdk/client-iot';
import { GetQueueUrlCommand, SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { startDynamoDbLocal } from '../local/dynamodb-local';
import { loadServerlessConfig } from '../local/serverless-config';
import { type LocalStackOptions, type StackEndpoints, startLocalStack } from '../local/stack';
import { localHandle, remoteHandle, type StackHandle } from '../local/stack-control';
import { readStackFile, stackFilePath } from '../local/stack-file';
import { buildStackModel, type DeclaredIotNames } from '../local/stack-model';
import { ensureTable } from '../local/table';
import { type Config, loadConfig } from '../shared/config';
import { DeadLetters, deadLetterQueues, type Republish } from '../shared/dlq/dead-letters';
import { ProvisioningStore } from '../shared/store/provisioning-store';
import { CommandFailure, type Output, UsageError } from './io';

export const LOCAL_TABLE_NAME = 'fleetgate-local-provisioning';
const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };

export interface StoreTarget {
  kind: 'stack' | 'env' | 'aws' | 'ephemeral';
  store: ProvisioningStore;
  tableName: string;
  dynamodbEndpoint?: string;
  close(): Promise<void>;
}

export async function resolveStoreTarget(
  options: { target?: string; table?: string },
  output: Output,
): Promise<StoreTarget> {
  const target = options.target ?? 'local';
  if (target !== 'local' && target !== 'aws')
    throw new UsageError(`--target must be local or aws (got "${target}")`);
  if (target === 'aws') {
    const tableName = options.table ?? process.env.TABLE_NAME;
    if (!tableName) throw new UsageError('--target aws needs --table or TABLE_NAME');
    return fromClient('aws', new DynamoDBClient({}), tableName);
  }
  const stack = readStackFile();
  if (stack?.endpoints.dynamodb) {
    return fromClient(
      'stack',
      new DynamoDBClient({
        endpoint: stack.endpoints.dynamodb,
        region: stack.region,
        credentials: LOCAL_CREDENTIALS,
      }),
      options.table ?? stack.tableName,
      stack.endpoints.dynamodb,
    );
  }
  const endpoint = process.env.AWS_ENDPOINT_URL_DYNAMODB;
  if (endpoint) {
    const tableName = options.table ?? process.env.TABLE_NAME ?? LOCAL_TABLE_NAME;
    const client = new DynamoDBClient({
      endpoint,
      region: process.env.AWS_REGION ?? 'us-east-1',
      credentials: LOCAL_CREDENTIALS,
    });
    await ensureTable(client, tableName);
    return fromClient('env', client, tableName, endpoint);
  }
  output.warn(
    'fleetgate: no local stack is running (start one with `fleetgate local up`); using an ephemeral one for this command',
  );
  const ddb = await startDynamoDbLocal();
  const client = new DynamoDBClient({
    endpoint: ddb.endpoint,
    region: 'us-east-1',
    credentials: LOCAL_CREDENTIALS,
  });
  const tableName = options.table ?? LOCAL_TABLE_NAME;
  try {
    await ensureTable(client, tableName);
  } catch (error) {
    // Never leave the ephemeral DynamoDB Local (or this process) running after a failed start.
    client.destroy();
    await ddb.stop();
    throw error;
  }
  const resolved = fromClient('ephemeral', client, tableName, ddb.endpoint);
  return {
    ...resolved,
    close: async () => {
      await resolved.close();
      await ddb.stop();
    },
  };
}

function fromClient(
  kind: StoreTarget['kind'],
  client: DynamoDBClient,
  tableName: string,
  endpoint?: string,
): StoreTarget {
  const doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  return {
    kind,
    store: new ProvisioningStore(doc, tableName),
    tableName,
    ...(endpoint ? { dynamodbEndpoint: endpoint } : {}),
    close: async () => {
      client.destroy();
    },
  };
}

/** A local stack to publish, invoke and settle against: the running one, or an ephemeral one. */
export interface StackTarget {
  kind: 'stack' | 'ephemeral';
  handle: StackHandle;
  close(): Promise<void>;
}

/**
 * serverless.yml the local stack reads (`FLEETGATE_SERVERLESS_FILE`, default the project's), and the
 * MQTT endpoint's port (`FLEETGATE_MQTT_PORT`, default a free one).
 */
export function localStackOptions(): LocalStackOptions {
  const serverlessFile = process.env.FLEETGATE_SERVERLESS_FILE;
  const root = process.env.FLEETGATE_HANDLER_ROOT;
  // A fixed port for the MQTT device endpoint (default: a free one), handy for hand-typed clients.
  const mqttPort = Number(process.env.FLEETGATE_MQTT_PORT);
  return {
    ...(serverlessFile ? { serverlessFile } : {}),
    ...(root ? { root } : {}),
    ...(Number.isInteger(mqttPort) && mqttPort > 0 ? { mqttPort } : {}),
    // The local S3's buckets live beside the stack file (.fleetgate/s3), across restarts, like an account's.
    s3Root: join(dirname(stackFilePath()), 's3'),
  };
}

/**
 * The running local stack (`.fleetgate/stack.json`), or — when none is running — an ephemeral one
 * started for this command and stopped by `close()`.
 */
export async function resolveStackTarget(output: Output): Promise<StackTarget> {
  const stack = readStackFile();
  if (stack && typeof stack.control === 'string') {
    return {
      kind: 'stack',
      handle: remoteHandle({
        control: stack.control,
        endpoints: stack.endpoints as unknown as StackEndpoints,
        region: stack.region,
        tableName: stack.tableName,
        queues: stack.queues ?? {},
        ...(stack.declared ? { declared: stack.declared as DeclaredIotNames } : {}),
      }),
      close: async () => undefined,
    };
  }
  output.warn(
    'fleetgate: no local stack is running (start one with `fleetgate local up`); using an ephemeral one for this command',
  );
  const local = await startLocalStack(localStackOptions());
  return { kind: 'ephemeral', handle: localHandle(local), close: () => local.stop() };
}

/** The IoT control plane a command acts on: AWS, the running stack's emulator, or `AWS_ENDPOINT_URL_IOT`. */
export interface IotTarget {
  kind: 'stack' | 'env' | 'aws';
  iot: IoTClient;
  close(): void;
}

/** The IoT target, or undefined when none is reachable (no stack, no endpoint, not `--target aws`). */
export function resolveIotTarget(options: { target?: string }): IotTarget | undefined {
  const target = checkTarget(options.target);
  const wrap = (kind: IotTarget['kind'], iot: IoTClient): IotTarget => ({
    kind,
    iot,
    close: () => iot.destroy(),
  });
  if (target === 'aws') return wrap('aws', new IoTClient({}));
  const stack = readStackFile();
  if (stack?.endpoints.iot) {
    return wrap(
      'stack',
      new IoTClient({ endpoint: stack.endpoints.iot, region: stack.region, credentials: LOCAL_CREDENTIALS }),
    );
  }
  const endpoint = process.env.AWS_ENDPOINT_URL_IOT;
  if (endpoint) {
    return wrap(
      'env',
      new IoTClient({
        endpoint,
        region: process.env.AWS_REGION ?? 'us-east-1',
        credentials: LOCAL_CREDENTIALS,
      }),
    );
  }
  return undefined;
}

/** The queues of serverless.yml on a target, with what the dead-letter tools need. */
export interface QueueTarget {
  kind: 'stack' | 'env' | 'aws';
  stage: string;
  deadLetters: DeadLetters;
  /** Publishes through the local rules engine (running stack only): replays rule errors. */
  republish?: Republish;
  close(): void;
}

/**
 * Queues on AWS (`--target aws`, names for `--stage`), on the running local stack, or on the SQS
 * endpoint in `AWS_ENDPOINT_URL_SQS` (names for `--stage`, default `local`).
 * @throws CommandFailure when there is no local stack and no endpoint: an ephemeral stack has no
 *   dead letters to look at.
 */
export function resolveQueueTarget(options: { target?: string; stage?: string }): QueueTarget {
  const target = checkTarget(options.target);
  const serverlessFile = process.env.FLEETGATE_SERVERLESS_FILE;
  const config = loadServerlessConfig(...(serverlessFile ? [serverlessFile] : []));
  const build = (stage: string, region: string) => buildStackModel(config, { stage, region });
  const byName = (sqs: SQSClient) => {
    const cache = new Map<string, string>();
    return async (name: string) => {
      const known = cache.get(name);
      if (known) return known;
      const out = await sqs.send(new GetQueueUrlCommand({ QueueName: name }));
      const url = out.QueueUrl ?? '';
      cache.set(name, url);
      return url;
    };
  };
  if (target === 'aws') {
    const stage = options.stage ?? 'dev';
    const sqs = new SQSClient({});
    return queueTarget('aws', stage, sqs, build(stage, process.env.AWS_REGION ?? 'us-east-1'), byName(sqs));
  }
  const stack = readStackFile();
  if (stack?.endpoints.sqs) {
    const sqs = new SQSClient({
      endpoint: stack.endpoints.sqs,
      region: stack.region,
      credentials: LOCAL_CREDENTIALS,
    });
    const known = stack.queues ?? {};
    const lookup = byName(sqs);
    const handle =
      typeof stack.control === 'string'
        ? remoteHandle({
            control: stack.control,
            endpoints: stack.endpoints as unknown as StackEndpoints,
            region: stack.region,
            tableName: stack.tableName,
            queues: known,
          })
        : undefined;
    return queueTarget(
      'stack',
      'local',
      sqs,
      build('local', stack.region),
      async (name) => known[name] ?? lookup(name),
      handle
        ? async (topic, payload) => {
            await handle.publish(topic, payloadOf(payload));
          }
        : undefined,
    );
  }
  const endpoint = process.env.AWS_ENDPOINT_URL_SQS;
  if (endpoint) {
    const stage = options.stage ?? 'local';
    const region = process.env.AWS_REGION ?? 'us-east-1';
    const sqs = new SQSClient({ endpoint, region, credentials: LOCAL_CREDENTIALS });
    return queueTarget('env', stage, sqs, build(stage, region), byName(sqs));
  }
  throw new CommandFailure(
    'no local stack is running (start one with `fleetgate local up`), AWS_ENDPOINT_URL_SQS is not set and --target is not aws',
  );
}

function queueTarget(
  kind: QueueTarget['kind'],
  stage: string,
  sqs: SQSClient,
  model: ReturnType<typeof buildStackModel>,
  urlOf: (name: string) => Promise<string>,
  republish?: Republish,
): QueueTarget {
  const declarations = model.queues.map((queue) => ({
    logicalId: queue.logicalId,
    name: queue.name,
    ...(queue.redrive ? { deadLetterQueue: queue.redrive.deadLetterQueue } : {}),
  }));
  const ruleErrors = model.rules.flatMap((rule) =>
    rule.errorAction?.type === 'sqs' ? [rule.errorAction.queue] : [],
  );
  const deadLetters = new DeadLetters(sqs, declarations, deadLetterQueues(declarations, ruleErrors), urlOf);
  return { kind, stage, deadLetters, ...(republish ? { republish } : {}), close: () => sqs.destroy() };
}

/** A rule's original payload as the rules engine takes it: JSON when it is JSON, else text. */
function payloadOf(payload: Buffer): unknown {
  const text = payload.toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function checkTarget(target: string | undefined): 'local' | 'aws' {
  const value = target ?? 'local';
  if (value !== 'local' && value !== 'aws')
    throw new UsageError(`--target must be local or aws (got "${value}")`);
  return value;
}

/**
 * What a report-writing command (`sweep`, `reconcile`) runs with: the instant (`--now`, default
 * now), the configuration from the usual variables, and where the report goes (`--out DIR`, else
 * the configured destination).
 * @throws UsageError for a `--now` that is not an ISO-8601 time.
 */
export function reportRun(options: { now?: string; out?: string }): {
  now: string;
  config: Config;
  destination: string;
} {
  const nowMs = options.now === undefined ? Date.now() : Date.parse(options.now);
  if (Number.isNaN(nowMs)) throw new UsageError(`--now: not an ISO-8601 time: ${options.now}`);
  // The store target decides the table; the other settings come from the usual variables.
  const config = loadConfig({ ...process.env, TABLE_NAME: process.env.TABLE_NAME ?? 'fleetgate-local' });
  const destination = options.out ? `file://${options.out}` : config.reportDestination;
  return { now: new Date(nowMs).toISOString(), config, destination };
}
