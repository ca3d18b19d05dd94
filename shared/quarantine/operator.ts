/**
 * Operator decisions on quarantine: list, release and reject. The `fleetgate quarantine` commands
 * and the tests call these, so both run the same code.
 *
 * Order of side effects (each safe to repeat, the store last, so an interrupted command is simply
 * run again — the device stays QUARANTINED in the store until every IoT effect is done):
 * - release: remove the thing from the quarantine group → UpdateCertificate ACTIVE for the
 *   certificates the quarantine deactivated → certificate records ACTIVE → RELEASE (previous state
 *   restored, history with operator and reason). The group goes first so the certificate is never
 *   active while the thing is half-released in the registry but still QUARANTINED in the store.
 * - reject: UpdateCertificate REVOKED (terminal in AWS) → certificate records REVOKED → REJECT
 *   (device REVOKED; every flow denies it with DEVICE_REVOKED). The thing stays in the quarantine
 *   group: its deny policy keeps applying to anything still attached.
 */
import type { DeviceState } from '../domain/device-state';
import { IllegalTransitionError, NotFoundError, TransientError } from '../errors';
import type { IotQuarantineActions, StatusOutcome } from '../iot/quarantine-actions';
import type { ProvisioningStore } from '../store/provisioning-store';
import type { QuarantineStore } from '../store/quarantine-store';
import type { DeviceRecord } from '../store/records';

export interface OperatorDeps {
  store: ProvisioningStore;
  quarantineStore: QuarantineStore;
  iot: IotQuarantineActions;
  quarantineGroupName: string;
}

export interface Decision {
  /** A device serial, or the id of a quarantined certificate of an unknown device. */
  subject: string;
  reason: string;
  /** Who decided (e.g. `cli:alice`); written to the history. */
  actor: string;
  now: string;
  newId: () => string;
}

export interface QuarantineListing {
  devices: Array<{
    serial: string;
    thingName?: string;
    previousState?: DeviceState;
    reason?: string;
    source?: string;
    since?: string;
    certificateIds: string[];
    evidence: Record<string, unknown>;
  }>;
  certificates: Array<{
    certificateId: string;
    status: string;
    reason: string;
    source: string;
    since: string;
    claimedSerial?: string;
    evidence: Record<string, unknown>;
  }>;
}

export type DecisionResult =
  | {
      subject: 'device';
      serial: string;
      decision: 'RELEASE' | 'REJECT';
      from: DeviceState;
      to: DeviceState;
      certificates: StatusOutcome[];
      thingName?: string;
      alreadyDone: boolean;
    }
  | {
      subject: 'certificate';
      certificateId: string;
      decision: 'RELEASE' | 'REJECT';
      certificates: StatusOutcome[];
      alreadyDone: boolean;
    };

/** What is in quarantine, in the units `fleetgate quarantine list` lists: devices, and certificates of no known device. */
export interface QuarantineCounts {
  devices: number;
  certificates: number;
}

/**
 * The listing's counts: what `quarantine list` prints, and what `simulate` and the demo print as
 * "in quarantine" (a device quarantined with evidence from its clone is one device, however many
 * actors were caught).
 */
export function quarantineCounts(listing: QuarantineListing): QuarantineCounts {
  return { devices: listing.devices.length, certificates: listing.certificates.length };
}

function quarantinedDevice(device: DeviceRecord): QuarantineListing['devices'][number] {
  const { quarantine } = device;
  return {
    serial: device.serial,
    ...(device.thingName ? { thingName: device.thingName } : {}),
    ...(device.previousState ? { previousState: device.previousState } : {}),
    ...(quarantine ? { reason: quarantine.reason, source: quarantine.source, since: quarantine.at } : {}),
    certificateIds: quarantine?.certificateIds ?? [],
    evidence: quarantine?.evidence ?? {},
  };
}

/** Quarantined devices (StateIndex) and quarantined certificates of unknown devices, by reason. */
export async function listQuarantine(
  deps: Pick<OperatorDeps, 'store' | 'quarantineStore'>,
  options: { reason?: string } = {},
): Promise<QuarantineListing> {
  const devices: QuarantineListing['devices'] = [];
  let cursor: string | undefined;
  do {
    const page = await deps.store.listDevicesByState('QUARANTINED', {
      limit: 500,
      ...(cursor ? { cursor } : {}),
    });
    for (const device of page.items) {
      if (options.reason && device.quarantine?.reason !== options.reason) continue;
      devices.push(quarantinedDevice(device));
    }
    cursor = page.cursor;
  } while (cursor);
  const { items } = await deps.quarantineStore.listQuarantinedCertificates();
  const certificates = items
    .filter((certificate) => !options.reason || certificate.quarantine.reason === options.reason)
    .map((certificate) => {
      const claimed = certificate.quarantine.evidence.claimedSerial;
      return {
        certificateId: certificate.certificateId,
        status: certificate.status,
        reason: certificate.quarantine.reason,
        source: certificate.quarantine.source,
        since: certificate.quarantine.at,
        ...(typeof claimed === 'string' ? { claimedSerial: claimed } : {}),
        evidence: certificate.quarantine.evidence,
      };
    });
  devices.sort((a, b) => a.serial.localeCompare(b.serial));
  certificates.sort((a, b) => a.certificateId.localeCompare(b.certificateId));
  return { devices, certificates };
}

/**
 * Releases a quarantined device (certificates active again, out of the group, previous state
 * restored) or a quarantined certificate of an unknown device (its quarantine mark removed; it
 * stays INACTIVE: no device owns it, so there is nothing to give it back to).
 * @throws NotFoundError when the subject is neither a device nor a quarantined certificate;
 *   IllegalTransitionError when the device is not QUARANTINED.
 */
