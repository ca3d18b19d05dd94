/** The chaos run's crash points (shared/chaos.ts): off by default, by rate, or once per unit of work. */
import { describe, expect, it } from 'vitest';
import { chaosCrashes, crashPoint, SimulatedCrash } from '../../shared/chaos';
import { TransientError } from '../../shared/errors';

describe('crashPoint', () => {
  it('never crashes without FLEETGATE_CHAOS_CRASH_RATE / _ONCE (how every deployed function runs)', () => {
    for (let i = 0; i < 1000; i += 1) expect(() => crashPoint('test.off', `k${i}`, {})).not.toThrow();
  });

  it('crashes with a retryable error at the configured rate, only at the listed points', () => {
    const env = { FLEETGATE_CHAOS_CRASH_RATE: '1', FLEETGATE_CHAOS_CRASH_POINTS: 'test.on' };
    expect(() => crashPoint('test.on', undefined, env)).toThrow(SimulatedCrash);
    expect(() => crashPoint('test.elsewhere', undefined, env)).not.toThrow();
    let error: unknown;
    try {
      crashPoint('test.on', undefined, env);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(TransientError);
    expect(chaosCrashes()['test.on']).toBeGreaterThanOrEqual(2);
  });

  it('with FLEETGATE_CHAOS_CRASH_ONCE crashes the first time per key, never again', () => {
    const env = { FLEETGATE_CHAOS_CRASH_ONCE: '1' };
    expect(() => crashPoint('test.once', 'cert-1', env)).toThrow(SimulatedCrash);
    expect(() => crashPoint('test.once', 'cert-1', env)).not.toThrow();
    expect(() => crashPoint('test.once', 'cert-2', env)).toThrow(SimulatedCrash);
  });
});
