/**
 * `fleetgate device …`: play one device by hand against the running local stack's MQTT endpoint, as
 * firmware would — a claim certificate, fleet provisioning by claim (CreateCertificateFromCsr +
 * RegisterThing over MQTT), connecting with the device certificate, rotation. Keys and certificates
 * live under `.fleetgate/devices/<name>/`; private keys are generated here and never printed.
 */

import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DescribeCertificateCommand, IoTClient } from '@aws-sdk/client-iot';
import type { MqttClient } from 'mqtt';
import { connectDevice, fleetRequest, fleetTopics } from '../../local/mqtt/client';
import {
  createClaimCertificate,
  declaredFleet,
  type FleetNames,
  FleetSetupError,
} from '../../local/mqtt/fleet-setup';
import { projectRoot } from '../../local/paths';
import { certificateId as computeCertificateId, createCsr, exportPrivateKeyPem } from '../../local/pki';
import { readStackFile, stackLogPath } from '../../local/stack-file';
import type { DeclaredIotNames } from '../../local/stack-model';
import { parseCertificatePem } from '../../shared/certificates';
import { claimClientId } from '../../shared/domain/client-ids';
import { anchorCertificateRecord } from '../../shared/store/records';
import { DEFAULT_CLAIM, describeSteps, type RecoveryFacts, recoverySteps } from '../device-recovery';
import { ask, SessionError, serveSession, sessionSocketPath } from '../device-session';
import { CommandFailure, type Output, UsageError } from '../io';
import { type HookDecision, hookDecisionFor, parseLogLine, SUSPICIOUS_DENIALS } from '../log-lines';
import type { CommandRegistry } from '../main';
import { resolveStoreTarget } from '../target';

