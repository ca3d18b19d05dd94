/**
 * The AWS IoT Device SDK v2 for JavaScript's own samples (aws-iot-device-sdk-js-v2 v1.28.0, vendored
 * unmodified in test/sdk/vendor/, on the `aws-iot-device-sdk-v2` 1.28.0 devDependency and its native
 * aws-crt client) against the whole local stack (DynamoDB Local, the IoT emulator and its MQTT endpoint,
 * the real pre-provisioning hook): each sample runs in a child process with only command-line arguments,
 * plus the preload test/sdk/local-endpoint.cjs for the port and the CA (the samples have no option for
 * them: they connect to 8883 and trust the system store).
 * - `service_clients/fleet_provisioning/basic` and `…/csr` (IotIdentityClientv2 over MQTT 5): an
 *   allowlisted serial gets a thing, an ACTIVE certificate attached to it, and its device record;
 * - `mqtt/mqtt5_x509`: the provisioned device's pub/sub, after which the store has the device ACTIVE on
 *   its certificate;
 * - error paths: a serial the hook denies (RegisterThing rejected, AccessDenied) and a CSR file that is not
 *   one (CreateCertificateFromCsr rejected): the sample prints the ServiceError and exits 1.
 * MQTT 3.1.1: v1.28.0 has no MQTT 3.1.1 sample, so test/sdk/mqtt311-identity.ts makes the fleet
 * provisioning samples' calls with IotIdentityClientv2 on an MQTT 3.1.1 connection, and the identity
 * client's error path (modeledError of a `/rejected` reply) over MQTT 3.1.1.
 * The endpoint is the one DescribeEndpoint names; the template (with its hook), the claim policy and the
 * device policy are serverless.yml's, created by the local stack.
 */

import { execFile } from 'node:child_process';
import { createPrivateKey, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AttachPolicyCommand,
  CreateCertificateFromCsrCommand,
  DescribeCertificateCommand,
  DescribeEndpointCommand,
  DescribeThingCommand,
  type IoTClient,
  ListThingPrincipalsCommand,
} from '@aws-sdk/client-iot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MqttBroker } from '../../../local/mqtt/broker';
import { projectRoot } from '../../../local/paths';
import { createCsr, exportPrivateKeyPem } from '../../../local/pki';
import { claimClientId } from '../../../shared/domain/client-ids';
import type { ProvisioningStore } from '../../../shared/store/provisioning-store';
import { allowlistedDevice } from '../../support/devices';
import { startTestStack, type TestStack } from '../../support/stack';
import { waitFor } from '../../support/wait';

const TEMPLATE = 'fleetgate-local-fleet';
const SAMPLES = join('test', 'sdk', 'vendor', 'aws-iot-device-sdk-js-v2', 'samples', 'node');
const VENDORED = {
  basic: join(SAMPLES, 'service_clients', 'fleet_provisioning', 'basic', 'index.ts'),
  csr: join(SAMPLES, 'service_clients', 'fleet_provisioning', 'csr', 'index.ts'),
  mqtt5_x509: join(SAMPLES, 'mqtt', 'mqtt5_x509', 'index.ts'),
} as const;

let testStack: TestStack;
let broker: MqttBroker;
let iot: IoTClient;
let store: ProvisioningStore;
let dir: string;
/** The endpoint DescribeEndpoint names (`127.0.0.1:<port>`), split at `:` for the SDK. */
let endpoint: { host: string; port: string };
let claimCertificateId: string;
const files = { ca: '', claimCert: '', claimKey: '' };

