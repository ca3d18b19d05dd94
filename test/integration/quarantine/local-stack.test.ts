/**
 * quarantineDevice as serverless.yml wires it, on the local stack: QuarantineQueue → poller →
 * the bundled-path handler with its serverless.yml environment → IoT emulator and DynamoDB Local.
 */
import { randomUUID } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DescribeCertificateCommand, IoTClient } from '@aws-sdk/client-iot';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type LocalStack, startLocalStack } from '../../../local/stack';
import { prepareAccount, quarantinePolicyDocument } from '../../../shared/iot/prepare-account';
import { ProvisioningStore } from '../../../shared/store/provisioning-store';
import type { TestTable } from '../../support/dynamo';
import { quarantineRequest, seedActiveDevice } from '../../support/quarantine';

let stack: LocalStack;
let iot: IoTClient;
let store: ProvisioningStore;

beforeAll(async () => {
  stack = await startLocalStack({
    dynamodbEndpoint: inject('dynamodbEndpoint'),
    tableName: `quarantine-stack-${randomUUID().slice(0, 8)}`,
    onError: () => undefined,
  });
  const emulator = stack.emulator;
  if (!emulator) throw new Error('the local stack started without the IoT emulator');
  iot = new IoTClient(emulator.clientConfig());
  // What Custom::FleetgateAccount does at deploy time (the local stack does not run it).
  await prepareAccount(iot, {
    thingGroupName: 'fleetgate-local-quarantine',
    policyName: 'fleetgate-local-quarantine',
    policyDocument: quarantinePolicyDocument({ region: stack.region, accountId: emulator.accountId }),
  });
  const client = new DynamoDBClient({
    endpoint: stack.endpoints.dynamodb,
    region: stack.region,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  store = new ProvisioningStore(DynamoDBDocumentClient.from(client), stack.tableName);
  // Load the handler while nothing else runs: in-process functions share process.env, and a module
  // composed at import time while another function's environment is applied reads the wrong one.
  await stack.invoke('quarantineDevice', { Records: [] });
});
afterAll(async () => {
  iot?.destroy();
  await stack?.stop();
});

describe('quarantineDevice on the local stack', () => {
  it('consumes a request from QuarantineQueue and quarantines the device', async () => {
    // Prepare
    const { certificateId } = await seedActiveDevice({ store } as TestTable, iot, 'SN-STACK-1');
    const sqs = new SQSClient({
      endpoint: stack.endpoints.sqs,
      region: stack.region,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    // Act
    await sqs.send(
      new SendMessageCommand({
        QueueUrl: stack.queueUrls.QuarantineQueue,
        MessageBody: JSON.stringify(
          quarantineRequest({ serial: 'SN-STACK-1', reason: 'CLONE_DUPLICATE_CLIENTID' }),
        ),
      }),
    );
    // Waits for this request only: other consumers (lifecycle, registration) may still be busy with
    // the registry events the test's IoT calls caused.
    const deadline = Date.now() + 20_000;
    while ((await store.getDevice('SN-STACK-1'))?.state !== 'QUARANTINED' && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    sqs.destroy();
    // Assess
    expect(await store.getDevice('SN-STACK-1')).toMatchObject({
      state: 'QUARANTINED',
      quarantine: { reason: 'CLONE_DUPLICATE_CLIENTID' },
    });
    const certificate = await iot.send(new DescribeCertificateCommand({ certificateId }));
    expect(certificate.certificateDescription?.status).toBe('INACTIVE');
  });
});
