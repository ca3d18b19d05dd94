/**
 * What the flows run against. A flow is written once against `AcceptanceTarget`; the two targets
 * differ only in how they are found (a local stack started for the run, or a deployed CloudFormation
 * stack), in where their control plane and MQTT endpoint are, in how the expiry sweep is started
 * (the local stack's `fleetgate invoke`, or Lambda Invoke) and where its report is read (a folder,
 * or S3).
 *
 * The global setup resolves a serializable `TargetDescriptor` once; each test file opens it
 * (`openTarget`) to get SDK clients of its own.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DescribeProvisioningTemplateCommand,
  GetRegistrationCodeCommand,
  IoTClient,
} from '@aws-sdk/client-iot';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { type CliResult, cliJson, runFleetgate } from './cli';
import type { MqttEndpoint } from './device';
import type { DeployedNames } from './names';
import { createClaimCertificate } from './operator';

export const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };

/** Settings of the deployment the flows depend on (read from the deployed functions on AWS). */
export interface DeploymentSettings {
  /** Thing name = prefix + serial (`param:thingNamePrefix`). */
  thingNamePrefix: string;
  /** DUPLICATE_CLIENTID disconnects that make a clone (`param:duplicateClientIdThreshold`). */
  duplicateClientIdThreshold: number;
}

interface CommonDescriptor {
  /** Unique per run: serials, thing names and CA subjects carry it. */
  runId: string;
  region: string;
  names: DeployedNames;
  endpoint: MqttEndpoint;
  settings: DeploymentSettings;
}

export interface LocalDescriptor extends CommonDescriptor {
  kind: 'local';
  /** `.fleetgate/stack.json` of the stack the flows use. */
  stackFile: string;
  /** Where `fleetgate device …` keeps keys for this run. */
  devicesDir: string;
  /** The IoT emulator (control and data plane). */
  iotEndpoint: string;
  /** The local S3 (the reports bucket), when the stack has one. */
  s3Endpoint?: string;
}

export interface AwsDescriptor extends CommonDescriptor {
  kind: 'aws';
  stackName: string;
  accountId?: string;
}

export type TargetDescriptor = LocalDescriptor | AwsDescriptor;

/** A claim certificate with the claim policy attached, as a factory installs it on devices. */
export interface ClaimCertificate {
  certificateId: string;
  certificatePem: string;
  privateKeyPem: string;
}

/** What `expirySweep` answers (its result, without the report body). */
export interface SweepAnswer {
  runId: string;
  summary: { counts: Record<string, number>; atRisk: number };
  files: { json: string; csv: string; html: string };
}

export interface AcceptanceTarget {
  readonly kind: TargetDescriptor['kind'];
  readonly runId: string;
  readonly names: DeployedNames;
  readonly endpoint: MqttEndpoint;
  readonly settings: DeploymentSettings;
  /** The IoT control plane, as an operator uses it (AWS CLI / SDK). */
  readonly iot: IoTClient;
  /** How long an asynchronous effect (rules → SQS → function → store) may take here. */
  readonly patienceMs: number;
  /** A private folder for files handed to the CLI (allowlist CSVs, events). */
  readonly workDir: string;
  /** `fleetgate <args> --json` against this target's store (adds `--target aws --table …` on AWS). */
  fleetgate(args: string[]): Promise<CliResult>;
  /** A new claim certificate with the deployment's claim policy attached. */
  createClaim(name: string): Promise<ClaimCertificate>;
  /** The account's CA registration code (the verification certificate's common name). */
  registrationCode(): Promise<string>;
  /** Starts the expiry sweep as its schedule would (a manual event) and resolves with its answer. */
  invokeExpirySweep(event: Record<string, unknown>): Promise<SweepAnswer>;
  /** A report file the sweep wrote (a path, or an `s3://` location). */
  readReport(location: string): Promise<string>;
  close(): void;
}

export function openTarget(descriptor: TargetDescriptor): AcceptanceTarget {
  return descriptor.kind === 'local' ? openLocal(descriptor) : openAws(descriptor);
}

function workDir(): string {
  return mkdtempSync(join(tmpdir(), 'fleetgate-acceptance-'));
}

