/**
 * Pure checks on a parsed certificate: key strength and validity period. They take parsed values
 * only (see `shared/certificates.ts` for the parser) and the time as a parameter.
 */

/** Named curves by their NIST / JOSE names; anything else keeps the OpenSSL name it was read with. */
export type EcCurve = 'P-256' | 'P-384' | 'P-521';
export const EC_CURVES: readonly EcCurve[] = ['P-256', 'P-384', 'P-521'];

/** The public key of a certificate or CSR, as the parser read it. */
export type KeyFacts =
  | { algorithm: 'EC'; curve: string }
  | { algorithm: 'RSA'; bits: number }
  | { algorithm: 'OTHER'; name: string };

/** Which keys fleetgate accepts on a device certificate. */
export interface KeyPolicy {
  ecCurves: readonly EcCurve[];
  minRsaBits: number;
}

export const DEFAULT_KEY_POLICY: KeyPolicy = { ecCurves: ['P-256', 'P-384'], minRsaBits: 2048 };

export type RuleCheck = { ok: true } | { ok: false; rule: string };

/** Whether `key` satisfies `policy`; the failure names the rule that was broken. */
export function checkKeyPolicy(key: KeyFacts, policy: KeyPolicy): RuleCheck {
  switch (key.algorithm) {
    case 'EC':
      return (policy.ecCurves as readonly string[]).includes(key.curve)
        ? { ok: true }
        : { ok: false, rule: `EC curve ${key.curve} is not one of ${policy.ecCurves.join(', ')}` };
    case 'RSA':
      return key.bits >= policy.minRsaBits
        ? { ok: true }
        : { ok: false, rule: `RSA key of ${key.bits} bits is shorter than ${policy.minRsaBits}` };
    default:
      return { ok: false, rule: `key algorithm ${key.name} is not accepted (EC or RSA only)` };
  }
}

export type ValidityCheck =
  | { ok: true }
  | { ok: false; reason: 'CERTIFICATE_NOT_YET_VALID' | 'CERTIFICATE_EXPIRED'; rule: string };

/**
 * Whether a certificate valid over [notBeforeMs, notAfterMs] may be used at `nowMs`. A device
 * clock or the issuer's may run ahead: `skewMs` of tolerance applies to `notBefore` only.
 */
export function checkValidity(
  validity: { notBeforeMs: number; notAfterMs: number },
  nowMs: number,
  skewMs = 0,
): ValidityCheck {
  if (nowMs + skewMs < validity.notBeforeMs) {
    return { ok: false, reason: 'CERTIFICATE_NOT_YET_VALID', rule: 'notBefore lies in the future' };
  }
  if (nowMs >= validity.notAfterMs) {
    return { ok: false, reason: 'CERTIFICATE_EXPIRED', rule: 'notAfter has passed' };
  }
  return { ok: true };
}
