import { describe, expect, it } from 'vitest';
import { MalformedItemError } from '../../shared/errors';
import {
  certificateFromItem,
  certificateItem,
  indexedCertificateFromItem,
} from '../../shared/store/entities/certificate';
import { claimCountFromItem } from '../../shared/store/entities/claim-window';
import { dedupFromItem, dedupItem } from '../../shared/store/entities/dedup';
import { deviceFromItem, deviceFromOldImage, deviceItem } from '../../shared/store/entities/device';
import { historyEntry, historyFromItem, historyItem } from '../../shared/store/entities/history';
import { clientPresenceFromItem, sessionFromItem } from '../../shared/store/entities/presence';
import { publicKeyFromItem, publicKeyItem } from '../../shared/store/entities/public-key';
import { rotationRequestFromItem } from '../../shared/store/entities/rotation-request';
import { RECONCILE_RUN, SWEEP_RUN } from '../../shared/store/entities/run';
import { fromItem } from '../../shared/store/item';
import { keys } from '../../shared/store/keys';
import type { CertificateRecord } from '../../shared/store/records';
import { allowlistedDevice, NOW } from '../support/devices';

const certificate: CertificateRecord = {
  certificateId: 'c0ffee',
  kind: 'DEVICE',
  status: 'ACTIVE',
  source: 'JITR',
  serial: 'SN-1',
  issuer: 'CN=Test CA',
  notBefore: '2026-11-24T00:00:00.000Z',
  notAfter: '2027-11-24T00:00:00.000Z',
  createdAt: NOW,
  updatedAt: NOW,
};

/** The error `read` throws, so its fields can be asserted. */
function malformed(read: () => unknown): MalformedItemError {
  try {
    read();
  } catch (error) {
    if (error instanceof MalformedItemError) return error;
    throw error;
  }
  throw new Error('the malformed item was accepted');
}

