/**
 * The local stack creates the IoT resources serverless.yml declares, as a deploy would: through the
 * emulator's IoT API, from the same template, idempotently — and a device CA registered with the
 * AWS SDK and named as trusted (recorded, or tagged fleetgate:trusted=true in the same call) is then
 * all JITR needs: a first connection makes the certificate ACTIVE.
 */

import { randomUUID } from 'node:crypto';
import {
  DescribeCACertificateCommand,
  DescribeCertificateCommand,
  DescribeProvisioningTemplateCommand,
  DescribeThingGroupCommand,
  GetPolicyCommand,
  IoTClient,
  ListAttachedPoliciesCommand,
  ListTagsForResourceCommand,
  RegisterCACertificateCommand,
} from '@aws-sdk/client-iot';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { verifiedCaCertificate } from '../../../local/ca-registration';
import { startIotEmulator } from '../../../local/iot-emulator';
import { IotResourceError, materializeIotResources } from '../../../local/iot-resources';
import {
  type CertificateAuthority,
  createCertificateAuthority,
  createDeviceCertificate,
  exportPrivateKeyPem,
} from '../../../local/pki';
import { loadServerlessConfig } from '../../../local/serverless-config';
import { type LocalStack, startLocalStack } from '../../../local/stack';
import { declaredIotResources, type IotResourceSpec, StackModelError } from '../../../local/stack-model';
import { registerTrustedCa } from '../../support/device-ca';
import { allowlistedDevice } from '../../support/devices';
import { tryConnect } from '../../support/mqtt';
import { PROJECT_ROOT, serverlessCopy } from '../../support/serverless-copy';
import { startTestStack, type TestStack } from '../../support/stack';
import { waitFor } from '../../support/wait';

let testStack: TestStack;
let stack: LocalStack;
let iot: IoTClient;

beforeAll(async () => {
  testStack = await startTestStack('iot-resources');
  ({ stack, iot } = testStack);
}, 120_000);

afterAll(async () => {
  await testStack?.stop();
});

async function declaredSpecs(): Promise<IotResourceSpec[]> {
  return declaredIotResources(loadServerlessConfig(), { stage: 'local', baseDir: PROJECT_ROOT });
}

