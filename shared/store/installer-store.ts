/**
 * The store side of provisioning by trusted user: which installer may install which serial (by
 * serial or by batch), the per-installer rate window, and the record of every temporary claim
 * issued (with an entry in the device's history). Built from the entity modules.
 */
import type { InstallerClaimFacts } from '../domain/installer-rules';
import { type StoreAccess, type StoreClient, storeClient } from './client';
import { deviceFromItem } from './entities/device';
import { type HistoryInput, historyEntry, historyPut } from './entities/history';
import {
  bindingFromItem,
  bindingPut,
  type InstallerBinding,
  installerRateIncrement,
  type TemporaryClaimRecord,
  temporaryClaimFromItem,
  temporaryClaimPut,
} from './entities/installer';
import { keys } from './keys';
import type { DeviceRecord } from './records';
import { conditionally } from './retry';

export class InstallerStore {
  private readonly db: StoreClient;

  constructor(access: StoreAccess) {
    this.db = storeClient(access);
  }

  /**
   * The device and the installer's binding to it: one BatchGetItem (device + serial binding), and a
   * second read only when the installer is not bound to the serial itself but the device has a batch.
   */
  async claimFacts(
    installer: string,
    serial: string,
  ): Promise<InstallerClaimFacts & { device?: DeviceRecord }> {
    const facts: InstallerClaimFacts & { device?: DeviceRecord } = {};
    for (const item of await this.db.batchGet([
      keys.device(serial),
      keys.installerBinding(installer, 'SERIAL', serial),
    ])) {
      if (item.SK === 'DEVICE') facts.device = deviceFromItem(item);
      else {
        bindingFromItem(item);
        facts.binding = 'SERIAL';
      }
    }
    const batch = facts.device?.batch;
    if (!facts.binding && batch !== undefined) {
      const item = await this.db.read(keys.installerBinding(installer, 'BATCH', batch));
      if (item) {
        bindingFromItem(item);
        facts.binding = 'BATCH';
      }
    }
    return facts;
  }

  /** Counts one claim against the installer's minute: false when the limit is reached. */
  countClaim(installer: string, now: string, limitPerMinute: number): Promise<boolean> {
    return conditionally(this.db.update(installerRateIncrement(installer, now, limitPerMinute)));
  }

  /**
   * Records a temporary claim and its history entry on the device, in one transaction. Returns false
   * when the claim certificate was recorded before (CreateProvisioningClaim never repeats one).
   */
  async recordClaim(record: TemporaryClaimRecord, history: HistoryInput): Promise<boolean> {
    const failed = await this.db.transact([
      temporaryClaimPut(record),
      historyPut(
        historyEntry(
          record.serial,
          record.issuedAt,
          history,
          'TEMPORARY_CLAIM_ISSUED',
          {},
          {
            installer: record.installer,
            claimCertificateId: record.claimCertificateId.toLowerCase(),
            expiration: record.expiration,
            templateName: record.templateName,
          },
        ),
      ),
    ]);
    return failed === undefined;
  }

  async temporaryClaim(claimCertificateId: string): Promise<TemporaryClaimRecord | undefined> {
    return this.db.readAs(keys.temporaryClaim(claimCertificateId), temporaryClaimFromItem);
  }

  /** Binds an installer to serials or batches; a binding that exists is left as it was. */
  async bind(bindings: readonly InstallerBinding[]): Promise<{ bound: number; existing: number }> {
    let bound = 0;
    for (const binding of bindings) {
      if (await conditionally(this.db.put(bindingPut(binding)))) bound += 1;
    }
    return { bound, existing: bindings.length - bound };
  }

  /** Removes bindings; returns how many existed. */
  async unbind(installer: string, scope: 'SERIAL' | 'BATCH', values: readonly string[]): Promise<number> {
    let removed = 0;
    for (const value of values) {
      const out = await this.db.delete({
        Key: keys.installerBinding(installer, scope, value),
        ReturnValues: 'ALL_OLD',
      });
      if (out.Attributes) removed += 1;
    }
    return removed;
  }

  /** Every binding of an installer. */
  async bindings(installer: string): Promise<InstallerBinding[]> {
    const found: InstallerBinding[] = [];
    for await (const item of this.db.queryAll({
      KeyConditionExpression: 'PK = :pk AND begins_with(SK, :prefix)',
      ExpressionAttributeValues: {
        ':pk': keys.installerPartition(installer),
        ':prefix': keys.installerBindingPrefix,
      },
      ConsistentRead: true,
    })) {
      found.push(bindingFromItem(item));
    }
    return found;
  }
}
