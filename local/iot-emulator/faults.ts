import { seededRandom } from '../seeded-random';
import { IotError } from './errors';

/** Re-exported for the emulator's own tests. */
export { seededRandom };

/**
 * Default AWS IoT Core API rate quotas (transactions per second, per account and region), transcribed from
 * the AWS General Reference, "AWS IoT Core endpoints and quotas" → "AWS IoT Core API throttling"
 * (https://docs.aws.amazon.com/general/latest/gr/iot-core.html#throttling-limits). Most are adjustable in
 * a real account; these are the defaults. `Publish` is the data-plane HTTP publish quota ("Publish requests
 * per second per account", inbound).
 */
export const AWS_DEFAULT_QUOTAS: Readonly<Record<string, number>> = Object.freeze({
  AddThingToThingGroup: 100,
  AttachPolicy: 15,
  AttachThingPrincipal: 15,
  CreateCertificateFromCsr: 15,
  CreateKeysAndCertificate: 10,
  CreatePolicy: 10,
  CreateProvisioningTemplate: 10,
  CreateThing: 15,
  CreateThingGroup: 25,
  DeleteCACertificate: 10,
  DeleteCertificate: 10,
  DeletePolicy: 10,
  DeleteThing: 15,
  DeleteThingGroup: 25,
  DescribeCACertificate: 10,
  DescribeCertificate: 10,
  DescribeEndpoint: 10,
  DescribeEventConfigurations: 10,
  DescribeProvisioningTemplate: 10,
  DescribeThing: 350,
  DescribeThingGroup: 100,
  DetachPolicy: 15,
  DetachThingPrincipal: 15,
  GetPolicy: 15,
  ListAttachedPolicies: 15,
  ListCACertificates: 10,
  ListCertificates: 10,
  ListCertificatesByCA: 10,
  ListPrincipalThings: 10,
  ListTargetsForPolicy: 10,
  ListThingGroupsForThing: 100,
  ListThingPrincipals: 10,
  ListThings: 10,
  ListThingsInThingGroup: 25,
  RegisterCACertificate: 10,
  RegisterCertificate: 10,
  RegisterCertificateWithoutCA: 10,
  RemoveThingFromThingGroup: 100,
  UpdateCACertificate: 10,
  UpdateCertificate: 10,
  UpdateEventConfigurations: 10,
  UpdateThing: 10,
  Publish: 20_000,
});

/** Quota setting: AWS's defaults, an explicit per-API table (APIs not listed are unlimited), or off. */
export type QuotaSetting = 'aws-default' | Record<string, number> | false;

/** Injected latency: a fixed number of milliseconds or a uniform range. */
export type LatencySetting = number | { minMs: number; maxMs: number };

/** Fault injection settings; every field is optional and everything is off by default. */
export interface FaultSettings {
  /** Per-API token buckets (capacity = one second of quota, refilled continuously). Default off. */
  quotas?: QuotaSetting;
  /** Probability 0..1 that a call fails with a 5xx. Default 0. */
  errorRate?: number;
  /** Which 5xx errors to inject (picked uniformly). Default both. */
  errorCodes?: ('InternalFailureException' | 'ServiceUnavailableException')[];
  /** Added before each call is handled. Default none. */
  latency?: LatencySetting;
  /** Seed for the fault RNG so error sequences are reproducible. Default 1. */
  seed?: number;
  /** Restrict error/latency injection to these APIs (quotas always apply per API). Default all. */
  apis?: string[];
  /**
   * Probability 0..1 that a call is refused with ThrottlingException (HTTP 400, as AWS throttles),
   * whatever the quotas say: throttling as chaos, independent of the token buckets. Default 0.
   */
  throttleRate?: number;
  /**
   * Restrict error, throttle and latency injection to calls signed with an access key id starting
   * with one of these (the local stack's functions sign as `local-fn-<name>`: `['local-fn-']`
   * leaves the operator's and the simulator's own calls alone). Quotas apply to every caller, as
   * AWS's are per account. Default all callers.
   */
  callers?: string[];
}

interface Bucket {
  tokens: number;
  capacity: number;
  ratePerMs: number;
  updatedAt: number;
}

/**
 * Token buckets, injected 5xx errors and latency for one emulator instance. Uses a monotonic clock
 * (`performance.now`) independent of the emulator's business clock, so freezing time in tests does not
 * freeze the quotas.
 */