/** What `.fleetgate/devices/<name>/device.json` records (no key material). */
export interface DeviceFile {
  name: string;
  /** `temporary-claim`: a five-minute claim from the installer API (`fleetgate installer claim`). */
  kind: 'claim' | 'device' | 'temporary-claim';
  certificateId: string;
  serial?: string;
  thingName?: string;
  templateName?: string;
  provisionedAt?: string;
  rotatedAt?: string;
  /** The claim `device provision --claim` provisioned it with (not recorded with --claim-cert). */
  claim?: string;
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

export function readIdentity(name: string): {
  file: DeviceFile;
  certificatePem: string;
  privateKeyPem: string;
} {
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

export function writeIdentity(
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
  identity: { certificatePem: string; privateKeyPem: string; file?: DeviceFile },
  clientId: string,
  /** What the connection is for when it is not the identity's own connect (`device provision`'s claim). */
  provisioning?: { name: string; serial: string; claimName: string },
): Promise<MqttClient> {
  const result = await connectDevice({
    url: endpoint.url,
    caPem: endpoint.caPem,
    certificatePem: identity.certificatePem,
    privateKeyPem: identity.privateKeyPem,
    clientId,
    iot: endpoint.iot,
  });
  if (!result.connected) {
    const stale =
      result.reason === 'UNKNOWN_CERTIFICATE' && identity.file
        ? await staleHint(identity.file, endpoint, provisioning)
        : undefined;
    throw new CommandFailure(
      `the endpoint dropped the connection of ${clientId} (certificate ${result.certificateId.slice(0, 12)}…: ${result.reason})${stale?.text ?? ''}`,
      {
        connected: false,
        clientId,
        certificateId: result.certificateId,
        reason: result.reason,
        ...(stale ? { savedBeforeThisStack: true, steps: stale.steps } : {}),
      },
    );
  }
  return result.client;
}

/**
 * A saved identity whose certificate this stack's IoT has never seen: the files outlived the stack
 * that issued them (a local stack's IoT and table start empty). Names every step from here to the
 * goal, from what this stack holds (device-recovery.ts).
 */
async function staleHint(
  file: DeviceFile,
  endpoint: Endpoint,
  provisioning?: { name: string; serial: string; claimName: string },
): Promise<{ text: string; steps: string[] }> {
  const when = file.rotatedAt ?? file.provisionedAt;
  const facts = await recoveryFacts(file, endpoint, provisioning);
  const steps = recoverySteps(facts);
  return {
    text: `; ${devicesDir()}/${file.name} was saved${when ? ` at ${when}` : ''} by another stack (this stack's IoT has no such certificate: a local stack starts empty); from here: ${describeSteps(steps)}`,
    steps,
  };
}

async function recoveryFacts(
  file: DeviceFile,
  endpoint: Endpoint,
  provisioning?: { name: string; serial: string; claimName: string },
): Promise<RecoveryFacts> {
  if (file.kind === 'temporary-claim')
    return {
      goal: { kind: 'temporary-claim', name: file.name, ...(file.serial ? { serial: file.serial } : {}) },
    };
  if (provisioning) {
    // The claim itself is the stale identity here.
    const device = await readDevice(provisioning.serial, endpoint);
    return { goal: { kind: 'provision', ...provisioning }, ...(device ? { device } : {}) };
  }
  if (file.kind !== 'device' || !file.serial) return { goal: { kind: 'connect-claim', name: file.name } };
  const claimName = file.claim ?? DEFAULT_CLAIM;
  const [liveClaimCertificateId, device] = await Promise.all([
    liveCertificateOf(claimName, endpoint),
    readDevice(file.serial, endpoint),
  ]);
  return {
    goal: { kind: 'connect-device', name: file.name, serial: file.serial, claimName },
    ...(liveClaimCertificateId ? { liveClaimCertificateId } : {}),
    ...(device ? { device } : {}),
  };
}

/** The certificate id of the identity saved as `name` when this stack's IoT has it ACTIVE. */
async function liveCertificateOf(name: string, endpoint: Endpoint): Promise<string | undefined> {
  let certificateId: string;
  try {
    certificateId = readIdentity(name).file.certificateId;
  } catch {
    return undefined;
  }
  try {
    const out = await endpoint.iot.send(new DescribeCertificateCommand({ certificateId }));
    return out.certificateDescription?.status === 'ACTIVE' ? certificateId : undefined;
  } catch {
    return undefined;
  }
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
export function registerDeviceCommands({ program, run }: CommandRegistry): void {
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
      await run(options.json, async (output) =>
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
        await run(options.json, async (output) => {
          const format = options.format;
          if (format !== 'json' && format !== 'cbor') throw new UsageError('--format must be json or cbor');
          if (Boolean(options.claimCert) !== Boolean(options.claimKey))
            throw new UsageError('--claim-cert and --claim-key go together');
          deviceDir(name);
          return withEndpoint(async (endpoint) => {
            const claim: { certificatePem: string; privateKeyPem: string; file?: DeviceFile } =
              options.claimCert && options.claimKey
                ? {
                    certificatePem: readFileSync(options.claimCert, 'utf8'),
                    privateKeyPem: readFileSync(options.claimKey, 'utf8'),
                  }
                : readIdentity(options.claim);
            // A temporary claim works only with the template it was issued for (trusted user).
            const templateName =
              options.template ??
              (claim.file?.kind === 'temporary-claim' ? claim.file.templateName : undefined) ??
              endpoint.declared.fleetTemplateName ??
              (await fleet(endpoint)).templateName;
            const client = await connectOrFail(
              endpoint,
              claim,
              claimClientId(options.serial),
              claim.file ? { name, serial: options.serial, claimName: options.claim } : undefined,
            );
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
              if (!registered.accepted) {
                throw await hookRejection(
                  registered.body,
                  String(created.body.certificateId ?? ''),
                  claim.file?.kind === 'claim'
                    ? {
                        goal: { kind: 'provision', name, serial: options.serial, claimName: options.claim },
                        liveClaimCertificateId: computeCertificateId(claim.certificatePem),
                      }
                    : undefined,
                  endpoint,
                );
              }
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
                ...(options.claimCert ? {} : { claim: options.claim }),
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
        });
      },
    );

  device
    .command('connect')
    .description(
      'Connect as the device (client id = thing name), print what arrives on its topics; `device rotate` in another terminal uses this session',
    )
    .argument('<name>', 'the device: .fleetgate/devices/<name>/')
    .option('--for <seconds>', 'stay connected this long (default: until Ctrl-C; 0 with --json)')
    .option('--json', 'print one JSON document')
    .action(async (name: string, options: { for?: string; json?: boolean }) => {
      await run(options.json, async (output) => {
        const seconds =
          options.for === undefined ? (options.json ? 0 : Number.POSITIVE_INFINITY) : Number(options.for);
        if (!(seconds >= 0)) throw new UsageError('--for must be a number of seconds ≥ 0');
        const identity = readIdentity(name);
        const clientId = identity.file.thingName ?? name;
        return withEndpoint((endpoint) => holdSession(name, identity, clientId, seconds, endpoint, output));
      });
    });

  device
    .command('rotate')
    .description(
      'Rotate the device certificate: CSR on fleetgate/<thing>/rotate/request, then connect with the new one (through a running `device connect` when there is one)',
    )
    .argument('<name>', 'the device: .fleetgate/devices/<name>/')
    .option('--timeout <seconds>', 'how long to wait for rotate/accepted', '60')
    .option('--json', 'print one JSON document')
    .action(async (name: string, options: { timeout: string; json?: boolean }) => {
      await run(options.json, async (output) => {
        const timeoutMs = Number(options.timeout) * 1000;
        if (!(timeoutMs > 0)) throw new UsageError('--timeout must be a positive number of seconds');
        const identity = readIdentity(name);
        const thingName = identity.file.thingName;
        if (identity.file.kind !== 'device' || !thingName)
          throw new CommandFailure(`${name} is not a provisioned device`);
        return withEndpoint((endpoint) => rotate(name, identity, thingName, timeoutMs, endpoint, output));
      });
    });
}

type Identity = ReturnType<typeof readIdentity>;
type RotationAnswer = { topic: string; body: Record<string, unknown> };

/**
 * Waits for the answer to a rotation request on an already subscribed client: the answer, a
 * `RotationTimeout`, or a `ConnectionClosed` as soon as the endpoint closes the connection (a
 * quarantined device's connection is closed at its next publish: no answer will ever come).
 */
function rotationAnswer(client: MqttClient, thingName: string, timeoutMs: number): Promise<RotationAnswer> {
  const base = `fleetgate/${thingName}/rotate`;
  const answer = new Promise<RotationAnswer>((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      client.off('message', onMessage);
      client.off('close', onClose);
    };
    const onMessage = (topic: string, payload: Buffer) => {
      if (topic !== `${base}/accepted` && topic !== `${base}/rejected`) return;
      done();
      try {
        resolve({ topic, body: JSON.parse(payload.toString('utf8')) as Record<string, unknown> });
      } catch {
        reject(new CommandFailure(`the answer on ${topic} is not JSON`));
      }
    };
    const onClose = () => {
      done();
      reject(
        new ConnectionClosed(
          `the endpoint closed the connection of ${thingName} before answering the rotation request`,
        ),
      );
    };
    const timer = setTimeout(() => {
      done();
      reject(new RotationTimeout(`no answer on ${base}/accepted|rejected within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    client.on('message', onMessage);
    client.once('close', onClose);
  });
  // Whoever waits for it sees the failure; it is never an unhandled rejection in the meantime.
  answer.catch(() => undefined);
  return answer;
}

/**
 * Publishes the rotation request and waits for its answer. A QoS 1 publish on a connection the
 * endpoint closes is never acknowledged (no reconnect): the answer's failure ends the wait instead.
 */
async function requestRotation(
  client: MqttClient,
  thingName: string,
  csrPem: string,
  timeoutMs: number,
): Promise<RotationAnswer> {
  if (!client.connected) {
    throw new ConnectionClosed(
      `the endpoint closed the connection of ${thingName} before the rotation request`,
    );
  }
  const answer = rotationAnswer(client, thingName, timeoutMs);
  const published = client.publishAsync(
    `fleetgate/${thingName}/rotate/request`,
    JSON.stringify({ csr: csrPem }),
    {
      qos: 1,
    },
  );
  published.catch(() => undefined);
  await Promise.race([published, answer]);
  return answer;
}

/** No answer in time: the request was sent, so the rotation may still be accepted server-side. */
class RotationTimeout extends SessionError {
  constructor(message: string) {
    super(message, 'timeout');
  }
}

/** The endpoint closed the device's connection while a rotation request waited for its answer. */
class ConnectionClosed extends SessionError {
  constructor(message: string) {
    super(message, 'closed');
  }
}

/**
 * `device connect`: holds the device's one connection and serves its session socket, so `device
 * rotate` in another terminal rotates through it (no second connection with the same client id) and
 * the commit is a clean reconnect with the new certificate.
 */
async function holdSession(
  name: string,
  identity: Identity,
  clientId: string,
  seconds: number,
  endpoint: Endpoint,
  output: Output,
): Promise<unknown> {
  let client = await connectOrFail(endpoint, identity, clientId);
  let certificateId = identity.file.certificateId;
  const received: Array<{ topic: string; payload: string }> = [];
  const filter = `fleetgate/${clientId}/rotate/+`;
  let stop: (why: 'endpoint' | 'time' | 'ctrl-c') => void = () => undefined;
  const ended = new Promise<'endpoint' | 'time' | 'ctrl-c'>((resolve) => {
    stop = resolve;
  });
  // MQTT 5 says why in a DISCONNECT packet before it closes; MQTT 3.1.1 only closes.
  let disconnectReason: number | undefined;
  const onDisconnect = (packet: { reasonCode?: number }) => {
    disconnectReason = packet.reasonCode;
  };
  const onClose = () => stop('endpoint');
  // A socket error (the endpoint's process gone: ECONNRESET) comes before the close; without a
  // listener it would be an uncaught exception instead of the session's end.
  let connectionError: string | undefined;
  const onError = (error: Error) => {
    connectionError = error.message;
  };
  const attach = async (next: MqttClient) => {
    next.on('error', onError);
    next.on('message', (topic, payload) => {
      const text = payload.toString('utf8');
      received.push({ topic, payload: text });
      output.say(`  ${topic}  ${text.length > 200 ? `${text.slice(0, 200)}…` : text}`);
    });
    next.on('disconnect', onDisconnect);
    next.once('close', onClose);
    if (identity.file.kind === 'device') await next.subscribeAsync(filter, { qos: 1 });
  };
  output.say(`connected as ${clientId} (certificate ${certificateId.slice(0, 12)}…)`);
  await attach(client);
  if (identity.file.kind === 'device') output.say(`  subscribed to ${filter}`);
  const closeSession =
    identity.file.kind === 'device'
      ? await serveSession(sessionSocketPath(deviceDir(name)), async (request) => {
          if (request.op === 'rotate') {
            output.say('  rotation requested by `device rotate` (through this session)');
            try {
              return {
                ok: true,
                ...(await requestRotation(client, clientId, request.csr, request.timeoutMs)),
              };
            } catch (error) {
              if (error instanceof RotationTimeout)
                output.say(`  ${error.message}; an answer that comes later is only printed here`);
              throw error;
            }
          }
          // The commit: a clean disconnect, then the same client id with the new certificate.
          const next = readIdentity(name);
          client.off('close', onClose);
          await client.endAsync();
          client = await connectOrFail(endpoint, next, clientId);
          certificateId = next.file.certificateId;
          await attach(client);
          output.say(`  reconnected with the new certificate ${certificateId.slice(0, 12)}…`);
          return { ok: true, certificateId };
        })
      : async () => undefined;
  try {
    const timer = Number.isFinite(seconds) ? setTimeout(() => stop('time'), seconds * 1000) : undefined;
    process.once('SIGINT', () => stop('ctrl-c'));
    const why = await ended;
    clearTimeout(timer);
    const result = {
      name,
      clientId,
      certificateId,
      connected: true,
      stillConnected: client.connected,
      received,
    };
    if (why === 'endpoint') {
      // The session ends with its connection (there is nothing left to hold); say why when known.
      const reason =
        disconnectReason === undefined
          ? ''
          : ` (DISCONNECT reason 0x${disconnectReason.toString(16).padStart(2, '0')})`;
      const details = {
        ...result,
        closedBy: 'endpoint',
        ...(disconnectReason === undefined ? {} : { disconnectReason }),
        ...(connectionError ? { connectionError } : {}),
      };
      // A stopped stack closes every connection and listens no more: nothing else to ask it.
      if (!(await listening(endpoint.host, endpoint.port))) {
        throw new CommandFailure(
          `the local IoT endpoint closed the connection of ${clientId}${reason} (stack stopped? nothing listens on ${endpoint.url} any more: \`fleetgate local status\`, \`fleetgate local up\`)`,
          { ...details, endpointListening: false },
        );
      }
      const closed = new CommandFailure(
        `the endpoint closed the connection of ${clientId}${reason}`,
        details,
      );
      throw await withQuarantineNote(closed, identity, endpoint);
    }
    return result;
  } finally {
    await closeSession();
    client.off('close', onClose);
    // A closed connection never acknowledges what is still in flight: end at once, do not wait for it.
    await client.endAsync(!client.connected);
  }
}

/** `device rotate`: through the running `device connect` session when there is one, else on its own connection. */
async function rotate(
  name: string,
  identity: Identity,
  thingName: string,
  timeoutMs: number,
  endpoint: Endpoint,
  output: Output,
): Promise<unknown> {
  const socket = sessionSocketPath(deviceDir(name));
  const csr = await createCsr({ subject: { commonName: identity.file.serial ?? thingName } });
  // The session answers within timeoutMs; the margin only covers a session that hangs.
  const shared = await ask(socket, { op: 'rotate', csr: csr.csrPem, timeoutMs }, timeoutMs + 15_000);
  let answer: RotationAnswer;
  try {
    if (shared !== 'no-session') {
      if (!shared.ok) {
        if (shared.code === 'timeout') throw new RotationTimeout(shared.error);
        throw new CommandFailure(shared.error);
      }
      if (!('topic' in shared)) throw new CommandFailure('the device session answered the rotation oddly');
      output.warn(`fleetgate: rotating through the running \`device connect ${name}\` session`);
      answer = shared;
    } else {
      answer = await rotateOnOwnConnection(identity, thingName, csr.csrPem, timeoutMs, endpoint);
    }
  } catch (error) {
    if (error instanceof RotationTimeout)
      throw await withQuarantineNote(
        new CommandFailure(`${error.message}; ${MAY_STILL_COMPLETE}`),
        identity,
        endpoint,
      );
    if (error instanceof SessionError || error instanceof CommandFailure)
      throw await withQuarantineNote(error, identity, endpoint);
    throw error;
  }
  if (answer.topic.endsWith('/rejected') && answer.body.reason === 'ROTATION_IN_PROGRESS')
    throw await inProgress(name, answer.body, identity, endpoint);
  if (answer.topic.endsWith('/rejected')) {
    throw await withQuarantineNote(
      new CommandFailure(
        `rotation rejected: ${String(answer.body.reason)} (${String(answer.body.message)})`,
        {
          rejected: answer.body,
        },
      ),
      identity,
      endpoint,
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
  // Connecting with the new certificate commits the rotation: the running session reconnects, or a
  // connection of our own.
  if (shared !== 'no-session') {
    const reconnected = await ask(socket, { op: 'reconnect' });
    if (reconnected === 'no-session' || !reconnected.ok)
      throw new CommandFailure(
        `the new certificate is saved, but the \`device connect\` session did not reconnect with it (${reconnected === 'no-session' ? 'it stopped' : reconnected.error}); run \`fleetgate device connect ${name}\` to commit`,
      );
  } else {
    const committed = await connectOrFail(endpoint, readIdentity(name), thingName);
    await committed.endAsync();
  }
  output.say(`rotated ${thingName}: ${previous.slice(0, 12)}… → ${certificateId.slice(0, 12)}…`);
  output.say('connected with the new certificate (the commit); the old one is kept as previous-*.pem');
  return {
    name,
    thingName,
    previousCertificateId: previous,
    certificateId,
    rotationDeadline: answer.body.rotationDeadline,
    viaSession: shared !== 'no-session',
  };
}

async function rotateOnOwnConnection(
  identity: Identity,
  thingName: string,
  csrPem: string,
  timeoutMs: number,
  endpoint: Endpoint,
): Promise<RotationAnswer> {
  const client = await connectOrFail(endpoint, identity, thingName);
  try {
    const base = `fleetgate/${thingName}/rotate`;
    await client.subscribeAsync([`${base}/accepted`, `${base}/rejected`], { qos: 1 });
    return await requestRotation(client, thingName, csrPem, timeoutMs);
  } finally {
    // Closed by the endpoint, or the request still unacknowledged at a timeout: nothing to wait for.
    await client.endAsync(true);
  }
}

/**
 * What a timed-out rotation request means: it was sent, and the answer is only late. The new key
 * lives in this process only and is not kept (a private key is never written anywhere but the
 * device's folder, and only for a certificate it got), so a late acceptance cannot be committed.
 */
const MAY_STILL_COMPLETE =
  "the request was sent, so the rotation may still complete server-side: if it is accepted, the device is ROTATING with a new certificate whose private key this command did not keep (it can never be committed), and the next `device rotate` is refused ROTATION_IN_PROGRESS (it says until when, and how to end it) until that rotation's deadline (ROTATION_DEADLINE_SECONDS, 24 h by default) has passed and sweepRotations has aborted it; the current certificate stays valid throughout. Give --timeout more time";

/**
 * `ROTATION_IN_PROGRESS`: an earlier request (one whose answer this command did not get) started a
 * rotation that waits for its commit. Says until when (the store's `rotationDeadline`) and what then.
 */
async function inProgress(
  name: string,
  body: Record<string, unknown>,
  identity: Identity,
  endpoint: Endpoint,
): Promise<CommandFailure> {
  const serial = identity.file.serial;
  const device = serial ? await readDevice(serial, endpoint) : undefined;
  const deadline = device?.state === 'ROTATING' ? device.rotationDeadline : undefined;
  const pending = device?.state === 'ROTATING' ? device.pendingCertificateId : undefined;
  const until = deadline ? `until ${deadline}` : 'until its deadline (ROTATION_DEADLINE_SECONDS)';
  const message = [
    `rotation rejected: ROTATION_IN_PROGRESS (${String(body.message)})`,
    `an earlier rotation request${pending ? ` (certificate ${pending.slice(0, 12)}…)` : ''} was accepted but never committed — typically a \`device rotate\` that gave up before the answer, so its private key is gone and it cannot be committed`,
    `it waits for its commit ${until}; the first sweepRotations run after that (its schedule: every 15 minutes by default) aborts it, the current certificate stays, and \`fleetgate device rotate ${name}\` works again`,
    `the local stack runs no schedule: run the sweep yourself, \`fleetgate invoke sweepRotations --event <file>\` with {"now": "${deadline ?? '<the deadline>'}"} in the file (it runs as of that instant: it aborts this rotation now, and does every other step due by then)`,
  ].join('; ');
  return new CommandFailure(message, {
    rejected: body,
    ...(deadline ? { rotationDeadline: deadline } : {}),
    ...(pending ? { pendingCertificateId: pending } : {}),
  });
}

/**
 * The failure, with what the store says about the device when it is quarantined: since when, why,
 * by whom, and how to release it.
 */
async function withQuarantineNote(
  error: Error,
  identity: Identity,
  endpoint: Endpoint,
): Promise<CommandFailure> {
  const base = error instanceof CommandFailure ? error.result : undefined;
  const serial = identity.file.serial;
  const device = serial ? await readDevice(serial, endpoint) : undefined;
  if (device?.state !== 'QUARANTINED')
    return error instanceof CommandFailure ? error : new CommandFailure(error.message);
  const quarantine = device.quarantine;
  const note = `${serial} was quarantined at ${quarantine?.at ?? '?'} (${quarantine?.reason ?? '?'}, by ${quarantine?.source ?? '?'}); see \`fleetgate devices history ${serial}\`, release with \`fleetgate quarantine release ${serial} --reason …\``;
  return new CommandFailure(`${error.message.split('\n')[0]}: ${note}`, {
    ...(typeof base === 'object' && base !== null ? base : {}),
    quarantined: { serial, since: quarantine?.at, reason: quarantine?.reason, source: quarantine?.source },
  });
}

/**
 * The device's record in the running stack's store; undefined when that cannot be read (the stack
 * stopped meanwhile: no ephemeral store is started for it, and its failure is not the command's).
 */
async function readDevice(serial: string, endpoint: Endpoint) {
  if (!readStackFile()) return undefined;
  const quiet: Output = { json: true, interactive: false, say: () => undefined, warn: () => undefined };
  const target = await resolveStoreTarget({ table: endpoint.tableName }, quiet).catch(() => undefined);
  if (!target) return undefined;
  try {
    return await target.store.getDevice(serial);
  } catch {
    return undefined;
  } finally {
    await target.close();
  }
}

/** Whether something still accepts TCP connections on `host:port` (a stopped stack's endpoint does not). */
function listening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    const done = (answer: boolean) => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(5000, () => done(true));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * A denied RegisterThing: IoT answers the device only `403 AccessDenied (Provisioning was denied by
 * the pre-provisioning hook)`, as AWS does. The reason is in the hook's log line (never a PEM):
 * read from the local stack's log, matched on the new certificate's id; else where to look.
 */
async function hookRejection(
  body: Record<string, unknown>,
  certificateId: string,
  recovery: RecoveryFacts | undefined,
  endpoint: Endpoint,
): Promise<CommandFailure> {
  const failure = rejected('RegisterThing', body);
  if (body.errorCode !== 'AccessDenied') return failure;
  const decision = certificateId ? await hookDecisionFromStackLog(certificateId) : undefined;
  const where = 'the hook’s log: `fleetgate logs --function preProvisionHook`';
  const why = decision?.reason
    ? `reason: ${decision.reason}${decision.detail ? ` — ${decision.detail}` : ''} (${where})`
    : `why: ${where}`;
  // Not (or not for this claim) on the allowlist: the steps from here, after what the store holds.
  let steps: string[] | undefined;
  if (
    recovery &&
    (decision?.reason === 'SERIAL_NOT_ALLOWLISTED' || decision?.reason === 'CLAIM_NOT_ALLOWED')
  ) {
    const serial = recovery.goal.kind === 'provision' ? recovery.goal.serial : undefined;
    const device = serial ? await readDevice(serial, endpoint) : undefined;
    steps = recoverySteps({ ...recovery, ...(device ? { device } : {}) });
  }
  // Only what the hook logged it did: the request is in the quarantine queue.
  const quarantine = decision?.quarantine
    ? `; the hook sent the presented certificate ${certificateId.slice(0, 12)}… to quarantine (${decision.quarantine.reason}${decision.quarantine.serial ? `, with device ${decision.quarantine.serial}` : '; the device itself is not quarantined'}): see \`fleetgate quarantine list\``
    : '';
  return new CommandFailure(
    `${failure.message}; ${why}${quarantine}${steps ? `; from here: ${describeSteps(steps)}` : ''}`,
    {
      rejected: body,
      ...(decision?.reason ? { hook: decision } : {}),
      ...(steps ? { steps } : {}),
    },
  );
}

/** The hook writes its line as it answers; the log may lag the answer by a moment. */
async function hookDecisionFromStackLog(certificateId: string): Promise<HookDecision | undefined> {
  const file = stackLogPath();
  for (let attempt = 0; attempt < 10; attempt += 1) {
    if (existsSync(file)) {
      const size = statSync(file).size;
      const fd = openSync(file, 'r');
      try {
        const length = Math.min(size, 512 * 1024);
        const buffer = Buffer.alloc(length);
        readSync(fd, buffer, 0, length, size - length);
        const decision = hookDecisionFor(
          buffer.toString('utf8').split('\n').map(parseLogLine),
          certificateId,
        );
        // A denial the hook may have sent to quarantine: its line follows the decision's.
        const pending =
          decision?.reason !== undefined &&
          SUSPICIOUS_DENIALS.has(decision.reason) &&
          !decision.quarantine &&
          attempt < 9;
        if (decision && !pending) return decision;
      } finally {
        closeSync(fd);
      }
    }
    await sleep(100);
  }
  return undefined;
}

function rejected(operation: string, body: Record<string, unknown>): CommandFailure {
  return new CommandFailure(
    `${operation} rejected: ${String(body.statusCode)} ${String(body.errorCode)} (${String(body.errorMessage)})`,
    { rejected: body },
  );
}
