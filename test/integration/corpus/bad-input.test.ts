/**
 * Issue 15: a corpus of bad input, generated and checked by property-based tests (fast-check), run
 * against the real handlers, DynamoDB Local and the IoT emulator. Every case must hold four
 * invariants:
 * 1. no crash and no unhandled rejection;
 * 2. a specific reason, naming the field and the rule broken (`field: rule`, with a reason code);
 * 3. no partial write: a full dump of the table is the same before and after (or, where a
 *    rejection is itself recorded, holds exactly that record and nothing else);
 * 4. no message silently dropped: each SQS message ends processed, rejected with its reason in the
 *    log, or dead-lettered (failed until maxReceiveCount), and each MQTT request gets its reply.
 *
 * Inputs: pre-provisioning hook events, PEM certificates (truncated, wrong type, huge, wrong curve,
 * CA:true, expired, bad signature — real keys and certificates), CSRs (the same, through rotation and
 * the Fleet Provisioning API), JITR / presence / thing events and quarantine requests as SQS bodies,
 * allowlist CSV rows, CLI arguments, and Fleet Provisioning MQTT payloads in JSON and CBOR.
 * The seed is fixed (reproducible); FLEETGATE_CORPUS_SEED explores others. The test prints the
 * number of cases and of violations.
 */
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { Logger } from '@aws-lambda-powertools/logger';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { encode as encodeCbor } from 'cborg';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { rotateCertificate } from '../../../functions/rotate-certificate/rotation';
import { handleFleetRequest, parseFleetTopic } from '../../../local/mqtt/fleet-api';
import { createCertificateAuthority, createCsr, x509 } from '../../../local/pki';
import { importAllowlistCsv } from '../../../shared/allowlist/import-csv';
import { DEFAULT_SERIAL_PATTERN } from '../../../shared/allowlist/rows';
import type { IotRegistry } from '../../../shared/iot/iot-registry';
import { RotationStore } from '../../../shared/store/rotation-store';
import { type CertificateAuthority, issueTestCertificate, type KeyKind, sha256 } from '../../support/certs';
import { createTestTable, type TestTable } from '../../support/dynamo';
import { buildTestHook, type TestHook } from '../../support/hook';
import { fleetTemplateBody } from '../../support/iot-emulator';
import { ACCOUNT, allowlist, type Rig, sqsRecord, startRig } from '../../support/jitr';
import { lambdaContext } from '../../support/lambda';
import { buildTestWorker, type TestWorker } from '../../support/quarantine';

