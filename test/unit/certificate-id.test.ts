import { describe, expect, it } from 'vitest';
import { type CertificateSource, parseCertificateId, resolveCertificateId } from '../../cli/certificate-id';

const FULL = `${'ab'.repeat(31)}cd`;
const source = (name: string, ids: string[]): CertificateSource => ({
  name,
  find: async (prefix) => ids.filter((id) => id.startsWith(prefix)),
});

describe('certificate ids as operators type them', () => {
  it.each([
    [FULL.toUpperCase(), { kind: 'full', id: FULL }],
    [`${FULL.slice(0, 12)}…`, { kind: 'prefix', prefix: FULL.slice(0, 12) }],
    [`${FULL.slice(0, 8)}...`, { kind: 'prefix', prefix: FULL.slice(0, 8) }],
    ['abcdef1', { kind: 'invalid', problem: '"abcdef1" is 7 hex characters, too short for a prefix' }],
    ['SN-0001', { kind: 'invalid', problem: '"SN-0001" is not hexadecimal' }],
    [`${FULL}0`, { kind: 'invalid', problem: `"${FULL}0" is longer than 64 characters` }],
    [' ', { kind: 'invalid', problem: 'empty' }],
  ])('%s', (value, expected) => {
    expect(parseCertificateId(value)).toEqual(expected);
  });

  it('resolves a unique prefix in the first source that knows it; refuses ambiguous, unknown and bad ones', async () => {
    const other = `${FULL.slice(0, 10)}${'0'.repeat(54)}`;
    const store = source('the store (t)', [FULL]);
    const registry = source('the IoT registry', [FULL, other]);
    await expect(resolveCertificateId(FULL.slice(0, 10), [store, registry])).resolves.toBe(FULL);
    await expect(resolveCertificateId(FULL.slice(0, 10), [registry])).rejects.toThrow(
      `certificate id: ${FULL.slice(0, 10)} is ambiguous, 2 certificates in the IoT registry start with it: ${other}, ${FULL}; give more characters`,
    );
    await expect(resolveCertificateId('0123456789', [store, registry])).rejects.toThrow(
      'certificate id: no certificate starting with 0123456789 in the store (t) or the IoT registry',
    );
    await expect(resolveCertificateId('xyz12345', [store])).rejects.toThrow(
      'certificate id: "xyz12345" is not hexadecimal; a certificate id is 64 hex characters, or a unique prefix of at least 8',
    );
  });
});
