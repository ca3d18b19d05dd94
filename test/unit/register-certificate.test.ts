/**
 * registerCertificate with a mocked IoT client (aws-sdk-client-mock) and in-memory store fakes:
 * the order of side effects, and how errors map to SQS outcomes (an AWS or configuration error →
 * the record fails and is redelivered, then dead-lettered by the queue; a body that is not a JITR
 * event → sent to the DLQ at once; nothing acknowledged that was not done).
 */

import { Logger } from '@aws-lambda-powertools/logger';
import {
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CreateThingCommand,
  DescribeCertificateCommand,
  DescribeThingCommand,
  IoTClient,
  UpdateCertificateCommand,
  UpdateThingCommand,
} from '@aws-sdk/client-iot';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createHandler } from '../../functions/register-certificate/create-handler';
import type { RegistrationDeps } from '../../functions/register-certificate/registration';
import {
  type CertificateAuthority,
  createCertificateAuthority,
  createDeviceCertificate,
  type KeyedCertificate,
} from '../../local/pki';
import { configFor } from '../../shared/config';
import { IotRegistry } from '../../shared/iot/iot-registry';
import type { DeviceRecord } from '../../shared/store/records';
import { type RecordedOutcome, recordingMetrics } from '../support/hook';
import { RecordingDeadLetters, RecordingQuarantine, sqsRecord } from '../support/jitr';
import { lambdaContext } from '../support/lambda';

const CA_ID = 'c'.repeat(64);
const ARN = (id: string) => `arn:aws:iot:us-east-1:123456789012:cert/${id}`;
const iotMock = mockClient(IoTClient);

let ca: CertificateAuthority;
let device: KeyedCertificate;
let log: string[];
let outcomes: RecordedOutcome[];
let quarantine: RecordingQuarantine;
let deadLetters: RecordingDeadLetters;

beforeAll(async () => {
  ca = await createCertificateAuthority({ subject: { commonName: 'Unit CA' } });
  device = await createDeviceCertificate(ca, { subject: { commonName: 'SN-UNIT-1' } });
});

function allowlisted(): DeviceRecord {
  return {
    serial: 'SN-UNIT-1',
    state: 'ALLOWLISTED',
    version: 1,
    attributes: {},
    createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:00.000Z',
  };
}

function fakes(
  overrides: { device?: DeviceRecord } = {},
): Omit<RegistrationDeps, 'newId' | 'iot' | 'caTrust' | 'quarantine' | 'config'> {
  const noted = <T>(name: string, value: T): T => {
    log.push(`store.${name}`);
    return value;
  };
  return {
    store: {
      getCertificate: async () => noted('getCertificate', undefined),
      loadProvisioningFacts: async () =>
        noted('loadProvisioningFacts', { device: overrides.device ?? allowlisted() }),
      bindCertificate: async (input) =>
        noted('bindCertificate', { status: 'applied' as const, device: input.device }),
    },
    registrations: {
      acquireRegistrationLease: async () => noted('acquireRegistrationLease', 'acquired' as const),
      completeRegistration: async () => void noted('completeRegistration', undefined),
      recordRejection: async () => noted('recordRejection', true),
      claimEffect: async () => noted('claimEffect', 'acquired' as const),
      completeEffect: async () => void noted('completeEffect', undefined),
    },
  };
}

function build(
  overrides: {
    device?: DeviceRecord;
    config?: RegistrationDeps['config'];
    store?: RegistrationDeps['store'];
  } = {},
) {
  const config =
    overrides.config ??
    configFor({
      DEVICE_POLICY_NAME: 'shared-device-policy',
      QUARANTINE_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/1/q',
    });
  const built = fakes(overrides);
  return createHandler({
    config,
    ...built,
    store: overrides.store ?? built.store,
    iot: new IotRegistry(new IoTClient({ region: 'us-east-1', maxAttempts: 1 })),
    caTrust: { check: async () => ({ trusted: true }) },
    quarantine: {
      send: async (request) => {
        log.push('sqs.SendMessage');
        await quarantine.send(request);
      },
    },
    logger: new Logger({ serviceName: 'fleetgate', logLevel: 'SILENT' }),
    metrics: recordingMetrics(outcomes),
    deadLetters,
  });
}

