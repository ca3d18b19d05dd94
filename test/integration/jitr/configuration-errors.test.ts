/**
 * A configuration error is retried and dead-lettered, never acknowledged: JITR on the local stack
 * (real functions, local SQS with its redrive) with the device policy deleted. Every delivery fails
 * on AttachPolicy … ResourceNotFoundException, the message ends in RegistrationDLQ with its body,
 * nothing of the registration is half done in IoT or committed in the store — and once the policy
 * is back, replaying the dead letter registers the device. RegistrationQueue's visibility timeout
 * is cut to 1 s and maxReceiveCount to 3, so the redrive takes seconds.
 */

import { randomUUID } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DeletePolicyCommand,
  DescribeCertificateCommand,
  DescribeThingCommand,
  IoTClient,
} from '@aws-sdk/client-iot';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { materializeIotResources } from '../../../local/iot-resources';
import { createCertificateAuthority, createDeviceCertificate } from '../../../local/pki';
import { loadServerlessConfig } from '../../../local/serverless-config';
import { type LocalStack, startLocalStack } from '../../../local/stack';
import { deadLetterDeclarations, declaredIotResources } from '../../../local/stack-model';
import { DeadLetters, deadLetterQueues } from '../../../shared/dlq/dead-letters';
import { ProvisioningStore } from '../../../shared/store/provisioning-store';
import { registerTrustedCa } from '../../support/device-ca';
import { allowlistedDevice } from '../../support/devices';
import { PROJECT_ROOT, serverlessCopy } from '../../support/serverless-copy';
import { queueDepth, waitUntil } from '../../support/wait';

let file: string;
let stack: LocalStack;
let iot: IoTClient;
let sqs: SQSClient;
let ddb: DynamoDBClient;
let store: ProvisioningStore;

beforeAll(async () => {
  file = await serverlessCopy(undefined, { functions: 'project' });
  stack = await startLocalStack({
    serverlessFile: file,
    root: PROJECT_ROOT,
    dynamodbEndpoint: inject('dynamodbEndpoint'),
    tableName: `config-errors-${randomUUID().slice(0, 8)}`,
    mqttPort: false,
    // A replayed message is a new delivery: let the failed one's registration lease lapse quickly.
    overrides: { POWERTOOLS_LOG_LEVEL: 'SILENT', REGISTRATION_LEASE_SECONDS: '1' },
    onError: () => undefined,
  });
  iot = new IoTClient(stack.emulator?.clientConfig() ?? {});
  sqs = new SQSClient({
    endpoint: stack.endpoints.sqs,
    region: stack.region,
    credentials: { accessKeyId: 'l', secretAccessKey: 'l' },
  });
  ddb = new DynamoDBClient({
    endpoint: stack.endpoints.dynamodb,
    region: stack.region,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  store = new ProvisioningStore(DynamoDBDocumentClient.from(ddb), stack.tableName);
}, 120_000);

afterAll(async () => {
  iot?.destroy();
  sqs?.destroy();
  ddb?.destroy();
  await stack?.stop();
});

const depth = (queueName: string) => queueDepth(sqs, stack.queues[queueName]);

function deadLetters(): DeadLetters {
  const { declarations } = deadLetterDeclarations(stack.model);
  return new DeadLetters(
    sqs,
    declarations,
    deadLetterQueues(declarations, []),
    async (name) => stack.queues[name] ?? '',
  );
}

describe('JITR with the device policy missing', () => {
  it('fails every delivery, dead-letters the event with its body, acknowledges nothing and leaves no partial state; replayed after the fix, it registers', async () => {
    // Prepare: a CA with auto-registration, an allowlisted serial — and no device policy.
    await iot.send(new DeletePolicyCommand({ policyName: 'fleetgate-local-device' }));
    const ca = await createCertificateAuthority({ subject: { commonName: 'Config Errors CA' } });
    await registerTrustedCa(iot, store, ca);
    const serial = `CFG-${randomUUID().slice(0, 6).toUpperCase()}`;
    await store.createDevice(allowlistedDevice({ serial }), { id: 'import', actor: 'test' });
    const device = await createDeviceCertificate(ca, { subject: { commonName: serial } });
    const emulator = stack.emulator;
    if (!emulator) throw new Error('no emulator');
    emulator.clearCalls();

    // Act: the first connect publishes the registered event; registerCertificate fails on it.
    await emulator.connect({ certificatePem: device.certificatePem, clientId: serial });
    await waitUntil(async () => (await depth('fleetgate-local-registration-dlq')) === 1, 60_000);

    // Assess: dead-lettered by the redrive (not acknowledged), body intact.
    expect(await depth('fleetgate-local-registration')).toBe(0);
    const [dlq] = (await deadLetters().list({ messages: true })).filter(
      (queue) => queue.logicalId === 'RegistrationDLQ',
    );
    expect(dlq?.messages).toHaveLength(1);
    expect(dlq?.messages?.[0]?.body).toContain(`"certificateId":"${device.certificateId}"`);
    // Retried, not acknowledged: one failing AttachPolicy per delivery, maxReceiveCount (3) of them.
    expect(emulator.calls.filter((call) => call.api === 'AttachPolicy').map((call) => call.outcome)).toEqual([
      'ResourceNotFoundException',
      'ResourceNotFoundException',
      'ResourceNotFoundException',
    ]);
    // No partial state: the certificate is not usable, no thing was created, nothing is committed.
    const described = await iot.send(new DescribeCertificateCommand({ certificateId: device.certificateId }));
    expect(described.certificateDescription?.status).toBe('PENDING_ACTIVATION');
    await expect(iot.send(new DescribeThingCommand({ thingName: serial }))).rejects.toMatchObject({
      name: 'ResourceNotFoundException',
    });
    expect((await store.getCertificate(device.certificateId))?.status).toBe('PENDING');
    expect((await store.getDevice(serial))?.state).not.toBe('ACTIVE');

    // Act: the configuration is fixed (the declared policy created again), the dead letter replayed.
    const specs = await declaredIotResources(loadServerlessConfig(file), {
      stage: 'local',
      baseDir: PROJECT_ROOT,
    });
    const recreated = await materializeIotResources(iot, specs);
    expect(recreated.find((resource) => resource.logicalId === 'DevicePolicy')?.result).toBe('created');
    await new Promise((resolve) => setTimeout(resolve, 1100)); // the failed delivery's lease (1 s) lapses
    const replay = await deadLetters().replay('registration-dlq');
    expect(replay.failed).toEqual([]);
    await stack.settle(60_000);

    // Assess: registered from the reservation the failed deliveries left.
    const after = await iot.send(new DescribeCertificateCommand({ certificateId: device.certificateId }));
    expect(after.certificateDescription?.status).toBe('ACTIVE');
    expect((await store.getCertificate(device.certificateId))?.status).toBe('ACTIVE');
    expect(await depth('fleetgate-local-registration-dlq')).toBe(0);
  });
});