export async function releaseQuarantine(deps: OperatorDeps, decision: Decision): Promise<DecisionResult> {
  const device = await deps.store.getDevice(decision.subject);
  if (!device) return closeCertificate(deps, decision, 'RELEASE');
  if (device.state !== 'QUARANTINED') return notQuarantined(device, 'RELEASE');
  const thingName = device.quarantine?.thingName ?? device.thingName;
  if (thingName) await deps.iot.removeFromGroup(thingName, deps.quarantineGroupName);
  // A rotation the quarantine interrupted is abandoned: its pending certificate stays INACTIVE.
  const abandoned = device.previousState === 'ROTATING' ? device.pendingCertificateId : undefined;
  const certificates: StatusOutcome[] = [];
  for (const certificateId of device.quarantine?.certificateIds ?? []) {
    if (certificateId === abandoned) continue;
    const outcome = await deps.iot.setStatus(certificateId, 'ACTIVE');
    certificates.push(outcome);
    if (outcome.result !== 'missing')
      await deps.store.updateCertificateStatus(certificateId, 'ACTIVE', decision.now);
  }
  return applyDecision(deps, device, 'RELEASE', decision, certificates, thingName, {
    ...(abandoned ? { abandonedCertificateId: abandoned } : {}),
  });
}

/**
 * Rejects a quarantined device (certificates REVOKED, device REVOKED for good) or a quarantined
 * certificate of an unknown device (REVOKED).
 * @throws NotFoundError / IllegalTransitionError as `releaseQuarantine`.
 */
export async function rejectQuarantine(deps: OperatorDeps, decision: Decision): Promise<DecisionResult> {
  const device = await deps.store.getDevice(decision.subject);
  if (!device) return closeCertificate(deps, decision, 'REJECT');
  if (device.state !== 'QUARANTINED') return notQuarantined(device, 'REJECT');
  const certificates: StatusOutcome[] = [];
  const ids = new Set([...(device.quarantine?.certificateIds ?? []), ...boundCertificates(device)]);
  for (const certificateId of ids) {
    const outcome = await deps.iot.setStatus(certificateId, 'REVOKED');
    certificates.push(outcome);
    if (outcome.result !== 'missing')
      await deps.store.updateCertificateStatus(certificateId, 'REVOKED', decision.now);
  }
  return applyDecision(deps, device, 'REJECT', decision, certificates, device.quarantine?.thingName);
}

async function applyDecision(
  deps: OperatorDeps,
  device: DeviceRecord,
  event: 'RELEASE' | 'REJECT',
  decision: Decision,
  certificates: StatusOutcome[],
  thingName: string | undefined,
  options: { abandonedCertificateId?: string } = {},
): Promise<DecisionResult> {
  const rotationAbandoned = event === 'RELEASE' && device.previousState === 'ROTATING';
  const outcome = await deps.store.transition({
    serial: device.serial,
    event,
    device,
    transitionKey: `${event.toLowerCase()}:${decision.newId()}`,
    now: decision.now,
    ...(rotationAbandoned ? { remove: ['pendingCertificateId', 'rotationDeadline'] as const } : {}),
    history: {
      id: decision.newId(),
      actor: decision.actor,
      reason: decision.reason,
      detail: {
        quarantineReason: device.quarantine?.reason,
        quarantinedAt: device.quarantine?.at,
        ...(options.abandonedCertificateId
          ? { rotationAbandoned: { pendingCertificateId: options.abandonedCertificateId } }
          : {}),
        certificates: certificates.map((c) => ({ certificateId: c.certificateId, result: c.result })),
      },
    },
  });
  if (outcome.status === 'applied') {
    return {
      subject: 'device',
      serial: device.serial,
      decision: event,
      from: device.state,
      to: outcome.device.state,
      certificates,
      ...(thingName ? { thingName } : {}),
      alreadyDone: false,
    };
  }
  if (outcome.status === 'illegal') throw new IllegalTransitionError(outcome.reason);
  throw new TransientError(`device ${device.serial} changed while the decision was applied; run it again`);
}

async function closeCertificate(
  deps: OperatorDeps,
  decision: Decision,
  event: 'RELEASE' | 'REJECT',
): Promise<DecisionResult> {
  const certificate = await deps.quarantineStore.getQuarantinedCertificate(decision.subject);
  if (!certificate) {
    throw new NotFoundError(`${decision.subject} is neither a known serial nor a quarantined certificate`);
  }
  const certificates =
    event === 'REJECT' ? [await deps.iot.setStatus(certificate.certificateId, 'REVOKED')] : [];
  if (certificate.quarantine.thingName && event === 'RELEASE') {
    await deps.iot.removeFromGroup(certificate.quarantine.thingName, deps.quarantineGroupName);
  }
  const closed = await deps.quarantineStore.closeCertificateQuarantine({
    certificateId: certificate.certificateId,
    status: event === 'REJECT' ? 'REVOKED' : 'INACTIVE',
    decision: { action: event, actor: decision.actor, reason: decision.reason, at: decision.now },
  });
  return {
    subject: 'certificate',
    certificateId: certificate.certificateId,
    decision: event,
    certificates,
    alreadyDone: !closed,
  };
}

function notQuarantined(device: DeviceRecord, event: 'RELEASE' | 'REJECT'): never {
  throw new IllegalTransitionError(
    `${device.serial} is ${device.state}, not QUARANTINED: ${event.toLowerCase()} does not apply`,
  );
}

function boundCertificates(device: DeviceRecord): string[] {
  return [device.certificateId, device.pendingCertificateId].filter(
    (id): id is string => typeof id === 'string' && id !== '',
  );
}