function event(certificateId = device.certificateId) {
  return {
    Records: [
      sqsRecord(
        JSON.stringify({
          certificateId,
          caCertificateId: CA_ID,
          timestamp: 1,
          certificateStatus: 'PENDING_ACTIVATION',
          awsAccountId: '123456789012',
          certificateRegistrationTimestamp: 1,
        }),
        'message-1',
      ),
    ],
  };
}

function mockIot(status = 'PENDING_ACTIVATION') {
  const note = (api: string) => () => {
    log.push(api);
    return {};
  };
  iotMock.on(DescribeCertificateCommand).callsFake(() => {
    log.push('DescribeCertificate');
    return {
      certificateDescription: {
        certificateId: device.certificateId,
        certificateArn: ARN(device.certificateId),
        status,
        certificatePem: device.certificatePem,
        caCertificateId: CA_ID,
      },
    };
  });
  iotMock.on(CreateThingCommand).callsFake(note('CreateThing'));
  iotMock.on(AttachPolicyCommand).callsFake(note('AttachPolicy'));
  iotMock.on(AttachThingPrincipalCommand).callsFake(note('AttachThingPrincipal'));
  iotMock.on(UpdateCertificateCommand).callsFake((input: { newStatus: string }) => {
    log.push(`UpdateCertificate:${input.newStatus}`);
    return {};
  });
}

function awsError(name: string, httpStatusCode: number) {
  return Object.assign(new Error(name), {
    name,
    $fault: httpStatusCode >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode },
  });
}

beforeEach(() => {
  iotMock.reset();
  log = [];
  outcomes = [];
  quarantine = new RecordingQuarantine();
  deadLetters = new RecordingDeadLetters();
});

