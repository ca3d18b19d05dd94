import { describe, expect, it } from 'vitest';
import { configFor } from '../../../shared/config';
import { decideFactoryRow, type FactoryFacts, type FactoryRow } from '../../../shared/domain/factory-rules';
import { classifyNeverConnected } from '../../../shared/domain/reconciliation';

const NOW = { iso: '2026-12-01T00:00:00.000Z', epochMs: Date.parse('2026-12-01T00:00:00.000Z') };
const RULES = configFor();
const ID = 'a'.repeat(64);

function row(
  overrides: Partial<FactoryRow> = {},
  subject: { commonName?: string } = { commonName: 'SN-0001' },
): FactoryRow {
  return {
    manifestSerial: 'SN-0001',
    certificate: {
      certificateId: ID,
      publicKeyHash: 'b'.repeat(64),
      key: { algorithm: 'EC', curve: 'P-256' },
      notBefore: '2026-01-01T00:00:00.000Z',
      notBeforeMs: Date.parse('2026-01-01T00:00:00.000Z'),
      notAfterMs: Date.parse('2027-01-01T00:00:00.000Z'),
      ...subject,
    },
    signedByCa: true,
    batch: { serialSeen: false, certificateSeen: false },
    ...overrides,
  };
}

describe('decideFactoryRow', () => {
  it.each<[string, FactoryRow, FactoryFacts, string]>([
    ['a new serial', row(), {}, 'register'],
    [
      'a serial the allowlist holds',
      row(),
      { device: { serial: 'SN-0001', state: 'ALLOWLISTED' } },
      'register',
    ],
    [
      'a duplicate certificate in the batch',
      row({ batch: { serialSeen: false, certificateSeen: true } }),
      {},
      'DUPLICATE_CERTIFICATE',
    ],
    ['a manifest serial the subject contradicts', row({ manifestSerial: 'SN-0002' }), {}, 'SERIAL_MISMATCH'],
    ['no serial in the subject', row({}, {}), {}, 'SERIAL_NOT_IN_SUBJECT'],
    [
      'a duplicate serial in the batch',
      row({ batch: { serialSeen: true, certificateSeen: false } }),
      {},
      'DUPLICATE_SERIAL',
    ],
    ['another CA', row({ signedByCa: false }), {}, 'WRONG_CA'],
    [
      'an expired certificate',
      row({ certificate: { ...row().certificate, notAfterMs: NOW.epochMs - 1 } }),
      {},
      'CERTIFICATE_EXPIRED',
    ],
    [
      'a weak key',
      row({ certificate: { ...row().certificate, key: { algorithm: 'RSA', bits: 1024 } } }),
      {},
      'WEAK_KEY',
    ],
    [
      'a key another row holds',
      row({ batch: { serialSeen: false, certificateSeen: false, keyOwner: 'SN-9' } }),
      {},
      'KEY_REUSED',
    ],
    [
      'a key another device holds',
      row(),
      { publicKeyOwner: { serial: 'SN-9', certificateId: 'c'.repeat(64) } },
      'KEY_REUSED',
    ],
    [
      'a quarantined device',
      row(),
      { device: { serial: 'SN-0001', state: 'QUARANTINED' } },
      'DEVICE_QUARANTINED',
    ],
    ['a revoked device', row(), { device: { serial: 'SN-0001', state: 'REVOKED' } }, 'DEVICE_REVOKED'],
    [
      'a device ACTIVE with another certificate',
      row(),
      { device: { serial: 'SN-0001', state: 'ACTIVE', certificateId: 'd'.repeat(64) } },
      'SERIAL_BOUND_TO_OTHER_CERTIFICATE',
    ],
    [
      'a certificate another device holds',
      row(),
      { certificate: { certificateId: ID, serial: 'SN-9', source: 'JITR', status: 'ACTIVE' } },
      'CERTIFICATE_IN_USE',
    ],
    [
      'an imported row',
      row(),
      {
        device: { serial: 'SN-0001', state: 'PROVISIONING', pendingCertificateId: ID },
        certificate: { certificateId: ID, serial: 'SN-0001', source: 'FACTORY', status: 'ACTIVE' },
      },
      'already-registered',
    ],
    [
      'an imported device that connected since',
      row(),
      {
        device: { serial: 'SN-0001', state: 'ACTIVE', certificateId: ID },
        certificate: { certificateId: ID, serial: 'SN-0001', source: 'FACTORY', status: 'ACTIVE' },
      },
      'already-registered',
    ],
    [
      'a reserved row an earlier run did not finish',
      row(),
      {
        device: { serial: 'SN-0001', state: 'PROVISIONING', pendingCertificateId: ID },
        certificate: { certificateId: ID, serial: 'SN-0001', source: 'FACTORY', status: 'PENDING' },
      },
      'resume',
    ],
  ])('%s → %s', (_name, input, facts, expected) => {
    const decision = decideFactoryRow(input, facts, RULES, NOW);
    expect(decision.action === 'reject' ? decision.reason : decision.action).toBe(expected);
  });

  it('names the field and the rule in every rejection', () => {
    const decision = decideFactoryRow(row({ manifestSerial: 'SN-0002' }), {}, RULES, NOW);
    expect(decision).toMatchObject({
      action: 'reject',
      detail: expect.stringMatching(/^serial: .*SN-0002.*SN-0001/),
    });
  });

  it("names a batch row's field as the batch does (`certificate`), also for the rules it shares with the hook", () => {
    const expired = row({ certificate: { ...row().certificate, notAfterMs: NOW.epochMs - 1 } });
    expect(decideFactoryRow(expired, {}, RULES, NOW)).toMatchObject({
      action: 'reject',
      reason: 'CERTIFICATE_EXPIRED',
      detail: expect.stringMatching(/^certificate: /),
    });
  });
});

describe('classifyNeverConnected', () => {
  const device = {
    serial: 'SN-1',
    state: 'PROVISIONING',
    pendingCertificateId: ID,
    factoryImportedAt: '2026-10-01T00:00:00.000Z',
  };
  it('reports a factory device still waiting after N days, and nothing else', () => {
    expect(classifyNeverConnected(device, NOW.epochMs, 30)).toMatchObject({
      kind: 'FACTORY_NEVER_CONNECTED',
      serial: 'SN-1',
      certificateId: ID,
    });
    expect(classifyNeverConnected(device, NOW.epochMs, 90)).toBeUndefined();
    expect(classifyNeverConnected({ ...device, state: 'ACTIVE' }, NOW.epochMs, 30)).toBeUndefined();
    const { factoryImportedAt: _, ...hook } = device;
    expect(classifyNeverConnected(hook, NOW.epochMs, 30)).toBeUndefined();
  });
});
