/**
 * A provisioning store whose next reads can be made to return what a read racing a concurrent
 * transaction could return. BatchGetItem and separate GetItems are read-committed item by item but
 * not one snapshot ("Isolation levels for DynamoDB transactions", Amazon DynamoDB Developer Guide):
 * while a transaction that writes the device, the certificate record and the public-key owner
 * commits, one read can return some of those items as they were before it and others as it left
 * them. Armed with `tearNext`, the next `loadProvisioningFacts` (and, optionally, the next
 * `getDevice` / `getCertificate` of a given key) returns such a mix once; every later read is real.
 */
import type { ProvisioningFacts, ProvisioningStore } from '../../shared/store/provisioning-store';
import type { CertificateRecord, DeviceRecord } from '../../shared/store/records';

export interface Tear {
  /** The facts the next `loadProvisioningFacts` returns, made from the real ones. */
  facts: (facts: ProvisioningFacts) => ProvisioningFacts;
  /** The device the next `getDevice(serial)` returns (a read made before the transaction). */
  device?: { serial: string; before: DeviceRecord | undefined };
  /** The record the next `getCertificate(certificateId)` returns (a read made before the transaction). */
  certificate?: { certificateId: string; before: CertificateRecord | undefined };
}

export interface TornStore {
  store: ProvisioningStore;
  /** Calls of `loadProvisioningFacts` since the store was made. */
  reads: { count: number };
  /** Arms the next reads (one-shot each). */
  tearNext(tear: Tear): void;
}

export function tornStore(real: ProvisioningStore): TornStore {
  const reads = { count: 0 };
  let pending: Tear | undefined;
  let device: Tear['device'];
  let certificate: Tear['certificate'];
  const store = new Proxy(real, {
    get(target, property) {
      if (property === 'loadProvisioningFacts') {
        return async (input: Parameters<ProvisioningStore['loadProvisioningFacts']>[0]) => {
          const facts = await target.loadProvisioningFacts(input);
          reads.count += 1;
          const tear = pending;
          pending = undefined;
          return tear ? tear.facts(facts) : facts;
        };
      }
      if (property === 'getDevice') {
        return async (serial: string) => {
          const armed = device;
          if (armed?.serial === serial) {
            device = undefined;
            return armed.before;
          }
          return target.getDevice(serial);
        };
      }
      if (property === 'getCertificate') {
        return async (certificateId: string) => {
          const armed = certificate;
          if (armed?.certificateId === certificateId) {
            certificate = undefined;
            return armed.before;
          }
          return target.getCertificate(certificateId);
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return {
    store,
    reads,
    tearNext(tear) {
      pending = tear;
      device = tear.device;
      certificate = tear.certificate;
    },
  };
}