interface SampleRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: Record<string, string> = {}): Promise<SampleRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      args,
      { cwd: projectRoot(), timeout: 120_000, env: { ...process.env, ...env } },
      (error, stdout, stderr) => {
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

/** Runs a vendored sample as upstream documents it (`<sample> --endpoint … --cert … --key …`). */
function runVendored(sample: keyof typeof VENDORED, args: string[]): Promise<SampleRun> {
  return run(
    [
      '--require',
      './test/sdk/local-endpoint.cjs',
      '--import',
      'tsx',
      VENDORED[sample],
      '--endpoint',
      endpoint.host,
      ...args,
    ],
    { FLEETGATE_SAMPLE_PORT: endpoint.port, FLEETGATE_SAMPLE_CA_FILE: files.ca },
  );
}

/** Runs the MQTT 3.1.1 counterpart (test/sdk/mqtt311-identity.ts). */
function runMqtt311(sample: string, options: Record<string, string>): Promise<SampleRun> {
  const args = ['--import', 'tsx', join('test', 'sdk', 'mqtt311-identity.ts'), sample];
  const all = { endpoint: endpoint.host, port: endpoint.port, ca_file: files.ca, ...options };
  for (const [name, value] of Object.entries(all)) args.push(`--${name}`, value);
  return run(args);
}

/** The JSON a sample printed after `<label>: `. */
function printed(output: string, label: string): Record<string, string> | undefined {
  const line = output.split('\n').find((l) => l.startsWith(`${label}: `));
  return line ? (JSON.parse(line.slice(label.length + 2)) as Record<string, string>) : undefined;
}

async function allowlist(serial: string): Promise<void> {
  await store.createDevice(allowlistedDevice({ serial, allowedClaim: claimCertificateId }), {
    id: `import-${serial}`,
    actor: 'test',
  });
}

function serialFor(name: string): string {
  return `SDK-${name}-${randomUUID().slice(0, 6).toUpperCase()}`;
}

/** The claim certificate's fleet provisioning options for `serial` (the samples' option names). */
function claimOptions(serial: string): Record<string, string> {
  return {
    cert: files.claimCert,
    key: files.claimKey,
    client_id: claimClientId(serial),
    template_name: TEMPLATE,
    template_parameters: JSON.stringify({ SerialNumber: serial }),
  };
}

/** The same, as command-line arguments. */
function claimArgs(serial: string): string[] {
  return Object.entries(claimOptions(serial)).flatMap(([name, value]) => [`--${name}`, value]);
}

async function writeCsr(serial: string): Promise<{ csrFile: string; privateKeyPem: string }> {
  const csr = await createCsr({ subject: { commonName: serial } });
  const csrFile = join(dir, `${serial}.csr`);
  await writeFile(csrFile, csr.csrPem);
  return { csrFile, privateKeyPem: await exportPrivateKeyPem(csr.keys.privateKey) };
}

/**
 * Thing created, certificate ACTIVE and its only principal; the device record PROVISIONING on that
 * certificate (pending until the device connects with it).
 */
async function expectProvisioned(serial: string, certificateId: string): Promise<void> {
  const described = await iot.send(new DescribeCertificateCommand({ certificateId }));
  expect(described.certificateDescription?.status).toBe('ACTIVE');
  await iot.send(new DescribeThingCommand({ thingName: serial }));
  const principals = await iot.send(new ListThingPrincipalsCommand({ thingName: serial }));
  expect(principals.principals).toEqual([described.certificateDescription?.certificateArn]);
  expect(await store.getDevice(serial)).toMatchObject({
    state: 'PROVISIONING',
    thingName: serial,
    pendingCertificateId: certificateId,
  });
}

function protocolVersions(clientId: string): number[] {
  return broker.accepted.filter((c) => c.clientId === clientId).map((c) => c.protocolVersion);
}

beforeAll(async () => {
  testStack = await startTestStack('sdk');
  ({ iot, store } = testStack);
  if (!testStack.stack.mqtt) throw new Error('the local stack started without its MQTT endpoint');
  broker = testStack.stack.mqtt;
  dir = await mkdtemp(join(tmpdir(), 'fleetgate-sdk-'));
  const { endpointAddress = '' } = await iot.send(
    new DescribeEndpointCommand({ endpointType: 'iot:Data-ATS' }),
  );
  const [host = '', port = '8883'] = endpointAddress.split(':');
  endpoint = { host, port };
  const claimCsr = await createCsr({ subject: { commonName: 'fleetgate sdk claim' } });
  const claim = await iot.send(
    new CreateCertificateFromCsrCommand({ certificateSigningRequest: claimCsr.csrPem, setAsActive: true }),
  );
  await iot.send(
    new AttachPolicyCommand({ policyName: 'fleetgate-local-claim', target: claim.certificateArn }),
  );
  claimCertificateId = claim.certificateId ?? '';
  files.ca = join(dir, 'root-ca.pem');
  files.claimCert = join(dir, 'claim.pem');
  files.claimKey = join(dir, 'claim.key');
  await writeFile(files.ca, broker.caPem);
  await writeFile(files.claimCert, claim.certificatePem ?? '');
  await writeFile(files.claimKey, await exportPrivateKeyPem(claimCsr.keys.privateKey));
}, 120_000);

afterAll(async () => {
  await testStack?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

// Each case has its own serial and client ids: they run concurrently (each waits on a child process).
describe.concurrent('the SDK samples, unmodified (v1.28.0, MQTT 5)', () => {
  it('fleet_provisioning/basic provisions an allowlisted serial; mqtt5_x509 then pub/subs with its certificate and the device turns ACTIVE', async () => {
    // Prepare
    const serial = serialFor('BASIC');
    await allowlist(serial);
    // Act
    const provisioned = await runVendored('basic', claimArgs(serial));
    // Assess
    expect(provisioned.code, provisioned.stderr + provisioned.stdout).toBe(0);
    expect(provisioned.stdout).toContain('Connected!');
    expect(provisioned.stdout).toContain('Disconnected');
    expect(protocolVersions(claimClientId(serial))).toEqual([5]);
    const created = printed(provisioned.stdout, 'CreateKeysAndCertificate Response') ?? {};
    expect(printed(provisioned.stdout, 'RegisterThing Response')).toEqual({
      deviceConfiguration: {},
      thingName: serial,
    });
    const key = createPrivateKey(created.privateKey ?? '');
    expect([key.asymmetricKeyType, key.asymmetricKeyDetails?.modulusLength]).toEqual(['rsa', 2048]);
    await expectProvisioned(serial, created.certificateId ?? '');

    // Act: the provisioned device runs the MQTT 5 pub/sub sample on its own topic.
    const certFile = join(dir, `${serial}.pem`);
    const keyFile = join(dir, `${serial}.key`);
    await writeFile(certFile, created.certificatePem ?? '');
    await writeFile(keyFile, created.privateKey ?? '');
    const topic = `devices/${serial}/sample`;
    const pubsub = await runVendored('mqtt5_x509', [
      '--cert',
      certFile,
      '--key',
      keyFile,
      '--client_id',
      serial,
      '--topic',
      topic,
      '--count',
      '2',
    ]);
    // Assess
    expect(pubsub.code, pubsub.stderr + pubsub.stdout).toBe(0);
    expect(protocolVersions(serial)).toEqual([5]);
    expect(pubsub.stdout).toContain('Lifecycle Connection Success with reason code: 0');
    expect(pubsub.stdout).toContain('Suback received with reason code: 1');
    expect(pubsub.stdout.match(/PubAck received with 0/g)).toHaveLength(2);
    for (const n of [1, 2]) {
      expect(pubsub.stdout).toContain(
        `==== Received message from topic '${topic}': Hello from mqtt5 sample [${n}] ====`,
      );
    }
    expect(pubsub.stdout).toContain('2 message(s) received.');
    expect(pubsub.stdout).toContain('Unsubscribed with 0');
    expect(pubsub.stdout).toContain('==== Client Stopped! ====');
    const record = await waitFor(
      () => store.getDevice(serial),
      (value) => value?.state === 'ACTIVE',
    );
    expect(record).toMatchObject({ state: 'ACTIVE', certificateId: created.certificateId });
  });

  it('fleet_provisioning/csr provisions an allowlisted serial with the certificate of its own CSR', async () => {
    // Prepare
    const serial = serialFor('CSR');
    await allowlist(serial);
    const { csrFile, privateKeyPem } = await writeCsr(serial);
    // Act
    const provisioned = await runVendored('csr', [...claimArgs(serial), '--csr_file', csrFile]);
    // Assess
    expect(provisioned.code, provisioned.stderr + provisioned.stdout).toBe(0);
    expect(protocolVersions(claimClientId(serial))).toEqual([5]);
    const created = printed(provisioned.stdout, 'CreateCertificateFromCsr Response') ?? {};
    expect(Object.keys(created).sort()).toEqual([
      'certificateId',
      'certificateOwnershipToken',
      'certificatePem',
    ]);
    expect(printed(provisioned.stdout, 'RegisterThing Response')).toEqual({
      deviceConfiguration: {},
      thingName: serial,
    });
    await expectProvisioned(serial, created.certificateId ?? '');
    const { X509Certificate, createPublicKey } = await import('node:crypto');
    expect(
      new X509Certificate(created.certificatePem ?? '').publicKey.equals(createPublicKey(privateKeyPem)),
    ).toBe(true);
  });

  it('fleet_provisioning/basic with a serial the hook denies: RegisterThing rejected (403 AccessDenied), exit 1, no thing', async () => {
    // Prepare
    const serial = serialFor('DENIED');
    // Act
    const denied = await runVendored('basic', claimArgs(serial));
    // Assess
    expect(denied.code, denied.stderr + denied.stdout).toBe(1);
    expect(printed(denied.stdout, 'CreateKeysAndCertificate Response')).toBeDefined();
    expect(printed(denied.stdout, 'RegisterThing Response')).toBeUndefined();
    expect(denied.stderr).toContain('AccessDenied');
    expect(denied.stderr).toContain('403');
    await expect(iot.send(new DescribeThingCommand({ thingName: serial }))).rejects.toMatchObject({
      name: 'ResourceNotFoundException',
    });
    expect(await store.getDevice(serial)).toBeUndefined();
  });

  it('fleet_provisioning/csr with a file that is not a CSR: CreateCertificateFromCsr rejected (400), exit 1', async () => {
    // Prepare
    const serial = serialFor('BADCSR');
    await allowlist(serial);
    const csrFile = join(dir, `${serial}.csr`);
    await writeFile(csrFile, 'not a certificate signing request\n');
    // Act
    const rejected = await runVendored('csr', [...claimArgs(serial), '--csr_file', csrFile]);
    // Assess
    expect(rejected.code, rejected.stderr + rejected.stdout).toBe(1);
    expect(printed(rejected.stdout, 'CreateCertificateFromCsr Response')).toBeUndefined();
    expect(rejected.stderr).toContain('InvalidCertificateSigningRequest');
    expect(await store.getDevice(serial)).toMatchObject({ state: 'ALLOWLISTED' });
  });
});

describe.concurrent('the fleet provisioning samples’ calls over MQTT 3.1.1 (test/sdk/mqtt311-identity.ts)', () => {
  it.each(['basic', 'csr'] as const)(
    'fleet_provisioning_%s over MQTT 3.1.1 provisions an allowlisted serial',
    async (flow) => {
      // Prepare
      const serial = serialFor(`${flow.toUpperCase()}-311`);
      await allowlist(serial);
      const options = claimOptions(serial);
      if (flow === 'csr') options.csr_file = (await writeCsr(serial)).csrFile;
      // Act
      const provisioned = await runMqtt311(`fleet_provisioning_${flow}`, options);
      // Assess
      expect(provisioned.code, provisioned.stderr + provisioned.stdout).toBe(0);
      expect(protocolVersions(claimClientId(serial))).toEqual([4]);
      const created =
        printed(
          provisioned.stdout,
          flow === 'basic' ? 'CreateKeysAndCertificate Response' : 'CreateCertificateFromCsr Response',
        ) ?? {};
      expect(printed(provisioned.stdout, 'RegisterThing Response')).toEqual({
        deviceConfiguration: {},
        thingName: serial,
      });
      await expectProvisioned(serial, created.certificateId ?? '');
    },
  );

  it('identity client error path over MQTT 3.1.1: rejected requests reach the caller with statusCode, errorCode, errorMessage', async () => {
    // Act
    const run = await runMqtt311('identity_errors', {
      cert: files.claimCert,
      key: files.claimKey,
      client_id: claimClientId('errors-311'),
      template_name: TEMPLATE,
    });
    // Assess
    expect(run.code, run.stderr + run.stdout).toBe(0);
    const line = run.stdout.split('\n').find((l) => l.startsWith('RESULT ')) ?? 'RESULT {}';
    const result = JSON.parse(line.slice('RESULT '.length)) as Record<string, unknown>;
    expect(result.badToken).toMatchObject({
      thrown: true,
      modeledError: {
        statusCode: 400,
        errorCode: 'InvalidCertificateOwnershipToken',
        errorMessage: expect.any(String),
      },
    });
    expect(result.badCsr).toMatchObject({
      thrown: true,
      modeledError: { statusCode: 400, errorCode: 'InvalidCertificateSigningRequest' },
    });
  });
});
