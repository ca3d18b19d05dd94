/**
 * Certificate rotation against the IoT emulator and DynamoDB Local through the real SDK: a connected
 * device publishes a CSR (routed as RotationRequestRule routes it), `rotateCertificate` answers on
 * the data plane, `deviceLifecycle` commits on the first connect with the new certificate and
 * retires the old one, `sweepRotations` deletes after the grace period and aborts overdue rotations.
 */
import { DescribeCertificateCommand, ListPrincipalThingsCommand } from '@aws-sdk/client-iot';
import { afterEach, describe, expect, it } from 'vitest';
import { createCsr, generateKeyPair } from '../../../local/pki';
import { type IotRegistry, IotRequestError } from '../../../shared/iot/iot-registry';
import { useTestTable } from '../../support/dynamo';
import { deliver, sqsRecord } from '../../support/jitr';
import { lambdaContext } from '../../support/lambda';
import { type RotationRig, startRotationRig } from '../../support/rotation';

const table = useTestTable('rotation');
let rig: RotationRig;
afterEach(async () => {
  await rig?.stop();
});

async function start(env: Record<string, string> = {}, wrapRotationIot?: (iot: IotRegistry) => IotRegistry) {
  rig = await startRotationRig(table.store, { env, ...(wrapRotationIot ? { wrapRotationIot } : {}) });
  return rig;
}

/** The answers published for a thing (accepted and rejected), in order. */
function answers(thingName: string) {
  return rig.rig.emulator
    .publishedOn(`fleetgate/${thingName}/rotate/`)
    .filter((m) => !m.topic.endsWith('/request'))
    .map((m) => ({ topic: m.topic.split('/').pop(), json: m.json as Record<string, unknown> }));
}

async function iotStatus(certificateId: string): Promise<string | undefined> {
  try {
    const out = await rig.rig.iot.send(new DescribeCertificateCommand({ certificateId }));
    return out.certificateDescription?.status;
  } catch (error) {
    if ((error as { name?: string }).name === 'ResourceNotFoundException') return 'DELETED';
    throw error;
  }
}

async function thingsOf(certificateId: string): Promise<string[]> {
  const out = await rig.rig.iot.send(new DescribeCertificateCommand({ certificateId }));
  const arn = out.certificateDescription?.certificateArn ?? '';
  return (await rig.rig.iot.send(new ListPrincipalThingsCommand({ principal: arn }))).things ?? [];
}

async function rotate(serial: string, options: { times?: number; concurrency?: number } = {}) {
  const body = await rig.publishRequest(serial, serial, { csr: await rig.csr(serial) });
  const stats = await deliver(rig.rotate, [body], { batchSize: 1, ...options });
  const accepted = answers(serial).find((a) => a.topic === 'accepted');
  return { body, stats, accepted: accepted?.json as { certificateId: string; certificatePem: string } };
}

/**
 * A rig under `env` whose clock stands at t0 (a minute ahead), and an active device `serial` that
 * has sent its rotation request.
 */
async function rotatingDevice(env: Record<string, string>, serial: string) {
  await start(env);
  const t0 = Date.now() + 60_000;
  rig.setNow(t0);
  const old = await rig.activeDevice(serial);
  return { t0, old, ...(await rotate(serial)) };
}