function openLocal(descriptor: LocalDescriptor): AcceptanceTarget {
  const iot = new IoTClient({
    endpoint: descriptor.iotEndpoint,
    region: descriptor.region,
    credentials: LOCAL_CREDENTIALS,
  });
  const s3 = descriptor.s3Endpoint
    ? new S3Client({
        endpoint: descriptor.s3Endpoint,
        region: descriptor.region,
        credentials: LOCAL_CREDENTIALS,
        forcePathStyle: true,
      })
    : undefined;
  const dir = workDir();
  const env = { FLEETGATE_STACK_FILE: descriptor.stackFile, FLEETGATE_DEVICES_DIR: descriptor.devicesDir };
  const fleetgate = (args: string[]) => runFleetgate(cliArgs(descriptor, args), env);
  return {
    kind: 'local',
    runId: descriptor.runId,
    names: descriptor.names,
    endpoint: descriptor.endpoint,
    settings: descriptor.settings,
    iot,
    patienceMs: 60_000,
    workDir: dir,
    fleetgate,
    createClaim: async (name) => {
      // Until the local stack creates serverless.yml's template and policies itself, the public
      // path that does is `fleetgate device claim`; once they exist, the operator's SDK calls.
      if (await templateExists(iot, descriptor.names.templateName))
        return createClaimCertificate(iot, descriptor.names);
      const claim = cliJson<{ certificateId: string; certificateFile: string; privateKeyFile: string }>(
        await fleetgate(['device', 'claim', name]),
      );
      return {
        certificateId: claim.certificateId,
        certificatePem: await readFile(claim.certificateFile, 'utf8'),
        privateKeyPem: await readFile(claim.privateKeyFile, 'utf8'),
      };
    },
    registrationCode: () => registrationCode(iot),
    invokeExpirySweep: async (event) => {
      const file = join(dir, `sweep-event-${Date.now()}.json`);
      await writeFile(file, JSON.stringify(event));
      const out = cliJson<{ result: SweepAnswer }>(
        await fleetgate(['invoke', 'expirySweep', '--event', file]),
      );
      return out.result;
    },
    // The sweep writes where serverless.yml says: the reports bucket (the local S3), or a folder.
    readReport: (location) =>
      location.startsWith('s3://') && s3 ? readS3(s3, location) : readFile(location, 'utf8'),
    close: () => {
      iot.destroy();
      s3?.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The command line of `fleetgate <args>` on a target: `--json` always; on AWS the commands that
 * read or write the store also get `--target aws --table <the stack's table>`.
 */
export function cliArgs(descriptor: TargetDescriptor, args: string[]): string[] {
  const [group, command] = args;
  const storeCommand =
    (group === 'allowlist' && command === 'import') ||
    (group === 'devices' && command !== undefined) ||
    (group === 'quarantine' && command === 'list') ||
    (group === 'certificates' && command === 'register');
  const target =
    descriptor.kind === 'aws' && storeCommand
      ? ['--target', 'aws', '--table', descriptor.names.tableName]
      : [];
  return [...args, ...target, '--json'];
}

function openAws(descriptor: AwsDescriptor): AcceptanceTarget {
  const region = descriptor.region;
  const iot = new IoTClient({ region });
  const lambda = new LambdaClient({ region });
  const s3 = new S3Client({ region });
  const dir = workDir();
  const env = { AWS_REGION: region, AWS_DEFAULT_REGION: region };
  return {
    kind: 'aws',
    runId: descriptor.runId,
    names: descriptor.names,
    endpoint: descriptor.endpoint,
    settings: descriptor.settings,
    iot,
    // Lambda cold starts, SQS batching windows and IoT's eventual consistency.
    patienceMs: 180_000,
    workDir: dir,
    fleetgate: (args) => runFleetgate(cliArgs(descriptor, args), env),
    createClaim: () => createClaimCertificate(iot, descriptor.names),
    registrationCode: () => registrationCode(iot),
    invokeExpirySweep: (event) => invokeSweep(lambda, descriptor.names.functions.expirySweep, event),
    readReport: (location) => readS3(s3, location),
    close: () => {
      iot.destroy();
      lambda.destroy();
      s3.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function templateExists(iot: IoTClient, templateName: string): Promise<boolean> {
  try {
    await iot.send(new DescribeProvisioningTemplateCommand({ templateName }));
    return true;
  } catch (error) {
    if ((error as { name?: string }).name === 'ResourceNotFoundException') return false;
    throw error;
  }
}

async function registrationCode(iot: IoTClient): Promise<string> {
  const out = await iot.send(new GetRegistrationCodeCommand({}));
  if (!out.registrationCode) throw new Error('GetRegistrationCode returned no code');
  return out.registrationCode;
}

/** Lambda Invoke (RequestResponse) of the deployed sweep; a function error is thrown with its payload. */
export async function invokeSweep(
  lambda: LambdaClient,
  functionName: string,
  event: Record<string, unknown>,
): Promise<SweepAnswer> {
  const out = await lambda.send(
    new InvokeCommand({ FunctionName: functionName, Payload: Buffer.from(JSON.stringify(event)) }),
  );
  const text = out.Payload ? Buffer.from(out.Payload).toString('utf8') : '';
  if (out.FunctionError) throw new Error(`${functionName} failed (${out.FunctionError}): ${text}`);
  return JSON.parse(text) as SweepAnswer;
}

/** The object at `s3://bucket/key`. */
export async function readS3(s3: S3Client, location: string): Promise<string> {
  const match = /^s3:\/\/([^/]+)\/(.+)$/.exec(location);
  if (!match?.[1] || !match[2]) throw new Error(`not an s3:// location: ${location}`);
  const out = await s3.send(new GetObjectCommand({ Bucket: match[1], Key: match[2] }));
  if (!out.Body) throw new Error(`${location} is empty`);
  return out.Body.transformToString('utf8');
}
