/**
 * What `fleetgate doctor`'s `jitr` check tells the operator to run (docs/jitr-and-lifecycle.md,
 * "What the AWS account needs"). Kept apart from the checks so checks.ts stays small.
 */

const TRUST =
  'then trust it: `npx fleetgate certificates register <ca.pem> --kind ca` or tag it fleetgate:trusted=true ' +
  '(docs/jitr-and-lifecycle.md)';

/** JITR trusts only the CAs the operator names. */
export const HOW_TO_TRUST =
  'JITR trusts only the CAs you name: record it with `npx fleetgate certificates register <ca.pem> --kind ca`, ' +
  'tag it (`aws iot tag-resource --resource-arn <CA arn> --tags Key=fleetgate:trusted,Value=true`) ' +
  'or list its id in TRUSTED_CA_IDS (`--param trustedCaIds=<id>,…`) (docs/jitr-and-lifecycle.md)';

/**
 * No ACTIVE CA with auto-registration. With no CA registered at all there is no id to update: the
 * CA must be registered (proof of its key: a verification certificate whose subject CN is the
 * account's registration code, signed by the CA); otherwise one of the registered CAs is switched on.
 */
export function noAutoRegisteringCaFix(registeredIds: readonly string[]): string {
  if (registeredIds.length === 0) {
    return (
      'register your device CA with auto-registration: `aws iot get-registration-code`, sign a verification ' +
      'certificate whose subject CN is that code with the CA’s key, then `aws iot register-ca-certificate ' +
      '--ca-certificate file://ca.pem --verification-cert file://verification.pem --set-as-active ' +
      '--allow-auto-registration --tags Key=fleetgate:trusted,Value=true` (the tag makes JITR trust it; without ' +
      'it, trust it with `npx fleetgate certificates register <ca.pem> --kind ca`) (docs/jitr-and-lifecycle.md)'
    );
  }
  const id = registeredIds.length === 1 ? registeredIds[0] : '<id>';
  return (
    `aws iot update-ca-certificate --certificate-id ${id} --new-status ACTIVE --new-auto-registration-status ENABLE` +
    `${registeredIds.length > 1 ? ` (<id>: one of \`aws iot list-ca-certificates\`)` : ''}, ${TRUST}`
  );
}
