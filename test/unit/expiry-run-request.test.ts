import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { toRunRequest } from '../../functions/expiry-sweep/run-request';

const CLOCK = Date.parse('2026-11-24T06:00:30.000Z');

describe('toRunRequest', () => {
  it('names a scheduled run after its time; it is a real run (a baseline for the next)', () => {
    const event = JSON.parse(readFileSync('events/schedule/expiry-sweep-scheduled.json', 'utf8')) as unknown;
    expect(toRunRequest(event, CLOCK)).toEqual({
      runId: 'scheduled-20261124T060000Z',
      now: '2026-11-24T06:00:00.000Z',
    });
  });

  it('marks a manual run as of a chosen instant as a what-if run, and one as of the clock as real', () => {
    expect(toRunRequest({ now: '2027-06-01T00:00:00Z' }, CLOCK)).toEqual({
      runId: 'manual-20270601T000000Z',
      now: '2027-06-01T00:00:00.000Z',
      simulated: true,
    });
    expect(toRunRequest({}, CLOCK)).toEqual({
      runId: 'manual-20261124T060030Z',
      now: '2026-11-24T06:00:30.000Z',
    });
    // Resuming by id: the run keeps the `simulated` it started with (its checkpoint holds it).
    expect(toRunRequest({ runId: 'manual-20270601T000000Z' }, CLOCK)).not.toHaveProperty('simulated');
  });
});
