/**
 * The rotation housekeeping run (`sweepRotations`, every 15 minutes by default):
 * 1. **abort** every ROTATING device whose rotation deadline has passed without a commit: one
 *    transaction moves the device back to ACTIVE with its old certificate (ABORT_ROTATION, history)
 *    and puts `REVOKE` work on the new certificate's record; the new certificate is then revoked and
 *    detached in IoT. Each abort is an alert (error log + `RotationAborted` metric).
 * 2. **retire**: carries out the certificate retirement work that is due (the old certificate of a
 *    committed rotation whose immediate retirement failed, deletions after the grace period, the
 *    revocations of step 1), read from the StateIndex partitions `RETIRING_CERT#<shard>`.
 * Reads are bounded by what is rotating or retiring, never by the fleet. Every step is conditional
 * or idempotent, so overlapping runs and retries do each change once.
 */
import type { Config } from '../../shared/config';
import type { Instant } from '../../shared/domain/provisioning-rules';
import {
  type RetirementDeps,
  type RetirementOutcome,
  retireCertificate,
} from '../../shared/rotation/retirement';
import type { ProvisioningStore } from '../../shared/store/provisioning-store';
import type { DeviceRecord } from '../../shared/store/records';
import type { RotationStore } from '../../shared/store/rotation-store';

export const ACTOR = 'sweepRotations';

export interface SweepRotationsDeps extends RetirementDeps {
  config: Config;
  store: Pick<ProvisioningStore, 'listDevicesByState' | 'transition' | 'getDevice'>;
  rotations: Pick<RotationStore, 'dueRetirements' | 'advanceRetirement'>;
  newId: () => string;
}

export interface AbortedRotation {
  serial: string;
  thingName?: string;
  certificateId: string;
  rotationDeadline: string;
}

export interface SweepRotationsResult {
  aborted: AbortedRotation[];
  retired: RetirementOutcome[];
  failures: Array<{ serial?: string; certificateId?: string; error: unknown }>;
}

/** Runs both steps once; failures of single devices or certificates are collected, not thrown. */
export async function sweepRotations(
  deps: SweepRotationsDeps,
  now: Instant,
  options: { limit?: number } = {},
): Promise<SweepRotationsResult> {
  const limit = options.limit ?? 500;
  const result: SweepRotationsResult = { aborted: [], retired: [], failures: [] };
  await abortOverdueRotations(deps, now, result);
  await retireDueCertificates(deps, now, limit, result);
  return result;
}

/** Step 1: every ROTATING device past its deadline goes back to ACTIVE (ABORT_ROTATION). */
async function abortOverdueRotations(
  deps: SweepRotationsDeps,
  now: Instant,
  result: SweepRotationsResult,
): Promise<void> {
  let cursor: string | undefined;
  do {
    const page = await deps.store.listDevicesByState('ROTATING', {
      limit: 100,
      ...(cursor ? { cursor } : {}),
    });
    for (const listed of page.items.filter((device) => isOverdue(device, now))) {
      try {
        const aborted = await abortRotation(listed, deps, now);
        if (aborted) result.aborted.push(aborted);
      } catch (error) {
        result.failures.push({ serial: listed.serial, error });
      }
    }
    cursor = page.cursor;
  } while (cursor);
}

/** Step 2: the retirement work that is due (deactivate, delete, revoke), at most `limit` items. */
async function retireDueCertificates(
  deps: SweepRotationsDeps,
  now: Instant,
  limit: number,
  result: SweepRotationsResult,
): Promise<void> {
  for (const certificate of await deps.rotations.dueRetirements(now.iso, limit)) {
    if (!certificate.retirement) continue;
    try {
      result.retired.push(
        ...(await retireCertificate(certificate.certificateId, certificate.retirement, deps, now)),
      );
    } catch (error) {
      result.failures.push({ certificateId: certificate.certificateId, error });
    }
  }
}

function isOverdue(device: DeviceRecord, now: Instant): boolean {
  return (
    device.state === 'ROTATING' &&
    device.pendingCertificateId !== undefined &&
    device.rotationDeadline !== undefined &&
    device.rotationDeadline <= now.iso
  );
}

/**
 * ABORT_ROTATION with the new certificate's revocation in one transaction. The index read may be
 * stale: on a conflict the device is read again and the decision made again (at most twice).
 */
async function abortRotation(
  listed: DeviceRecord,
  deps: SweepRotationsDeps,
  now: Instant,
): Promise<AbortedRotation | undefined> {
  let device: DeviceRecord | undefined = listed;
  for (let attempt = 0; attempt < 3 && device && isOverdue(device, now); attempt += 1) {
    const certificateId = device.pendingCertificateId as string;
    const rotationDeadline = device.rotationDeadline as string;
    const outcome = await deps.store.transition({
      serial: device.serial,
      event: 'ABORT_ROTATION',
      device,
      transitionKey: `ABORT_ROTATION:${certificateId}`,
      now: now.iso,
      history: {
        id: deps.newId(),
        actor: ACTOR,
        reason: 'ROTATION_DEADLINE_PASSED',
        detail: { certificateId, rotationDeadline },
      },
      remove: ['pendingCertificateId', 'rotationDeadline'],
      retire: {
        certificateId,
        status: 'REVOKED',
        retirement: {
          step: 'REVOKE',
          dueAt: now.iso,
          serial: device.serial,
          ...(device.thingName !== undefined ? { thingName: device.thingName } : {}),
          reason: 'ROTATION_ABORTED',
        },
      },
    });
    if (outcome.status === 'applied') {
      return {
        serial: device.serial,
        ...(device.thingName !== undefined ? { thingName: device.thingName } : {}),
        certificateId,
        rotationDeadline,
      };
    }
    if (outcome.status !== 'conflict') return undefined;
    device = await deps.store.getDevice(listed.serial);
  }
  return undefined;
}
