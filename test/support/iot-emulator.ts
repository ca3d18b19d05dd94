/**
 * The IoT emulator with its MQTT endpoint, as the integration tests start it, and what they create on
 * it again and again: the project's claim and device policies, a fleet provisioning template, an
 * ACTIVE certificate with policies attached.
 */
import {
  AttachPolicyCommand,
  CreateCertificateFromCsrCommand,
  CreatePolicyCommand,
  IoTClient,
} from '@aws-sdk/client-iot';
import { type IotEmulator, type IotEmulatorOptions, startIotEmulator } from '../../local/iot-emulator';
import { type MqttBroker, startMqttBroker } from '../../local/mqtt/broker';
import { renderPolicyDocument } from '../../local/mqtt/policies';
import { createCsr, exportPrivateKeyPem } from '../../local/pki';
import type { DeviceIdentity } from './mqtt';

export const ACCOUNT = '123456789012';
export const REGION = 'us-east-1';

export interface EmulatorEndpoint {
  emulator: IotEmulator;
  broker: MqttBroker;
  iot: IoTClient;
}

/** The emulator (in ACCOUNT and REGION unless `options` say otherwise), its MQTT endpoint and an IoT client of it. */
export async function startEmulatorEndpoint(
  options: IotEmulatorOptions = {},
  maxAttempts = 1,
): Promise<EmulatorEndpoint> {
  const emulator = await startIotEmulator({ accountId: ACCOUNT, region: REGION, ...options });
  const broker = await startMqttBroker({ emulator });
  const iot = new IoTClient({ ...emulator.clientConfig(), maxAttempts });
  return { emulator, broker, iot };
}

/** Stops what `startEmulatorEndpoint` started (what of it did start). */
export async function stopEmulatorEndpoint(endpoint: Partial<EmulatorEndpoint>): Promise<void> {
  endpoint.iot?.destroy();
  await endpoint.broker?.stop();
  await endpoint.emulator?.stop();
}

/** The project's claim policy (iot/claim-policy.json) for `template`, created as `policyName`. */
export async function createClaimPolicy(iot: IoTClient, policyName: string, template: string): Promise<void> {
  await iot.send(
    new CreatePolicyCommand({
      policyName,
      policyDocument: renderPolicyDocument('claim-policy.json', {
        region: REGION,
        accountId: ACCOUNT,
        parameters: { ProvisioningTemplateName: template },
      }),
    }),
  );
}

/** The project's device policy (iot/device-policy.json), created as `policyName`. */
export async function createDevicePolicy(iot: IoTClient, policyName: string): Promise<void> {
  await iot.send(
    new CreatePolicyCommand({
      policyName,
      policyDocument: renderPolicyDocument('device-policy.json', { region: REGION, accountId: ACCOUNT }),
    }),
  );
}

/**
 * The body of a fleet provisioning template without a hook: the thing named after `SerialNumber`, the
 * new certificate ACTIVE, and `devicePolicy` attached to it when one is named.
 */
export function fleetTemplateBody(devicePolicy?: string): string {
  return JSON.stringify({
    Parameters: { SerialNumber: { Type: 'String' }, 'AWS::IoT::Certificate::Id': { Type: 'String' } },
    Resources: {
      thing: { Type: 'AWS::IoT::Thing', Properties: { ThingName: { Ref: 'SerialNumber' } } },
      certificate: {
        Type: 'AWS::IoT::Certificate',
        Properties: { CertificateId: { Ref: 'AWS::IoT::Certificate::Id' }, Status: 'Active' },
      },
      ...(devicePolicy
        ? { policy: { Type: 'AWS::IoT::Policy', Properties: { PolicyName: devicePolicy } } }
        : {}),
    },
  });
}

/** A certificate the emulator issues from a fresh CSR (as CreateCertificateFromCsr), ACTIVE, with `policies` attached. */
export async function activeCertificate(
  iot: IoTClient,
  policies: string[],
  commonName = 'test',
): Promise<DeviceIdentity & { certificateId: string; certificateArn: string }> {
  const csr = await createCsr({ subject: { commonName } });
  const out = await iot.send(
    new CreateCertificateFromCsrCommand({ certificateSigningRequest: csr.csrPem, setAsActive: true }),
  );
  for (const policyName of policies) {
    await iot.send(new AttachPolicyCommand({ policyName, target: out.certificateArn }));
  }
  return {
    certificatePem: out.certificatePem ?? '',
    privateKeyPem: await exportPrivateKeyPem(csr.keys.privateKey),
    certificateId: out.certificateId ?? '',
    certificateArn: out.certificateArn ?? '',
  };
}
