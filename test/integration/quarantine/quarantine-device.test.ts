/**
 * quarantineDevice and the operator decisions against DynamoDB Local and the IoT emulator (real
 * @aws-sdk/client-iot). The handler is driven directly with AWS-shaped SQS events; the trip through
 * local SQS and its DLQ is in dead-letters.test.ts.
 */
import {
  AttachThingPrincipalCommand,
  CreateKeysAndCertificateCommand,
  DescribeCertificateCommand,
  type IoTClient,
  ListAttachedPoliciesCommand,
  ListThingGroupsForThingCommand,
} from '@aws-sdk/client-iot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IotEmulator } from '../../../local/iot-emulator/index';
import { parseCertificatePem } from '../../../shared/certificates';
import { listQuarantine, rejectQuarantine, releaseQuarantine } from '../../../shared/quarantine/operator';
import { anchorCertificateRecord, type CertificateStatus } from '../../../shared/store/records';
import { createCa, issueTestCertificate } from '../../support/certs';
import type { TestTable } from '../../support/dynamo';
import { buildTestHook } from '../../support/hook';
import { RecordingDeadLetters } from '../../support/jitr';
import { lambdaContext } from '../../support/lambda';
import {
  buildTestWorker,
  prepareTestAccount,
  QUARANTINE_GROUP,
  quarantineRequest,
  seedActiveDevice,
  sqsEvent,
  startQuarantineAccount,
  type TestWorker,
} from '../../support/quarantine';

let table: TestTable;
let emulator: IotEmulator;
let iot: IoTClient;
let worker: TestWorker;
const deadLetters = new RecordingDeadLetters();
/** A fresh context per invocation: each gets its own 30 s (one shared deadline ran out on a slow machine). */
const context = () => lambdaContext('fleetgate-local-quarantineDevice', 30_000);

beforeAll(async () => {
  ({ table, emulator, iot } = await startQuarantineAccount('quarantine'));
  worker = buildTestWorker(table, iot, deadLetters);
});
afterAll(async () => {
  iot?.destroy();
  await Promise.all([table?.drop(), emulator?.stop()]);
});

/** A device certificate record of `serial` in the table, in `status`. */
async function putDeviceCertificate(certificateId: string, serial: string, status: CertificateStatus) {
  await table.store.putCertificateIfAbsent({
    certificateId,
    kind: 'DEVICE',
    status,
    source: 'FLEET_PROVISIONING',
    serial,
    issuer: 'test',
    notBefore: '2026-01-01T00:00:00.000Z',
    notAfter: '2027-01-01T00:00:00.000Z',
    createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:00.000Z',
  });
}

async function certificateStatus(certificateId: string): Promise<string | undefined> {
  const out = await iot.send(new DescribeCertificateCommand({ certificateId }));
  return out.certificateDescription?.status;
}

async function groupsOf(thingName: string): Promise<string[]> {
  const out = await iot.send(new ListThingGroupsForThingCommand({ thingName }));
  return (out.thingGroups ?? []).map((group) => group.groupName ?? '');
}

const operatorDecision = (subject: string, reason: string) => ({
  subject,
  reason,
  actor: 'cli:test-operator',
  now: new Date().toISOString(),
  newId: () => crypto.randomUUID(),
});

describe('account preparation', () => {
  it('attaches the deny policy to the quarantine group and is idempotent', async () => {
    // Act
    await prepareTestAccount(iot);
    const out = await iot.send(
      new ListAttachedPoliciesCommand({
        target: `arn:aws:iot:us-east-1:123456789012:thinggroup/${QUARANTINE_GROUP}`,
      }),
    );
    // Assess
    expect(out.policies?.map((policy) => policy.policyName)).toEqual([QUARANTINE_GROUP]);
  });
});

