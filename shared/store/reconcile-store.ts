/**
 * Inventory reconciliation's view of the provisioning table: its checkpointed run (`RECONCILE#<runId>`
 * items, TTL'd; `RunStore`), the certificates its IoT listing saw (one TTL'd item each, so the
 * store-side pass decides most devices without a DescribeCertificate), and batched reads of
 * certificate and device records by key (the existing GetItem access patterns, 100 keys a call).
 *
 * Every unit is committed together with the checkpoint that moves past it, in one transaction
 * conditional on the checkpoint's sequence number: a duplicate continuation, or two invocations on
 * the same run, can never count a unit twice or skip one.
 */
import type {
  Drift,
  IotCertificateStatus,
  StoreCertificateFact,
  StoreDeviceFact,
} from '../domain/reconciliation';
import { type Item, type StoreAccess, type StoreClient, storeClient } from './client';
import { CERTIFICATE_FACT_PROJECTION, certificateFactFromItem } from './entities/certificate';
import { DEVICE_FACT_PROJECTION, deviceFactFromItem } from './entities/device';
import {
  RECONCILE_RUN,
  RECONCILE_TTL_SECONDS,
  type ReconcileCheckpoint,
  type ReconcilePage,
} from './entities/run';
import { epochSeconds } from './item';
import { type Key, keys } from './keys';
import { type CommitOutcome, RunStore } from './run-store';

export type { ReconcileCheckpoint, ReconcilePhase } from './entities/run';
export { RECONCILE_TTL_SECONDS } from './entities/run';
export type { CommitOutcome } from './run-store';

export class ReconcileStore {
  private readonly db: StoreClient;
  private readonly runs: RunStore<ReconcileCheckpoint, ReconcilePage>;

  constructor(access: StoreAccess) {
    this.db = storeClient(access);
    this.runs = new RunStore(this.db, RECONCILE_RUN);
  }

  getCheckpoint(runId: string): Promise<ReconcileCheckpoint | undefined> {
    return this.runs.get(runId);
  }

  /** Creates the run's checkpoint; false when the run already exists. */
  createCheckpoint(checkpoint: ReconcileCheckpoint): Promise<boolean> {
    return this.runs.create(checkpoint);
  }

  /**
   * Commits one unit of work: its findings (when there are any) and the checkpoint that moves past
   * it (to `next`, whose `seq` is `expectedSeq + 1`), only if the checkpoint is still at
   * `expectedSeq`. `conflict` means another invocation committed first; the caller stops.
   */
  commit(expectedSeq: number, next: ReconcileCheckpoint, drift: readonly Drift[]): Promise<CommitOutcome> {
    const page =
      drift.length > 0
        ? { seq: next.seq, body: { runId: next.runId, seq: next.seq, drift: [...drift] }, at: next.createdAt }
        : undefined;
    return this.runs.commit(next.runId, expectedSeq, { next }, page);
  }

  /** Every committed page's findings, in order. */
  async readPages(runId: string): Promise<Drift[][]> {
    return (await this.runs.pages(runId)).map((page) => page.drift);
  }

  /** Certificate records of these ids (those the store has), one BatchGetItem per 100. */
  async certificateRecords(certificateIds: readonly string[]): Promise<Map<string, StoreCertificateFact>> {
    const items = await this.batchGet(
      certificateIds.map((id) => keys.certificate(id)),
      CERTIFICATE_FACT_PROJECTION,
    );
    return new Map(items.map(certificateFactFromItem).map((record) => [record.certificateId, record]));
  }

  /** Device records of these serials (those the store has). */
  async devices(serials: readonly string[]): Promise<Map<string, StoreDeviceFact>> {
    const items = await this.batchGet(
      serials.map((serial) => keys.device(serial)),
      DEVICE_FACT_PROJECTION,
    );
    return new Map(items.map(deviceFactFromItem).map((device) => [device.serial, device]));
  }

  /** Records that the run's IoT listing saw these certificates with these statuses (idempotent puts). */
  async markSeen(
    run: Pick<ReconcileCheckpoint, 'runId' | 'createdAt'>,
    certificates: ReadonlyArray<{ certificateId: string; status: IotCertificateStatus }>,
  ): Promise<void> {
    const ttl = epochSeconds(run.createdAt) + RECONCILE_TTL_SECONDS;
    await this.db.batchPut(
      certificates.map((certificate) => ({
        ...keys.reconcileSeen(run.runId, certificate.certificateId),
        status: certificate.status,
        ttl,
      })),
    );
  }

  /** The statuses the run's IoT listing saw for these certificates (absent: not listed). */
  async seen(runId: string, certificateIds: readonly string[]): Promise<Map<string, IotCertificateStatus>> {
    const wanted = new Map(certificateIds.map((id) => [keys.reconcileSeen(runId, id).PK, id]));
    const items = await this.batchGet(
      certificateIds.map((id) => keys.reconcileSeen(runId, id)),
      'PK, #status',
    );
    const statuses = new Map<string, IotCertificateStatus>();
    for (const item of items) {
      const id = wanted.get(String(item.PK));
      if (id !== undefined && typeof item.status === 'string') statuses.set(id, item.status);
    }
    return statuses;
  }

  /** Eventually consistent BatchGetItem of distinct keys (the same key twice is one read). */
  private batchGet(wanted: readonly Key[], projection: string): Promise<Item[]> {
    const unique = [...new Map(wanted.map((key) => [`${key.PK}\u0000${key.SK}`, key])).values()];
    return this.db.batchGet(unique, { consistent: false, projection });
  }
}
