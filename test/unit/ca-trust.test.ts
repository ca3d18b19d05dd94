/**
 * CaTrust, JITR's trusted-CA check: a CA the store records is cached per container, a CA it does not
 * record is asked about again, so trusting a CA takes effect on the next registration event.
 */
import { Buffer } from 'node:buffer';
import { beforeAll, describe, expect, it } from 'vitest';
import { CaTrust } from '../../functions/register-certificate/ca-trust';
import {
  type CertificateAuthority,
  certificateDer,
  createCertificateAuthority,
  createDeviceCertificate,
  type KeyedCertificate,
} from '../../local/pki';
import type { CertificateRecord } from '../../shared/store/records';

let ca: CertificateAuthority;
let device: KeyedCertificate;
let caId: string;

beforeAll(async () => {
  ca = await createCertificateAuthority({ subject: { commonName: 'Unit Device CA' } });
  device = await createDeviceCertificate(ca, { subject: { commonName: 'SN-UNIT-1' } });
  caId = ca.certificateId;
});

/** A store whose CA record the test sets, counting the reads. */
function store() {
  const fake = {
    record: undefined as Pick<CertificateRecord, 'kind' | 'status'> | undefined,
    reads: 0,
    getCertificate: async () => {
      fake.reads += 1;
      return fake.record as CertificateRecord | undefined;
    },
  };
  return fake;
}

function trustFor(fake: ReturnType<typeof store>): CaTrust {
  const iot = {
    describeCaCertificate: async () => ({
      certificateId: caId,
      status: 'ACTIVE',
      autoRegistrationStatus: 'ENABLE',
      certificatePem: ca.certificatePem,
    }),
  };
  return new CaTrust(iot, { ttlMs: 300_000, trustedCaIds: [], store: fake, clock: () => 0 });
}

describe('CaTrust (JITR trusts CAs the operator recorded)', () => {
  it('does not cache "not recorded": a CA recorded after a refusal is trusted on the next event', async () => {
    // Prepare
    const fake = store();
    const trust = trustFor(fake);
    const der = Buffer.from(certificateDer(device.certificatePem));
    // Act
    const before = await trust.check(caId, der);
    fake.record = { kind: 'CA', status: 'ACTIVE' };
    const after = await trust.check(caId, der);
    // Assess
    expect(before).toMatchObject({ trusted: false, detail: expect.stringContaining('TRUSTED_CA_IDS') });
    expect(after).toEqual({ trusted: true });
    expect(fake.reads).toBe(2);
  });

  it('caches "recorded" for the TTL: one store read for many events', async () => {
    // Prepare
    const fake = store();
    fake.record = { kind: 'CA', status: 'ACTIVE' };
    const trust = trustFor(fake);
    const der = Buffer.from(certificateDer(device.certificatePem));
    // Act
    const answers = [
      await trust.check(caId, der),
      await trust.check(caId, der),
      await trust.check(caId, der),
    ];
    // Assess
    expect(answers).toEqual([{ trusted: true }, { trusted: true }, { trusted: true }]);
    expect(fake.reads).toBe(1);
  });
});
