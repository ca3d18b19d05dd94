/**
 * Every rejected event names the field and the rule, in words an operator can act on — also where a
 * schema has more than one shape (a lifecycle event is presence or thing; a scheduled function takes
 * EventBridge's event or a manual one), where zod's plain union could only say "Invalid input", and
 * where a schema-level message (`must be a number`) would otherwise word a check it does not describe.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ExpirySweepEventSchema } from '../../schemas/expiry-sweep';
import { installerClaimBodySchema } from '../../schemas/installer-claim';
import { LifecycleEvent, RotationRequest } from '../../schemas/iot-events';
import { fieldIssues, formatIssues } from '../../schemas/issues';
import { ReconcileRunEventSchema } from '../../schemas/reconcile-inventory';

const EVENTS = join(__dirname, '..', '..', 'events');
const sample = (path: string) =>
  JSON.parse(readFileSync(join(EVENTS, path), 'utf8')) as Record<string, unknown>;

type Schema = { safeParse(input: unknown): { success: boolean; error?: unknown } };
/** `field: rule; …` as fleetgate reports a rejection, or `ok`. */
function reported(schema: Schema, input: unknown): string {
  const parsed = schema.safeParse(input);
  return parsed.success ? 'ok' : formatIssues(fieldIssues(parsed.error as Parameters<typeof fieldIssues>[0]));
}

describe('a lifecycle event: presence or thing, told apart by eventType', () => {
  const connected = sample('iot/presence-connected.json');
  const thing = sample('iot/thing-created.json');
  it.each([
    ['a presence event', connected, 'ok'],
    ['a thing event', thing, 'ok'],
    [
      'a timestamp that is not a number',
      { ...connected, timestamp: 'yesterday' },
      'timestamp: must be a number',
    ],
    ['a negative timestamp', { ...connected, timestamp: -5 }, 'timestamp: must not be negative'],
    ['a fractional timestamp', { ...connected, timestamp: 1.5 }, 'timestamp: must be a whole number'],
    [
      'no clientId',
      { ...connected, clientId: undefined },
      'clientId: Invalid input: expected string, received undefined',
    ],
    [
      'an unknown eventType',
      { ...connected, eventType: 'exploded' },
      'eventType: must be connected, disconnected or THING_EVENT',
    ],
    ['no eventType', {}, 'eventType: must be connected, disconnected or THING_EVENT'],
    [
      'a thing event with an unknown operation',
      { ...thing, operation: 'EXPLODED' },
      'operation: Invalid option: expected one of "CREATED"|"UPDATED"|"DELETED"',
    ],
    ['not an object', 'connected', 'event: must be an object'],
  ])('%s', (_case, input, expected) => {
    expect(reported(LifecycleEvent, input)).toBe(expected);
  });
});

describe.each([
  ['expirySweep', ExpirySweepEventSchema],
  ['reconcileInventory', ReconcileRunEventSchema],
])('%s: the scheduled event or a manual run, told apart by shape', (_fn, schema) => {
  const scheduled = sample('schedule/expiry-sweep-scheduled.json');
  it.each([
    ['the scheduled event', scheduled, 'ok'],
    ['an empty manual run', {}, 'ok'],
    ['a manual run with a run id and an instant', { runId: 'r-1', now: '2026-12-08T00:00:00Z' }, 'ok'],
    ['a run id that is not a string', { runId: 5 }, 'runId: Invalid input: expected string, received number'],
    ['an instant that is not a string', { now: 5 }, 'now: must be a string'],
    ['an instant that is not a time', { now: 'soon' }, 'now: must be an ISO-8601 time'],
    ['an unknown field of a manual run', { runId: 'r-1', extra: 1 }, 'event: Unrecognized key: "extra"'],
    ['an array', [], 'event: Invalid input: expected object, received array'],
    [
      "another rule's event",
      { ...scheduled, 'detail-type': 'Unscheduled Event' },
      'detail-type: Invalid input: expected "Scheduled Event"',
    ],
    [
      'a scheduled event without its time',
      { ...scheduled, time: undefined },
      'time: Invalid input: expected string, received undefined',
    ],
  ])('%s', (_case, input, expected) => {
    expect(reported(schema, input)).toBe(expected);
  });
});

describe('rules a schema-level message would hide, and messages the log filter would hide', () => {
  it('an installer serial over 128 characters says so', () => {
    expect(reported(installerClaimBodySchema, { serial: 'S'.repeat(129) })).toBe(
      'serial: must be at most 128 characters',
    );
    expect(reported(installerClaimBodySchema, {})).toBe('serial: is required and must be a string');
  });

  it('a CSR that is not PEM is named without quoting a PEM header (logs replace any text with one)', () => {
    const request = { csr: 'hello', principal: 'a'.repeat(64), clientId: 'c', thingName: 't' };
    const message = reported(RotationRequest, request);
    expect(message).toBe('csr: must be a PEM certificate signing request');
    expect(message).not.toMatch(/-----BEGIN/);
  });
});
