/**
 * What the expiry sweep reads besides the indexes, and where it keeps its baseline:
 * - the devices behind the certificates at risk (state and thing name), one BatchGetItem per 100
 *   serials, so every report row says what the device is (a quarantined device is no rotation
 *   candidate);
 * - the table's newest completed real run (`SWEEP#` / `LATEST`; never a what-if run), the next
 *   run's "since previous" baseline. It lives in the table the run read, so a report is only ever compared with an
 *   earlier run of the same table (and so of the same stack and stage), never with a report
 *   another stack left in a shared destination.
 */
import type { StoreDeviceFact } from '../domain/reconciliation';
import { type StoreAccess, type StoreClient, storeClient } from './client';
import { DEVICE_FACT_PROJECTION, deviceFactFromItem } from './entities/device';
import { type LatestSweep, latestSweepFromItem, latestSweepItem } from './entities/run';
import { keys } from './keys';
import { conditionally } from './retry';

export type { LatestSweep } from './entities/run';

/** A device as far as a report row (and the change since the previous report) cares. */
export type DeviceFacts = Pick<StoreDeviceFact, 'serial' | 'state' | 'thingName' | 'certificateId'>;

export class SweepFacts {
  private readonly db: StoreClient;

  constructor(access: StoreAccess) {
    this.db = storeClient(access);
  }

  /** The device records of these serials (those the store has), by serial. */
  async devices(serials: readonly string[]): Promise<Map<string, DeviceFacts>> {
    const unique = [...new Set(serials)];
    const items = await this.db.batchGet(unique.map(keys.device), { projection: DEVICE_FACT_PROJECTION });
    const found = new Map<string, DeviceFacts>();
    for (const item of items) {
      const device = deviceFactFromItem(item);
      found.set(device.serial, {
        serial: device.serial,
        state: device.state,
        ...(device.thingName ? { thingName: device.thingName } : {}),
        ...(device.certificateId ? { certificateId: device.certificateId } : {}),
      });
    }
    return found;
  }

  /** The table's newest completed run, or undefined before the first one. */
  latest(): Promise<LatestSweep | undefined> {
    return this.db.readAs(keys.sweepLatest(), latestSweepFromItem);
  }

  /**
   * Makes `latest` the table's newest completed run, unless the pointer already names a run of a
   * later instant (`now`): a run that finishes late (a resumed one) does not replace a newer
   * baseline. False when the pointer stayed.
   */
  setLatest(latest: LatestSweep & { now: string }): Promise<boolean> {
    return conditionally(
      this.db.put({
        Item: latestSweepItem(latest),
        ConditionExpression: 'attribute_not_exists(#now) OR #now <= :now',
        ExpressionAttributeNames: { '#now': 'now' },
        ExpressionAttributeValues: { ':now': latest.now },
      }),
    );
  }
}