describe('IoT resources of serverless.yml on the local stack', () => {
  it('creates the device policy, the claim policy and the fleet template (with its hook) through the IoT API at start', async () => {
    // Assess: what the stack reports, what the emulator holds, and that it came through the API.
    expect(stack.iotResources).toEqual([
      {
        logicalId: 'DevicePolicy',
        type: 'AWS::IoT::Policy',
        name: 'fleetgate-local-device',
        result: 'created',
      },
      {
        logicalId: 'ClaimPolicy',
        type: 'AWS::IoT::Policy',
        name: 'fleetgate-local-claim',
        result: 'created',
      },
      {
        logicalId: 'FleetProvisioningTemplate',
        type: 'AWS::IoT::ProvisioningTemplate',
        name: 'fleetgate-local-fleet',
        result: 'created',
      },
      {
        logicalId: 'InstallerProvisioningTemplate',
        type: 'AWS::IoT::ProvisioningTemplate',
        name: 'fleetgate-local-installer',
        result: 'created',
      },
    ]);
    const specs = await declaredSpecs();
    for (const spec of specs) {
      if (spec.type !== 'AWS::IoT::Policy') continue;
      const policy = await iot.send(new GetPolicyCommand({ policyName: spec.policyName }));
      expect(JSON.parse(policy.policyDocument ?? '')).toEqual(JSON.parse(spec.policyDocument));
    }
    const template = await iot.send(
      new DescribeProvisioningTemplateCommand({ templateName: 'fleetgate-local-fleet' }),
    );
    expect(template).toMatchObject({
      enabled: true,
      type: 'FLEET_PROVISIONING',
      preProvisioningHook: {
        targetArn: `arn:aws:lambda:us-east-1:${stack.model.accountId}:function:fleetgate-local-preProvisionHook`,
      },
    });
    const calls = testStack.emulator.calls.map((call) => call.api);
    expect(calls).toEqual(expect.arrayContaining(['CreatePolicy', 'CreateProvisioningTemplate']));
    // Custom::FleetgateAccount's quarantine group is there too.
    await expect(
      iot.send(new DescribeThingGroupCommand({ thingGroupName: 'fleetgate-local-quarantine' })),
    ).resolves.toMatchObject({ thingGroupName: 'fleetgate-local-quarantine' });
  });

  it('creates them idempotently: a second pass on the same state changes nothing and does not fail', async () => {
    // Act
    const again = await materializeIotResources(iot, await declaredSpecs());
    // Assess
    expect(again.map(({ logicalId, result }) => ({ logicalId, result }))).toEqual([
      { logicalId: 'DevicePolicy', result: 'unchanged' },
      { logicalId: 'ClaimPolicy', result: 'unchanged' },
      { logicalId: 'FleetProvisioningTemplate', result: 'unchanged' },
      { logicalId: 'InstallerProvisioningTemplate', result: 'unchanged' },
    ]);
  });

  it('fails, naming the resource, when a declared policy exists with another document', async () => {
    // Prepare
    const changed = (await declaredSpecs()).map((spec) =>
      spec.type === 'AWS::IoT::Policy' && spec.logicalId === 'DevicePolicy'
        ? { ...spec, policyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [] }) }
        : spec,
    );
    // Act / Assess
    const failure = materializeIotResources(iot, changed);
    await expect(failure).rejects.toBeInstanceOf(IotResourceError);
    await expect(failure).rejects.toThrow(
      'resources.Resources.DevicePolicy (AWS::IoT::Policy): policy fleetgate-local-device already exists with another document',
    );
  });

  // The two ways an operator names a CA to JITR (it fails closed on a CA that is only registered):
  // the CA recorded in the store (`fleetgate certificates register --kind ca`), or — one AWS call, no
  // other setup — registered with the tag fleetgate:trusted=true (RegisterCACertificate `tags`).
  const trustWays = {
    'recorded as trusted (fleetgate certificates register --kind ca)': (ca: CertificateAuthority) =>
      registerTrustedCa(iot, testStack.store, ca),
    'tagged fleetgate:trusted=true in the same RegisterCACertificate call, nothing else': async (
      ca: CertificateAuthority,
    ) => {
      const out = await iot.send(
        new RegisterCACertificateCommand({
          ...(await verifiedCaCertificate(iot, ca)),
          setAsActive: true,
          allowAutoRegistration: true,
          tags: [{ Key: 'fleetgate:trusted', Value: 'true' }],
        }),
      );
      return out.certificateId ?? '';
    },
  };

  it.each(Object.entries(trustWays))(
    'acceptance: a device CA registered with the AWS SDK and %s is all JITR needs — the first connect makes the certificate ACTIVE',
    async (_way, trust) => {
      // Prepare: the allowlist entry (data, not setup) and a device certificate from a new CA.
      const serial = `ACC-${randomUUID().slice(0, 6).toUpperCase()}`;
      await testStack.store.createDevice(allowlistedDevice({ serial }), { id: 'import', actor: 'test' });
      const ca = await createCertificateAuthority({ subject: { commonName: 'Acceptance Device CA' } });
      const device = await createDeviceCertificate(ca, { subject: { commonName: serial } });
      const identity = {
        certificatePem: device.certificatePem,
        privateKeyPem: await exportPrivateKeyPem(device.keys.privateKey),
      };
      const broker = stack.mqtt;
      if (!broker) throw new Error('the local stack has no MQTT endpoint');
      // Act: the only setup, as a user does it: RegisterCACertificate (registration-code proof) with
      // auto-registration, and the CA named as trusted.
      await trust(ca);
      const first = await tryConnect(broker, identity, serial);
      const status = await waitFor(
        async () =>
          (await iot.send(new DescribeCertificateCommand({ certificateId: device.certificateId })))
            .certificateDescription?.status,
        (value) => value === 'ACTIVE',
        60_000,
      );
      const second = await tryConnect(broker, identity, serial);
      // Assess
      expect(first.connected).toBe(false);
      expect(status).toBe('ACTIVE');
      expect(second.connected).toBe(true);
      if (second.connected) second.client.end(true);
      const attached = await iot.send(
        new ListAttachedPoliciesCommand({
          target: `arn:aws:iot:us-east-1:${stack.model.accountId}:cert/${device.certificateId}`,
        }),
      );
      expect(attached.policies?.map((policy) => policy.policyName)).toEqual(['fleetgate-local-device']);
      await stack.settle(60_000);
      expect(await testStack.store.getDevice(serial)).toMatchObject({
        state: 'ACTIVE',
        certificateId: device.certificateId,
      });
      const deadLettered = Object.entries(await stack.depths()).filter(
        ([queue, depth]) => queue.endsWith('-dlq') && depth > 0,
      );
      expect(deadLettered).toEqual([]);
    },
  );
});