describe('quarantineDevice', () => {
  it('deactivates the certificate, moves the thing into the group and records QUARANTINED with the previous state', async () => {
    // Prepare
    const { certificateId, thingName } = await seedActiveDevice(table, iot, 'SN-Q-0001');
    const request = quarantineRequest({ serial: 'SN-Q-0001', reason: 'CLONE_CONCURRENT_SESSIONS' });
    // Act
    const response = await worker.handler(sqsEvent([request]), context());
    // Assess
    expect(response).toEqual({ batchItemFailures: [] });
    expect(await certificateStatus(certificateId)).toBe('INACTIVE');
    expect(await groupsOf(thingName)).toEqual([QUARANTINE_GROUP]);
    const device = await table.store.getDevice('SN-Q-0001');
    expect(device).toMatchObject({
      state: 'QUARANTINED',
      previousState: 'ACTIVE',
      quarantine: {
        reason: 'CLONE_CONCURRENT_SESSIONS',
        source: 'deviceLifecycle',
        requestId: request.requestId,
        certificateIds: [certificateId],
        thingName,
        evidence: { clientIds: ['a', 'b'] },
      },
    });
    const history = await table.store.history('SN-Q-0001');
    expect(history.filter((entry) => entry.event === 'QUARANTINE')).toEqual([
      expect.objectContaining({ from: 'ACTIVE', to: 'QUARANTINED', reason: 'CLONE_CONCURRENT_SESSIONS' }),
    ]);
    expect(worker.outcomes).toContainEqual({
      name: 'DeviceQuarantined',
      reason: 'CLONE_CONCURRENT_SESSIONS',
    });
  });

  it('applies one request delivered five times concurrently exactly once', async () => {
    // Prepare
    const { certificateId } = await seedActiveDevice(table, iot, 'SN-Q-0005');
    const request = quarantineRequest({ serial: 'SN-Q-0005' });
    // Act
    const responses = await Promise.all(
      Array.from({ length: 5 }, () => worker.handler(sqsEvent([request]), context())),
    );
    // Assess
    expect(responses).toEqual(Array.from({ length: 5 }, () => ({ batchItemFailures: [] })));
    const history = await table.store.history('SN-Q-0005');
    expect(history.filter((entry) => entry.event === 'QUARANTINE')).toHaveLength(1);
    expect(history.filter((entry) => entry.event.startsWith('QUARANTINE'))).toHaveLength(1);
    expect(await table.store.getDevice('SN-Q-0005')).toMatchObject({ state: 'QUARANTINED', version: 2 });
    expect(await certificateStatus(certificateId)).toBe('INACTIVE');
  });

  it('finishes the job when redelivered after a failure between the IoT effects and the store', async () => {
    // Prepare: AddThingToThingGroup fails every time, after UpdateCertificate succeeded.
    const { certificateId, thingName } = await seedActiveDevice(table, iot, 'SN-Q-0007');
    const request = quarantineRequest({ serial: 'SN-Q-0007' });
    emulator.setFaults({
      errorRate: 1,
      apis: ['AddThingToThingGroup'],
      errorCodes: ['InternalFailureException'],
    });
    const first = sqsEvent([request]);
    // Act
    const failed = await worker.handler(first, context());
    emulator.setFaults({});
    const redelivered = await worker.handler(sqsEvent([request], 2), context());
    // Assess
    expect(failed.batchItemFailures).toEqual([{ itemIdentifier: first.Records[0]?.messageId }]);
    expect(redelivered.batchItemFailures).toEqual([]);
    expect(await certificateStatus(certificateId)).toBe('INACTIVE');
    expect(await groupsOf(thingName)).toEqual([QUARANTINE_GROUP]);
    expect(await table.store.getDevice('SN-Q-0007')).toMatchObject({ state: 'QUARANTINED' });
  });

  it('adds the evidence of a second request to an already quarantined device without moving it', async () => {
    // Prepare
    await seedActiveDevice(table, iot, 'SN-Q-0008');
    await worker.handler(sqsEvent([quarantineRequest({ serial: 'SN-Q-0008' })]), context());
    // Act
    const response = await worker.handler(
      sqsEvent([quarantineRequest({ serial: 'SN-Q-0008', reason: 'PUBLIC_KEY_IN_USE' })]),
      context(),
    );
    // Assess
    expect(response.batchItemFailures).toEqual([]);
    const device = await table.store.getDevice('SN-Q-0008');
    expect(device).toMatchObject({ state: 'QUARANTINED', previousState: 'ACTIVE', version: 2 });
    const events = (await table.store.history('SN-Q-0008')).map((entry) => entry.event);
    expect(events).toEqual(expect.arrayContaining(['QUARANTINE', 'QUARANTINE_EVIDENCE']));
  });

  it('two different suspicions about one device at once: one quarantines it, the other adds evidence, no retry', async () => {
    // Prepare
    await seedActiveDevice(table, iot, 'SN-Q-0009');
    const clone = quarantineRequest({ serial: 'SN-Q-0009', reason: 'CLONE_CERTIFICATE_MISMATCH' });
    const takeover = quarantineRequest({ serial: 'SN-Q-0009', reason: 'SERIAL_BOUND_TO_OTHER_CERTIFICATE' });
    // Act: delivered in separate invocations at the same time, each twice
    const responses = await Promise.all(
      [clone, takeover, clone, takeover].map((request) => worker.handler(sqsEvent([request]), context())),
    );
    // Assess
    expect(responses.flatMap((response) => response.batchItemFailures)).toEqual([]);
    const events = (await table.store.history('SN-Q-0009')).map((entry) => entry.event);
    expect(events.filter((event) => event === 'QUARANTINE')).toHaveLength(1);
    expect(events.filter((event) => event === 'QUARANTINE_EVIDENCE')).toHaveLength(1);
    expect(await table.store.getDevice('SN-Q-0009')).toMatchObject({ state: 'QUARANTINED', version: 2 });
  });

  it('quarantines the owner of a known certificate when the request names an unknown serial', async () => {
    // Prepare
    const { certificateId } = await seedActiveDevice(table, iot, 'SN-Q-0009');
    await putDeviceCertificate(certificateId, 'SN-Q-0009', 'ACTIVE');
    // Act
    const response = await worker.handler(
      sqsEvent([
        quarantineRequest({ serial: 'NOT-ITS-SERIAL', certificateId, reason: 'CLONE_CERTIFICATE_MISMATCH' }),
      ]),
      context(),
    );
    // Assess
    expect(response.batchItemFailures).toEqual([]);
    expect(await table.store.getDevice('SN-Q-0009')).toMatchObject({ state: 'QUARANTINED' });
    expect((await table.store.history('SN-Q-0009')).at(-1)?.detail).toMatchObject({
      claimedSerial: 'NOT-ITS-SERIAL',
    });
  });

  it('quarantines the certificate of an unknown serial and lists it', async () => {
    // Prepare: a JITR certificate whose serial was never allowlisted.
    const cert = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
    const certificateId = cert.certificateId ?? '';
    const request = quarantineRequest({
      serial: 'SN-UNKNOWN-1',
      certificateId,
      reason: 'SERIAL_NOT_ALLOWLISTED',
      source: 'registerCertificate',
    });
    // Act
    const response = await worker.handler(sqsEvent([request, request]), context());
    const listing = await listQuarantine(worker.operator, { reason: 'SERIAL_NOT_ALLOWLISTED' });
    // Assess
    expect(response.batchItemFailures).toEqual([]);
    expect(await certificateStatus(certificateId)).toBe('INACTIVE');
    expect(await table.store.getCertificate(certificateId)).toMatchObject({
      status: 'INACTIVE',
      quarantine: { reason: 'SERIAL_NOT_ALLOWLISTED', evidence: { claimedSerial: 'SN-UNKNOWN-1' } },
    });
    expect(listing.certificates).toEqual([
      expect.objectContaining({
        certificateId,
        reason: 'SERIAL_NOT_ALLOWLISTED',
        claimedSerial: 'SN-UNKNOWN-1',
      }),
    ]);
    expect(worker.outcomes.filter((o) => o.name === 'CertificateQuarantined')).toHaveLength(1);
  });

  it('never deactivates a claim certificate (issue 15): named alone it is flagged for an operator; named next to a device the device is quarantined and the claim kept ACTIVE', async () => {
    // Prepare: a claim certificate fleetgate recorded, and a device
    const claim = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
    const claimId = claim.certificateId ?? '';
    await table.store.putCertificateIfAbsent(
      anchorCertificateRecord(parseCertificatePem(claim.certificatePem ?? ''), {
        kind: 'CLAIM',
        now: new Date().toISOString(),
      }),
    );
    const { certificateId } = await seedActiveDevice(table, iot, 'SN-Q-CLAIM');
    const alone = quarantineRequest({ certificateId: claimId, reason: 'CLONE_DUPLICATE_CLIENTID' });
    const scoped = quarantineRequest({
      certificateId: claimId,
      scope: 'certificate',
      reason: 'CLONE_CERTIFICATE_MISMATCH',
    });
    const withDevice = quarantineRequest({
      serial: 'SN-Q-CLAIM',
      certificateId: claimId,
      reason: 'CLONE_DUPLICATE_CLIENTID',
    });
    // Act
    const response = await worker.handler(sqsEvent([alone, scoped, alone]), context());
    const second = await worker.handler(sqsEvent([withDevice]), context());
    // Assess
    expect(response.batchItemFailures).toEqual([]);
    expect(second.batchItemFailures).toEqual([]);
    expect(await certificateStatus(claimId)).toBe('ACTIVE');
    expect(await table.store.getCertificate(claimId)).toMatchObject({
      kind: 'CLAIM',
      status: 'ACTIVE',
      suspicionCount: 2,
      lastSuspicion: expect.objectContaining({ source: 'deviceLifecycle' }),
    });
    expect(await table.store.getDevice('SN-Q-CLAIM')).toMatchObject({ state: 'QUARANTINED' });
    expect(await certificateStatus(certificateId)).toBe('INACTIVE');
    expect((await table.store.history('SN-Q-CLAIM')).at(-1)?.detail).toMatchObject({
      claimCertificateKept: claimId,
    });
  });

  it('a certificate-scoped request deactivates that certificate only: its device is not quarantined and its thing not restricted', async () => {
    // Prepare: a device with its current certificate, and an old certificate of its, still bound to it
    const { certificateId, thingName } = await seedActiveDevice(table, iot, 'SN-Q-SCOPE');
    const old = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
    const oldId = old.certificateId ?? '';
    await iot.send(new AttachThingPrincipalCommand({ thingName, principal: old.certificateArn ?? '' }));
    await putDeviceCertificate(oldId, 'SN-Q-SCOPE', 'RETIRED');
    // Act
    const response = await worker.handler(
      sqsEvent([
        quarantineRequest({
          certificateId: oldId,
          scope: 'certificate',
          reason: 'CLONE_CERTIFICATE_MISMATCH',
          evidence: { claimedSerial: 'SN-Q-SCOPE' },
        }),
      ]),
      context(),
    );
    // Assess
    expect(response.batchItemFailures).toEqual([]);
    expect(await certificateStatus(oldId)).toBe('INACTIVE');
    expect(await certificateStatus(certificateId)).toBe('ACTIVE');
    expect(await table.store.getDevice('SN-Q-SCOPE')).toMatchObject({ state: 'ACTIVE' });
    expect(await groupsOf(thingName)).toEqual([]);
  });

  it('sends an unparseable body to the DLQ at once and logs the messageId and the field, never the body', async () => {
    // Prepare
    const secret = 'not-for-logs';
    const event = sqsEvent([
      { requestId: 'r-bad', serial: 'SN-1', reason: 'lowercase', source: 'deviceLifecycle', at: 'x', secret },
      `{"truncated": "${secret}`,
    ]);
    deadLetters.records.length = 0;
    worker.errorLogs.length = 0;
    // Act
    const response = await worker.handler(event, context());
    // Assess: acknowledged (never redelivered), kept in the DLQ with its body.
    expect(response.batchItemFailures).toEqual([]);
    expect(deadLetters.records.map(({ record }) => record.messageId)).toEqual(
      event.Records.map((record) => record.messageId),
    );
    expect(deadLetters.bodies).toEqual(event.Records.map((record) => record.body));
    const logs = worker.errorLogs.filter((log) => log.message.includes('dead-letter queue'));
    expect(logs.map((log) => log.fields.messageId).sort()).toEqual(
      event.Records.map((record) => record.messageId).sort(),
    );
    const byId = (id: string | undefined) => logs.find((log) => log.fields.messageId === id)?.fields.reason;
    expect(byId(event.Records[0]?.messageId)).toContain('body.reason: must be an UPPER_SNAKE reason code');
    expect(byId(event.Records[0]?.messageId)).toContain('body.at:');
    expect(byId(event.Records[1]?.messageId)).toMatch(/^body: Invalid JSON/);
    expect(JSON.stringify(logs)).not.toContain(secret);
  });

  it('sends a request for an unknown serial without a certificateId to the DLQ at once, naming the field, and writes nothing', async () => {
    // Prepare: the request the shipped events/iot samples lead to (no such serial in the store).
    const event = sqsEvent([quarantineRequest({ requestId: 'r-unknown', serial: 'SN-NOBODY-1' })]);
    deadLetters.records.length = 0;
    const before = await table.dump();
    // Act
    const response = await worker.handler(event, context());
    // Assess: not redelivered (the old behaviour failed it on every delivery, every 180 s).
    expect(response.batchItemFailures).toEqual([]);
    expect(deadLetters.records).toHaveLength(1);
    expect(deadLetters.records[0]?.reason).toBe(
      'serial: serial SN-NOBODY-1 is unknown and no certificateId was given',
    );
    expect(worker.outcomes.at(-1)).toEqual({ name: 'QuarantineInvalid', reason: 'request' });
    expect(await table.dump()).toEqual(before);
  });
});

