import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AllowlistEntry } from '../../shared/allowlist/rows';
import {
  type CertificateAuthority,
  createCa,
  createTestCsr,
  issueTestCertificate,
  type TestCertificate,
} from '../support/certs';
import { createTestTable, type TestTable } from '../support/dynamo';
import { buildTestHook } from '../support/hook';
import { lambdaContext } from '../support/lambda';
import { tornStore } from '../support/torn-read';

const NOW_MS = Date.parse('2026-11-24T12:00:30.000Z');
const CLAIM = 'c1a1'.padEnd(64, '0');
const OTHER_CLAIM = 'd2'.padEnd(64, '0');
const TEMPLATE_ARN = 'arn:aws:iot:us-east-1:123456789012:provisioningtemplate/fleetgate-dev-fleet';

let table: TestTable;
let ca: CertificateAuthority;

beforeAll(async () => {
  table = await createTestTable('hook');
  ca = await createCa('Integration CA');
});
afterAll(async () => {
  await table.drop();
});

async function allowlist(serials: string[], extra: Partial<AllowlistEntry> = {}): Promise<void> {
  for (let start = 0; start < serials.length; start += 100) {
    const entries = serials.slice(start, start + 100).map((serial) => ({
      serial,
      allowedClaim: CLAIM,
      batch: 'B-1',
      productLine: 'gateway',
      attributes: {},
      ...extra,
    }));
    await table.store.importAllowlistEntries(entries, {
      now: new Date(NOW_MS - 86_400_000).toISOString(),
      actor: 'test',
      idFor: (serial) => `import-${serial}`,
    });
  }
}

function hookEvent(serial: string, certificate: { pem: string; certificateId: string }, claim = CLAIM) {
  return {
    claimCertificateId: claim,
    certificateId: certificate.certificateId,
    certificatePem: certificate.pem,
    templateArn: TEMPLATE_ARN,
    clientId: `client-${serial}`,
    parameters: { SerialNumber: serial },
  };
}

/** The largest budget the config allows: concurrency tests measure the rules, not DynamoDB Local's speed. */
const ROOMY = { HOOK_TIME_BUDGET_MS: '4500' };

