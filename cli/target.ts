/**
 * Where a command acts: the running local stack, explicit endpoints from the environment, AWS
 * (`--target aws`), or — when none is running — an ephemeral local stack for this command only.
 */

import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Command } from 'commander';
// The local stack, DynamoDB Local and serverless.yml's model are loaded only by the commands and
// paths that use them (dynamic imports below): a command on a running stack starts fast.
import type { StackEndpoints } from '../local/stack';
import type { StackHandle } from '../local/stack-control';
import { readStackFile, stackLogSink } from '../local/stack-file';
import type { DeclaredIotNames } from '../local/stack-model';
import { ProvisioningStore } from '../shared/store/provisioning-store';
import { type Output, UsageError } from './io';
import { localStackOptions } from './stack-options';

export { localStackOptions } from './stack-options';

export const LOCAL_TABLE_NAME = 'fleetgate-local-provisioning';
export const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };

export interface StoreTarget {
  kind: 'stack' | 'env' | 'aws' | 'ephemeral';
  store: ProvisioningStore;
  /** The document client under `store`, for the CLI's own reads (certificate id prefixes). */
  client: DynamoDBDocumentClient;
  tableName: string;
  dynamodbEndpoint?: string;
  close(): Promise<void>;
}

/** `--json` and `--target local|aws`, the options of every command that reads or writes a target. */
export function jsonAndTarget(command: Command): Command {
  return command
    .option('--json', 'print one JSON document')
    .option('--target <target>', 'local (default) or aws');
}

/** Runs `body` on the store target `options` name and closes it. */
export async function withStore<T>(
  options: { target?: string; table?: string },
  output: Output,
  body: (target: StoreTarget) => Promise<T>,
): Promise<T> {
  const target = await resolveStoreTarget(options, output);
  try {
    return await body(target);
  } finally {
    await target.close();
  }
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
    const { ensureTable } = await import('../local/table');
    await ensureTable(client, tableName);
    return fromClient('env', client, tableName, endpoint);
  }
  output.warn(
    'fleetgate: no local stack is running (start one with `fleetgate local up`); using an ephemeral one for this command',
  );
  const { startDynamoDbLocal } = await import('../local/dynamodb-local');
  const ddb = await startDynamoDbLocal();
  const client = new DynamoDBClient({
    endpoint: ddb.endpoint,
    region: 'us-east-1',
    credentials: LOCAL_CREDENTIALS,
  });
  const tableName = options.table ?? LOCAL_TABLE_NAME;
  try {
    const { ensureTable } = await import('../local/table');
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
    client: doc,
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
 * The running local stack (`.fleetgate/stack.json`), or — when none is running — an ephemeral one
 * started for this command and stopped by `close()`.
 */
export async function resolveStackTarget(output: Output): Promise<StackTarget> {
  const stack = readStackFile();
  if (stack && typeof stack.control === 'string') {
    const { remoteHandle } = await import('../local/stack-control');
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
  const [{ startLocalStack }, { localHandle }] = await Promise.all([
    import('../local/stack'),
    import('../local/stack-control'),
  ]);
  // Its functions' logs go to the stack log, not this command's stdout (the --json document).
  const options = localStackOptions();
  const local = await startLocalStack(
    process.env.FLEETGATE_HANDLER_LOGS
      ? options
      : { ...options, handlerOutput: stackLogSink(undefined, 'ephemeral') },
  );
  return { kind: 'ephemeral', handle: localHandle(local), close: () => local.stop() };
}

export function checkTarget(target: string | undefined): 'local' | 'aws' {
  const value = target ?? 'local';
  if (value !== 'local' && value !== 'aws')
    throw new UsageError(`--target must be local or aws (got "${value}")`);
  return value;
}
