/**
 * Client-side rate limiting for AWS APIs with per-account TPS quotas (IoT control plane: 10 TPS for
 * ListCertificates, DescribeCertificate, ListThings, ListThingPrincipals by default). One bucket per
 * API: `take()` waits until a token is free, so a caller stays under its share of the quota instead
 * of running into ThrottlingException (the SDK's retries remain the safety net).
 */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    /** Tokens added per second (the rate kept on average). */
    readonly ratePerSecond: number,
    /** Most tokens held at once (the burst); at least 1. */
    readonly capacity: number = Math.max(1, Math.floor(ratePerSecond)),
    private readonly now: () => number = () => performance.now(),
    private readonly sleep: (ms: number) => Promise<void> = (ms) =>
      new Promise((resolve) => setTimeout(resolve, ms)),
  ) {
    if (!(ratePerSecond > 0)) throw new RangeError('ratePerSecond must be positive');
    this.tokens = this.capacity;
    this.updatedAt = this.now();
  }

  /** Resolves when one token has been taken; callers are served in order. */
  take(): Promise<void> {
    const turn = this.queue.then(() => this.takeNow());
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  private async takeNow(): Promise<void> {
    for (;;) {
      this.refill();
      if (this.tokens >= 1) {
        this.tokens -= 1;
        return;
      }
      await this.sleep(Math.ceil(((1 - this.tokens) / this.ratePerSecond) * 1000));
    }
  }

  private refill(): void {
    const now = this.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.updatedAt) / 1000) * this.ratePerSecond);
    this.updatedAt = now;
  }
}
