/**
 * The hint `fleetgate device connect|provision` prints when a saved identity is from another stack
 * (cli/device-recovery.ts): every step from what this stack holds, never `device claim claim`.
 */
import { describe, expect, it } from 'vitest';
import { claimCommand, describeSteps, recoverySteps } from '../../cli/device-recovery';

const device = { kind: 'connect-device', name: 'd1', serial: 'SN-1', claimName: 'claim' } as const;

describe('device recovery steps', () => {
  it('an empty stack: a new claim, the allowlist, provisioning and connecting, in one line', () => {
    const steps = recoverySteps({ goal: device });
    expect(describeSteps(steps)).toBe(
      "`fleetgate device claim`, then `printf 'serial,allowedClaim\\nSN-1,<the new claim's certificate id>\\n' > serials.csv` and `fleetgate allowlist import serials.csv`, then `fleetgate device provision d1 --serial SN-1`, then `fleetgate device connect d1`",
    );
  });

  it('leaves out what the stack already has: a live claim allowlisted for the serial', () => {
    expect(
      recoverySteps({
        goal: device,
        liveClaimCertificateId: 'abc',
        device: { state: 'ALLOWLISTED', allowedClaim: 'ABC' },
      }),
    ).toEqual(['fleetgate device provision d1 --serial SN-1', 'fleetgate device connect d1']);
    // Allowlisted for a claim that is gone: a new claim is another certificate, so the entry too.
    expect(
      recoverySteps({ goal: device, device: { state: 'ALLOWLISTED', allowedClaim: 'old' } }).slice(0, 3),
    ).toEqual([
      'fleetgate device claim',
      "printf 'serial,allowedClaim\\nSN-1,<the new claim's certificate id>\\n' > serials.csv",
      'fleetgate allowlist import serials.csv',
    ]);
    // `*` admits any claim.
    expect(recoverySteps({ goal: device, device: { state: 'ALLOWLISTED', allowedClaim: '*' } })).toEqual([
      'fleetgate device claim',
      'fleetgate device provision d1 --serial SN-1',
      'fleetgate device connect d1',
    ]);
  });

  it('names a claim only when it is not the default one (no doubled word)', () => {
    expect(claimCommand('claim')).toBe('fleetgate device claim');
    expect(claimCommand('line-2')).toBe('fleetgate device claim line-2');
    expect(recoverySteps({ goal: { kind: 'connect-claim', name: 'claim' } })).toEqual([
      'fleetgate device claim',
      'fleetgate device connect claim',
    ]);
    expect(recoverySteps({ goal: { ...device, claimName: 'line-2' } })).toContain(
      'fleetgate device provision d1 --serial SN-1 --claim line-2',
    );
    expect(
      recoverySteps({ goal: { kind: 'provision', name: 'd1', serial: 'SN-1', claimName: 'claim' } }),
    ).toEqual([
      'fleetgate device claim',
      "printf 'serial,allowedClaim\\nSN-1,<the new claim's certificate id>\\n' > serials.csv",
      'fleetgate allowlist import serials.csv',
      'fleetgate device provision d1 --serial SN-1',
    ]);
  });

  it('a quarantined serial is released before it provisions again', () => {
    expect(
      recoverySteps({
        goal: device,
        liveClaimCertificateId: 'abc',
        device: { state: 'QUARANTINED', allowedClaim: 'abc' },
      })[0],
    ).toBe('fleetgate quarantine release SN-1 --reason <why>');
  });
});