async function mapConcurrent<T, R>(
  items: T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next;
      next += 1;
      results[index] = await fn(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
  return results;
}

const validity = { notBefore: new Date(NOW_MS - 60_000), notAfter: new Date(NOW_MS + 365 * 86_400_000) };
const certificate = (options: Parameters<typeof issueTestCertificate>[1] = {}) =>
  issueTestCertificate(ca, { ...validity, ...options });

async function itemCount(): Promise<number> {
  let count = 0;
  let start: Record<string, unknown> | undefined;
  do {
    const out = await table.doc.send(
      new ScanCommand({ TableName: table.tableName, Select: 'COUNT', ExclusiveStartKey: start }),
    );
    count += out.Count ?? 0;
    start = out.LastEvaluatedKey;
  } while (start);
  return count;
}

/** Provisions `serial` through the hook with `issued`, then activates it as its first connect would. */
async function provisionActive(
  hook: ReturnType<typeof buildTestHook>['hook'],
  serial: string,
  issued: Awaited<ReturnType<typeof certificate>>,
): Promise<void> {
  expect(await hook(hookEvent(serial, issued), lambdaContext())).toMatchObject({ allowProvisioning: true });
  const provisioning = await table.store.getDevice(serial);
  if (!provisioning) throw new Error(`${serial} missing`);
  await table.store.transition({
    serial,
    event: 'ACTIVATE',
    device: provisioning,
    transitionKey: 'ACTIVATE:test',
    now: new Date(NOW_MS).toISOString(),
    history: { id: 'activate', actor: 'test' },
    set: { certificateId: issued.certificateId },
    remove: ['pendingCertificateId', 'provisioningDeadline'],
  });
}

describe('preProvisionHook against DynamoDB Local', () => {
  it('allows a first provisioning in two round trips and records the binding', async () => {
    // Prepare
    await allowlist(['INT-FIRST-1']);
    const { hook } = buildTestHook(table.store, { THING_NAME_PREFIX: 'fg-' }, NOW_MS);
    const cert = await certificate();
    const before = table.store.stats.roundTrips;
    // Act
    const response = await hook(hookEvent('INT-FIRST-1', cert), lambdaContext());
    // Assess
    expect(response).toEqual({
      allowProvisioning: true,
      parameterOverrides: {
        ThingName: 'fg-INT-FIRST-1',
        ProductLine: 'gateway',
        Batch: 'B-1',
        CertificateIssueDate: validity.notBefore.toISOString(),
      },
    });
    expect(table.store.stats.roundTrips - before).toBe(2);
    expect(await table.store.getDevice('INT-FIRST-1')).toMatchObject({
      state: 'PROVISIONING',
      pendingCertificateId: cert.certificateId,
      thingName: 'fg-INT-FIRST-1',
      provisioningDeadline: new Date(NOW_MS + 3_600_000).toISOString(),
    });
    expect(await table.store.getCertificate(cert.certificateId)).toMatchObject({
      serial: 'INT-FIRST-1',
      status: 'PENDING',
      source: 'FLEET_PROVISIONING',
      publicKeyHash: cert.publicKeyHash,
    });
  });

  it('lets exactly one of 50 concurrent requests for one serial with different certificates win', async () => {
    await allowlist(['INT-RACE-1']);
    const { hook, outcomes } = buildTestHook(table.store, ROOMY, NOW_MS);
    const certs = await Promise.all(Array.from({ length: 50 }, () => certificate()));
    const responses = await Promise.all(
      certs.map((cert) => hook(hookEvent('INT-RACE-1', cert), lambdaContext())),
    );
    const allowed = responses.filter((response) => response.allowProvisioning);
    expect(allowed).toHaveLength(1);
    expect(
      outcomes
        .filter((o) => o.name === 'ProvisioningDenied')
        .every((o) => o.reason === 'PROVISIONING_IN_PROGRESS'),
    ).toBe(true);
    const device = await table.store.getDevice('INT-RACE-1');
    const winner = certs[responses.findIndex((response) => response.allowProvisioning)];
    expect(device?.pendingCertificateId).toBe(winner?.certificateId);
    const history = await table.store.history('INT-RACE-1');
    expect(history.filter((entry) => entry.event === 'PROVISION')).toHaveLength(1);
  });

  it('allows one certificate retried 20 times concurrently, with one binding', async () => {
    await allowlist(['INT-RETRY-1']);
    const { hook, outcomes } = buildTestHook(table.store, ROOMY, NOW_MS);
    const cert = await certificate();
    const responses = await Promise.all(
      Array.from({ length: 20 }, () => hook(hookEvent('INT-RETRY-1', cert), lambdaContext())),
    );
    const denials = outcomes.filter((outcome) => outcome.reason !== undefined);
    expect(denials, 'denial reasons').toEqual([]);
    expect(responses.every((response) => response.allowProvisioning)).toBe(true);
    expect(new Set(responses.map((response) => JSON.stringify(response))).size).toBe(1);
    const history = await table.store.history('INT-RETRY-1');
    expect(history.filter((entry) => entry.event === 'PROVISION')).toHaveLength(1);
    expect(await table.store.getDevice('INT-RETRY-1')).toMatchObject({
      version: 2,
      pendingCertificateId: cert.certificateId,
    });
    // A later retry is answered from one read.
    const before = table.store.stats.roundTrips;
    expect(await hook(hookEvent('INT-RETRY-1', cert), lambdaContext())).toEqual(responses[0]);
    expect(table.store.stats.roundTrips - before).toBe(1);
  });

  it('allows exactly the per-minute limit out of 200 requests from one claim', async () => {
    const serials = Array.from({ length: 200 }, (_, i) => `INT-CLAIM-${String(i).padStart(3, '0')}`);
    const claim = 'e3'.padEnd(64, '0');
    await allowlist(serials, { allowedClaim: claim });
    const { hook, outcomes } = buildTestHook(
      table.store,
      { CLAIM_RATE_LIMIT_PER_MINUTE: '25', ...ROOMY },
      NOW_MS,
    );
    const certs = await Promise.all(serials.map(() => certificate()));
    // 16 in flight at a time (concurrent enough to race on the one counter): one Java DynamoDB Local
    // serving more transactions on one hot item at once, on a loaded 2-core machine, can be slower
    // than the hook's budget, and a timed-out request is (correctly) a denial of another reason.
    const responses = await mapConcurrent(serials, 16, (serial, i) =>
      hook(hookEvent(serial, certs[i] as TestCertificate, claim), lambdaContext()),
    );
    expect(responses.filter((response) => response.allowProvisioning)).toHaveLength(25);
    const denied = outcomes.filter((o) => o.name === 'ProvisioningDenied');
    expect(denied).toHaveLength(175);
    expect(denied.filter((o) => o.reason !== 'CLAIM_RATE_EXCEEDED')).toEqual([]);
  });

  it('denies a cloned key, a takeover and a foreign claim, then re-provisions after the window', async () => {
    await allowlist(['INT-A', 'INT-B']);
    const { hook, outcomes, setNow } = buildTestHook(table.store, {}, NOW_MS);
    const first = await certificate();
    const clone = await certificate({ spki: first.spki });
    const other = await certificate();
    expect(await hook(hookEvent('INT-A', first), lambdaContext())).toMatchObject({ allowProvisioning: true });
    expect(await hook(hookEvent('INT-B', clone), lambdaContext())).toEqual({ allowProvisioning: false });
    expect(await hook(hookEvent('INT-A', other), lambdaContext())).toEqual({ allowProvisioning: false });
    expect(await hook(hookEvent('INT-B', other, OTHER_CLAIM), lambdaContext())).toEqual({
      allowProvisioning: false,
    });
    expect(await hook(hookEvent('INT-NOBODY', other), lambdaContext())).toEqual({ allowProvisioning: false });
    expect(outcomes.slice(1).map((o) => o.reason)).toEqual([
      'PUBLIC_KEY_IN_USE',
      'PROVISIONING_IN_PROGRESS',
      'CLAIM_NOT_ALLOWED',
      'SERIAL_NOT_ALLOWLISTED',
    ]);
    // The device never connected: after the window the serial may try again with a new certificate.
    setNow(NOW_MS + 3_600_000 + 1_000);
    expect(await hook(hookEvent('INT-A', other), lambdaContext())).toMatchObject({ allowProvisioning: true });
    const device = await table.store.getDevice('INT-A');
    expect(device).toMatchObject({ state: 'PROVISIONING', pendingCertificateId: other.certificateId });
    const events = (await table.store.history('INT-A')).map((entry) => entry.event);
    expect(events).toEqual(expect.arrayContaining(['CREATED', 'PROVISION', 'EXPIRE_PROVISIONING']));
    expect(events.filter((event) => event === 'PROVISION')).toHaveLength(2);
  });

  it('sends clone and takeover evidence to the quarantine queue, once per certificate and reason', async () => {
    // Prepare: INT-Q1 ACTIVE with its first certificate, INT-Q2 allowlisted
    await allowlist(['INT-Q1', 'INT-Q2']);
    const { hook, quarantined } = buildTestHook(table.store, {}, NOW_MS);
    const first = await certificate();
    await provisionActive(hook, 'INT-Q1', first);
    const clone = await certificate({ spki: first.spki });
    const takeover = await certificate();
    const keyThief = await certificate({ spki: first.spki });
    // Act: every request twice, as AWS IoT retries RegisterThing
    for (const [serial, cert] of [
      ['INT-Q1', clone],
      ['INT-Q1', takeover],
      ['INT-Q2', keyThief],
    ] as const) {
      for (let i = 0; i < 2; i += 1) {
        expect(await hook(hookEvent(serial, cert), lambdaContext())).toEqual({ allowProvisioning: false });
      }
    }
    // Assess
    const unique = new Map(quarantined.map((request) => [request.requestId, request]));
    expect(quarantined).toHaveLength(6);
    expect([...unique.values()]).toEqual([
      expect.objectContaining({
        serial: 'INT-Q1',
        certificateId: clone.certificateId,
        reason: 'CLONE_PUBLIC_KEY',
        source: 'preProvisionHook',
        evidence: expect.objectContaining({ claimedSerial: 'INT-Q1', claimCertificateId: CLAIM }),
      }),
      expect.objectContaining({ certificateId: takeover.certificateId, reason: 'SERIAL_TAKEOVER_ATTEMPT' }),
      expect.objectContaining({
        serial: 'INT-Q1',
        certificateId: keyThief.certificateId,
        reason: 'PUBLIC_KEY_IN_USE',
        evidence: expect.objectContaining({ claimedSerial: 'INT-Q2' }),
      }),
    ]);
    // a takeover attempt names no device: the original keeps working
    expect(
      unique.get(`preProvisionHook:SERIAL_TAKEOVER_ATTEMPT:${takeover.certificateId}`)?.serial,
    ).toBeUndefined();
    expect(await table.store.getDevice('INT-Q1')).toMatchObject({ state: 'ACTIVE' });
  });

  describe('bad input', async () => {
    const ready = (async () => {
      const ca2 = await createCa('Corpus CA');
      const good = await issueTestCertificate(ca2, validity);
      const csr = await createTestCsr('corpus');
      const weak = Object.fromEntries(
        await Promise.all(
          (['RSA-1024', 'P-192', 'secp256k1', 'Ed25519', 'P-521'] as const).map(
            async (kind) => [kind, await issueTestCertificate(ca2, { ...validity, kind })] as const,
          ),
        ),
      );
      const expired = await issueTestCertificate(ca2, {
        notBefore: new Date(NOW_MS - 400 * 86_400_000),
        notAfter: new Date(NOW_MS - 1),
      });
      const future = await issueTestCertificate(ca2, {
        notBefore: new Date(NOW_MS + 86_400_000),
        notAfter: new Date(NOW_MS + 400 * 86_400_000),
      });
      return { good, csr, weak, expired, future };
    })();
    const { good, csr, weak, expired, future } = await ready;
    const base = () => hookEvent('INT-CORPUS-1', good) as Record<string, unknown>;
    const withParams = (parameters: unknown) => ({ ...base(), parameters });
    const withSerial = (serial: unknown) => withParams({ SerialNumber: serial });
    const withPem = (pem: string, certificateId = good.certificateId) => ({
      ...base(),
      certificatePem: pem,
      certificateId,
    });
    const without = (field: string) => {
      const event = base();
      delete event[field];
      return event;
    };
    const body = good.pem.split('\n').slice(1, -2).join('');
    const pemOf = (b64: string) => `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
    const cases: Array<[string, unknown, string]> = [
      ['null', null, 'INVALID_EVENT'],
      ['undefined', undefined, 'INVALID_EVENT'],
      ['a string', 'allowProvisioning', 'INVALID_EVENT'],
      ['a number', 42, 'INVALID_EVENT'],
      ['an array', [base()], 'INVALID_EVENT'],
      ['an empty object', {}, 'INVALID_EVENT'],
      ['no claimCertificateId', without('claimCertificateId'), 'INVALID_EVENT'],
      ['no certificateId', without('certificateId'), 'INVALID_EVENT'],
      ['no certificatePem', without('certificatePem'), 'INVALID_EVENT'],
      ['no templateArn', without('templateArn'), 'INVALID_EVENT'],
      ['no clientId', without('clientId'), 'INVALID_EVENT'],
      ['no parameters', without('parameters'), 'INVALID_EVENT'],
      ['a numeric claim id', { ...base(), claimCertificateId: 123 }, 'INVALID_EVENT'],
      ['a short claim id', { ...base(), claimCertificateId: 'abc' }, 'INVALID_EVENT'],
      ['a non-hex certificate id', { ...base(), certificateId: 'z'.repeat(64) }, 'INVALID_EVENT'],
      ['a numeric PEM', { ...base(), certificatePem: 7 }, 'INVALID_EVENT'],
      ['an empty PEM', { ...base(), certificatePem: '' }, 'INVALID_EVENT'],
      ['a 1 MB PEM', { ...base(), certificatePem: 'A'.repeat(1_000_000) }, 'INVALID_EVENT'],
      ['a foreign template ARN', { ...base(), templateArn: 'arn:aws:s3:::bucket' }, 'INVALID_EVENT'],
      ['a 10 kB client id', { ...base(), clientId: 'c'.repeat(10_000) }, 'INVALID_EVENT'],
      ['parameters as a string', withParams('SerialNumber=INT-CORPUS-1'), 'INVALID_EVENT'],
      ['parameters as an array', withParams(['INT-CORPUS-1']), 'INVALID_EVENT'],
      ['parameters null', withParams(null), 'INVALID_EVENT'],
      ['no serial parameter', withParams({ serial: 'INT-CORPUS-1' }), 'INVALID_EVENT'],
      ['a numeric serial', withSerial(12345), 'INVALID_EVENT'],
      ['a null serial', withSerial(null), 'INVALID_EVENT'],
      ['an object serial', withSerial({ $ne: '' }), 'INVALID_EVENT'],
      [
        'a non-string extra parameter',
        withParams({ SerialNumber: 'INT-CORPUS-1', Extra: true }),
        'INVALID_EVENT',
      ],
      [
        '60 parameters',
        withParams(Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`P${i}`, 'x']))),
        'INVALID_EVENT',
      ],
      [
        'a 100 kB parameter value',
        withParams({ SerialNumber: 'INT-CORPUS-1', Note: 'x'.repeat(100_000) }),
        'INVALID_EVENT',
      ],
      ['an empty serial', withSerial(''), 'INVALID_SERIAL'],
      ['a 2-character serial', withSerial('AB'), 'INVALID_SERIAL'],
      ['a 65-character serial', withSerial(`S${'1'.repeat(64)}`), 'INVALID_SERIAL'],
      ['a 100 kB serial', withSerial('S'.repeat(100_000)), 'INVALID_SERIAL'],
      ['a serial with a space', withSerial('INT CORPUS'), 'INVALID_SERIAL'],
      ['a serial with umlauts', withSerial('SN-ÄÖÜ-1'), 'INVALID_SERIAL'],
      ['a serial with an emoji', withSerial('SN-🔥-1'), 'INVALID_SERIAL'],
      ['a serial with a fullwidth digit', withSerial('SN-１２３'), 'INVALID_SERIAL'],
      ['SQL injection', withSerial("SN-1' OR '1'='1"), 'INVALID_SERIAL'],
      ['NoSQL-ish key injection', withSerial('SN-1#CERT'), 'INVALID_SERIAL'],
      ['path traversal', withSerial('../../etc/passwd'), 'INVALID_SERIAL'],
      ['markup', withSerial('<script>alert(1)</script>'), 'INVALID_SERIAL'],
      ['a template expression', withSerial(['$', '{jndi:ldap://x/a}'].join('')), 'INVALID_SERIAL'],
      ['a NUL byte', withSerial('SN-1\u0000'), 'INVALID_SERIAL'],
      ['a newline', withSerial('SN-1\nSN-2'), 'INVALID_SERIAL'],
      ['a leading dash', withSerial('-SN-0001'), 'INVALID_SERIAL'],
      ['plain text as PEM', withPem('not a certificate'), 'INVALID_CERTIFICATE'],
      ['a truncated PEM', withPem(pemOf(body.slice(0, 120))), 'INVALID_CERTIFICATE'],
      ['a PEM without END', withPem(good.pem.split('-----END')[0] ?? ''), 'INVALID_CERTIFICATE'],
      ['a CSR', withPem(csr), 'INVALID_CERTIFICATE'],
      ['two certificates', withPem(`${good.pem}${good.pem}`), 'INVALID_CERTIFICATE'],
      ['trailing garbage', withPem(`${good.pem}garbage`), 'INVALID_CERTIFICATE'],
      [
        'extra DER bytes',
        withPem(pemOf(Buffer.concat([good.der, Buffer.from('AAAA')]).toString('base64'))),
        'INVALID_CERTIFICATE',
      ],
      [
        'a private-key label',
        withPem(good.pem.replaceAll('CERTIFICATE', 'PRIVATE KEY')),
        'INVALID_CERTIFICATE',
      ],
      ['base64 garbage', withPem(pemOf('!!!!notbase64****')), 'INVALID_CERTIFICATE'],
      ['multi-byte padding over 16 KiB', withPem(`${good.pem}${'é'.repeat(9_000)}`), 'INVALID_CERTIFICATE'],
      [
        'a certificate id of another certificate',
        withPem(good.pem, weak['P-521']?.certificateId),
        'INVALID_CERTIFICATE',
      ],
      ['an RSA-1024 key', withPem(weak['RSA-1024']?.pem ?? '', weak['RSA-1024']?.certificateId), 'WEAK_KEY'],
      ['a P-192 key', withPem(weak['P-192']?.pem ?? '', weak['P-192']?.certificateId), 'WEAK_KEY'],
      ['a secp256k1 key', withPem(weak.secp256k1?.pem ?? '', weak.secp256k1?.certificateId), 'WEAK_KEY'],
      ['an Ed25519 key', withPem(weak.Ed25519?.pem ?? '', weak.Ed25519?.certificateId), 'WEAK_KEY'],
      [
        'a P-521 key (not in the default policy)',
        withPem(weak['P-521']?.pem ?? '', weak['P-521']?.certificateId),
        'WEAK_KEY',
      ],
      ['an expired certificate', withPem(expired.pem, expired.certificateId), 'CERTIFICATE_EXPIRED'],
      ['a certificate from tomorrow', withPem(future.pem, future.certificateId), 'CERTIFICATE_NOT_YET_VALID'],
    ];

    it(`has at least 50 cases (${cases.length})`, () => {
      expect(cases.length).toBeGreaterThanOrEqual(50);
    });

    it('denies each with its specific reason, without a crash, a read or a write', async () => {
      // Prepare
      await allowlist(['INT-CORPUS-1']);
      const { hook, outcomes } = buildTestHook(table.store, {}, NOW_MS);
      const items = await itemCount();
      const trips = table.store.stats.roundTrips;
      // Act
      const results: Array<[string, unknown, string | undefined]> = [];
      for (const [name, event] of cases) {
        const response = await hook(structuredClone(event), lambdaContext());
        results.push([name, response, outcomes.at(-1)?.reason]);
      }
      // Assess
      expect(results).toEqual(cases.map(([name, , reason]) => [name, { allowProvisioning: false }, reason]));
      expect(table.store.stats.roundTrips).toBe(trips);
      expect(await itemCount()).toBe(items);
    });
  });
});

/**
 * A retry of one request (AWS IoT retries RegisterThing) whose read meets the first request's binding
 * half-committed: one BatchGetItem is not a snapshot, so it can hold the device as it was before the
 * binding next to the public-key owner or claim counter the binding wrote. Such a denial is read
 * again; the request is the same binding, allowed again, and nothing is sent to quarantine.
 */
describe('preProvisionHook: a torn read of its own binding', () => {
  it('a same-key reprovisioning retried while it commits is allowed again, not taken for a clone', async () => {
    // Prepare: INT-TORN-1 ACTIVE; the same key under a new certificate is bound (same-key policy)
    await allowlist(['INT-TORN-1']);
    const torn = tornStore(table.store);
    const { hook, outcomes, quarantined } = buildTestHook(
      torn.store,
      { ...ROOMY, REPROVISIONING_POLICY: 'same-key' },
      NOW_MS,
    );
    const first = await certificate();
    await provisionActive(hook, 'INT-TORN-1', first);
    const active = await table.store.getDevice('INT-TORN-1');
    const renewal = await certificate({ spki: first.spki });
    const allowed = await hook(hookEvent('INT-TORN-1', renewal), lambdaContext());
    expect(allowed).toMatchObject({ allowProvisioning: true });
    const reads = torn.reads.count;
    // the retry's read: the device as before the binding, the key owner as the binding left it
    torn.tearNext({ facts: (facts) => ({ ...facts, ...(active ? { device: active } : {}) }) });

    // Act
    const retried = await hook(hookEvent('INT-TORN-1', renewal), lambdaContext());

    // Assess
    expect(quarantined).toEqual([]);
    expect(retried).toEqual(allowed);
    expect(torn.reads.count - reads).toBe(2);
    expect(outcomes.filter((outcome) => outcome.reason !== undefined)).toEqual([]);
    expect(await table.store.getDevice('INT-TORN-1')).toMatchObject({
      state: 'PROVISIONING',
      pendingCertificateId: renewal.certificateId,
      certificateId: first.certificateId,
    });
  });

  it('a retry whose read holds its own claim count beside the device as before is allowed again', async () => {
    // Prepare: a claim allowed one binding a minute has made it
    const claim = 'e7'.padEnd(64, '0');
    await allowlist(['INT-TORN-2'], { allowedClaim: claim });
    const torn = tornStore(table.store);
    const { hook, outcomes } = buildTestHook(
      torn.store,
      { ...ROOMY, CLAIM_RATE_LIMIT_PER_MINUTE: '1' },
      NOW_MS,
    );
    const before = await table.store.getDevice('INT-TORN-2');
    const cert = await certificate();
    const allowed = await hook(hookEvent('INT-TORN-2', cert, claim), lambdaContext());
    expect(allowed).toMatchObject({ allowProvisioning: true });
    torn.tearNext({ facts: (facts) => ({ ...facts, ...(before ? { device: before } : {}) }) });

    // Act
    const retried = await hook(hookEvent('INT-TORN-2', cert, claim), lambdaContext());

    // Assess
    expect(retried).toEqual(allowed);
    expect(outcomes.filter((outcome) => outcome.reason !== undefined)).toEqual([]);
  });

  it('a denial the store really holds is confirmed by the second read', async () => {
    // Prepare: INT-TORN-3 bound; another device's request presents its key
    await allowlist(['INT-TORN-3', 'INT-TORN-4']);
    const torn = tornStore(table.store);
    const { hook, outcomes, quarantined } = buildTestHook(torn.store, ROOMY, NOW_MS);
    const owner = await certificate();
    expect(await hook(hookEvent('INT-TORN-3', owner), lambdaContext())).toMatchObject({
      allowProvisioning: true,
    });
    const thief = await certificate({ spki: owner.spki });
    const reads = torn.reads.count;
    torn.tearNext({ facts: (facts) => facts });

    // Act
    const denied = await hook(hookEvent('INT-TORN-4', thief), lambdaContext());

    // Assess
    expect(denied).toEqual({ allowProvisioning: false });
    expect(torn.reads.count - reads).toBe(2);
    expect(outcomes.at(-1)).toMatchObject({ reason: 'PUBLIC_KEY_IN_USE' });
    expect(quarantined).toEqual([
      expect.objectContaining({ serial: 'INT-TORN-3', reason: 'PUBLIC_KEY_IN_USE' }),
    ]);
  });

  it('a denial by the device record alone costs no second read', async () => {
    // Prepare
    const torn = tornStore(table.store);
    const { hook, outcomes } = buildTestHook(torn.store, ROOMY, NOW_MS);
    const reads = torn.reads.count;

    // Act
    const denied = await hook(hookEvent('INT-TORN-NOBODY', await certificate()), lambdaContext());

    // Assess
    expect(denied).toEqual({ allowProvisioning: false });
    expect(outcomes.at(-1)).toMatchObject({ reason: 'SERIAL_NOT_ALLOWLISTED' });
    expect(torn.reads.count - reads).toBe(1);
  });
});