export class FaultInjector {
  private settings: Required<Omit<FaultSettings, 'apis' | 'latency' | 'callers'>> &
    Pick<FaultSettings, 'apis' | 'latency' | 'callers'>;
  private random: () => number;
  private buckets = new Map<string, Bucket>();

  constructor(
    settings: FaultSettings = {},
    private readonly monotonicNow: () => number = () => performance.now(),
  ) {
    this.settings = FaultInjector.normalize(settings);
    this.random = seededRandom(this.settings.seed);
  }

  private static normalize(settings: FaultSettings) {
    const errorRate = settings.errorRate ?? 0;
    if (!(errorRate >= 0 && errorRate <= 1)) throw new RangeError('errorRate must be between 0 and 1');
    const throttleRate = settings.throttleRate ?? 0;
    if (!(throttleRate >= 0 && throttleRate <= 1))
      throw new RangeError('throttleRate must be between 0 and 1');
    return {
      quotas: settings.quotas ?? false,
      errorRate,
      throttleRate,
      callers: settings.callers,
      errorCodes: settings.errorCodes?.length
        ? settings.errorCodes
        : (['InternalFailureException', 'ServiceUnavailableException'] as const).slice(),
      seed: settings.seed ?? 1,
      apis: settings.apis,
      latency: settings.latency,
    };
  }

  /** Replaces the settings (fields left out fall back to off); resets buckets and reseeds the RNG. */
  set(settings: FaultSettings): void {
    this.settings = FaultInjector.normalize(settings);
    this.random = seededRandom(this.settings.seed);
    this.buckets.clear();
  }

  /** The current settings, as JSON-friendly data. */
  get(): FaultSettings {
    return { ...this.settings };
  }

  /** The TPS quota that applies to `api` now, or undefined when unlimited. */
  quotaFor(api: string): number | undefined {
    const quotas = this.settings.quotas;
    if (quotas === false) return undefined;
    return quotas === 'aws-default' ? AWS_DEFAULT_QUOTAS[api] : quotas[api];
  }

  /** Takes one token for `api`; throws ThrottlingException when the bucket is empty. */
  takeToken(api: string): void {
    const tps = this.quotaFor(api);
    if (tps === undefined) return;
    const now = this.monotonicNow();
    let bucket = this.buckets.get(api);
    if (!bucket || bucket.capacity !== tps) {
      bucket = { tokens: tps, capacity: tps, ratePerMs: tps / 1000, updatedAt: now };
      this.buckets.set(api, bucket);
    }
    bucket.tokens = Math.min(bucket.capacity, bucket.tokens + (now - bucket.updatedAt) * bucket.ratePerMs);
    bucket.updatedAt = now;
    if (bucket.tokens < 1) throw new IotError('ThrottlingException', 'Rate exceeded');
    bucket.tokens -= 1;
  }

  private applies(api: string, caller?: string): boolean {
    const callers = this.settings.callers;
    if (callers !== undefined && !callers.some((prefix) => (caller ?? '').startsWith(prefix))) return false;
    return this.settings.apis === undefined || this.settings.apis.includes(api);
  }

  /** Milliseconds of latency to add before handling `api` (0 when none). */
  latencyFor(api: string, caller?: string): number {
    const latency = this.settings.latency;
    if (latency === undefined || !this.applies(api, caller)) return 0;
    if (typeof latency === 'number') return latency;
    return latency.minMs + this.random() * (latency.maxMs - latency.minMs);
  }

  /**
   * Throws an injected ThrottlingException with probability `throttleRate`, else an injected 5xx
   * with probability `errorRate`.
   */
  maybeFail(api: string, caller?: string): void {
    if (!this.applies(api, caller)) return;
    if (this.settings.throttleRate > 0 && this.random() < this.settings.throttleRate) {
      throw new IotError('ThrottlingException', 'Rate exceeded');
    }
    if (this.settings.errorRate <= 0) return;
    if (this.random() >= this.settings.errorRate) return;
    const codes = this.settings.errorCodes;
    const code = codes[Math.floor(this.random() * codes.length)] ?? 'InternalFailureException';
    throw new IotError(
      code,
      code === 'ServiceUnavailableException' ? 'Service unavailable' : 'Internal failure',
    );
  }
}
