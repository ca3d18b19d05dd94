import type { Config } from '../../shared/config';
import type { CloneReason } from '../../shared/domain/presence-rules';
import type { IotRegistry } from '../../shared/iot/iot-registry';
import type { QuarantineSender } from '../../shared/quarantine-sender';
import type { ProvisioningStore } from '../../shared/store/provisioning-store';
import type { Retirement } from '../../shared/store/records';
import type { RegistrationStore } from '../../shared/store/registration-store';

export const ACTOR = 'deviceLifecycle';
/**
 * The seam to the rotation work: called once a device has connected with its new certificate
 * (COMMIT_ROTATION applied). The commit's transaction already put the retirement of the old
 * certificate on its record (`retirement`: deactivate and detach now, delete after
 * ROTATION_GRACE_SECONDS), so the work survives a crash here; the seam carries it out right away
 * (`shared/rotation/retirement.ts`), and `sweepRotations` does whatever is still due.
 */
export type RotationCommitted = (input: {
  serial: string;
  certificateId: string;
  previousCertificateId?: string;
  retirement?: Retirement;
}) => Promise<void>;

export interface LifecycleDeps {
  config: Config;
  store: Pick<
    ProvisioningStore,
    | 'loadProvisioningFacts'
    | 'getCertificate'
    | 'getDevice'
    | 'transition'
    | 'updateCertificateStatus'
    | 'bindCertificate'
    | 'markOnce'
  >;
  registrations: Pick<
    RegistrationStore,
    | 'wasSeen'
    | 'recordSession'
    | 'sessionsOf'
    | 'recordPresence'
    | 'recordDuplicateClientId'
    | 'duplicateClientIds'
    | 'appendHistory'
    | 'presenceOf'
    | 'claimEffect'
    | 'completeEffect'
  >;
  iot: Pick<IotRegistry, 'listThingCertificateIds' | 'describeCertificate'>;
  quarantine: QuarantineSender;
  newId: () => string;
  onRotationCommitted: RotationCommitted;
}

export type LifecycleOutcome =
  | { kind: 'verified'; serial: string; event: 'ACTIVATE' | 'COMMIT_ROTATION'; certificateId: string }
  | {
      kind: 'suspicion';
      reason: CloneReason | string;
      identity: string;
      /** `recorded`: a suspicious connection written to the history only (no quarantine request). */
      sent: 'sent' | 'already-sent' | 'in-flight' | 'recorded';
    }
  | { kind: 'recorded'; serial: string; thingName: string; certificateId: string }
  | { kind: 'stale'; detail: string }
  | { kind: 'noted'; detail: string };
