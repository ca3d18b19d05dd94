import { readFileSync } from 'node:fs';
import {
  CreatePolicyCommand,
  CreateProvisioningTemplateCommand,
  DescribeThingCommand,
  IoTClient,
} from '@aws-sdk/client-iot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type FleetCertificateResponse,
  type IotEmulator,
  isRejection,
  startIotEmulator,
} from '../../local/iot-emulator';
import { createCsr } from '../../local/pki';
import { createTestTable, type TestTable } from '../support/dynamo';
import { buildTestHook } from '../support/hook';
import { lambdaContext } from '../support/lambda';

const ACCOUNT = '123456789012';
const CLAIM = 'c'.repeat(64);
const HOOK_ARN = `arn:aws:lambda:us-east-1:${ACCOUNT}:function:fleetgate-test-preProvisionHook`;

let table: TestTable;
let emulator: IotEmulator;
let iot: IoTClient;

beforeAll(async () => {
  table = await createTestTable('fleet-e2e');
  await table.store.importAllowlistEntries(
    [
      { serial: 'SN-E2E-0001', allowedClaim: CLAIM, productLine: 'gateway', batch: 'B-42', attributes: {} },
      { serial: 'SN-E2E-0002', allowedClaim: CLAIM, attributes: {} },
    ],
    { now: new Date().toISOString(), actor: 'test', idFor: (serial) => `import-${serial}` },
  );
  const { hook } = buildTestHook(table.store, { THING_NAME_PREFIX: 'fg-' });
  emulator = await startIotEmulator({
    accountId: ACCOUNT,
    invokeHook: (_targetArn, event) => hook(event, lambdaContext()),
  });
  iot = new IoTClient({ ...emulator.clientConfig(), maxAttempts: 1 });
  // The deployed template body and device policy name, exactly as serverless.yml renders them.
  const body = JSON.parse(
    readFileSync(new URL('../../iot/provisioning-template.json', import.meta.url), 'utf8'),
  );
  body.Resources.policy.Properties.PolicyName = 'fleetgate-test-device';
  await iot.send(
    new CreatePolicyCommand({
      policyName: 'fleetgate-test-device',
      policyDocument: JSON.stringify({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Action: 'iot:Connect', Resource: '*' }],
      }),
    }),
  );
  await iot.send(
    new CreateProvisioningTemplateCommand({
      templateName: 'fleetgate-test-fleet',
      templateBody: JSON.stringify(body),
      provisioningRoleArn: `arn:aws:iam::${ACCOUNT}:role/provisioning`,
      enabled: true,
      preProvisioningHook: { targetArn: HOOK_ARN, payloadVersion: '2020-04-01' },
    }),
  );
});

afterAll(async () => {
  iot?.destroy();
  await emulator?.stop();
  await table?.drop();
});

/** A certificate the emulator creates from a CSR for `commonName` (CreateCertificateFromCsr over MQTT). */
async function certificateFromCsr(commonName: string): Promise<FleetCertificateResponse> {
  const { csrPem } = await createCsr({ subject: { commonName } });
  const created = await emulator.createCertificateFromCsr({ csr: csrPem });
  if (isRejection(created)) throw new Error(created.errorMessage);
  return created;
}

/** RegisterThing with the fleet template for `serial`, by the claim, from the connection `clientId`. */
function registerThing(created: FleetCertificateResponse, serial: string, clientId = serial) {
  return emulator.registerThing({
    templateName: 'fleetgate-test-fleet',
    certificateOwnershipToken: created.certificateOwnershipToken,
    parameters: { SerialNumber: serial },
    claimCertificateId: CLAIM,
    clientId,
  });
}

describe('Fleet Provisioning through the IoT emulator with the real hook', () => {
  it('gives an allowlisted serial (CreateCertificateFromCsr) the overridden thing name', async () => {
    // Prepare
    const created = await certificateFromCsr('SN-E2E-0001');
    // Act
    const result = await registerThing(created, 'SN-E2E-0001');
    // Assess
    expect(result).toMatchObject({ thingName: 'fg-SN-E2E-0001' });
    const thing = await iot.send(new DescribeThingCommand({ thingName: 'fg-SN-E2E-0001' }));
    expect(thing.attributes).toMatchObject({ serial: 'SN-E2E-0001', productLine: 'gateway', batch: 'B-42' });
    expect(await table.store.getDevice('SN-E2E-0001')).toMatchObject({
      state: 'PROVISIONING',
      pendingCertificateId: created.certificateId,
      thingName: 'fg-SN-E2E-0001',
    });
  });

  it('provisions through CreateKeysAndCertificate too', async () => {
    const created = (await emulator.createKeysAndCertificate()) as FleetCertificateResponse;
    const result = await registerThing(created, 'SN-E2E-0002');
    expect(result).toMatchObject({ thingName: 'fg-SN-E2E-0002' });
  });

  it('rejects an unknown serial with AccessDenied and records nothing', async () => {
    const created = await certificateFromCsr('SN-E2E-9999');
    const result = await registerThing(created, 'SN-E2E-9999');
    expect(result).toMatchObject({ statusCode: 403, errorCode: 'AccessDenied' });
    expect(await table.store.getDevice('SN-E2E-9999')).toBeUndefined();
    expect(await table.store.getCertificate(created.certificateId)).toBeUndefined();
  });

  it('rejects a second device claiming an already provisioned serial (takeover)', async () => {
    const created = await certificateFromCsr('SN-E2E-0001');
    const result = await registerThing(created, 'SN-E2E-0001', 'attacker');
    expect(result).toMatchObject({ statusCode: 403, errorCode: 'AccessDenied' });
  });
});