describe('store entities: toItem then fromItem gives the record back', () => {
  it('device, without its keys, with attributes defaulted', () => {
    const device = allowlistedDevice({ serial: 'SN-1', batch: 'B1', thingName: 'thing-1' });
    const item = deviceItem(device);
    expect(item).toMatchObject({ ...keys.device('SN-1'), ...keys.stateIndex('ALLOWLISTED', 'SN-1') });
    expect(deviceFromItem(item)).toEqual(device);
    const { attributes: _attributes, ...withoutAttributes } = item;
    expect(deviceFromItem(withoutAttributes).attributes).toEqual({});
  });

  it('certificate, with its index keys stripped and attributes it does not name passed through', () => {
    const item = { ...certificateItem(certificate), leaseOwner: 'message-1', rejectedReason: 'X' };
    expect(item).toMatchObject({ GSI1PK: expect.stringMatching(/^EXPIRY#2027-11-24#/) });
    expect(certificateFromItem(item)).toEqual({
      ...certificate,
      leaseOwner: 'message-1',
      rejectedReason: 'X',
    });
  });

  it('history, public key and dedup marker', () => {
    const entry = historyEntry('SN-1', NOW, { id: 'h1', actor: 'test' }, 'PROVISION', {
      from: 'ALLOWLISTED',
      to: 'PROVISIONING',
    });
    expect(historyFromItem(historyItem(entry))).toEqual(entry);
    const owner = { publicKeyHash: 'ab', serial: 'SN-1', certificateId: 'c0ffee', createdAt: NOW };
    expect(publicKeyFromItem(publicKeyItem(owner))).toEqual(owner);
    expect(dedupFromItem(dedupItem('effect:1', 60, NOW))).toEqual({ identity: 'effect:1', createdAt: NOW });
  });

  it('reads a device from a failed condition’s old image only when the image is a device', () => {
    expect(deviceFromOldImage(deviceItem(allowlistedDevice()))?.serial).toBe('SN-000001');
    expect(deviceFromOldImage(certificateItem(certificate))).toBeUndefined();
  });
});

describe('store entities: a malformed item fails with its key and field', () => {
  it('device: a version that is not a number', () => {
    const error = malformed(() => deviceFromItem({ ...deviceItem(allowlistedDevice()), version: '2' }));
    expect(error.entity).toBe('device');
    expect(error.key).toBe('PK=DEVICE#SN-000001 SK=DEVICE');
    expect(error.field).toBe('version');
    expect(error.message).toContain('malformed device item PK=DEVICE#SN-000001 SK=DEVICE: version:');
    expect(error.retryable).toBe(false);
  });

  it('device: a state the state machine does not know', () => {
    const error = malformed(() => deviceFromItem({ ...deviceItem(allowlistedDevice()), state: 'LOST' }));
    expect(error.field).toBe('state');
  });

  it('certificate: an unknown status, and a nested field of its retirement', () => {
    expect(
      malformed(() => certificateFromItem({ ...certificateItem(certificate), status: 'GONE' })).field,
    ).toBe('status');
    const retiring = {
      ...certificateItem(certificate),
      retirement: { step: 'DELETE', dueAt: NOW, reason: 'ROTATED' },
    };
    const error = malformed(() => certificateFromItem(retiring));
    expect(error.key).toBe('PK=CERT#c0ffee SK=CERT');
    expect(error.field).toBe('retirement.serial');
  });

  it('certificate from an index projection: the projected fields only, still checked', () => {
    const projected = {
      ...keys.certificate('c0ffee'),
      certificateId: 'c0ffee',
      kind: 'DEVICE',
      status: 'ACTIVE',
      source: 'JITR',
      issuer: 'CN=Test CA',
      notBefore: certificate.notBefore,
      notAfter: certificate.notAfter,
    };
    expect(indexedCertificateFromItem(projected).certificateId).toBe('c0ffee');
    expect(() => certificateFromItem(projected)).toThrow(MalformedItemError);
    const { notAfter: _notAfter, ...withoutNotAfter } = projected;
    expect(malformed(() => indexedCertificateFromItem(withoutNotAfter)).field).toBe('notAfter');
  });

  it('history, public key, claim window, dedup', () => {
    const history = historyItem(historyEntry('SN-1', NOW, { id: 'h1', actor: 'test' }, 'CREATED'));
    const { actor: _actor, ...noActor } = history;
    const error = malformed(() => historyFromItem(noActor));
    expect(error.key).toBe(`PK=DEVICE#SN-1 SK=EVENT#${NOW}#h1`);
    expect(error.field).toBe('actor');
    const owner = publicKeyItem({ publicKeyHash: 'ab', serial: 'SN-1', certificateId: 'c', createdAt: NOW });
    expect(malformed(() => publicKeyFromItem({ ...owner, serial: 7 })).field).toBe('serial');
    const window = { ...keys.claimWindow('claim-1', '2026-11-24T12:00'), count: 'many' };
    expect(malformed(() => claimCountFromItem(window)).key).toBe(
      'PK=CLAIM#claim-1#2026-11-24T12:00 SK=CLAIM',
    );
    expect(claimCountFromItem({ ...window, count: 3 })).toBe(3);
    expect(malformed(() => dedupFromItem({ ...dedupItem('e', 60, NOW), done: 'yes' })).field).toBe('done');
  });

  it('rotation request: an answer of neither shape', () => {
    const item = {
      ...keys.rotationRequest('SN-1', 'ab'),
      serial: 'SN-1',
      publicKeyHash: 'ab',
      owner: 'message-1',
      leaseUntil: NOW,
      done: true,
      createdAt: NOW,
    };
    expect(
      rotationRequestFromItem({ ...item, answer: { accepted: false, reason: 'R', message: 'm' } }).answer,
    ).toEqual({ accepted: false, reason: 'R', message: 'm' });
    expect(malformed(() => rotationRequestFromItem({ ...item, answer: { accepted: true } })).field).toBe(
      'answer',
    );
  });

  it('presence: a session without its client id, a presence without its principal', () => {
    const session = { ...keys.principalSession('c', 's1'), sessionIdentifier: 's1', connectedAt: 1 };
    expect(malformed(() => sessionFromItem(session)).field).toBe('clientId');
    expect(sessionFromItem({ ...session, clientId: 'thing-1' })).toEqual({
      sessionIdentifier: 's1',
      clientId: 'thing-1',
      connectedAt: 1,
    });
    const presence = { ...keys.clientPresence('thing-1'), connected: true, sessionIdentifier: 's1' };
    expect(malformed(() => clientPresenceFromItem(presence)).field).toBe('principalIdentifier');
  });

  it('run checkpoints and pages of both kinds', () => {
    const sweep = {
      ...keys.sweepCheckpoint('run-1'),
      runId: 'run-1',
      status: 'RUNNING',
      seq: 0,
      invocations: 0,
      createdAt: NOW,
      updatedAt: NOW,
      now: NOW,
      policy: { windowsDays: [7, 30], lookbackDays: 30, maxAgeDays: 365, rotationWindowDays: 30 },
      step: 0,
      itemsRead: 0,
      readUnits: 0,
    };
    const error = malformed(() => fromItem(SWEEP_RUN.checkpoint, 'sweep checkpoint', sweep));
    expect(error.key).toBe('PK=SWEEP#run-1 SK=CHECKPOINT');
    expect(error.field).toBe('policy.chartDays');
    const page = {
      ...keys.reconcilePage('run-2', 1),
      runId: 'run-2',
      seq: 1,
      drift: [{ key: 'k', kind: 'NOPE' }],
    };
    expect(malformed(() => fromItem(RECONCILE_RUN.page, 'reconciliation page', page)).field).toBe(
      'drift.0.kind',
    );
  });
});