describe('registerCertificate: order of side effects', () => {
  it('reserves in the store, attaches the shared policy, creates, attaches the principal, activates last, then commits', async () => {
    // Prepare
    mockIot();
    // Act
    const response = await build()(event(), lambdaContext());
    // Assess
    expect(response).toEqual({ batchItemFailures: [] });
    expect(log).toEqual([
      'store.getCertificate',
      'DescribeCertificate',
      'store.loadProvisioningFacts',
      'store.bindCertificate',
      'AttachPolicy',
      'CreateThing',
      'AttachThingPrincipal',
      'UpdateCertificate:ACTIVE',
      'store.completeRegistration',
    ]);
    expect(iotMock.commandCalls(AttachPolicyCommand)[0]?.args[0].input).toEqual({
      policyName: 'shared-device-policy',
      target: ARN(device.certificateId),
    });
    expect(outcomes).toEqual([{ name: 'DeviceRegistered' }]);
  });

  it('verifies an existing thing with other attributes and merges ours in (never fails on ResourceAlreadyExists)', async () => {
    // Prepare
    mockIot();
    iotMock.on(CreateThingCommand).rejects(awsError('ResourceAlreadyExistsException', 409));
    iotMock
      .on(DescribeThingCommand)
      .resolves({ thingName: 'SN-UNIT-1', attributes: { serial: 'SN-UNIT-1', colour: 'red' }, version: 3 });
    iotMock.on(UpdateThingCommand).resolves({});
    // Act
    await build({ device: { ...allowlisted(), productLine: 'sensor' } })(event(), lambdaContext());
    // Assess
    expect(iotMock.commandCalls(UpdateThingCommand)[0]?.args[0].input).toEqual({
      thingName: 'SN-UNIT-1',
      attributePayload: { attributes: { serial: 'SN-UNIT-1', productLine: 'sensor' }, merge: true },
      expectedVersion: 3,
    });
    expect(outcomes).toEqual([{ name: 'DeviceRegistered' }]);
  });

  it('rejects by asking for quarantine first, then leaving the certificate INACTIVE, then recording', async () => {
    // Prepare: the serial was never allowlisted
    mockIot();
    const handler = build({
      config: configFor({ QUARANTINE_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/1/q' }),
      store: {
        ...fakes().store,
        loadProvisioningFacts: async () => {
          log.push('store.loadProvisioningFacts');
          return {};
        },
      },
    });
    // Act
    await handler(event(), lambdaContext());
    // Assess
    expect(log.slice(3)).toEqual([
      'store.claimEffect',
      'sqs.SendMessage',
      'store.completeEffect',
      'UpdateCertificate:INACTIVE',
      'store.recordRejection',
    ]);
    expect(quarantine.requests).toEqual([
      expect.objectContaining({
        certificateId: device.certificateId,
        reason: 'SERIAL_NOT_ALLOWLISTED',
        source: 'registerCertificate',
      }),
    ]);
    expect(quarantine.requests[0]?.serial).toBeUndefined();
  });
});

describe('registerCertificate: error mapping', () => {
  /** AttachPolicy fails with `name`: the record fails (SQS retries it), nothing is activated or completed. */
  async function expectAttachPolicyErrorRetried(name: string, status: number) {
    // Prepare
    mockIot();
    iotMock.on(AttachPolicyCommand).rejects(awsError(name, status));
    // Act
    const response = await build()(event(), lambdaContext());
    // Assess
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: 'message-1' }] });
    expect(log).not.toContain('UpdateCertificate:ACTIVE');
    expect(log).not.toContain('store.completeRegistration');
    expect(outcomes).toEqual([{ name: 'RegistrationRetried', reason: name }]);
  }

  it.each([
    ['ThrottlingException', 400],
    ['InternalFailureException', 500],
    ['ServiceUnavailableException', 503],
  ])('%s fails just that record (SQS redelivers it) and never activates', async (name, status) => {
    await expectAttachPolicyErrorRetried(name, status);
  });

  it.each([
    ['AccessDeniedException', 403],
    ['UnauthorizedException', 401],
    ['ResourceNotFoundException', 404],
    ['InvalidRequestException', 400],
  ])(
    '%s (our configuration, not the device) fails the record too: retried, then dead-lettered, never acknowledged',
    async (name, status) => {
      // e.g. AttachPolicy … ResourceNotFoundException: the device policy is missing.
      await expectAttachPolicyErrorRetried(name, status);
      expect(log).not.toContain('CreateThing');
      expect(deadLetters.records).toEqual([]);
    },
  );

  it('sends an event that is not a JITR event to the DLQ at once, naming the field, and acknowledges it', async () => {
    const response = await build()(
      { Records: [sqsRecord('{"certificateId":"nope"}', 'message-2')] },
      lambdaContext(),
    );
    expect(response).toEqual({ batchItemFailures: [] });
    expect(outcomes).toEqual([{ name: 'RegistrationInvalid', reason: 'body' }]);
    expect(deadLetters.records).toHaveLength(1);
    expect(deadLetters.records[0]?.record.messageId).toBe('message-2');
    expect(deadLetters.records[0]?.reason).toContain('body.certificateId: must be 64 hex characters');
    expect(log).toEqual([]);
  });

  it('fails the record (to be retried) when the DLQ does not take an invalid event: nothing is dropped', async () => {
    // Prepare
    deadLetters.send = async () => {
      throw new Error('SendMessage refused');
    };
    // Act
    const response = await build()({ Records: [sqsRecord('not json', 'message-3')] }, lambdaContext());
    // Assess
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: 'message-3' }] });
    expect(outcomes).toEqual([{ name: 'RegistrationRetried', reason: 'Error' }]);
  });

  it('handles every record of a batch and fails only the one that hit a retryable error', async () => {
    // Prepare
    mockIot();
    iotMock
      .on(DescribeCertificateCommand, { certificateId: 'd'.repeat(64) })
      .rejects(awsError('ThrottlingException', 400));
    const batch = {
      Records: [
        ...event().Records,
        ...event('d'.repeat(64)).Records.map((r) => ({ ...r, messageId: 'message-3' })),
      ],
    };
    // Act
    const response = await build()(batch, lambdaContext());
    // Assess
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: 'message-3' }] });
    expect(outcomes).toEqual(
      expect.arrayContaining([
        { name: 'DeviceRegistered' },
        { name: 'RegistrationRetried', reason: 'ThrottlingException' },
      ]),
    );
  });
});
