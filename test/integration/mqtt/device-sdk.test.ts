/**
 * The AWS IoT Device SDK v2 for JavaScript (aws-iot-device-sdk-v2, its native aws-crt client) against the
 * local endpoint, running the SDK's own samples' calls (test/sdk/device-sdk-samples.ts, which cites each
 * sample) in a child process: fleet provisioning by claim with keys (CreateKeysAndCertificate) and with a
 * CSR, over MQTT 5 and MQTT 3.1.1; the MQTT 5 pub/sub sample with the provisioned certificate; and the
 * identity client's error path (a `/rejected` reply reaching the caller as a ServiceError).
 * The endpoint is the one DescribeEndpoint names; the claim policy and the device policy are the project's
 * own (iot/claim-policy.json, iot/device-policy.json).
 */
import { execFile } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateProvisioningTemplateCommand,
  DescribeCertificateCommand,
  DescribeEndpointCommand,
  DescribeThingCommand,
  type IoTClient,
  ListThingPrincipalsCommand,
} from '@aws-sdk/client-iot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IotEmulator } from '../../../local/iot-emulator';
import type { MqttBroker } from '../../../local/mqtt/broker';
import { projectRoot } from '../../../local/paths';
import { createCsr, exportPrivateKeyPem } from '../../../local/pki';
import {
  ACCOUNT,
  activeCertificate,
  createClaimPolicy,
  createDevicePolicy,
  fleetTemplateBody,
  startEmulatorEndpoint,
  stopEmulatorEndpoint,
} from '../../support/iot-emulator';

const TEMPLATE = 'sdk-fleet';

let emulator: IotEmulator;
let broker: MqttBroker;
let iot: IoTClient;
let dir: string;
let endpoint: { host: string; port: string };
const files = { ca: '', claimCert: '', claimKey: '' };

interface SampleRun {
  code: number | null;
  stdout: string;
  stderr: string;
  result?: Record<string, unknown>;
}

/** Runs one sample in a child process; resolves with its output and its `RESULT` line. */
function runSample(sample: string, options: Record<string, string>): Promise<SampleRun> {
  const args = ['--import', 'tsx', join('test', 'sdk', 'device-sdk-samples.ts'), sample];
  for (const [name, value] of Object.entries({
    endpoint: endpoint.host,
    port: endpoint.port,
    ca_file: files.ca,
    ...options,
  })) {
    args.push(`--${name}`, value);
  }
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: projectRoot(), timeout: 120_000 }, (error, stdout, stderr) => {
      const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
      resolve({
        code: error ? ((error as { code?: number }).code ?? 1) : 0,
        stdout,
        stderr,
        ...(line ? { result: JSON.parse(line.slice('RESULT '.length)) as Record<string, unknown> } : {}),
      });
    });
  });
}

beforeAll(async () => {
  ({ emulator, broker, iot } = await startEmulatorEndpoint());
  dir = await mkdtemp(join(tmpdir(), 'fleetgate-sdk-'));
  const { endpointAddress = '' } = await iot.send(
    new DescribeEndpointCommand({ endpointType: 'iot:Data-ATS' }),
  );
  const [host = '', port = '8883'] = endpointAddress.split(':');
  endpoint = { host, port };
  await createClaimPolicy(iot, 'sdk-claim', TEMPLATE);
  await createDevicePolicy(iot, 'sdk-device');
  await iot.send(
    new CreateProvisioningTemplateCommand({
      templateName: TEMPLATE,
      templateBody: fleetTemplateBody('sdk-device'),
      provisioningRoleArn: `arn:aws:iam::${ACCOUNT}:role/provisioning`,
      enabled: true,
    }),
  );
  const claim = await activeCertificate(iot, ['sdk-claim'], 'sdk claim');
  files.ca = join(dir, 'root-ca.pem');
  files.claimCert = join(dir, 'claim.pem');
  files.claimKey = join(dir, 'claim.key');
  await writeFile(files.ca, broker.caPem);
  await writeFile(files.claimCert, claim.certificatePem);
  await writeFile(files.claimKey, claim.privateKeyPem);
});

