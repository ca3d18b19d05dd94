/**
 * How `fleetgate device provision` reads the hook's decision on its certificate from the stack's log
 * (cli/log-lines.ts): the denial, and the quarantine request the hook logged for that certificate.
 */
import { describe, expect, it } from 'vitest';
import { hookDecisionFor, parseLogLine } from '../../cli/log-lines';

const line = (entry: Record<string, unknown>) =>
  parseLogLine(JSON.stringify({ function_name: 'fleetgate-dev-preProvisionHook', ...entry }));
const denial = (certificateId: string) =>
  line({
    level: 'WARN',
    message: 'provisioning denied',
    certificateId,
    reason: 'SERIAL_BOUND_TO_OTHER_CERTIFICATE',
    detail: 'serial is ACTIVE with another certificate (reprovisioning policy never)',
  });

describe('hookDecisionFor', () => {
  it('a denial the hook sent to quarantine carries the request it logged', () => {
    const logs = [
      denial('c1'),
      line({
        level: 'WARN',
        message: 'quarantine requested',
        certificateId: 'c1',
        reason: 'SERIAL_TAKEOVER_ATTEMPT',
      }),
    ];
    expect(hookDecisionFor(logs, 'c1')).toEqual({
      allowProvisioning: false,
      reason: 'SERIAL_BOUND_TO_OTHER_CERTIFICATE',
      detail: 'serial is ACTIVE with another certificate (reprovisioning policy never)',
      quarantine: { reason: 'SERIAL_TAKEOVER_ATTEMPT', certificateId: 'c1' },
    });
  });

  it('says nothing of quarantine the hook did not log for this certificate', () => {
    const logs = [
      denial('c1'),
      line({
        level: 'WARN',
        message: 'quarantine requested',
        certificateId: 'c2',
        reason: 'SERIAL_TAKEOVER_ATTEMPT',
      }),
      line({
        level: 'ERROR',
        message: 'quarantine request not sent',
        certificateId: 'c1',
        reason: 'SERIAL_TAKEOVER_ATTEMPT',
      }),
    ];
    expect(hookDecisionFor(logs, 'c1')).not.toHaveProperty('quarantine');
  });

  it('names the device to quarantine when the hook asked for it', () => {
    const logs = [
      denial('c3'),
      line({
        level: 'WARN',
        message: 'quarantine requested',
        certificateId: 'c3',
        reason: 'PUBLIC_KEY_IN_USE',
        quarantineSerial: 'SN-OWNER',
      }),
    ];
    expect(hookDecisionFor(logs, 'c3')?.quarantine).toEqual({
      reason: 'PUBLIC_KEY_IN_USE',
      certificateId: 'c3',
      serial: 'SN-OWNER',
    });
  });
});
