/**
 * The hook's work for one event: parse → one read → pure decision → one conditional write. Never
 * throws for bad input or store failures: every outcome is a `ProvisioningDecision`. It does not
 * log either (it may still be running after the hook has answered; see `withTimeBudget`); the
 * handler logs the result it returns.
 */

import { formatIssues } from '../../schemas/issues';
import {
  type PreProvisionHookEvent,
  parsePreProvisionHookEvent,
  type preProvisionHookEventSchema,
} from '../../schemas/pre-provision-hook';
import { parseCertificatePem } from '../../shared/certificates';
import type { Config } from '../../shared/config';
import {
  checkRequest,
  decideOnFacts,
  decideProvisioning,
  deny,
  type HookSuspicion,
  hookSuspicion,
  type Instant,
  type ProvisioningDecision,
  type ProvisioningRequest,
} from '../../shared/domain/provisioning-rules';
import { ValidationError } from '../../shared/errors';
import { provisionBinding } from '../../shared/store/bind-certificate';
import type { BindOutcome, ProvisioningStore } from '../../shared/store/provisioning-store';
import { deviceCertificateRecord } from '../../shared/store/records';

export const ACTOR = 'preProvisionHook';

export interface ProvisionDeps {
  config: Config;
  store: Pick<ProvisioningStore, 'loadProvisioningFacts' | 'bindCertificate'>;
  schema: ReturnType<typeof preProvisionHookEventSchema>;
  newId: () => string;
}

/** The decision plus what the handler needs to say about it (never the PEM). */
export interface ProvisionResult {
  decision: ProvisioningDecision;
  serial?: string;
  certificateId?: string;
  claimCertificateId?: string;
  /** The underlying failure of STORE_UNAVAILABLE / INTERNAL_ERROR, for the log. */
  error?: unknown;
  /** Clone or takeover evidence in a denial: the handler sends it to the quarantine queue. */
  suspicion?: HookSuspicion;
}

export async function provisionDevice(
  input: unknown,
  deps: ProvisionDeps,
  now: Instant,
): Promise<ProvisionResult> {
  const { config } = deps;
  const parsed = parsePreProvisionHookEvent(deps.schema, config, input);
  if (!parsed.success) return { decision: deny(parsed.reason, formatIssues(parsed.issues)) };
  const { event, serial } = parsed;
  const ids = {
    serial,
    certificateId: event.certificateId.toLowerCase(),
    claimCertificateId: event.claimCertificateId.toLowerCase(),
  };

  let certificate: ReturnType<typeof parseCertificatePem>;
  try {
    certificate = parseCertificatePem(event.certificatePem, { maxBytes: config.maxCertificatePemBytes });
  } catch (error) {
    if (error instanceof ValidationError) {
      return { ...ids, decision: deny('INVALID_CERTIFICATE', formatIssues(error.issues)) };
    }
    throw error;
  }
  const request: ProvisioningRequest = {
    serial,
    certificateId: ids.certificateId,
    claimCertificateId: ids.claimCertificateId,
    certificate,
    ...(isInstallerTemplate(event.templateArn, config) ? { viaInstallerTemplate: true } : {}),
  };
  // Bad requests cost no read.
  const invalid = checkRequest(request, config, now);
  if (invalid) return { ...ids, decision: invalid };

  const read = () =>
    deps.store.loadProvisioningFacts({
      serial,
      certificateId: certificate.certificateId,
      publicKeyHash: certificate.publicKeyHash,
      claim: { claimCertificateId: ids.claimCertificateId, now: now.iso },
    });
  // One BatchGetItem is not a snapshot: a retry of this request can meet its own binding
  // half-committed, so a denial drawn from more than the device record is read again
  // (`decideOnFacts`). Only such a denial pays for the second read; an allow keeps its two round trips.
  let decided: { facts: Awaited<ReturnType<typeof read>>; decision: ProvisioningDecision };
  try {
    decided = await decideOnFacts(read, (facts) => decideProvisioning(request, facts, config, now));
  } catch (error) {
    return { ...ids, error, decision: deny('STORE_UNAVAILABLE', 'reading the device failed') };
  }
  const { facts, decision } = decided;
  if (!decision.allow) {
    const suspicion = hookSuspicion(decision, serial, facts);
    return { ...ids, decision, ...(suspicion ? { suspicion } : {}) };
  }
  if (decision.alreadyBound || !facts.device) return { ...ids, decision };

  let outcome: BindOutcome;
  try {
    outcome = await deps.store.bindCertificate(
      provisionBinding({
        decision,
        device: facts.device,
        certificate: deviceCertificateRecord(certificate, {
          status: 'PENDING',
          source: 'FLEET_PROVISIONING',
          serial,
          thingName: decision.thingName,
          now: now.iso,
        }),
        publicKeyHash: certificate.publicKeyHash,
        now,
        provisioningWindowSeconds: config.provisioningWindowSeconds,
        history: {
          id: deps.newId(),
          actor: ACTOR,
          detail: {
            ...historyDetail(event, ids.claimCertificateId),
            ...(facts.temporaryClaim ? { installer: facts.temporaryClaim.installer } : {}),
          },
        },
        claim: { claimCertificateId: ids.claimCertificateId, limitPerMinute: config.claimRateLimitPerMinute },
      }),
    );
  } catch (error) {
    return { ...ids, error, decision: deny('STORE_UNAVAILABLE', 'recording the binding failed') };
  }
  return { ...ids, decision: afterBinding(decision, outcome) };
}

/** What the write says about the decision: the store's conditions have the last word. */
function afterBinding(decision: ProvisioningDecision, outcome: BindOutcome): ProvisioningDecision {
  switch (outcome.status) {
    case 'applied':
      return decision;
    case 'already-done':
      return decision.allow ? { ...decision, alreadyBound: true } : decision;
    case 'conflict':
      switch (outcome.reason) {
        case 'CERTIFICATE_IN_USE':
          return deny('CERTIFICATE_IN_USE', 'certificate was bound to another device concurrently');
        case 'PUBLIC_KEY_IN_USE':
          return deny('PUBLIC_KEY_IN_USE', 'public key was bound to another device concurrently');
        case 'CLAIM_RATE_EXCEEDED':
          return deny('CLAIM_RATE_EXCEEDED', 'claim certificate reached its per-minute limit');
        default:
          return deny('PROVISIONING_IN_PROGRESS', 'a concurrent request changed the device first');
      }
    default:
      return deny('INTERNAL_ERROR', `store refused the transition: ${outcome.reason}`);
  }
}

/**
 * The request came through the provisioning-by-trusted-user template: its ARN ends in
 * `provisioningtemplate/<INSTALLER_TEMPLATE_NAME>`.
 */
function isInstallerTemplate(templateArn: string, config: Config): boolean {
  const name = config.installerTemplateName;
  return name !== undefined && templateArn.endsWith(`:provisioningtemplate/${name}`);
}

function historyDetail(event: PreProvisionHookEvent, claimCertificateId: string): Record<string, string> {
  return { claimCertificateId, clientId: event.clientId, templateArn: event.templateArn };
}
