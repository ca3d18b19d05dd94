/**
 * The whole local stack for a test file (DynamoDB Local from the global setup, local SQS, the IoT
 * emulator with its MQTT endpoint, every function of serverless.yml), with an IoT client on the
 * emulator and the store on the stack's own table.
 */
import { randomUUID } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IoTClient } from '@aws-sdk/client-iot';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { inject } from 'vitest';
import type { IotEmulator } from '../../local/iot-emulator';
import { type LocalStack, startLocalStack } from '../../local/stack';
import { ProvisioningStore } from '../../shared/store/provisioning-store';

export interface TestStack {
  stack: LocalStack;
  emulator: IotEmulator;
  iot: IoTClient;
  store: ProvisioningStore;
  stop(): Promise<void>;
}

/**
 * Starts the stack on a fresh table named `<name>-<random>`; handler logs are silenced.
 * @param options.overrides environment for the functions (on top of serverless.yml's)
 * @param options.iotMaxAttempts SDK attempts of the IoT client (1: see throttling and refusals as they are)
 */
export async function startTestStack(
  name: string,
  options: { overrides?: Record<string, string>; iotMaxAttempts?: number } = {},
): Promise<TestStack> {
  const stack = await startLocalStack({
    dynamodbEndpoint: inject('dynamodbEndpoint'),
    tableName: `${name}-${randomUUID().slice(0, 8)}`,
    overrides: { POWERTOOLS_LOG_LEVEL: 'SILENT', ...options.overrides },
  });
  const emulator = stack.emulator;
  if (!emulator) {
    await stack.stop();
    throw new Error('the local stack started without the IoT emulator');
  }
  const iot = new IoTClient({
    ...emulator.clientConfig(),
    ...(options.iotMaxAttempts !== undefined ? { maxAttempts: options.iotMaxAttempts } : {}),
  });
  const ddb = new DynamoDBClient({
    endpoint: stack.endpoints.dynamodb,
    region: stack.region,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  const store = new ProvisioningStore(DynamoDBDocumentClient.from(ddb), stack.tableName);
  return {
    stack,
    emulator,
    iot,
    store,
    stop: async () => {
      iot.destroy();
      ddb.destroy();
      await stack.stop();
      // Every call a function made was one its role allows, as AWS would have it.
      const denied = stack.iam.denials().map((d) => `${d.functionName}: ${d.action} on ${d.resource}`);
      if (denied.length > 0) throw new Error(`the local IAM denied:\n${[...new Set(denied)].join('\n')}`);
    },
  };
}
