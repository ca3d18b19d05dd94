/**
 * `fleetgate device …`: play one device by hand against the running local stack's MQTT endpoint, as
 * firmware would — a claim certificate, fleet provisioning by claim (CreateCertificateFromCsr +
 * RegisterThing over MQTT), connecting with the device certificate, rotation. Keys and certificates
 * live under `.fleetgate/devices/<name>/`; private keys are generated here and never printed.
 */

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IoTClient } from '@aws-sdk/client-iot';
import type { MqttClient } from 'mqtt';
import { connectDevice, fleetRequest, fleetTopics } from '../../local/mqtt/client';
import {
  createClaimCertificate,
  declaredFleet,
  type FleetNames,
  FleetSetupError,
} from '../../local/mqtt/fleet-setup';
import { projectRoot } from '../../local/paths';
import { createCsr, exportPrivateKeyPem } from '../../local/pki';
import { readStackFile } from '../../local/stack-file';
import type { DeclaredIotNames } from '../../local/stack-model';
import { parseCertificatePem } from '../../shared/certificates';
import { claimClientId } from '../../shared/domain/client-ids';
import { anchorCertificateRecord } from '../../shared/store/records';
import { CommandFailure, type Output, UsageError } from '../io';
import { type CommandRegistry, contract } from '../main';
import { resolveStoreTarget } from '../target';

/** What `.fleetgate/devices/<name>/device.json` records (no key material). */
interface DeviceFile {
  name: string;
  kind: 'claim' | 'device';
  certificateId: string;
  serial?: string;
  thingName?: string;
  templateName?: string;
  provisionedAt?: string;
  rotatedAt?: string;
}

