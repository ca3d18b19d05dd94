/**
 * `fleetgate simulate --flow factory`: a factory batch imported before the devices ship, every
 * device ACTIVE on its first connect; clones, takeovers and expired certificates refused by a later
 * import and kept out by IoT (the connect is refused); unknown serials refused at connect.
 */
import { describe, expect, it } from 'vitest';
import type { SimulationSummary } from '../../local/simulator/simulate';
import { fleetgate } from '../support/cli';

describe('fleetgate simulate --flow factory', () => {
  it('imports the batch, every device turns ACTIVE, every bad actor is refused', async () => {
    // Act
    const result = await fleetgate([
      'simulate',
      ...['--devices', '12', '--flow', 'factory', '--clones', '2', '--invalid', '3', '--duplicates', '1'],
      ...['--seed', '5', '--json'],
    ]);
    // Assess
    expect(result.code, `${result.stderr}\n${result.stdout.slice(0, 4000)}`).toBe(0);
    const summary = result.json<SimulationSummary>();
    expect(summary).toMatchObject({
      flow: 'factory',
      devices: 12,
      provisioned: 12,
      active: 12,
      duplicatesCreated: 0,
      lost: 0,
      admittedBadActors: [],
      unquarantinedClones: [],
      errors: [],
    });
    const denied = Object.keys(summary.deniedByReason);
    // A clone's certificate (the original's key, another certificate) is a second certificate for a
    // bound serial: the import refuses it, so it never reaches IoT.
    expect(denied).toEqual(
      expect.arrayContaining([
        'clone: import:SERIAL_BOUND_TO_OTHER_CERTIFICATE',
        'takeover: import:SERIAL_BOUND_TO_OTHER_CERTIFICATE',
        'expired-certificate: import:CERTIFICATE_EXPIRED',
      ]),
    );
    expect(denied.filter((reason) => reason.startsWith('unknown-serial: connect:'))).not.toHaveLength(0);
  }, 240_000);
});