const SEED = Number(process.env.FLEETGATE_CORPUS_SEED ?? 20_261_124);
/** Receives before SQS dead-letters a message (serverless.yml: maxReceiveCount 5; fewer here). */
const MAX_RECEIVES = 3;
const CLAIM = 'c1a1'.padEnd(64, '0');
const SERIAL = 'CORPUS-0001';
const TEMPLATE_ARN = `arn:aws:iot:us-east-1:${ACCOUNT}:provisioningtemplate/fleetgate-test-fleet`;
/** `field: rule` somewhere in a reason (the field may be dotted or `row`/`body`/`event`). */
const FIELD_AND_RULE = /(^|[\s;(])[A-Za-z][\w.[\]-]*: \S/;

interface LogEntry {
  level: string;
  message: string;
  attributes: Record<string, unknown>;
}

const logs: LogEntry[] = [];
const unhandled: unknown[] = [];
const counts: Record<string, number> = {};
const violations: string[] = [];

let table: TestTable;
let rig: Rig;
let hook: TestHook;
let worker: TestWorker;
let ca: CertificateAuthority;
let pems: Array<{ name: string; pem: string; certificateId: string }>;
let csrs: Array<{ name: string; csr: string; fleetApi?: boolean }>;
let activeCertificateId: string;

/** A Powertools logger that keeps every entry (nothing printed). */
function capturingLogger(): Logger {
  const logger = new Logger({ serviceName: 'fleetgate', logLevel: 'SILENT' });
  for (const level of ['debug', 'info', 'warn', 'error'] as const) {
    vi.spyOn(logger, level).mockImplementation((message: unknown, ...extra: unknown[]) => {
      logs.push({
        level,
        message: String(typeof message === 'object' ? JSON.stringify(message) : message),
        attributes: Object.assign({}, ...(extra.filter((e) => typeof e === 'object') as object[])),
      });
    });
  }
  return logger;
}

/** Every item of the table, sorted: the store as a whole. */
async function dump(): Promise<string[]> {
  const items: string[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const out = await table.store.client.send(
      new ScanCommand({ TableName: table.tableName, ConsistentRead: true, ExclusiveStartKey: start }),
    );
    for (const item of out.Items ?? []) items.push(stable(item));
    start = out.LastEvaluatedKey;
  } while (start);
  return items.sort();
}

/** JSON with keys sorted at every level (two dumps of the same items compare equal). */
function stable(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stable).join(',')}]`;
  if (value instanceof Set) return stable([...value].sort());
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${stable((value as Record<string, unknown>)[key])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'undefined';
}

function diff(before: readonly string[], after: readonly string[]): { added: string[]; removed: string[] } {
  const b = new Set(before);
  const a = new Set(after);
  return { added: after.filter((x) => !b.has(x)), removed: before.filter((x) => !a.has(x)) };
}

/**
 * Runs one case and records its verdict. `run` returns the problems it saw (empty: the case holds);
 * `store` says what the table may look like afterwards (default: unchanged).
 */
async function holds(
  kind: string,
  name: string,
  run: () => Promise<string[]>,
  store: (change: { added: string[]; removed: string[] }) => string[] = (change) =>
    change.added.length + change.removed.length === 0
      ? []
      : [
          `store changed: +${change.added.length} -${change.removed.length} ${change.added[0]?.slice(0, 160) ?? ''}`,
        ],
): Promise<boolean> {
  counts[kind] = (counts[kind] ?? 0) + 1;
  const before = await dump();
  let problems: string[];
  try {
    problems = await run();
  } catch (error) {
    problems = [`crashed: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`];
  }
  problems.push(...store(diff(before, await dump())));
  if (problems.length > 0) violations.push(`${kind} / ${name}: ${problems.join('; ')}`);
  return problems.length === 0;
}

/** The log entries about one SQS message. */
function logsOf(messageId: string): LogEntry[] {
  return logs.filter((entry) => entry.attributes.messageId === messageId);
}

/** Whether some entry gives a reason naming a field and a rule. */
function reasoned(entries: readonly LogEntry[]): boolean {
  return entries.some((entry) =>
    ['detail', 'reason', 'error'].some((key) => {
      const value = entry.attributes[key];
      const text = typeof value === 'string' ? value : value instanceof Error ? value.message : '';
      return FIELD_AND_RULE.test(text);
    }),
  );
}

type Handler = (event: SQSEvent, context: ReturnType<typeof lambdaContext>) => Promise<SQSBatchResponse>;

/**
 * Delivers one body as SQS would: redelivered with the same message id while it fails, dead-lettered
 * after MAX_RECEIVES. Problems: dropped without a reason (acknowledged and nothing says why).
 */
async function throughQueue(handler: Handler, body: string): Promise<string[]> {
  const messageId = randomUUID();
  for (let receive = 1; receive <= MAX_RECEIVES; receive += 1) {
    const response = await handler(
      { Records: [sqsRecord(body, messageId, receive)] },
      lambdaContext('corpus', 30_000),
    );
    const failed = response.batchItemFailures.some((failure) => failure.itemIdentifier === messageId);
    if (!failed) {
      // Acknowledged: only as a rejection that says which field broke which rule.
      return reasoned(logsOf(messageId))
        ? []
        : ['acknowledged without a field: rule reason (silently dropped)'];
    }
  }
  // Dead-lettered after MAX_RECEIVES: kept, never lost; the failure must still be explained.
  return reasoned(logsOf(messageId)) ? [] : ['dead-lettered without a field: rule reason in the log'];
}

/** A value of the wrong type for any field. */
const wrongType = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 3 }),
);
/** Strings no serial, id or name may be (control characters, unicode, huge, empty, path tricks). */
const hostileString = fc.oneof(
  fc.constant(''),
  fc.string({ minLength: 65, maxLength: 3000 }),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }),
  fc.constantFrom(
    '../../etc/passwd',
    'SN 0001',
    'SN\u00000001',
    '=cmd|"/C calc"!A0',
    'SN-\u202e1000',
    '$aws/things',
  ),
);
const notHex64 = fc.oneof(
  hostileString,
  fc.stringMatching(/^[0-9a-f]{63}$/),
  fc.stringMatching(/^[0-9a-f]{65}$/),
  fc.stringMatching(/^[g-z]{64}$/),
);

beforeAll(async () => {
  process.on('unhandledRejection', (reason) => unhandled.push(reason));
  table = await createTestTable('corpus');
  const logger = capturingLogger();
  // The emulator's RegisterThing calls the hook as AWS IoT would.
  rig = await startRig(table.store, {
    logger,
    invokeHook: (_arn, event) => hook.hook(event, lambdaContext('fleetgate-test-preProvisionHook', 5_000)),
  });
  hook = buildTestHook(table.store, {}, Date.now(), logger);
  worker = buildTestWorker(table, rig.iot);
  ca = await createCa();
  await allowlist(table.store, [SERIAL, 'CORPUS-0002', 'CORPUS-0003']);
  // An ACTIVE device for rotation requests (its current certificate recorded in the store).
  const current = await issueTestCertificate(ca, { commonName: 'CORPUS-ROT-1' });
  activeCertificateId = current.certificateId;
  const now = new Date().toISOString();
  await table.store.createDevice(
    {
      serial: 'CORPUS-ROT-1',
      state: 'ACTIVE',
      version: 1,
      certificateId: current.certificateId,
      thingName: 'CORPUS-ROT-1',
      attributes: {},
      createdAt: now,
      updatedAt: now,
    } as never,
    { id: 'seed', actor: 'test' },
  );
  await table.store.putCertificateIfAbsent({
    certificateId: current.certificateId,
    kind: 'DEVICE',
    status: 'ACTIVE',
    source: 'JITR',
    serial: 'CORPUS-ROT-1',
    issuer: 'test',
    notBefore: now,
    notAfter: new Date(Date.now() + 86_400_000).toISOString(),
    publicKeyHash: current.publicKeyHash,
    createdAt: now,
    updatedAt: now,
  });
  // The emulator's template for RegisterThing, wired to the hook.
  const { CreateProvisioningTemplateCommand } = await import('@aws-sdk/client-iot');
  await rig.iot.send(
    new CreateProvisioningTemplateCommand({
      templateName: 'fleetgate-test-fleet',
      templateBody: fleetTemplateBody(),
      provisioningRoleArn: `arn:aws:iam::${ACCOUNT}:role/provisioning`,
      enabled: true,
      preProvisioningHook: {
        targetArn: `arn:aws:lambda:us-east-1:${ACCOUNT}:function:preProvisionHook`,
        payloadVersion: '2020-04-01',
      },
    }),
  );
  pems = await badPems(ca);
  csrs = await badCsrs();
}, 120_000);

afterAll(async () => {
  const total = Object.values(counts).reduce((sum, n) => sum + n, 0);
  console.log(
    `bad-input corpus (seed ${SEED}): ${total} cases, ${violations.length} violations, ${unhandled.length} unhandled rejections\n` +
      Object.entries(counts)
        .map(([kind, n]) => `  ${kind.padEnd(28)} ${n}`)
        .join('\n') +
      violations
        .slice(0, 10)
        .map((violation) => `\n  ✖ ${violation}`)
        .join(''),
  );
  await rig?.stop();
  await table?.drop();
});

function createCa(): Promise<CertificateAuthority> {
  return createCertificateAuthority({ subject: { commonName: 'Corpus Device CA' } });
}

/** PEMs a certificate field must refuse, each with a name (real keys and certificates). */
async function badPems(issuer: CertificateAuthority) {
  const good = await issueTestCertificate(issuer, { commonName: SERIAL });
  const body = good.pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
  const wrap = (label: string, b64: string) =>
    `-----BEGIN ${label}-----\n${(b64.match(/.{1,64}/g) ?? []).join('\n')}\n-----END ${label}-----`;
  const list: Array<{ name: string; pem: string; certificateId: string }> = [];
  const add = (name: string, pem: string, certificateId = good.certificateId) =>
    list.push({ name, pem, certificateId });
  for (const label of ['CERTIFICATE REQUEST', 'PRIVATE KEY', 'PUBLIC KEY', 'X509 CRL', 'TRUSTED CERTIFICATE'])
    add(`wrong type ${label}`, wrap(label, body));
  add('BEGIN/END mismatch', good.pem.replace('END CERTIFICATE', 'END CERTIFICATE REQUEST'));
  add('two certificates', `${good.pem}\n${good.pem}`);
  add('trailing text', `${good.pem}\nthis is not PEM`);
  add('leading text', `hello\n${good.pem}`);
  add('not base64', wrap('CERTIFICATE', `${body.slice(0, 40)}!!!!${body.slice(44)}`));
  add(
    'random DER',
    wrap(
      'CERTIFICATE',
      Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 37) % 256)).toString('base64'),
    ),
  );
  add('huge (over the PEM limit)', wrap('CERTIFICATE', body.repeat(40)));
  add(
    'trailing DER bytes',
    wrap(
      'CERTIFICATE',
      Buffer.concat([Buffer.from(body, 'base64'), Buffer.from([0, 1, 2, 3])]).toString('base64'),
    ),
  );
  add('empty', '');
  add('whitespace', '   \n  ');
  add('only the header', '-----BEGIN CERTIFICATE-----');
  for (const kind of ['secp256k1', 'P-192', 'P-521', 'Ed25519', 'RSA-1024'] as KeyKind[]) {
    const weak = await issueTestCertificate(issuer, { kind, commonName: SERIAL });
    add(`wrong curve / weak key ${kind}`, weak.pem, weak.certificateId);
  }
  const expired = await issueTestCertificate(issuer, {
    commonName: SERIAL,
    notBefore: new Date(Date.now() - 400 * 86_400_000),
    notAfter: new Date(Date.now() - 86_400_000),
  });
  add('expired', expired.pem, expired.certificateId);
  const future = await issueTestCertificate(issuer, {
    commonName: SERIAL,
    notBefore: new Date(Date.now() + 30 * 86_400_000),
    notAfter: new Date(Date.now() + 400 * 86_400_000),
  });
  add('not yet valid', future.pem, future.certificateId);
  // basicConstraints cA=TRUE: a CA certificate presented as a device certificate.
  const subCa = await createCertificateAuthority({ subject: { commonName: SERIAL } });
  add(
    'CA:true',
    subCa.certificatePem,
    sha256(new Uint8Array(new x509.X509Certificate(subCa.certificatePem).rawData)),
  );
  add('certificateId of another certificate', good.pem, sha256(Buffer.from('another')));
  return list;
}

/** CSRs a rotation request or CreateCertificateFromCsr must refuse. */
async function badCsrs() {
  const good = (await createCsr({ subject: { commonName: 'CORPUS-ROT-1' } })).csrPem;
  const body = good.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
  const der = Buffer.from(body, 'base64');
  const wrap = (label: string, b64: string) =>
    `-----BEGIN ${label}-----\n${(b64.match(/.{1,64}/g) ?? []).join('\n')}\n-----END ${label}-----`;
  // fleetApi: AWS IoT's CreateCertificateFromCsr refuses it too (the others are only against
  // fleetgate's rotation rules: another subject, a P-521 key, a CA:true request).
  const list: Array<{ name: string; csr: string; fleetApi?: boolean }> = [];
  // Bad signature: a byte of the signature flipped (the CSR still parses).
  const flipped = Buffer.from(der);
  flipped[flipped.length - 3] = (flipped[flipped.length - 3] ?? 0) ^ 0xff;
  list.push({
    name: 'bad signature',
    csr: wrap('CERTIFICATE REQUEST', flipped.toString('base64')),
    fleetApi: true,
  });
  list.push({ name: 'wrong type CERTIFICATE', csr: wrap('CERTIFICATE', body), fleetApi: true });
  list.push({ name: 'huge', csr: wrap('CERTIFICATE REQUEST', body.repeat(40)), fleetApi: true });
  list.push({
    name: 'truncated DER',
    csr: wrap('CERTIFICATE REQUEST', der.subarray(0, der.length - 20).toString('base64')),
    fleetApi: true,
  });
  const p521 = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-521' }, true, [
    'sign',
    'verify',
  ]);
  const weak = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'CN=CORPUS-ROT-1',
    keys: p521,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-512' },
  });
  list.push({ name: 'wrong curve P-521', csr: weak.toString('pem') });
  list.push({
    name: 'another subject',
    csr: (await createCsr({ subject: { commonName: 'SOMEONE-ELSE' } })).csrPem,
  });
  // A CSR asking for basicConstraints cA=TRUE.
  const keys = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ]);
  const caRequest = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'CN=CORPUS-ROT-1',
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [new x509.BasicConstraintsExtension(true, 0, true)],
  });
  list.push({ name: 'CA:true requested', csr: caRequest.toString('pem') });
  list.push({ name: 'two requests', csr: `${good}\n${good}`, fleetApi: true });
  list.push({ name: 'private key instead', csr: wrap('PRIVATE KEY', body), fleetApi: true });
  return list;
}

/** The hook event a device would cause, before the corpus breaks it. */
function hookEvent(): Record<string, unknown> {
  const pem = pems.find((entry) => entry.name === 'certificateId of another certificate');
  return {
    claimCertificateId: CLAIM,
    certificateId: sha256(Buffer.from(randomUUID())),
    certificatePem: pem?.pem ?? '',
    templateArn: TEMPLATE_ARN,
    clientId: 'claim.corpus',
    parameters: { SerialNumber: SERIAL },
  };
}

async function denied(event: unknown): Promise<string[]> {
  const before = logs.length;
  const response = await hook.hook(event, lambdaContext('fleetgate-test-preProvisionHook', 5_000));
  const problems: string[] = [];
  if (JSON.stringify(response) !== JSON.stringify({ allowProvisioning: false }))
    problems.push(`answered ${JSON.stringify(response)}`);
  const denial = logs.slice(before).find((entry) => entry.message === 'provisioning denied');
  const reason = denial?.attributes.reason;
  const detail = String(denial?.attributes.detail ?? '');
  if (typeof reason !== 'string' || !/^[A-Z][A-Z0-9_]+$/.test(reason)) problems.push('no reason code logged');
  if (!FIELD_AND_RULE.test(detail)) problems.push(`detail names no field and rule: "${detail}"`);
  if (reason === 'INTERNAL_ERROR' || reason === 'STORE_UNAVAILABLE') problems.push(`denied by ${reason}`);
  return problems;
}

const run = { seed: SEED, numRuns: 0, endOnFailure: true };

describe('bad-input corpus (property-based, issue 15)', () => {
  it('pre-provisioning hook events: every broken field is denied with its field and rule, nothing written', async () => {
    const fields = [
      'claimCertificateId',
      'certificateId',
      'certificatePem',
      'templateArn',
      'clientId',
      'parameters',
    ];
    const mutation = fc.oneof(
      fc.record({ op: fc.constant('drop' as const), field: fc.constantFrom(...fields) }),
      fc.record({ op: fc.constant('type' as const), field: fc.constantFrom(...fields), value: wrongType }),
      fc.record({
        op: fc.constant('id' as const),
        field: fc.constantFrom('claimCertificateId', 'certificateId'),
        value: notHex64,
      }),
      fc.record({ op: fc.constant('serial' as const), value: hostileString }),
      fc.record({ op: fc.constant('serialType' as const), value: wrongType }),
      fc.record({ op: fc.constant('arn' as const), value: hostileString }),
      fc.record({ op: fc.constant('parameters' as const), count: fc.integer({ min: 51, max: 80 }) }),
      fc.record({ op: fc.constant('pem' as const), index: fc.nat() }),
      fc.record({ op: fc.constant('whole' as const), value: fc.oneof(wrongType, fc.string()) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 3 }), async (mutations) => {
        let event: unknown = hookEvent();
        for (const m of mutations) {
          const target = (
            typeof event === 'object' && event !== null && !Array.isArray(event) ? event : {}
          ) as Record<string, unknown>;
          switch (m.op) {
            case 'drop':
              delete target[m.field];
              break;
            case 'type':
            case 'id':
              target[m.field] = m.value;
              break;
            case 'serial':
            case 'serialType':
              target.parameters = { SerialNumber: m.value };
              break;
            case 'arn':
              target.templateArn = m.value;
              break;
            case 'parameters':
              target.parameters = Object.fromEntries(
                Array.from({ length: m.count }, (_, i) => [`P${i}`, 'x']).concat([['SerialNumber', SERIAL]]),
              );
              break;
            case 'pem': {
              const pem = pems[m.index % pems.length];
              target.certificatePem = pem?.pem;
              target.certificateId = pem?.certificateId;
              break;
            }
            case 'whole':
              event = m.value;
              continue;
          }
          event = target;
        }
        return holds('hook event', JSON.stringify(mutations).slice(0, 200), () => denied(event));
      }),
      { ...run, numRuns: 90 },
    );
  });

  it('certificate PEMs in the hook: truncated, wrong type, huge, wrong curve, CA:true, expired — each denied with its rule', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.nat(),
        fc.oneof(fc.constant('as is' as const), fc.record({ cut: fc.integer({ min: 1, max: 2000 }) })),
        async (index, how) => {
          const base = pems[index % pems.length];
          if (!base) return true;
          const pem = how === 'as is' ? base.pem : base.pem.slice(0, Math.max(0, base.pem.length - how.cut));
          return holds('certificate PEM (hook)', `${base.name} ${JSON.stringify(how)}`, () =>
            denied({ ...hookEvent(), certificatePem: pem, certificateId: base.certificateId }),
          );
        },
      ),
      { ...run, numRuns: 60 },
    );
  });

  it('JITR: a certificate whose signature does not verify against the CA it names is refused (UNTRUSTED_ISSUER), its rejection recorded and nothing else', async () => {
    const caRecord = rig.emulator.registry.cas.get(rig.caCertificateId);
    if (!caRecord) throw new Error('the rig has no CA');
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 30 }), async (offset) => {
        // A certificate from the rig's CA with one byte of its signature changed.
        const issued = await issueTestCertificate(rig.ca, { commonName: 'CORPUS-0002' });
        const der = Buffer.from(issued.der);
        der[der.length - offset] = (der[der.length - offset] ?? 0) ^ 0x01;
        const forged = new x509.X509Certificate(der);
        const record = rig.emulator.registry.autoRegister(forged, forged.toString('pem'), caRecord);
        const recordId = () => record.certificateId;
        const body = JSON.stringify({
          certificateId: record.certificateId,
          caCertificateId: rig.caCertificateId,
          timestamp: Date.now(),
          certificateStatus: 'PENDING_ACTIVATION',
          awsAccountId: ACCOUNT,
        });
        rig.quarantine.requests.length = 0;
        return holds(
          'JITR bad signature',
          `offset ${offset}`,
          async () => {
            const messageId = randomUUID();
            const response = await rig.registration(
              { Records: [sqsRecord(body, messageId)] },
              lambdaContext('corpus', 30_000),
            );
            const problems: string[] = [];
            if (response.batchItemFailures.length > 0) problems.push('failed instead of rejecting');
            const rejection = logs.find(
              (entry) =>
                entry.message === 'certificate rejected' &&
                entry.attributes.certificateId === record.certificateId,
            );
            if (rejection?.attributes.reason !== 'UNTRUSTED_ISSUER')
              problems.push(`rejection ${JSON.stringify(rejection?.attributes ?? {}).slice(0, 160)}`);
            else if (!FIELD_AND_RULE.test(String(rejection.attributes.detail)))
              problems.push(`detail "${String(rejection.attributes.detail)}"`);
            const status = rig.emulator.registry.certificates.get(record.certificateId)?.status;
            if (status === 'ACTIVE') problems.push('the forged certificate was activated');
            const request = rig.quarantine.requests.at(-1);
            if (request && request.reason !== 'UNTRUSTED_ISSUER' && request.reason !== 'INVALID_CERTIFICATE')
              problems.push(`quarantined for ${request.reason}`);
            return problems;
          },
          // The rejection is complete: the certificate's record (with its reason, no serial) and the
          // completed claim of its one quarantine request — nothing else, nothing half-done.
          (change) => {
            const record = change.added.filter((item) => item.includes(`"PK":"CERT#${recordId()}"`));
            const claim = change.added.filter((item) =>
              item.includes(`"PK":"DEDUP#quarantine:REGISTRATION:${recordId()}"`),
            );
            const problems: string[] = [];
            if (change.removed.length > 0) problems.push(`${change.removed.length} item(s) removed`);
            if (record.length !== 1 || !record[0]?.includes('"rejectedReason":"UNTRUSTED_ISSUER"'))
              problems.push('no complete rejection record of the certificate');
            if (claim.length !== 1 || !claim[0]?.includes('"done":true'))
              problems.push('the quarantine claim is not completed');
            if (change.added.length !== record.length + claim.length)
              problems.push(
                `unexpected items: ${change.added
                  .filter((item) => !record.includes(item) && !claim.includes(item))
                  .map((item) => item.slice(0, 100))
                  .join(' | ')}`,
              );
            return problems;
          },
        );
      }),
      { ...run, numRuns: 10 },
    );
  });

  it('CSRs in rotation requests: bad signature, wrong type, huge, truncated, wrong curve, CA:true — refused with the rule, nothing written', async () => {
    const published: Array<{ topic: string; message: object }> = [];
    const deps = {
      config: rig.config,
      store: table.store,
      rotations: new RotationStore(table.store),
      iot: {} as unknown as IotRegistry,
      messenger: {
        publish: async (topic: string, message: object) => {
          published.push({ topic, message });
        },
      },
      newId: randomUUID,
    };
    await fc.assert(
      fc.asyncProperty(
        fc.nat(),
        fc.option(fc.integer({ min: 1, max: 400 }), { nil: undefined }),
        async (index, cut) => {
          const base = csrs[index % csrs.length];
          if (!base) return true;
          const csr = cut === undefined ? base.csr : base.csr.slice(0, Math.max(1, base.csr.length - cut));
          return holds('CSR (rotation)', `${base.name} cut ${cut}`, async () => {
            const before = published.length;
            const outcome = await rotateCertificate(
              { csr, principal: activeCertificateId, clientId: 'CORPUS-ROT-1', thingName: 'CORPUS-ROT-1' },
              randomUUID(),
              deps as never,
              { iso: new Date().toISOString(), epochMs: Date.now() },
            );
            const problems: string[] = [];
            if (outcome.status !== 'rejected') problems.push(`not rejected: ${outcome.status}`);
            else if (!FIELD_AND_RULE.test(outcome.detail))
              problems.push(`no field: rule in "${outcome.detail}"`);
            const answer = published.slice(before).find((entry) => entry.topic.endsWith('/rotate/rejected'));
            if (!answer) problems.push('no rejected answer published to the device');
            return problems;
          });
        },
      ),
      { ...run, numRuns: 40 },
    );
  });

  it('JITR events as SQS bodies: each rejected with its field and rule (or dead-lettered), nothing written', async () => {
    const valid = {
      certificateId: 'a'.repeat(64),
      caCertificateId: 'b'.repeat(64),
      timestamp: Date.now(),
      certificateStatus: 'PENDING_ACTIVATION',
      awsAccountId: ACCOUNT,
    };
    const body = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.constantFrom('', '{', 'null', '[]', '"text"', '{"certificateId":', '\u0000'),
      fc
        .record({ field: fc.constantFrom(...Object.keys(valid)), value: fc.oneof(wrongType, hostileString) })
        .map(({ field, value }) => JSON.stringify({ ...valid, [field]: value })),
      fc.constantFrom(...Object.keys(valid)).map((field) => {
        const copy: Record<string, unknown> = { ...valid };
        delete copy[field];
        return JSON.stringify(copy);
      }),
    );
    await fc.assert(
      fc.asyncProperty(body, async (text) => {
        // A replaced field may still be valid (any non-empty certificateStatus): only refused bodies count.
        const { CertificateRegisteredEvent } = await import('../../../schemas/iot-events');
        const { parseBody } = await import('../../../schemas/issues');
        if (parseBody(CertificateRegisteredEvent, text).success) return true;
        return holds('JITR event (SQS)', text.slice(0, 120), () => throughQueue(rig.registration, text));
      }),
      { ...run, numRuns: 40 },
    );
  });

  it('presence and thing events as SQS bodies: each rejected with its field and rule (or dead-lettered), nothing written', async () => {
    const connected = {
      clientId: 'CORPUS-0003',
      timestamp: Date.now(),
      eventType: 'connected',
      sessionIdentifier: randomUUID(),
      principalIdentifier: 'd'.repeat(64),
      versionNumber: 1,
      ipAddress: '203.0.113.1',
    };
    const thing = {
      eventType: 'THING_EVENT',
      eventId: randomUUID(),
      timestamp: Date.now(),
      operation: 'CREATED',
      accountId: ACCOUNT,
      thingId: randomUUID(),
      thingName: 'CORPUS-0003',
      versionNumber: 1,
      thingTypeName: null,
      attributes: {},
    };
    const broken = (template: Record<string, unknown>) =>
      fc.oneof(
        fc
          .record({
            field: fc.constantFrom(...Object.keys(template)),
            value: fc.oneof(wrongType, hostileString),
          })
          .map(({ field, value }) => ({ ...template, [field]: value })),
        fc
          .constantFrom(...Object.keys(template).filter((k) => k !== 'ipAddress' && k !== 'thingTypeName'))
          .map((field) => {
            const copy: Record<string, unknown> = { ...template };
            delete copy[field];
            return copy;
          }),
      );
    const body = fc.oneof(
      fc.string({ maxLength: 200 }),
      broken(connected).map((event) => JSON.stringify(event)),
      broken(thing).map((event) => JSON.stringify(event)),
      fc
        .record({ versionNumber: fc.oneof(fc.integer({ max: -1 }), fc.double({ noInteger: true })) })
        .map((patch) => JSON.stringify({ ...connected, ...patch })),
      fc.constant(JSON.stringify({ ...connected, clientId: 'x'.repeat(129) })),
    );
    await fc.assert(
      fc.asyncProperty(body, async (text) => {
        // A broken field in an otherwise valid event may leave it valid (e.g. an ipAddress string):
        // only bodies the schema refuses are in the corpus.
        const { LifecycleEvent } = await import('../../../schemas/iot-events');
        const { parseBody } = await import('../../../schemas/issues');
        if (parseBody(LifecycleEvent, text).success) return true;
        return holds('presence / thing event (SQS)', text.slice(0, 120), () =>
          throughQueue(rig.lifecycle, text),
        );
      }),
      { ...run, numRuns: 50 },
    );
  });

  it('quarantine requests as SQS bodies: each rejected with its field and rule or dead-lettered, nothing written', async () => {
    const valid = {
      requestId: 'req-corpus',
      serial: SERIAL,
      reason: 'CLONE_CONCURRENT_SESSIONS',
      evidence: {},
      source: 'deviceLifecycle',
      at: new Date().toISOString(),
    };
    const body = fc.oneof(
      fc.string({ maxLength: 100 }),
      fc
        .record({
          field: fc.constantFrom(...Object.keys(valid), 'certificateId', 'scope'),
          value: fc.oneof(wrongType, hostileString),
        })
        .map(({ field, value }) => JSON.stringify({ ...valid, [field]: value })),
      fc.constant(JSON.stringify({ ...valid, serial: undefined })),
      fc.constant(JSON.stringify({ ...valid, scope: 'certificate' })),
    );
    const handler: Handler = (event, context) => worker.handler(event, context);
    await fc.assert(
      fc.asyncProperty(body, async (text) => {
        const { QuarantineRequest } = await import('../../../schemas/quarantine-request');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        if (json !== undefined && QuarantineRequest.safeParse(json).success) return true;
        const before = worker.errorLogs.length;
        return holds('quarantine request (SQS)', text.slice(0, 120), async () => {
          const problems = await throughQueue(handler, text);
          // The worker logs its reasons through its own logger (errors): accept those too.
          if (
            problems.length > 0 &&
            worker.errorLogs.slice(before).some((e) => FIELD_AND_RULE.test(String(e.fields.reason)))
          )
            return [];
          return problems;
        });
      }),
      { ...run, numRuns: 30 },
    );
  });

  it('allowlist CSV rows: each bad row rejected with its line and rule, the good rows around it imported, nothing else written', async () => {
    const badRow = fc.oneof(
      // Not empty: an empty line is no row (skipped, as it should be).
      fc.string({ minLength: 1, maxLength: 80 }).filter((s) => !s.includes('\n') && !s.includes('\r')),
      fc.constantFrom(
        'SN7777777777,=cmd|"/C calc"!A0,B1',
        '"unterminated,gateway,B1',
        'BAD-0001,"gate"way,B1',
        'BAD-0002,gate\u0000way,B1',
        'BAD-0003,gate\rway,B1',
        '\uFEFFBAD-0004,gateway,B1',
        'BAD-0005,gateway',
        'BAD-0006,gateway,B1,extra',
        '@SUM(1+1),gateway,B1',
        'BAD-0007,+cmd,B1',
        'BAD 0008,gateway,B1',
      ),
      fc
        .string({ minLength: 65_537, maxLength: 70_000 })
        .map((s) => `BAD-BIG,${s.replace(/[\r\n]/g, 'x')},B1`),
    );
    await fc.assert(
      fc.asyncProperty(badRow, fc.integer({ min: 0, max: 2 }), async (row, position) => {
        const suffix = randomUUID().slice(0, 8).toUpperCase();
        const good = [`GOOD-${suffix}-A,gateway,B1`, `GOOD-${suffix}-B,gateway,B1`];
        const rows = [...good];
        rows.splice(position, 0, row);
        const csv = ['serial,productLine,batch', ...rows].join('\n');
        const badLine = position + 2;
        let rowIsValid = false;
        return holds(
          'allowlist CSV row',
          JSON.stringify(row.slice(0, 80)),
          async () => {
            const summary = await importAllowlistCsv(Readable.from([Buffer.from(csv)]), {
              store: table.store,
              serialPattern: new RegExp(DEFAULT_SERIAL_PATTERN, 'u'),
              now: new Date().toISOString(),
              actor: 'corpus',
              newId: randomUUID,
            });
            const problems: string[] = [];
            const rejected = summary.rejected.find((r) => r.line === badLine);
            rowIsValid = !rejected && summary.imported === 3;
            if (!rejected && !rowIsValid) problems.push(`line ${badLine} neither rejected nor imported`);
            if (rejected && !FIELD_AND_RULE.test(rejected.reason))
              problems.push(`reason "${rejected.reason}"`);
            if (rejected && /Buffer|"data":\[/.test(rejected.reason))
              problems.push('a serialized Buffer in the reason');
            if (summary.rejected.some((r) => r.line !== badLine))
              problems.push(`other lines rejected: ${JSON.stringify(summary.rejected)}`);
            for (const serial of good.map((line) => line.split(',')[0] ?? '')) {
              if ((await table.store.getDevice(serial))?.state !== 'ALLOWLISTED')
                problems.push(`${serial} not imported`);
            }
            return problems;
          },
          // Only the good rows' devices (and their history) are new.
          (change) =>
            change.removed.length === 0 &&
            change.added.every((item) => item.includes(`GOOD-${suffix}`) || rowIsValid)
              ? []
              : [
                  `unexpected store change: ${change.added.find((item) => !item.includes(`GOOD-${suffix}`))?.slice(0, 160)}`,
                ],
        );
      }),
      { ...run, numRuns: 50 },
    );
  });

  it('CLI arguments: every bad argument is a usage error (exit 2) naming it, one JSON document, nothing written', async () => {
    const { main } = await import('../../../cli/main');
    const templates: Array<(bad: string) => string[]> = [
      (bad) => ['allowlist', 'import', '/nonexistent/corpus.csv', '--concurrency', bad, '--json'],
      (bad) => ['allowlist', 'import', `/nonexistent/${bad}.csv`, '--json'],
      (bad) => ['certificates', 'register', '/nonexistent/x.pem', '--kind', bad, '--json'],
      (bad) => ['simulate', '--flow', bad, '--json'],
      (bad) => ['doctor', '--target', bad, '--json'],
      (bad) => ['devices', 'list', `--${bad}`, '--json'],
      (bad) => ['quarantine', 'release', bad, '--json'],
    ];
    const arg = fc
      .oneof(
        fc.string({ minLength: 1, maxLength: 30 }),
        fc.constantFrom('-1', '0', '65', '1e9', 'NaN', 'gcp', 'bluetooth', 'ca;rm', '../x'),
      )
      .filter(
        (s) =>
          !['1', '2', '4', 'claim', 'ca', 'fleet', 'jitr', 'jitp', 'local', 'aws', 'json'].includes(s) &&
          !s.startsWith('-'),
      );
    await fc.assert(
      fc.asyncProperty(fc.nat(), arg, async (which, bad) => {
        const argv = (templates[which % templates.length] ?? templates[0])?.(bad) ?? [];
        return holds('CLI arguments', JSON.stringify(argv), async () => {
          const out: string[] = [];
          const err: string[] = [];
          const stdout = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: unknown) => {
            out.push(String(chunk));
            return true;
          });
          const stderr = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: unknown) => {
            err.push(String(chunk));
            return true;
          });
          let code: number;
          try {
            code = await main(argv);
          } finally {
            stdout.mockRestore();
            stderr.mockRestore();
          }
          const problems: string[] = [];
          if (code !== 2) problems.push(`exit ${code} (${err.join('').slice(0, 200)})`);
          let document: { ok?: boolean; error?: { code?: string; message?: string } } | undefined;
          try {
            document = JSON.parse(out.join(''));
          } catch {
            problems.push(`stdout is not one JSON document: ${out.join('').slice(0, 120)}`);
          }
          if (document && (document.ok !== false || document.error?.code !== 'USAGE'))
            problems.push(`document ${JSON.stringify(document).slice(0, 160)}`);
          if (!document?.error?.message) problems.push('no reason');
          return problems;
        });
      }),
      { ...run, numRuns: 35 },
    );
  });

  it('Fleet Provisioning MQTT payloads (JSON and CBOR): each rejected with an error code naming the field, nothing issued or written', async () => {
    const gateway = rig.emulator.devices;
    const csrBody = (csr: unknown) => ({ certificateSigningRequest: csr });
    const payload = fc.oneof(
      fc.record({
        topic: fc.constant('create-from-csr'),
        body: fc.oneof(wrongType, hostileString).map(csrBody),
      }),
      fc.record({
        topic: fc.constant('create-from-csr'),
        body: fc.nat().map((i) => {
          const refused = csrs.filter((entry) => entry.fleetApi);
          return csrBody(refused[i % refused.length]?.csr);
        }),
      }),
      fc.record({ topic: fc.constant('create-from-csr'), body: fc.constant({}) }),
      fc.record({
        topic: fc.constant('provision'),
        body: fc.oneof(
          fc.record({ certificateOwnershipToken: fc.oneof(wrongType, hostileString) }),
          fc.record({ certificateOwnershipToken: fc.string({ minLength: 1 }), parameters: wrongType }),
          fc.record({
            certificateOwnershipToken: fc.string({ minLength: 1 }),
            parameters: fc.record({ SerialNumber: wrongType }),
          }),
        ),
      }),
      fc.record({ topic: fc.constant('raw'), body: fc.uint8Array({ minLength: 1, maxLength: 60 }) }),
    );
    await fc.assert(
      fc.asyncProperty(
        payload,
        fc.constantFrom('json' as const, 'cbor' as const),
        async (request, format) => {
          const topic =
            request.topic === 'provision'
              ? `$aws/provisioning-templates/fleetgate-test-fleet/provision/${format}`
              : `$aws/certificates/create-from-csr/${format}`;
          const bytes =
            request.topic === 'raw'
              ? Buffer.from(request.body as Uint8Array)
              : format === 'cbor'
                ? Buffer.from(encodeCbor(JSON.parse(JSON.stringify(request.body ?? null)) ?? {}))
                : Buffer.from(JSON.stringify(request.body));
          return holds(
            `Fleet Provisioning ${format.toUpperCase()}`,
            `${request.topic} ${bytes.toString('hex').slice(0, 60)}`,
            async () => {
              const issued = rig.emulator.registry.certificates.size;
              const parsed = parseFleetTopic(topic);
              if (!parsed) return ['topic not recognised'];
              const reply = await handleFleetRequest(gateway, parsed, bytes, {
                certificateId: CLAIM,
                clientId: 'claim.corpus',
              });
              const problems: string[] = [];
              const response = reply.response as {
                statusCode?: number;
                errorCode?: string;
                errorMessage?: string;
              };
              if (reply.accepted) {
                // Raw bytes may happen to decode into something acceptable: then it must be a real answer.
                if (request.topic !== 'raw')
                  problems.push(`accepted: ${JSON.stringify(response).slice(0, 120)}`);
              } else {
                if (!reply.topic.endsWith('/rejected')) problems.push(`reply on ${reply.topic}`);
                if (!response.errorCode || !response.errorMessage)
                  problems.push('no errorCode / errorMessage');
                if (rig.emulator.registry.certificates.size !== issued)
                  problems.push('a certificate was issued');
              }
              return problems;
            },
          );
        },
      ),
      { ...run, numRuns: 60 },
    );
  });

  it('holds every invariant on every case: at least 300 cases, 0 violations, 0 unhandled rejections', () => {
    const total = Object.values(counts).reduce((sum, n) => sum + n, 0);
    expect(violations, violations.slice(0, 10).join('\n')).toEqual([]);
    expect(unhandled).toEqual([]);
    expect(total).toBeGreaterThanOrEqual(300);
  });
});