describe('operator decisions', () => {
  it('release restores the certificate, the group membership and the previous state, with operator and reason', async () => {
    // Prepare
    const { certificateId, thingName } = await seedActiveDevice(table, iot, 'SN-R-0001');
    await worker.handler(sqsEvent([quarantineRequest({ serial: 'SN-R-0001' })]), context());
    // Act
    const result = await releaseQuarantine(worker.operator, operatorDecision('SN-R-0001', 'false positive'));
    // Assess
    expect(result).toMatchObject({
      subject: 'device',
      decision: 'RELEASE',
      from: 'QUARANTINED',
      to: 'ACTIVE',
    });
    expect(await certificateStatus(certificateId)).toBe('ACTIVE');
    expect(await groupsOf(thingName)).toEqual([]);
    const device = await table.store.getDevice('SN-R-0001');
    expect(device?.state).toBe('ACTIVE');
    expect(device?.quarantine).toBeUndefined();
    expect(device?.previousState).toBeUndefined();
    expect((await table.store.history('SN-R-0001')).at(-1)).toMatchObject({
      event: 'RELEASE',
      from: 'QUARANTINED',
      to: 'ACTIVE',
      actor: 'cli:test-operator',
      reason: 'false positive',
    });
    expect(await table.store.getCertificate(certificateId)).toBeUndefined();
  });

  it('release of a device quarantined mid-rotation leaves it ACTIVE with its current certificate, not stuck ROTATING', async () => {
    // Prepare: an ACTIVE device starts a rotation (a pending certificate), then is quarantined.
    const { device, certificateId } = await seedActiveDevice(table, iot, 'SN-R-0010');
    const pending = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
    const pendingId = pending.certificateId ?? '';
    const rotating = await table.store.transition({
      serial: device.serial,
      event: 'START_ROTATION',
      device,
      transitionKey: 'rotate:test',
      now: '2026-11-24T12:00:00.000Z',
      history: { id: 'h-rotate', actor: 'test' },
      set: { pendingCertificateId: pendingId, rotationDeadline: '2026-11-25T12:00:00.000Z' },
    });
    expect(rotating.status).toBe('applied');
    await worker.handler(sqsEvent([quarantineRequest({ serial: 'SN-R-0010' })]), context());
    expect(await table.store.getDevice('SN-R-0010')).toMatchObject({
      state: 'QUARANTINED',
      previousState: 'ROTATING',
    });
    // Act
    const result = await releaseQuarantine(worker.operator, operatorDecision('SN-R-0010', 'it was me'));
    // Assess: ACTIVE again with its current certificate; the abandoned one stays cut off.
    expect(result).toMatchObject({ from: 'QUARANTINED', to: 'ACTIVE' });
    const released = await table.store.getDevice('SN-R-0010');
    expect(released).toMatchObject({ state: 'ACTIVE', certificateId });
    expect(released?.pendingCertificateId).toBeUndefined();
    expect(released?.rotationDeadline).toBeUndefined();
    expect(await certificateStatus(certificateId)).toBe('ACTIVE');
    expect(await certificateStatus(pendingId)).toBe('INACTIVE');
    expect((await table.store.history('SN-R-0010')).at(-1)).toMatchObject({
      event: 'RELEASE',
      to: 'ACTIVE',
      detail: expect.objectContaining({ rotationAbandoned: { pendingCertificateId: pendingId } }),
    });
  });

  it('reject revokes the certificate and the device, and the hook then denies the serial with DEVICE_REVOKED', async () => {
    // Prepare
    const { certificateId } = await seedActiveDevice(table, iot, 'SN-R-0002');
    await worker.handler(sqsEvent([quarantineRequest({ serial: 'SN-R-0002' })]), context());
    // Act
    const result = await rejectQuarantine(worker.operator, operatorDecision('SN-R-0002', 'confirmed clone'));
    const { hook, outcomes } = buildTestHook(table.store, { DEFAULT_ALLOWED_CLAIM: '*' });
    const ca = await createCa('Reject CA');
    const device = await issueTestCertificate(ca, { commonName: 'SN-R-0002' });
    const answer = await hook(
      {
        claimCertificateId: 'c1a1'.padEnd(64, '0'),
        certificateId: device.certificateId,
        certificatePem: device.pem,
        templateArn: 'arn:aws:iot:us-east-1:123456789012:provisioningtemplate/fleetgate-dev-fleet',
        clientId: 'client-SN-R-0002',
        parameters: { SerialNumber: 'SN-R-0002' },
      },
      lambdaContext(),
    );
    // Assess
    expect(result).toMatchObject({ subject: 'device', decision: 'REJECT', to: 'REVOKED' });
    expect(await certificateStatus(certificateId)).toBe('REVOKED');
    expect(await table.store.getDevice('SN-R-0002')).toMatchObject({ state: 'REVOKED' });
    expect(answer).toEqual({ allowProvisioning: false });
    expect(outcomes).toEqual([{ name: 'ProvisioningDenied', reason: 'DEVICE_REVOKED' }]);
    expect((await table.store.history('SN-R-0002')).at(-1)).toMatchObject({
      event: 'REJECT',
      actor: 'cli:test-operator',
      reason: 'confirmed clone',
    });
  });

  it('refuses to release a device that is not quarantined', async () => {
    // Prepare
    await seedActiveDevice(table, iot, 'SN-R-0003');
    // Act / Assess
    await expect(
      releaseQuarantine(worker.operator, operatorDecision('SN-R-0003', 'x')),
    ).rejects.toMatchObject({
      code: 'ILLEGAL_TRANSITION',
    });
  });
});
