/**
 * Read-only view of the IoT registry for inventory reconciliation: paged listings and single
 * certificate lookups, each API behind its own client-side token bucket. Never changes anything in
 * IoT. Counts the calls it makes and the attempts the SDK needed (retries after throttling or 5xx).
 */
import {
  DescribeCertificateCommand,
  type IoTClient,
  ListCertificatesCommand,
  ListThingPrincipalsCommand,
  ListThingsCommand,
} from '@aws-sdk/client-iot';
import { TokenBucket } from '../aws/token-bucket';
import type { IotCertificateState, IotCertificateSummary } from '../domain/reconciliation';
import { TransientError } from '../errors';

/** The IoT APIs reconciliation calls (and the only ones its role allows). */
export const INVENTORY_APIS = [
  'ListCertificates',
  'DescribeCertificate',
  'ListThings',
  'ListThingPrincipals',
] as const;
export type InventoryApi = (typeof INVENTORY_APIS)[number];

/** Calls made per API, and SDK attempts beyond the first (retries). */
export interface InventoryCallStats {
  calls: Record<InventoryApi, number>;
  retries: number;
}

export interface IotPage<T> {
  items: T[];
  next?: string;
}

export interface ThingSummary {
  thingName: string;
}

export class IotInventory {
  private readonly buckets: Record<InventoryApi, TokenBucket>;
  readonly stats: InventoryCallStats = {
    calls: { ListCertificates: 0, DescribeCertificate: 0, ListThings: 0, ListThingPrincipals: 0 },
    retries: 0,
  };

  constructor(
    private readonly iot: IoTClient,
    /** Requests per second per API (a share of AWS's default 10 TPS quota of each). */
    maxTps: number,
  ) {
    this.buckets = {
      ListCertificates: new TokenBucket(maxTps),
      DescribeCertificate: new TokenBucket(maxTps),
      ListThings: new TokenBucket(maxTps),
      ListThingPrincipals: new TokenBucket(maxTps),
    };
  }

  /** One ListCertificates page (status and id come with it: no DescribeCertificate per certificate). */
  async listCertificates(
    marker: string | undefined,
    pageSize: number,
  ): Promise<IotPage<IotCertificateSummary>> {
    const out = await this.call('ListCertificates', () =>
      this.iot.send(
        new ListCertificatesCommand({ pageSize, ...(marker ? { marker } : {}), ascendingOrder: true }),
      ),
    );
    const items: IotCertificateSummary[] = [];
    for (const certificate of out.certificates ?? []) {
      if (!certificate.certificateId || !certificate.status) continue;
      items.push({
        certificateId: certificate.certificateId,
        status: certificate.status,
        ...(certificate.creationDate ? { creationDate: certificate.creationDate.toISOString() } : {}),
      });
    }
    return out.nextMarker ? { items, next: out.nextMarker } : { items };
  }

  /** The certificate's status now, or `NOT_FOUND` when IoT does not have it. */
  async certificateState(certificateId: string): Promise<IotCertificateState> {
    try {
      const out = await this.call('DescribeCertificate', () =>
        this.iot.send(new DescribeCertificateCommand({ certificateId })),
      );
      return out.certificateDescription?.status ?? 'NOT_FOUND';
    } catch (error) {
      const name = (error as { name?: string }).name;
      // A certificate id that is not even well formed cannot exist either.
      if (name === 'ResourceNotFoundException' || name === 'InvalidRequestException') return 'NOT_FOUND';
      throw error;
    }
  }

  /** One ListThings page. */
  async listThings(nextToken: string | undefined, maxResults: number): Promise<IotPage<ThingSummary>> {
    const out = await this.call('ListThings', () =>
      this.iot.send(new ListThingsCommand({ maxResults, ...(nextToken ? { nextToken } : {}) })),
    );
    const items = (out.things ?? []).flatMap((thing) =>
      thing.thingName ? [{ thingName: thing.thingName }] : [],
    );
    return out.nextToken ? { items, next: out.nextToken } : { items };
  }

  /** Whether a thing has at least one principal (one ListThingPrincipals call, maxResults 1). */
  async hasPrincipals(thingName: string): Promise<boolean | 'NOT_FOUND'> {
    try {
      const out = await this.call('ListThingPrincipals', () =>
        this.iot.send(new ListThingPrincipalsCommand({ thingName, maxResults: 1 })),
      );
      return (out.principals ?? []).length > 0;
    } catch (error) {
      // Deleted between ListThings and now: not a thing any more, not drift.
      if ((error as { name?: string }).name === 'ResourceNotFoundException') return 'NOT_FOUND';
      throw error;
    }
  }

  private async call<T extends { $metadata: { attempts?: number } }>(
    api: InventoryApi,
    send: () => Promise<T>,
  ): Promise<T> {
    await this.buckets[api].take();
    this.stats.calls[api] += 1;
    try {
      const out = await send();
      this.stats.retries += Math.max(0, (out.$metadata.attempts ?? 1) - 1);
      return out;
    } catch (error) {
      const metadata = (error as { $metadata?: { attempts?: number } }).$metadata;
      this.stats.retries += Math.max(0, (metadata?.attempts ?? 1) - 1);
      const name = (error as { name?: string }).name;
      if (
        name === 'ThrottlingException' ||
        name === 'ServiceUnavailableException' ||
        name === 'InternalFailureException'
      ) {
        throw new TransientError(`IoT ${api} kept failing (${name})`, { cause: error });
      }
      throw error;
    }
  }
}