interface Endpoint {
  url: string;
  host: string;
  port: number;
  caPem: string;
  caFile: string;
  region: string;
  tableName: string;
  iot: IoTClient;
  accountId: string;
  /** What serverless.yml declares and the stack created at start (template, claim and device policy). */
  declared: DeclaredIotNames;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

function devicesDir(): string {
  return process.env.FLEETGATE_DEVICES_DIR ?? join(projectRoot(), '.fleetgate', 'devices');
}

function deviceDir(name: string): string {
  if (!NAME.test(name)) throw new UsageError(`device name must match ${NAME.source}`);
  return join(devicesDir(), name);
}

function readIdentity(name: string): { file: DeviceFile; certificatePem: string; privateKeyPem: string } {
  const dir = deviceDir(name);
  if (!existsSync(join(dir, 'device.json'))) {
    throw new CommandFailure(
      `no device ${name} under ${devicesDir()} (create it with \`fleetgate device claim\` or \`device provision\`)`,
    );
  }
  return {
    file: JSON.parse(readFileSync(join(dir, 'device.json'), 'utf8')) as DeviceFile,
    certificatePem: readFileSync(join(dir, 'certificate.pem'), 'utf8'),
    privateKeyPem: readFileSync(join(dir, 'private.key'), 'utf8'),
  };
}

function writeIdentity(
  name: string,
  file: DeviceFile,
  certificatePem: string,
  privateKeyPem: string,
): { dir: string; certificate: string; privateKey: string } {
  const dir = deviceDir(name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const certificate = join(dir, 'certificate.pem');
  const privateKey = join(dir, 'private.key');
  writeFileSync(certificate, certificatePem);
  writeFileSync(privateKey, privateKeyPem, { mode: 0o600 });
  writeFileSync(join(dir, 'device.json'), `${JSON.stringify(file, null, 2)}\n`);
  return { dir, certificate, privateKey };
}

/** The running stack's MQTT endpoint and control plane; the CA is written next to the devices. */
async function resolveEndpoint(): Promise<Endpoint> {
  const stack = readStackFile();
  const mqttUrl = stack?.endpoints.mqtt;
  const iotUrl = stack?.endpoints.iot;
  if (!stack || !mqttUrl || !iotUrl) {
    throw new CommandFailure(
      'no local stack with an MQTT endpoint is running (start one with `fleetgate local up`)',
    );
  }
  const ca = (await (await fetch(`${iotUrl}/_emulator/ca`)).json()) as { certificatePem: string };
  const state = (await (await fetch(`${iotUrl}/_emulator/state`)).json()) as { accountId: string };
  mkdirSync(devicesDir(), { recursive: true, mode: 0o700 });
  const caFile = join(devicesDir(), 'root-ca.pem');
  writeFileSync(caFile, ca.certificatePem);
  const url = new URL(mqttUrl);
  return {
    url: mqttUrl,
    host: url.hostname,
    port: Number(url.port),
    caPem: ca.certificatePem,
    caFile,
    region: stack.region,
    tableName: stack.tableName,
    accountId: state.accountId,
    declared: (stack.declared ?? {}) as DeclaredIotNames,
    iot: new IoTClient({
      endpoint: iotUrl,
      region: stack.region,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    }),
  };
}

async function connectOrFail(
  endpoint: Endpoint,
  identity: { certificatePem: string; privateKeyPem: string },
  clientId: string,
): Promise<MqttClient> {
  const result = await connectDevice({
    url: endpoint.url,
    caPem: endpoint.caPem,
    ...identity,
    clientId,
    iot: endpoint.iot,
  });
  if (!result.connected) {
    throw new CommandFailure(
      `the endpoint dropped the connection of ${clientId} (certificate ${result.certificateId.slice(0, 12)}…: ${result.reason})`,
      { connected: false, clientId, certificateId: result.certificateId, reason: result.reason },
    );
  }
  return result.client;
}

/** The declared template and policies, or a CommandFailure saying how to get them. */
async function fleet(endpoint: Endpoint): Promise<FleetNames> {
  try {
    return await declaredFleet(endpoint.iot, endpoint.declared);
  } catch (error) {
    if (error instanceof FleetSetupError) throw new CommandFailure(error.message);
    throw error;
  }
}

function withEndpoint<T>(body: (endpoint: Endpoint) => Promise<T>): Promise<T> {
  return resolveEndpoint().then(async (endpoint) => {
    try {
      return await body(endpoint);
    } finally {
      endpoint.iot.destroy();
    }
  });
}

function sayWhere(output: Output, endpoint: Endpoint): void {
  output.say(`  endpoint     ${endpoint.url} (mutual TLS)`);
  output.say(`  CA           ${endpoint.caFile}`);
}

/** `fleetgate device claim|provision|connect|rotate` */
export function registerDeviceCommands({ program, setExitCode }: CommandRegistry): void {
  const device = program
    .command('device')
    .description('Play one device by hand over MQTT against the running local stack');

  device
    .command('claim')
    .description(
      'Create a claim certificate carrying the claim policy serverless.yml declares (the local stack created it)',
    )
    .argument('[name]', 'where to keep it: .fleetgate/devices/<name>/', 'claim')
    .option('--json', 'print one JSON document')
    .action(async (name: string, options: { json?: boolean }) => {
      setExitCode(
        await contract(Boolean(options.json), async (output) =>
          withEndpoint(async (endpoint) => {
            const names = await fleet(endpoint);
            const claim = await createClaimCertificate(endpoint.iot, names);
            // The store knows its claim certificates: the expiry sweep watches them and
            // reconciliation does not report them as unknown.
            const target = await resolveStoreTarget({}, output);
            try {
              await target.store.putCertificateIfAbsent(
                anchorCertificateRecord(parseCertificatePem(claim.certificatePem), {
                  kind: 'CLAIM',
                  now: new Date().toISOString(),
                }),
              );
            } finally {
              await target.close();
            }
            const paths = writeIdentity(
              name,
              { name, kind: 'claim', certificateId: claim.certificateId, templateName: names.templateName },
              claim.certificatePem,
              claim.privateKeyPem,
            );
            output.say(`claim certificate ${claim.certificateId}`);
            output.say(`  certificate  ${paths.certificate}`);
            output.say(`  private key  ${paths.privateKey}`);
            sayWhere(output, endpoint);
            output.say(
              `  template     ${names.templateName} (pre-provisioning hook ${names.hookTargetArn?.split(':').pop() ?? 'none'})`,
            );
            output.say('allowlist the serials this claim may provision, e.g.:');
            output.say(`  printf 'serial,allowedClaim\\nSN-0001,${claim.certificateId}\\n' > serials.csv`);
            output.say('  npx fleetgate allowlist import serials.csv');
            return {
              name,
              certificateId: claim.certificateId,
              certificateFile: paths.certificate,
              privateKeyFile: paths.privateKey,
              caFile: endpoint.caFile,
              endpoint: endpoint.url,
              host: endpoint.host,
              port: endpoint.port,
              templateName: names.templateName,
            };
          }),
        ),
      );
    });

  device
    .command('provision')
    .description(
      'Fleet provisioning by claim over MQTT: CreateCertificateFromCsr + RegisterThing, then connect',
    )
    .argument('<name>', 'the device: .fleetgate/devices/<name>/')
    .requiredOption('--serial <serial>', 'SerialNumber template parameter')
    .option('--claim <name>', 'claim kept under .fleetgate/devices/<name>/', 'claim')
    .option('--claim-cert <file>', 'claim certificate PEM (instead of --claim)')
    .option('--claim-key <file>', 'claim private key PEM (with --claim-cert)')
    .option('--template <name>', "provisioning template (default: the stack's <service>-<stage>-fleet)")
    .option('--format <format>', 'json or cbor', 'json')
    .option('--json', 'print one JSON document')
    .action(
      async (
        name: string,
        options: {
          serial: string;
          claim: string;
          claimCert?: string;
          claimKey?: string;
          template?: string;
          format: string;
          json?: boolean;
        },
      ) => {
        setExitCode(
          await contract(Boolean(options.json), async (output) => {
            const format = options.format;
            if (format !== 'json' && format !== 'cbor') throw new UsageError('--format must be json or cbor');
            if (Boolean(options.claimCert) !== Boolean(options.claimKey))
              throw new UsageError('--claim-cert and --claim-key go together');
            deviceDir(name);
            return withEndpoint(async (endpoint) => {
              const claim =
                options.claimCert && options.claimKey
                  ? {
                      certificatePem: readFileSync(options.claimCert, 'utf8'),
                      privateKeyPem: readFileSync(options.claimKey, 'utf8'),
                    }
                  : readIdentity(options.claim);
              const templateName =
                options.template ??
                endpoint.declared.fleetTemplateName ??
                (await fleet(endpoint)).templateName;
              const client = await connectOrFail(endpoint, claim, claimClientId(options.serial));
              let provisioned: { certificateId: string; certificatePem: string; thingName: string };
              const csr = await createCsr({ subject: { commonName: options.serial } });
              try {
                const created = await fleetRequest(
                  client,
                  fleetTopics.createCertificateFromCsr(format),
                  format,
                  {
                    certificateSigningRequest: csr.csrPem,
                  },
                );
                if (!created.accepted) throw rejected('CreateCertificateFromCsr', created.body);
                const registered = await fleetRequest(
                  client,
                  fleetTopics.registerThing(templateName, format),
                  format,
                  {
                    certificateOwnershipToken: created.body.certificateOwnershipToken,
                    parameters: { SerialNumber: options.serial },
                  },
                );
                if (!registered.accepted) throw rejected('RegisterThing', registered.body);
                provisioned = {
                  certificateId: String(created.body.certificateId),
                  certificatePem: String(created.body.certificatePem),
                  thingName: String(registered.body.thingName),
                };
              } finally {
                await client.endAsync();
              }
              const paths = writeIdentity(
                name,
                {
                  name,
                  kind: 'device',
                  certificateId: provisioned.certificateId,
                  serial: options.serial,
                  thingName: provisioned.thingName,
                  templateName,
                  provisionedAt: new Date().toISOString(),
                },
                provisioned.certificatePem,
                await exportPrivateKeyPem(csr.keys.privateKey),
              );
              // The first connection with the new certificate is what turns the device ACTIVE.
              const deviceClient = await connectOrFail(endpoint, readIdentity(name), provisioned.thingName);
              await deviceClient.endAsync();
              output.say(`provisioned ${options.serial} as thing ${provisioned.thingName}`);
              output.say(`  certificate  ${provisioned.certificateId}`);
              output.say(`  files        ${paths.dir}`);
              sayWhere(output, endpoint);
              output.say(
                `connected once as ${provisioned.thingName}; next: npx fleetgate device connect ${name}`,
              );
              return {
                name,
                serial: options.serial,
                thingName: provisioned.thingName,
                certificateId: provisioned.certificateId,
                format,
                certificateFile: paths.certificate,
                privateKeyFile: paths.privateKey,
                caFile: endpoint.caFile,
                endpoint: endpoint.url,
              };
            });
          }),
        );
      },
    );

  device
    .command('connect')
    .description('Connect as the device (client id = thing name), print what arrives on its topics')
    .argument('<name>', 'the device: .fleetgate/devices/<name>/')
    .option('--for <seconds>', 'stay connected this long (default: until Ctrl-C; 0 with --json)')
    .option('--json', 'print one JSON document')
    .action(async (name: string, options: { for?: string; json?: boolean }) => {
      setExitCode(
        await contract(Boolean(options.json), async (output) => {
          const seconds =
            options.for === undefined ? (options.json ? 0 : Number.POSITIVE_INFINITY) : Number(options.for);
          if (!(seconds >= 0)) throw new UsageError('--for must be a number of seconds ≥ 0');
          const identity = readIdentity(name);
          const clientId = identity.file.thingName ?? name;
          return withEndpoint(async (endpoint) => {
            const client = await connectOrFail(endpoint, identity, clientId);
            const received: Array<{ topic: string; payload: string }> = [];
            try {
              output.say(
                `connected as ${clientId} (certificate ${identity.file.certificateId.slice(0, 12)}…)`,
              );
              if (identity.file.kind === 'device') {
                const filter = `fleetgate/${clientId}/rotate/+`;
                await client.subscribeAsync(filter, { qos: 1 });
                output.say(`  subscribed to ${filter}`);
              }
              client.on('message', (topic, payload) => {
                const text = payload.toString('utf8');
                received.push({ topic, payload: text });
                output.say(`  ${topic}  ${text.length > 200 ? `${text.slice(0, 200)}…` : text}`);
              });
              await new Promise<void>((resolve) => {
                const timer = Number.isFinite(seconds) ? setTimeout(resolve, seconds * 1000) : undefined;
                const stop = () => {
                  clearTimeout(timer);
                  resolve();
                };
                process.once('SIGINT', stop);
                client.once('close', stop);
              });
              const stillConnected = client.connected;
              return {
                name,
                clientId,
                certificateId: identity.file.certificateId,
                connected: true,
                stillConnected,
                received,
              };
            } finally {
              await client.endAsync();
            }
          });
        }),
      );
    });

  device
    .command('rotate')
    .description(
      'Rotate the device certificate: CSR on fleetgate/<thing>/rotate/request, then connect with the new one',
    )
    .argument('<name>', 'the device: .fleetgate/devices/<name>/')
    .option('--timeout <seconds>', 'how long to wait for rotate/accepted', '60')
    .option('--json', 'print one JSON document')
    .action(async (name: string, options: { timeout: string; json?: boolean }) => {
      setExitCode(
        await contract(Boolean(options.json), async (output) => {
          const timeoutMs = Number(options.timeout) * 1000;
          if (!(timeoutMs > 0)) throw new UsageError('--timeout must be a positive number of seconds');
          const identity = readIdentity(name);
          const thingName = identity.file.thingName;
          if (identity.file.kind !== 'device' || !thingName)
            throw new CommandFailure(`${name} is not a provisioned device`);
          return withEndpoint(async (endpoint) => {
            const client = await connectOrFail(endpoint, identity, thingName);
            const csr = await createCsr({ subject: { commonName: identity.file.serial ?? thingName } });
            let answer: { topic: string; body: Record<string, unknown> };
            try {
              const base = `fleetgate/${thingName}/rotate`;
              await client.subscribeAsync([`${base}/accepted`, `${base}/rejected`], { qos: 1 });
              const reply = new Promise<{ topic: string; body: Record<string, unknown> }>(
                (resolve, reject) => {
                  const timer = setTimeout(
                    () =>
                      reject(
                        new CommandFailure(
                          `no answer on ${base}/accepted|rejected within ${options.timeout} s`,
                        ),
                      ),
                    timeoutMs,
                  );
                  client.on('message', (topic, payload) => {
                    if (topic !== `${base}/accepted` && topic !== `${base}/rejected`) return;
                    clearTimeout(timer);
                    resolve({ topic, body: JSON.parse(payload.toString('utf8')) as Record<string, unknown> });
                  });
                },
              );
              await client.publishAsync(`${base}/request`, JSON.stringify({ csr: csr.csrPem }), { qos: 1 });
              answer = await reply;
            } finally {
              await client.endAsync();
            }
            if (answer.topic.endsWith('/rejected')) {
              throw new CommandFailure(
                `rotation rejected: ${String(answer.body.reason)} (${String(answer.body.message)})`,
                {
                  rejected: answer.body,
                },
              );
            }
            const previous = identity.file.certificateId;
            const dir = deviceDir(name);
            writeFileSync(join(dir, 'previous-certificate.pem'), identity.certificatePem);
            writeFileSync(join(dir, 'previous-private.key'), identity.privateKeyPem, { mode: 0o600 });
            const certificateId = String(answer.body.certificateId);
            writeIdentity(
              name,
              { ...identity.file, certificateId, rotatedAt: new Date().toISOString() },
              String(answer.body.certificatePem),
              await exportPrivateKeyPem(csr.keys.privateKey),
            );
            // Connecting with the new certificate commits the rotation.
            const committed = await connectOrFail(endpoint, readIdentity(name), thingName);
            await committed.endAsync();
            output.say(`rotated ${thingName}: ${previous.slice(0, 12)}… → ${certificateId.slice(0, 12)}…`);
            output.say(
              'connected with the new certificate (the commit); the old one is kept as previous-*.pem',
            );
            return {
              name,
              thingName,
              previousCertificateId: previous,
              certificateId,
              rotationDeadline: answer.body.rotationDeadline,
            };
          });
        }),
      );
    });
}

function rejected(operation: string, body: Record<string, unknown>): CommandFailure {
  return new CommandFailure(
    `${operation} rejected: ${String(body.statusCode)} ${String(body.errorCode)} (${String(body.errorMessage)})`,
    { rejected: body },
  );
}
