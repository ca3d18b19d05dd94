/**
 * Is a certificate issued by a trusted, registered CA? Trusted (fail closed, `checkTrustedCa`): on
 * `TRUSTED_CA_IDS`, recorded in the store as a CA by the operator (`fleetgate certificates register
 * <ca.pem> --kind ca`), or tagged `fleetgate:trusted=true` in AWS IoT (ListTagsForResource);
 * registered in AWS IoT alone is not enough. The CA certificate is
 * fetched with DescribeCACertificate (quota: 10/s per account) and cached per container for a TTL,
 * as is the store's "recorded" (a "not recorded" is asked again on the next event); concurrent
 * lookups of the same CA share one call. The signature is verified against the CA's public key, so
 * a certificate merely claiming the CA's name is refused.
 */
import { X509Certificate } from 'node:crypto';
import { CA_TRUST_TAG, checkTrustedCa, type IssuerCheck } from '../../shared/domain/registration-rules';
import type { CaCertificateDescription, IotRegistry } from '../../shared/iot/iot-registry';
import type { ProvisioningStore } from '../../shared/store/provisioning-store';

interface CacheEntry<T> {
  value: Promise<T>;
  expiresAt: number;
}

export class CaTrust {
  private readonly cache = new Map<string, CacheEntry<CaCertificateDescription | undefined>>();
  private readonly recorded = new Map<string, CacheEntry<boolean>>();
  private readonly tagged = new Map<string, CacheEntry<boolean>>();

  constructor(
    private readonly iot: Pick<IotRegistry, 'describeCaCertificate' | 'listTags'>,
    private readonly options: {
      ttlMs: number;
      trustedCaIds: readonly string[];
      /** Where CAs the operator recorded are (kind CA, ACTIVE); without it only TRUSTED_CA_IDS counts. */
      store?: Pick<ProvisioningStore, 'getCertificate'>;
      clock?: () => number;
    },
  ) {}

  /** Whether `certificateDer` was signed by the ACTIVE registered, trusted CA `caCertificateId`. */
  async check(caCertificateId: string, certificateDer: Buffer): Promise<IssuerCheck> {
    const id = caCertificateId.toLowerCase();
    const onList = this.options.trustedCaIds.includes(id);
    const recordedCa = onList ? false : await this.isRecorded(id);
    const ca = await this.describe(id);
    const taggedCa = onList || recordedCa || !ca ? false : await this.isTagged(ca);
    const listed = checkTrustedCa(id, { trustedCaIds: this.options.trustedCaIds, recordedCa, taggedCa });
    if (!listed.trusted) return listed;
    if (!ca) return { trusted: false, detail: 'caCertificateId: the CA certificate is not registered' };
    if (ca.status !== 'ACTIVE')
      return { trusted: false, detail: `caCertificateId: the CA certificate is ${ca.status}` };
    try {
      const caCertificate = new X509Certificate(ca.certificatePem);
      const leaf = new X509Certificate(certificateDer);
      if (!leaf.checkIssued(caCertificate) || !leaf.verify(caCertificate.publicKey)) {
        return {
          trusted: false,
          detail: 'certificatePem: is not signed by the CA it names (signature does not verify)',
        };
      }
    } catch {
      return {
        trusted: false,
        detail: 'certificatePem: the certificate or its CA certificate could not be verified',
      };
    }
    return { trusted: true };
  }

  /**
   * Whether the store records `caCertificateId` as an ACTIVE CA. A "yes" is cached like the
   * description; a "no" is not: an operator who trusts a CA after its first device was refused
   * (`fleetgate certificates register <ca.pem> --kind ca`) is obeyed from the next event on, not
   * after `CA_CACHE_TTL_SECONDS` of refusing (and deactivating) more devices in a warm container.
   */
  private isRecorded(caCertificateId: string): Promise<boolean> {
    const store = this.options.store;
    if (!store) return Promise.resolve(false);
    return this.cachedYes(this.recorded, caCertificateId, () =>
      store
        .getCertificate(caCertificateId)
        .then((record) => record?.kind === 'CA' && record.status === 'ACTIVE'),
    );
  }

  /** `lookup`'s answer, a "yes" kept for the TTL, a "no" (or a failure) asked again next time. */
  private cachedYes(
    cache: Map<string, CacheEntry<boolean>>,
    key: string,
    lookup: () => Promise<boolean>,
  ): Promise<boolean> {
    const now = (this.options.clock ?? Date.now)();
    const cached = cache.get(key);
    if (cached && cached.expiresAt > now) return cached.value;
    const value = lookup();
    cache.set(key, { value, expiresAt: now + this.options.ttlMs });
    const forget = () => {
      if (cache.get(key)?.value === value) cache.delete(key);
    };
    value.then((yes) => {
      if (!yes) forget();
    }, forget);
    return value;
  }

  /**
   * Whether the CA carries the trust tag (`fleetgate:trusted=true`, ListTagsForResource). Cached like
   * the store's "recorded": a "yes" for the TTL, a "no" asked again on the next event.
   */
  private isTagged(ca: CaCertificateDescription): Promise<boolean> {
    const arn = ca.certificateArn;
    if (!arn) return Promise.resolve(false);
    return this.cachedYes(this.tagged, ca.certificateId, () =>
      this.iot.listTags(arn).then((tags) => tags.get(CA_TRUST_TAG.key) === CA_TRUST_TAG.value),
    );
  }

  private describe(caCertificateId: string): Promise<CaCertificateDescription | undefined> {
    const now = (this.options.clock ?? Date.now)();
    const cached = this.cache.get(caCertificateId);
    if (cached && cached.expiresAt > now) return cached.value;
    const value = this.iot.describeCaCertificate(caCertificateId);
    this.cache.set(caCertificateId, { value, expiresAt: now + this.options.ttlMs });
    // A failed lookup is not cached: the next record asks again.
    value.catch(() => this.cache.delete(caCertificateId));
    return value;
  }
}
