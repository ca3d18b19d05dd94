import {
  DeleteCertificateCommand,
  DescribeCertificateCommand,
  DetachThingPrincipalCommand,
  IoTClient,
  ListPrincipalThingsCommand,
  UpdateCertificateCommand,
} from '@aws-sdk/client-iot';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { IotRegistry } from '../../shared/iot/iot-registry';
import { retireCertificate } from '../../shared/rotation/retirement';
import type { Retirement } from '../../shared/store/records';
import type { RotationStore } from '../../shared/store/rotation-store';

const iotMock = mockClient(IoTClient);
const ID = 'a'.repeat(64);
const ARN = `arn:aws:iot:us-east-1:123456789012:cert/${ID}`;
const NOW = { iso: '2026-11-24T12:00:00.000Z', epochMs: Date.parse('2026-11-24T12:00:00.000Z') };

/** A store fake that records advances and answers like the conditional write would. */
function fakeRotations(steps: Retirement['step'][]) {
  const advances: Array<{ expectedStep: string; next?: string; status: string }> = [];
  const rotations: Pick<RotationStore, 'advanceRetirement'> = {
    advanceRetirement: async (input) => {
      advances.push({
        expectedStep: input.expectedStep,
        ...(input.next ? { next: input.next.step } : {}),
        status: input.status,
      });
      return steps.includes(input.expectedStep);
    },
  };
  return { rotations, advances };
}

function retirement(overrides: Partial<Retirement> = {}): Retirement {
  return {
    step: 'DEACTIVATE',
    dueAt: NOW.iso,
    deleteAfter: '2026-11-25T12:00:00.000Z',
    serial: 'SN-1',
    thingName: 'SN-1',
    reason: 'ROTATED',
    ...overrides,
  };
}

/** Runs the due steps of `work` on certificate ID against the mocked IoT and `rotations`. */
function retire(work: Retirement, rotations: Pick<RotationStore, 'advanceRetirement'>) {
  return retireCertificate(
    ID,
    work,
    { iot: new IotRegistry(iotMock as unknown as IoTClient), rotations },
    NOW,
  );
}

beforeEach(() => {
  iotMock.reset();
  iotMock.on(DescribeCertificateCommand).resolves({
    certificateDescription: {
      certificateId: ID,
      certificateArn: ARN,
      status: 'ACTIVE',
      certificatePem: 'PEM',
    },
  });
  iotMock.on(ListPrincipalThingsCommand).resolves({ things: ['SN-1'] });
});

describe('retireCertificate', () => {
  it('deactivates and detaches now, and leaves the deletion for after the grace period', async () => {
    const { rotations, advances } = fakeRotations(['DEACTIVATE', 'DELETE']);
    const outcomes = await retire(retirement(), rotations);
    expect(outcomes.map((o) => o.result)).toEqual(['deactivated', 'not-due']);
    expect(iotMock.commandCalls(UpdateCertificateCommand)[0]?.args[0].input).toEqual({
      certificateId: ID,
      newStatus: 'INACTIVE',
    });
    expect(iotMock.commandCalls(DetachThingPrincipalCommand)[0]?.args[0].input).toEqual({
      thingName: 'SN-1',
      principal: ARN,
    });
    expect(iotMock.commandCalls(DeleteCertificateCommand)).toHaveLength(0);
    expect(advances).toEqual([{ expectedStep: 'DEACTIVATE', next: 'DELETE', status: 'RETIRED' }]);
  });

  it('goes on to delete (forceDelete, after detaching) when the grace period is 0', async () => {
    const { rotations, advances } = fakeRotations(['DEACTIVATE', 'DELETE']);
    const outcomes = await retire(retirement({ deleteAfter: NOW.iso }), rotations);
    expect(outcomes.map((o) => o.result)).toEqual(['deactivated', 'deleted']);
    expect(iotMock.commandCalls(DeleteCertificateCommand)[0]?.args[0].input).toEqual({
      certificateId: ID,
      forceDelete: true,
    });
    expect(advances.at(-1)).toEqual({ expectedStep: 'DELETE', status: 'DELETED' });
  });

  it('revokes and detaches an aborted rotation’s certificate without deleting it', async () => {
    const { rotations } = fakeRotations(['REVOKE']);
    const outcomes = await retire(retirement({ step: 'REVOKE', reason: 'ROTATION_ABORTED' }), rotations);
    expect(outcomes.map((o) => o.result)).toEqual(['revoked']);
    expect(iotMock.commandCalls(UpdateCertificateCommand)[0]?.args[0].input.newStatus).toBe('REVOKED');
    expect(iotMock.commandCalls(DetachThingPrincipalCommand)).toHaveLength(1);
    expect(iotMock.commandCalls(DeleteCertificateCommand)).toHaveLength(0);
  });

  it('treats a certificate already gone from IoT as done and still moves the work on', async () => {
    iotMock
      .on(DescribeCertificateCommand)
      .rejects(Object.assign(new Error('gone'), { name: 'ResourceNotFoundException' }));
    const { rotations, advances } = fakeRotations(['DELETE']);
    const outcomes = await retire(retirement({ step: 'DELETE' }), rotations);
    expect(outcomes.map((o) => o.result)).toEqual(['deleted']);
    expect(iotMock.commandCalls(DeleteCertificateCommand)).toHaveLength(0);
    expect(advances).toEqual([{ expectedStep: 'DELETE', status: 'DELETED' }]);
  });

  it('does nothing before the step is due', async () => {
    const { rotations, advances } = fakeRotations(['DELETE']);
    const outcomes = await retire(
      retirement({ step: 'DELETE', dueAt: '2026-11-24T12:00:00.001Z' }),
      rotations,
    );
    expect(outcomes.map((o) => o.result)).toEqual(['not-due']);
    expect(iotMock.calls()).toHaveLength(0);
    expect(advances).toEqual([]);
  });

  it('leaves the work item when IoT throttles (the error is retryable)', async () => {
    iotMock
      .on(UpdateCertificateCommand)
      .rejects(Object.assign(new Error('slow down'), { name: 'ThrottlingException' }));
    const { rotations, advances } = fakeRotations(['DEACTIVATE']);
    await expect(retire(retirement(), rotations)).rejects.toMatchObject({ retryable: true });
    expect(advances).toEqual([]);
  });
});
