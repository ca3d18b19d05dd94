import type { PreProvisionHookResponse } from '../../schemas/pre-provision-hook';
import type { ProvisioningDecision } from '../../shared/domain/provisioning-rules';

/** The answer AWS IoT understands: an allow with string overrides, or a bare denial. */
export function toHookResponse(decision: ProvisioningDecision): PreProvisionHookResponse {
  if (!decision.allow) return { allowProvisioning: false };
  return { allowProvisioning: true, parameterOverrides: { ...decision.overrides } };
}

/** The denial returned whenever anything unexpected happens. A fresh object every time. */
export function denied(): PreProvisionHookResponse {
  return { allowProvisioning: false };
}
