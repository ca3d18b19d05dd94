/**
 * Is a certificate issued by a trusted, registered CA? The CA certificate is fetched with
 * DescribeCACertificate (quota: 10/s per account) and cached per container for a TTL; concurrent
 * lookups of the same CA share one call. The signature is verified against the CA's public key,
 * so a certificate merely claiming the CA's name is refused.
 */
import { X509Certificate } from 'node:crypto';
import { checkTrustedCa, type IssuerCheck } from '../../shared/domain/registration-rules';
import type { CaCertificateDescription, IotRegistry } from '../../shared/iot/iot-registry';

interface CacheEntry {
  value: Promise<CaCertificateDescription | undefined>;
  expiresAt: number;
}

export class CaTrust {
  private readonly cache = new Map<string, CacheEntry>();

  constructor(
    private readonly iot: Pick<IotRegistry, 'describeCaCertificate'>,
    private readonly options: { ttlMs: number; trustedCaIds: readonly string[]; clock?: () => number },
  ) {}

  /** Whether `certificateDer` was signed by the ACTIVE registered CA `caCertificateId`. */
  async check(caCertificateId: string, certificateDer: Buffer): Promise<IssuerCheck> {
    const listed = checkTrustedCa(caCertificateId, this.options.trustedCaIds);
    if (!listed.trusted) return listed;
    const ca = await this.describe(caCertificateId.toLowerCase());
    if (!ca) return { trusted: false, detail: 'CA certificate is not registered' };
    if (ca.status !== 'ACTIVE') return { trusted: false, detail: `CA certificate is ${ca.status}` };
    try {
      const caCertificate = new X509Certificate(ca.certificatePem);
      const leaf = new X509Certificate(certificateDer);
      if (!leaf.checkIssued(caCertificate) || !leaf.verify(caCertificate.publicKey)) {
        return { trusted: false, detail: 'certificate is not signed by the CA it names' };
      }
    } catch {
      return { trusted: false, detail: 'certificate or CA certificate could not be verified' };
    }
    return { trusted: true };
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
