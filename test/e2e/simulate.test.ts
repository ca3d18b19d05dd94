/**
 * `fleetgate simulate` as a user runs it: an ephemeral stack, real certificates, bad actors and
 * duplicated events, one JSON document, exit 0 only when every invariant holds.
 */
import { describe, expect, it } from 'vitest';
import type { SimulationSummary } from '../../local/simulator/simulate';
import { fleetgate } from '../support/cli';

describe('fleetgate simulate', () => {
  it('JITP with clones, takeovers, unknown serials and duplicated events: nothing duplicated, lost or let through', async () => {
    // Act
    const result = await fleetgate([
      'simulate',
      ...['--devices', '16', '--flow', 'jitp', '--clones', '2', '--invalid', '3', '--duplicates', '2'],
      ...['--seed', '11', '--json'],
    ]);
    // Assess
    expect(result.code, `${result.stderr}\n${result.stdout.slice(0, 4000)}`).toBe(0);
    const summary = result.json<SimulationSummary>();
    expect(summary).toMatchObject({
      flow: 'jitp',
      devices: 16,
      provisioned: 16,
      duplicatesCreated: 0,
      lost: 0,
      admittedBadActors: [],
      unquarantinedClones: [],
      errors: [],
    });
    const quarantinedClones = Object.entries(summary.quarantinedByReason)
      .filter(([reason]) => reason.startsWith('clone:'))
      .reduce((sum, [, n]) => sum + n, 0);
    expect(quarantinedClones).toBe(2);
  }, 240_000);

  it('--burst: a factory line powering on at once is throttled by Fleet Provisioning, backs off, and every device provisions', async () => {
    // Act: 30 devices at once against 3 TPS per operation (AWS's 15 / 10 TPS are not reached by 30
    // devices on a loaded 2-core machine: generating their keys spreads them out over seconds)
    const result = await fleetgate([
      'simulate',
      ...['--devices', '30', '--flow', 'fleet', '--burst', '--burst-tps', '3', '--json'],
    ]);
    // Assess
    expect(result.code, `${result.stderr}\n${result.stdout.slice(0, 4000)}`).toBe(0);
    const summary = result.json<SimulationSummary>();
    expect(summary).toMatchObject({
      flow: 'fleet',
      provisioned: 30,
      duplicatesCreated: 0,
      lost: 0,
      stuck: 0,
      errors: [],
    });
    expect(summary.throttled).toBeGreaterThan(0);
  }, 240_000);

  it('refuses an unknown flow with a usage error (exit 2) naming the option', async () => {
    const result = await fleetgate(['simulate', '--flow', 'bluetooth', '--json']);
    expect(result.code).toBe(2);
    expect(result.stdout + result.stderr).toMatch(/flow/);
  });
});
