/**
 * What to run when a device's saved identity no longer works on this stack (a local stack starts
 * empty: after `fleetgate local down` / `local up` its IoT knows none of the certificates under
 * `.fleetgate/devices/`, and its store no allowlist entry). The whole sequence from where the user
 * is, from what can be checked up front — is the claim's certificate still in this stack's IoT, is
 * the serial allowlisted in its store, and for that claim — rather than one step per failure.
 */

/** Where the user is going, and what this stack was found to hold. */
export interface RecoveryFacts {
  goal:
    | { kind: 'connect-device'; name: string; serial: string; claimName: string }
    | { kind: 'provision'; name: string; serial: string; claimName: string }
    | { kind: 'connect-claim'; name: string }
    | { kind: 'temporary-claim'; name: string; serial?: string };
  /** The claim's certificate id when this stack's IoT has it ACTIVE (its files work); else undefined. */
  liveClaimCertificateId?: string;
  /** The serial's record in this stack's store; undefined when it is not allowlisted. */
  device?: { state: string; allowedClaim?: string };
}

/** The default claim name of `device claim` and `device provision --claim`. */
export const DEFAULT_CLAIM = 'claim';

/** `fleetgate device claim [name]`: the name only when it is not the default (no `device claim claim`). */
export function claimCommand(name: string): string {
  return name === DEFAULT_CLAIM ? 'fleetgate device claim' : `fleetgate device claim ${name}`;
}

/** The commands to run, in order, to get from `facts` to the goal. */
export function recoverySteps(facts: RecoveryFacts): string[] {
  const { goal } = facts;
  if (goal.kind === 'connect-claim')
    return [claimCommand(goal.name), `fleetgate device connect ${goal.name}`];
  if (goal.kind === 'temporary-claim') {
    return [
      `fleetgate installer claim ${goal.serial ?? '<serial>'} --installer <id> --name ${goal.name}`,
      `fleetgate device provision <device> --serial ${goal.serial ?? '<serial>'} --claim ${goal.name}`,
    ];
  }
  const steps: string[] = [];
  const claim = facts.liveClaimCertificateId;
  if (!claim) steps.push(claimCommand(goal.claimName));
  if (facts.device?.state === 'QUARANTINED')
    steps.push(`fleetgate quarantine release ${goal.serial} --reason <why>`);
  if (!allowlistedFor(facts.device?.allowedClaim, claim)) {
    const id = claim ?? "<the new claim's certificate id>";
    steps.push(
      `printf 'serial,allowedClaim\\n${goal.serial},${id}\\n' > serials.csv`,
      'fleetgate allowlist import serials.csv',
    );
  }
  const claimOption = goal.claimName === DEFAULT_CLAIM ? '' : ` --claim ${goal.claimName}`;
  steps.push(`fleetgate device provision ${goal.name} --serial ${goal.serial}${claimOption}`);
  if (goal.kind === 'connect-device') steps.push(`fleetgate device connect ${goal.name}`);
  return steps;
}

/**
 * Whether an allowlist entry admits the claim: `*` and `group:` entries admit a new claim as far as
 * the CLI can tell; an entry naming a certificate admits only that one (a re-created claim is another).
 */
function allowlistedFor(allowedClaim: string | undefined, claimCertificateId: string | undefined): boolean {
  if (allowedClaim === undefined) return false;
  if (allowedClaim === '*' || allowedClaim.startsWith('group:')) return true;
  return claimCertificateId !== undefined && allowedClaim.toLowerCase() === claimCertificateId.toLowerCase();
}

/** The steps as one line: `a`, then `b`, then `c` (the allowlist file and its import are one step). */
export function describeSteps(steps: readonly string[]): string {
  const parts: string[] = [];
  for (let index = 0; index < steps.length; index += 1) {
    const step = steps[index] as string;
    if (step.startsWith('printf ') && steps[index + 1]?.startsWith('fleetgate allowlist import')) {
      parts.push(`\`${step}\` and \`${steps[index + 1]}\``);
      index += 1;
    } else {
      parts.push(`\`${step}\``);
    }
  }
  return parts.join(', then ');
}