describe('serverless.yml with more IoT resources', () => {
  it('registers a declared device CA with auto-registration and its Tags (the JITR trust tag) and creates a declared thing group', async () => {
    // Prepare
    const ca = await createCertificateAuthority({ subject: { commonName: 'Declared Device CA' } });
    const pem = ca.certificatePem.trim().split('\n').join('\n          ');
    // DEFAULT mode needs the verification certificate, made with the account's registration code (the
    // local one is stable per account, as AWS's is until DeleteRegistrationCode).
    const probe = await startIotEmulator({ accountId: stack.model.accountId });
    const probeIot = new IoTClient({ ...probe.clientConfig(), maxAttempts: 1 });
    const { verificationCertificate } = await verifiedCaCertificate(probeIot, ca);
    probeIot.destroy();
    await probe.stop();
    const verificationPem = verificationCertificate.trim().split('\n').join('\n          ');
    const file = await serverlessCopy((text) =>
      text.replace(
        /^resources:\n {2}Resources:\n/m,
        `resources:
  Resources:
    DeviceCa:
      Type: AWS::IoT::CACertificate
      Properties:
        Status: ACTIVE
        AutoRegistrationStatus: ENABLE
        CACertificatePem: |
          ${pem}
        VerificationCertificatePem: |
          ${verificationPem}
        Tags:
          - { Key: fleetgate:trusted, Value: 'true' }
    DeviceGroup:
      Type: AWS::IoT::ThingGroup
      Properties:
        ThingGroupName: \${self:service}-\${sls:stage}-devices
        ThingGroupProperties: { ThingGroupDescription: every device }
`,
      ),
    );
    // Act
    const copy = await startLocalStack({
      serverlessFile: file,
      root: PROJECT_ROOT,
      dynamodbEndpoint: inject('dynamodbEndpoint'),
      tableName: `iot-resources-${randomUUID().slice(0, 8)}`,
      mqttPort: false,
      onError: () => undefined,
    });
    try {
      // Assess
      const registered = copy.iotResources.find((resource) => resource.logicalId === 'DeviceCa');
      expect(registered).toMatchObject({ type: 'AWS::IoT::CACertificate', result: 'created' });
      const client = new IoTClient(copy.emulator?.clientConfig() ?? {});
      const described = await client.send(
        new DescribeCACertificateCommand({ certificateId: registered?.name ?? '' }),
      );
      expect(described.certificateDescription).toMatchObject({
        status: 'ACTIVE',
        autoRegistrationStatus: 'ENABLE',
      });
      const tags = await client.send(
        new ListTagsForResourceCommand({
          resourceArn: described.certificateDescription?.certificateArn ?? '',
        }),
      );
      expect(tags.tags).toEqual([{ Key: 'fleetgate:trusted', Value: 'true' }]);
      const group = await client.send(
        new DescribeThingGroupCommand({ thingGroupName: 'fleetgate-local-devices' }),
      );
      expect(group.thingGroupProperties?.thingGroupDescription).toBe('every device');
      client.destroy();
    } finally {
      await copy.stop();
    }
  });

  it('fails to start on a resource type it does not know, naming the resource and the type', async () => {
    // Prepare
    const file = await serverlessCopy((text) =>
      text.replace(
        /^resources:\n {2}Resources:\n/m,
        'resources:\n  Resources:\n    FactoryThing:\n      Type: AWS::IoT::Thing\n      Properties: { ThingName: factory }\n',
      ),
    );
    // Act
    const start = startLocalStack({
      serverlessFile: file,
      root: PROJECT_ROOT,
      dynamodbEndpoint: inject('dynamodbEndpoint'),
      tableName: `iot-resources-${randomUUID().slice(0, 8)}`,
      mqttPort: false,
    });
    // Assess
    await expect(start).rejects.toBeInstanceOf(StackModelError);
    await expect(start).rejects.toThrow(
      'resources.Resources.FactoryThing: AWS::IoT::Thing is not a resource type',
    );
  });
});
