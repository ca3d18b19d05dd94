/**
 * Carries out retirement work on a certificate (see `Retirement` in shared/store/records.ts). Each
 * step is safe to repeat: IoT calls tolerate what is already done (a status already set, an
 * attachment or certificate already gone), and the store moves the work on only from the step it
 * expected, so two runs working on the same certificate do each step's store write once.
 *
 * - `DEACTIVATE` (a rotation committed: the old certificate): INACTIVE in IoT, detached from its
 *   things; then `DELETE`, due at `deleteAfter` (now, when the grace period is 0).
 * - `DELETE`: detached from any thing again, deleted from IoT (policies detached by `forceDelete`).
 * - `REVOKE` (a rotation aborted: the new certificate): REVOKED in IoT and detached; not deleted, so
 *   the registry keeps the record of what was revoked.
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import type { Instant } from '../domain/provisioning-rules';
import type { IotRegistry } from '../iot/iot-registry';
import { countOutcome } from '../logging';
import type { Retirement } from '../store/records';
import type { RotationStore } from '../store/rotation-store';

export interface RetirementDeps {
  iot: Pick<
    IotRegistry,
    | 'describeCertificate'
    | 'updateCertificateStatus'
    | 'listPrincipalThings'
    | 'detachThingPrincipal'
    | 'deleteCertificate'
  >;
  rotations: Pick<RotationStore, 'advanceRetirement'>;
}

export type RetirementResult = 'deactivated' | 'deleted' | 'revoked' | 'not-due' | 'already-done';

export interface RetirementOutcome {
  certificateId: string;
  serial: string;
  step: Retirement['step'];
  result: RetirementResult;
}

/**
 * Runs the work due at `now` on one certificate, step after step while the next one is due too.
 * Throws TransientError / PermanentError from IoT (the work item stays and is tried again).
 */
export async function retireCertificate(
  certificateId: string,
  retirement: Retirement,
  deps: RetirementDeps,
  now: Instant,
): Promise<RetirementOutcome[]> {
  const outcomes: RetirementOutcome[] = [];
  let work: Retirement | undefined = retirement;
  while (work) {
    const step: Retirement['step'] = work.step;
    const outcome = (result: RetirementResult): RetirementOutcome => ({
      certificateId,
      serial: retirement.serial,
      step,
      result,
    });
    if (work.dueAt > now.iso) {
      outcomes.push(outcome('not-due'));
      return outcomes;
    }
    const description = await deps.iot.describeCertificate(certificateId);
    const done = await STEPS[step]({ certificateId, work, description, deps, now });
    outcomes.push(outcome(done.result));
    work = done.next;
  }
  return outcomes;
}

interface StepInput {
  certificateId: string;
  work: Retirement;
  description: Awaited<ReturnType<RetirementDeps['iot']['describeCertificate']>>;
  deps: RetirementDeps;
  now: Instant;
}

/** One step carried out: what it came to, and the step due next (none: the work is over). */
type StepRun = (input: StepInput) => Promise<{ result: RetirementResult; next?: Retirement }>;

const STEPS: Record<Retirement['step'], StepRun> = {
  async REVOKE(input) {
    const { certificateId, description, deps } = input;
    if (description && description.status !== 'REVOKED')
      await deps.iot.updateCertificateStatus(certificateId, 'REVOKED');
    await detachFromThings(description, deps);
    return { result: (await advance(input, 'REVOKED')) ? 'revoked' : 'already-done' };
  },
  async DEACTIVATE(input) {
    const { certificateId, work, description, deps, now } = input;
    if (description?.status === 'ACTIVE') await deps.iot.updateCertificateStatus(certificateId, 'INACTIVE');
    await detachFromThings(description, deps);
    const next: Retirement = { ...work, step: 'DELETE', dueAt: work.deleteAfter ?? now.iso };
    return (await advance(input, 'RETIRED', next))
      ? { result: 'deactivated', next }
      : { result: 'already-done' };
  },
  async DELETE(input) {
    const { certificateId, description, deps } = input;
    // An ACTIVE certificate is never deleted: someone re-activated it after the deactivation.
    if (description?.status === 'ACTIVE') await deps.iot.updateCertificateStatus(certificateId, 'INACTIVE');
    await detachFromThings(description, deps);
    if (description) await deps.iot.deleteCertificate(certificateId);
    return { result: (await advance(input, 'DELETED')) ? 'deleted' : 'already-done' };
  },
};

/**
 * Moves the work on from the step it is at, recording the certificate's `status` (and the step due
 * `next`, if any). False when another run moved it on first.
 */
function advance(
  { certificateId, work, deps, now }: StepInput,
  status: Parameters<RetirementDeps['rotations']['advanceRetirement']>[0]['status'],
  next?: Retirement,
): Promise<boolean> {
  return deps.rotations.advanceRetirement({
    certificateId,
    expectedStep: work.step,
    ...(next ? { next } : {}),
    status,
    now: now.iso,
  });
}

async function detachFromThings(description: StepInput['description'], deps: RetirementDeps): Promise<void> {
  if (!description) return;
  for (const thingName of await deps.iot.listPrincipalThings(description.certificateArn)) {
    await deps.iot.detachThingPrincipal(thingName, description.certificateArn);
  }
}

/**
 * The `onRotationCommitted` seam of `deviceLifecycle`: retires the old certificate right after the
 * commit. A failure is logged and counted, not thrown: the work item the commit wrote stays due, and
 * `sweepRotations` carries it out on its next run (rethrowing would not help, since a redelivered
 * presence event finds the rotation already committed).
 */
export function retireOnCommit(
  deps: RetirementDeps & { logger: Logger; metrics: Metrics; clock?: () => number },
): (input: { serial: string; previousCertificateId?: string; retirement?: Retirement }) => Promise<void> {
  const clock = deps.clock ?? Date.now;
  return async (input) => {
    if (!input.previousCertificateId || !input.retirement) return;
    const epochMs = clock();
    try {
      const outcomes = await retireCertificate(input.previousCertificateId, input.retirement, deps, {
        iso: new Date(epochMs).toISOString(),
        epochMs,
      });
      for (const outcome of outcomes) {
        if (outcome.result === 'not-due' || outcome.result === 'already-done') continue;
        deps.logger.info('previous certificate retired', { ...outcome });
        countOutcome(deps.metrics, 'CertificateRetired', { step: outcome.step });
      }
    } catch (error) {
      deps.logger.warn('retiring the previous certificate failed; sweepRotations will retry', {
        serial: input.serial,
        certificateId: input.previousCertificateId,
        error,
      });
      countOutcome(deps.metrics, 'RetirementDeferred');
    }
  };
}