afterAll(async () => {
  await stopEmulatorEndpoint({ emulator, broker, iot });
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('fleet provisioning samples (IotIdentityClientv2)', () => {
  it.each([
    { mqtt: '5', flow: 'basic' },
    { mqtt: '5', flow: 'csr' },
    { mqtt: '311', flow: 'basic' },
    { mqtt: '311', flow: 'csr' },
  ] as const)(
    'fleet_provisioning_$flow over MQTT $mqtt provisions a device: thing created, certificate ACTIVE and attached',
    async ({ mqtt, flow }) => {
      // Prepare
      const serial = `SDK-${flow.toUpperCase()}-${mqtt}`;
      const options: Record<string, string> = {
        mqtt,
        cert: files.claimCert,
        key: files.claimKey,
        client_id: `claim.${serial}`,
        template_name: TEMPLATE,
        template_parameters: JSON.stringify({ SerialNumber: serial }),
      };
      let privateKeyPem: string | undefined;
      if (flow === 'csr') {
        const csr = await createCsr({ subject: { commonName: serial } });
        options.csr_file = join(dir, `${serial}.csr`);
        await writeFile(options.csr_file, csr.csrPem);
        privateKeyPem = await exportPrivateKeyPem(csr.keys.privateKey);
      }
      // Act
      const run = await runSample(`fleet_provisioning_${flow}`, options);
      // Assess
      expect(run.code, run.stderr + run.stdout).toBe(0);
      expect(
        broker.accepted.filter((c) => c.clientId === `claim.${serial}`).map((c) => c.protocolVersion),
      ).toEqual([mqtt === '5' ? 5 : 4]);
      const created = run.result?.created as Record<string, string>;
      expect(run.result?.registered).toEqual({ deviceConfiguration: {}, thingName: serial });
      expect(created.certificateOwnershipToken).toEqual(expect.any(String));
      const described = await iot.send(
        new DescribeCertificateCommand({ certificateId: created.certificateId }),
      );
      expect(described.certificateDescription?.status).toBe('ACTIVE');
      await iot.send(new DescribeThingCommand({ thingName: serial }));
      const principals = await iot.send(new ListThingPrincipalsCommand({ thingName: serial }));
      expect(principals.principals).toEqual([described.certificateDescription?.certificateArn]);
      if (flow === 'basic') {
        privateKeyPem = created.privateKey;
        const key = createPrivateKey(created.privateKey ?? '');
        expect([key.asymmetricKeyType, key.asymmetricKeyDetails?.modulusLength]).toEqual(['rsa', 2048]);
      }
      if (mqtt === '5' && flow === 'basic') {
        // The provisioned device then runs the MQTT 5 pub/sub sample on its own topics.
        const certFile = join(dir, `${serial}.pem`);
        const keyFile = join(dir, `${serial}.key`);
        await writeFile(certFile, created.certificatePem ?? '');
        await writeFile(keyFile, privateKeyPem ?? '');
        const pubsub = await runSample('mqtt5_x509', {
          cert: certFile,
          key: keyFile,
          client_id: serial,
          topic: `devices/${serial}/sample`,
          count: '3',
        });
        expect(pubsub.code, pubsub.stderr + pubsub.stdout).toBe(0);
        expect(broker.accepted.filter((c) => c.clientId === serial).map((c) => c.protocolVersion)).toEqual([
          5,
        ]);
        expect(pubsub.result).toEqual({
          suback: [1],
          pubacks: [0, 0, 0],
          received: [
            'Hello from mqtt5 sample [1]',
            'Hello from mqtt5 sample [2]',
            'Hello from mqtt5 sample [3]',
          ],
          unsuback: [0],
        });
      }
    },
  );

  it.each(['5', '311'])(
    'identity client error path over MQTT %s: rejected requests reach the caller with statusCode, errorCode, errorMessage',
    async (mqtt) => {
      // Act
      const run = await runSample('identity_errors', {
        mqtt,
        cert: files.claimCert,
        key: files.claimKey,
        client_id: `claim.errors-${mqtt}`,
        template_name: TEMPLATE,
      });
      // Assess
      expect(run.code, run.stderr + run.stdout).toBe(0);
      expect(run.result?.badToken).toMatchObject({
        thrown: true,
        modeledError: {
          statusCode: 400,
          errorCode: 'InvalidCertificateOwnershipToken',
          errorMessage: expect.any(String),
        },
      });
      expect(run.result?.badCsr).toMatchObject({
        thrown: true,
        modeledError: { statusCode: 400, errorCode: 'InvalidCertificateSigningRequest' },
      });
    },
  );
});