describe('rotateCertificate', () => {
  it('issues a certificate for a CSR sent with the current certificate and publishes it on accepted', async () => {
    // Prepare
    await start();
    const old = await rig.activeDevice('SN-ROT-1');
    rig.rig.emulator.clearCalls();
    const csrPem = await rig.csr('SN-ROT-1');
    const body = await rig.publishRequest('SN-ROT-1', 'SN-ROT-1', { csr: csrPem });
    const roundTrips = table.store.stats.roundTrips;
    // Act
    await deliver(rig.rotate, [body]);
    const calls = rig.rig.emulator.calls.map((call) => `${call.api}:${call.outcome}`);
    const storeRoundTrips = table.store.stats.roundTrips - roundTrips;
    const accepted = answers('SN-ROT-1')[0]?.json as { certificateId: string; certificatePem: string };
    // Assess
    expect(answers('SN-ROT-1')).toHaveLength(1);
    expect(accepted).toMatchObject({
      certificateId: expect.stringMatching(/^[0-9a-f]{64}$/),
      certificatePem: expect.stringContaining('BEGIN CERTIFICATE'),
      rotationDeadline: expect.any(String),
    });
    const device = await table.store.getDevice('SN-ROT-1');
    expect(device).toMatchObject({
      state: 'ROTATING',
      certificateId: old.certificateId,
      pendingCertificateId: accepted.certificateId,
      rotationDeadline: expect.any(String),
    });
    expect(await iotStatus(accepted.certificateId)).toBe('ACTIVE');
    expect(await iotStatus(old.certificateId)).toBe('ACTIVE');
    expect(await thingsOf(accepted.certificateId)).toEqual(['SN-ROT-1']);
    expect(await table.store.getCertificate(accepted.certificateId)).toMatchObject({
      status: 'PENDING',
      source: 'ROTATION',
      serial: 'SN-ROT-1',
    });
    const history = await table.store.history('SN-ROT-1');
    expect(history.filter((e) => e.event === 'START_ROTATION')).toHaveLength(1);
    // What one rotation costs: 4 IoT control-plane calls + 1 data-plane Publish, activation last;
    // 5 DynamoDB round trips (facts, claim, issued id, bind transaction, answer).
    expect(calls).toEqual([
      'CreateCertificateFromCsr:ok',
      'AttachPolicy:ok',
      'AttachThingPrincipal:ok',
      'UpdateCertificate:ok',
      'Publish:ok',
    ]);
    expect(storeRoundTrips).toBe(5);
  });

  it('commits on the first connect with the new certificate: old INACTIVE and detached, deleted after the grace period', async () => {
    // Prepare
    const { t0, old, accepted } = await rotatingDevice({ ROTATION_GRACE_SECONDS: '3600' }, 'SN-ROT-2');
    // Act: the device reconnects with the new certificate
    const outcome = await rig.rig.emulator.connect({
      certificatePem: accepted.certificatePem,
      clientId: 'SN-ROT-2',
    });
    expect(outcome.accepted).toBe(true);
    await rig.deliverPresence();
    // Assess
    expect(await table.store.getDevice('SN-ROT-2')).toMatchObject({
      state: 'ACTIVE',
      certificateId: accepted.certificateId,
    });
    expect((await table.store.getDevice('SN-ROT-2'))?.pendingCertificateId).toBeUndefined();
    expect(await iotStatus(old.certificateId)).toBe('INACTIVE');
    expect(await thingsOf(old.certificateId)).toEqual([]);
    expect(await table.store.getCertificate(accepted.certificateId)).toMatchObject({ status: 'ACTIVE' });
    expect(await table.store.getCertificate(old.certificateId)).toMatchObject({
      status: 'RETIRED',
      retirement: { step: 'DELETE' },
    });
    // Within the grace period the sweep leaves it; after it, it deletes it.
    rig.setNow(t0 + 3_599_000);
    expect(await rig.sweep()).toMatchObject({ retired: 0, failures: 0 });
    expect(await iotStatus(old.certificateId)).toBe('INACTIVE');
    rig.setNow(t0 + 3_601_000);
    expect(await rig.sweep()).toMatchObject({ retired: 1, failures: 0 });
    expect(await iotStatus(old.certificateId)).toBe('DELETED');
    const record = await table.store.getCertificate(old.certificateId);
    expect(record).toMatchObject({ status: 'DELETED' });
    expect(record?.retirement).toBeUndefined();
    expect(await rig.sweep()).toMatchObject({ retired: 0, failures: 0 });
    const history = await table.store.history('SN-ROT-2');
    expect(history.map((e) => e.event)).toEqual(
      expect.arrayContaining(['START_ROTATION', 'COMMIT_ROTATION']),
    );
    expect(rig.lifecycleOutcomes).toContainEqual({ name: 'RotationCommitted' });
  });

  it('deletes the old certificate at the commit when the grace period is 0', async () => {
    await start({ ROTATION_GRACE_SECONDS: '0' });
    const old = await rig.activeDevice('SN-ROT-3');
    const { accepted } = await rotate('SN-ROT-3');
    await rig.rig.emulator.connect({ certificatePem: accepted.certificatePem, clientId: 'SN-ROT-3' });
    await rig.deliverPresence();
    expect(await iotStatus(old.certificateId)).toBe('DELETED');
    expect(await table.store.getCertificate(old.certificateId)).toMatchObject({ status: 'DELETED' });
  });

  it('a connect with the old certificate during the rotation changes nothing', async () => {
    await start();
    const old = await rig.activeDevice('SN-ROT-4');
    const { accepted } = await rotate('SN-ROT-4');
    await rig.rig.emulator.connect({ certificatePem: old.certificatePem, clientId: 'SN-ROT-4' });
    await rig.deliverPresence();
    expect(await table.store.getDevice('SN-ROT-4')).toMatchObject({
      state: 'ROTATING',
      certificateId: old.certificateId,
      pendingCertificateId: accepted.certificateId,
    });
    expect(await iotStatus(old.certificateId)).toBe('ACTIVE');
    expect(rig.rig.quarantine.requests).toEqual([]);
  });

  it("rejects a request sent with another device's certificate and issues nothing", async () => {
    await start();
    await rig.activeDevice('SN-ROT-5A');
    await rig.activeDevice('SN-ROT-5B');
    rig.rig.emulator.clearCalls();
    // SN-ROT-5B (connected with its own certificate) publishes on SN-ROT-5A's topic.
    const body = await rig.publishRequest('SN-ROT-5B', 'SN-ROT-5A', { csr: await rig.csr('SN-ROT-5A') });
    await deliver(rig.rotate, [body]);
    expect(answers('SN-ROT-5A')).toEqual([
      { topic: 'rejected', json: { reason: 'PRINCIPAL_MISMATCH', message: expect.any(String) } },
    ]);
    expect(rig.rig.emulator.callCount('CreateCertificateFromCsr')).toBe(0);
    expect(await table.store.getDevice('SN-ROT-5A')).toMatchObject({ state: 'ACTIVE' });
    expect(rig.rotateOutcomes).toContainEqual({ name: 'RotationRejected', reason: 'PRINCIPAL_MISMATCH' });
  });

  it('creates exactly one certificate for duplicates delivered concurrently, and answers a repeat with the same certificate', async () => {
    await start();
    await rig.activeDevice('SN-ROT-6');
    rig.rig.emulator.clearCalls();
    const { body, stats } = await rotate('SN-ROT-6', { times: 6, concurrency: 6 });
    expect(stats.deadLettered).toEqual([]);
    expect(rig.rig.emulator.callCount('CreateCertificateFromCsr')).toBe(1);
    const accepted = answers('SN-ROT-6').filter((a) => a.topic === 'accepted');
    expect(accepted.length).toBeGreaterThanOrEqual(1);
    const certificateId = accepted[0]?.json.certificateId;
    expect(new Set(accepted.map((a) => a.json.certificateId))).toEqual(new Set([certificateId]));
    expect(answers('SN-ROT-6').filter((a) => a.topic === 'rejected')).toEqual([]);
    // A later repeat (the device lost the answer) gets the same certificate again.
    await deliver(rig.rotate, [body]);
    const again = answers('SN-ROT-6').filter((a) => a.topic === 'accepted');
    expect(again.at(-1)?.json.certificateId).toBe(certificateId);
    expect(rig.rig.emulator.callCount('CreateCertificateFromCsr')).toBe(1);
    expect(rig.rotateOutcomes).toContainEqual({ name: 'RotationRepeated' });
  });

  it('converges after a failure mid-way: the retry continues with the certificate already issued', async () => {
    await start();
    await rig.activeDevice('SN-ROT-7');
    rig.rig.emulator.clearCalls();
    const body = await rig.publishRequest('SN-ROT-7', 'SN-ROT-7', { csr: await rig.csr('SN-ROT-7') });
    const record = sqsRecord(body);
    rig.rig.emulator.setFaults({ errorRate: 1, apis: ['AttachThingPrincipal'] });
    const first = await rig.rotate({ Records: [record] }, lambdaContext('rotate', 30_000));
    expect(first.batchItemFailures).toEqual([{ itemIdentifier: record.messageId }]);
    rig.rig.emulator.setFaults({});
    const second = await rig.rotate(
      { Records: [sqsRecord(body, record.messageId, 2)] },
      lambdaContext('rotate', 30_000),
    );
    expect(second.batchItemFailures).toEqual([]);
    expect(rig.rig.emulator.callCount('CreateCertificateFromCsr')).toBe(1);
    const device = await table.store.getDevice('SN-ROT-7');
    const accepted = answers('SN-ROT-7').filter((a) => a.topic === 'accepted');
    expect(accepted).toHaveLength(1);
    expect(device).toMatchObject({
      state: 'ROTATING',
      pendingCertificateId: accepted[0]?.json.certificateId,
    });
  });

  it('aborts a rotation without commit at the deadline: new certificate revoked and detached, old kept', async () => {
    // Prepare
    const { t0, old, body, accepted } = await rotatingDevice(
      { ROTATION_DEADLINE_SECONDS: '600' },
      'SN-ROT-8',
    );
    // Before the deadline nothing happens.
    rig.setNow(t0 + 599_000);
    expect(await rig.sweep()).toMatchObject({ aborted: 0 });
    // Act
    rig.setNow(t0 + 601_000);
    const result = await rig.sweep();
    // Assess
    expect(result).toMatchObject({ aborted: 1, retired: 1, failures: 0 });
    const device = await table.store.getDevice('SN-ROT-8');
    expect(device).toMatchObject({ state: 'ACTIVE', certificateId: old.certificateId });
    expect(device?.pendingCertificateId).toBeUndefined();
    expect(device?.rotationDeadline).toBeUndefined();
    expect(await iotStatus(accepted.certificateId)).toBe('REVOKED');
    expect(await thingsOf(accepted.certificateId)).toEqual([]);
    expect(await iotStatus(old.certificateId)).toBe('ACTIVE');
    expect(await table.store.getCertificate(accepted.certificateId)).toMatchObject({ status: 'REVOKED' });
    const history = await table.store.history('SN-ROT-8');
    expect(history.find((e) => e.event === 'ABORT_ROTATION')).toMatchObject({
      from: 'ROTATING',
      to: 'ACTIVE',
      reason: 'ROTATION_DEADLINE_PASSED',
    });
    expect(rig.sweepOutcomes).toContainEqual({ name: 'RotationAborted' });
    expect(await rig.sweep()).toMatchObject({ aborted: 0, retired: 0 });
    // The device still connects with its old certificate, and the revoked one is refused.
    expect(
      (await rig.rig.emulator.connect({ certificatePem: old.certificatePem, clientId: 'SN-ROT-8' })).accepted,
    ).toBe(true);
    expect(
      await rig.rig.emulator.connect({ certificatePem: accepted.certificatePem, clientId: 'SN-ROT-8' }),
    ).toMatchObject({ accepted: false, reason: 'CERTIFICATE_REVOKED' });
    // The same request again is not answered with the revoked certificate.
    await deliver(rig.rotate, [body]);
    expect(answers('SN-ROT-8').at(-1)).toEqual({
      topic: 'rejected',
      json: { reason: 'KEY_REVOKED', message: expect.any(String) },
    });
  });

  it("refuses a CSR with another device's key after issuing: the certificate is deleted and the claim released", async () => {
    await start();
    await rig.activeDevice('SN-ROT-10A');
    const other = await rig.activeDevice('SN-ROT-10B');
    rig.rig.emulator.clearCalls();
    const stolen = (await createCsr({ subject: { commonName: 'SN-ROT-10A' }, keys: other.keys })).csrPem;
    const body = await rig.publishRequest('SN-ROT-10A', 'SN-ROT-10A', { csr: stolen });
    await deliver(rig.rotate, [body]);
    expect(answers('SN-ROT-10A')).toEqual([
      { topic: 'rejected', json: { reason: 'PUBLIC_KEY_IN_USE', message: expect.any(String) } },
    ]);
    expect(rig.rig.emulator.callCount('CreateCertificateFromCsr', 'ok')).toBe(1);
    expect(rig.rig.emulator.callCount('DeleteCertificate', 'ok')).toBe(1);
    expect(rig.rig.emulator.callCount('UpdateCertificate')).toBe(0);
    expect(await table.store.getDevice('SN-ROT-10A')).toMatchObject({ state: 'ACTIVE' });
    // Not cached: a repeat is judged again (and refused again, issuing and deleting again).
    const { sha256 } = await import('../../../shared/certificates');
    const spki = Buffer.from(await crypto.subtle.exportKey('spki', other.keys.publicKey));
    expect(await rig.rotations.getRequest('SN-ROT-10A', sha256(spki))).toBeUndefined();
  });

  it('a connect with the new certificate that arrives after the abort is not taken for a clone', async () => {
    const { t0, old, accepted } = await rotatingDevice({ ROTATION_DEADLINE_SECONDS: '600' }, 'SN-ROT-11');
    // The device connects just before the deadline; its presence event is still queued when the abort runs.
    rig.setNow(t0 + 599_000);
    await rig.rig.emulator.connect({ certificatePem: accepted.certificatePem, clientId: 'SN-ROT-11' });
    rig.setNow(t0 + 601_000);
    expect(await rig.sweep()).toMatchObject({ aborted: 1 });
    await rig.deliverPresence();
    expect(await table.store.getDevice('SN-ROT-11')).toMatchObject({
      state: 'ACTIVE',
      certificateId: old.certificateId,
    });
    expect(rig.rig.quarantine.requests).toEqual([]);
  });

  it('answers bad requests on rejected and dead-letters at once what cannot be answered', async () => {
    await start();
    const current = await rig.activeDevice('SN-ROT-9');
    const p521 = (await createCsr({ subject: { commonName: 'SN-ROT-9' }, keys: await p521Keys() })).csrPem;
    const sameKey = (await createCsr({ subject: { commonName: 'SN-ROT-9' }, keys: current.keys })).csrPem;
    const cases: Array<[unknown, string]> = [
      [{ csr: 'not a csr' }, 'INVALID_REQUEST'],
      [
        { csr: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----' },
        'INVALID_CSR',
      ],
      [{ csr: p521 }, 'WEAK_KEY'],
      [{ csr: sameKey }, 'KEY_NOT_NEW'],
      [{ csr: await rig.csr('SN-SOMEONE-ELSE') }, 'SUBJECT_MISMATCH'],
    ];
    for (const [payload, reason] of cases) {
      const body = await rig.publishRequest('SN-ROT-9', 'SN-ROT-9', payload);
      const stats = await deliver(rig.rotate, [body]);
      expect(stats.deadLettered).toEqual([]);
      expect(answers('SN-ROT-9').at(-1)).toEqual({
        topic: 'rejected',
        json: { reason, message: expect.any(String) },
      });
    }
    expect(rig.rig.emulator.callCount('CreateCertificateFromCsr')).toBe(0);
    expect(rig.rig.deadLetters.records).toEqual([]);
    // Not JSON, no thing name: nobody to answer — sent to RotationDLQ at once, never redelivered.
    const stats = await deliver(rig.rotate, ['not json', JSON.stringify({ csr: 'x' })], {
      maxReceiveCount: 2,
      redeliveryMs: 1,
    });
    expect(stats.retried).toBe(0);
    expect(stats.deadLettered).toEqual([]);
    expect(rig.rig.deadLetters.bodies.sort()).toEqual([JSON.stringify({ csr: 'x' }), 'not json'].sort());
  });
});

describe("rotateCertificate: errors that are ours, not the device's", () => {
  it('AccessDenied on CreateCertificateFromCsr is retried and dead-lettered, never answered CERTIFICATE_REJECTED; replayed once allowed, it rotates', async () => {
    // Prepare: the role lacks iot:CreateCertificateFromCsr until `denied` is lifted.
    let denied = true;
    await start({}, (iot) => {
      const wrapped = Object.create(iot) as IotRegistry;
      wrapped.createCertificateFromCsr = async (csr, setAsActive) => {
        if (denied) {
          throw new IotRequestError('CreateCertificateFromCsr', 'AccessDeniedException', {
            cause: Object.assign(new Error('not authorized'), { name: 'AccessDeniedException' }),
          });
        }
        return iot.createCertificateFromCsr(csr, setAsActive);
      };
      return wrapped;
    });
    await rig.activeDevice('SN-ROT-DENY');
    const body = await rig.publishRequest('SN-ROT-DENY', 'SN-ROT-DENY', {
      csr: await rig.csr('SN-ROT-DENY'),
    });
    // Act
    const stats = await deliver(rig.rotate, [body], { batchSize: 1, maxReceiveCount: 3, redeliveryMs: 1 });
    // Assess: failed on every receive, then dead-lettered by the redrive; the device was told nothing.
    expect(stats.retried).toBe(2);
    expect(stats.deadLettered.map((record) => record.body)).toEqual([body]);
    expect(answers('SN-ROT-DENY')).toEqual([]);
    expect(rig.rig.deadLetters.records).toEqual([]);
    expect(rig.rotateOutcomes).toContainEqual({ name: 'RotationRetried', reason: 'AccessDeniedException' });
    expect(await table.store.getDevice('SN-ROT-DENY')).toMatchObject({ state: 'ACTIVE' });
    // Act: the permission is fixed and the dead letter replayed (a new message, after the failed
    // delivery's lease ran out — on AWS the redrive alone takes 5 × 180 s).
    denied = false;
    rig.setNow(Date.now() + 121_000);
    const replay = await deliver(rig.rotate, [body], { batchSize: 1 });
    // Assess
    expect(replay.deadLettered).toEqual([]);
    expect(answers('SN-ROT-DENY').map((answer) => answer.topic)).toEqual(['accepted']);
    expect(await table.store.getDevice('SN-ROT-DENY')).toMatchObject({ state: 'ROTATING' });
  });
});

/** A P-521 key pair (a curve the default key policy refuses). */
async function p521Keys() {
  const { webcrypto } = await import('node:crypto');
  void generateKeyPair;
  return (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-521' }, true, [
    'sign',
    'verify',
  ])) as unknown as Awaited<ReturnType<typeof generateKeyPair>>;
}
