/**
 * CaTrust, JITR's trusted-CA check: a CA the store records (or that carries the trust tag) is cached
 * per container, a CA it does not record (or that is untagged) is asked about again, so trusting a CA
 * takes effect on the next registration event.
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

/** The CA as IoT describes it, with the tags the test sets, counting the tag reads. */
function iotFor() {
  const fake = {
    tags: new Map<string, string>(),
    tagReads: 0,
    describeCaCertificate: async () => ({
      certificateId: caId,
      certificateArn: `arn:aws:iot:us-east-1:000000000000:cacert/${caId}`,
      status: 'ACTIVE',
      autoRegistrationStatus: 'ENABLE',
      certificatePem: ca.certificatePem,
    }),
    listTags: async () => {
      fake.tagReads += 1;
      return new Map(fake.tags);
    },
  };
  return fake;
}

function trustFor(fake: ReturnType<typeof store>, iot = iotFor()): CaTrust {
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

  it('trusts a CA tagged fleetgate:trusted=true; an untagged CA is refused and asked about again', async () => {
    // Prepare
    const iot = iotFor();
    const trust = trustFor(store(), iot);
    const der = Buffer.from(certificateDer(device.certificatePem));
    // Act
    const untagged = await trust.check(caId, der);
    iot.tags.set('fleetgate:trusted', 'yes');
    const otherValue = await trust.check(caId, der);
    iot.tags.set('fleetgate:trusted', 'true');
    const tagged = [await trust.check(caId, der), await trust.check(caId, der)];
    // Assess
    expect(untagged).toMatchObject({
      trusted: false,
      detail: expect.stringContaining('fleetgate:trusted=true'),
    });
    expect(otherValue).toMatchObject({ trusted: false });
    expect(tagged).toEqual([{ trusted: true }, { trusted: true }]);
    expect(iot.tagReads).toBe(3);
  });

  it('does not read tags of a CA the store records', async () => {
    // Prepare
    const fake = store();
    fake.record = { kind: 'CA', status: 'ACTIVE' };
    const iot = iotFor();
    // Act
    const answer = await trustFor(fake, iot).check(caId, Buffer.from(certificateDer(device.certificatePem)));
    // Assess
    expect(answer).toEqual({ trusted: true });
    expect(iot.tagReads).toBe(0);
  });
});
