import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { inferTopic, readRecordedEvents } from '../../cli/commands/replay';
import { topicMatches } from '../../local/iot-sql';
import { loadServerlessConfig } from '../../local/serverless-config';
import { buildStackModel } from '../../local/stack-model';
import { ScheduledEventSchema } from '../../schemas/expiry-sweep';
import {
  CertificateRegisteredEvent,
  LifecycleMessage,
  PresenceEvent,
  RotationRequest,
  SqsEvent,
  ThingEvent,
} from '../../schemas/iot-events';

const EVENTS = join(import.meta.dirname, '..', '..', 'events');
const read = (path: string): unknown => JSON.parse(readFileSync(join(EVENTS, path), 'utf8'));

const schemaFor = (name: string): z.ZodType | undefined => {
  if (name.startsWith('certificate-registered')) return CertificateRegisteredEvent;
  if (name.startsWith('presence-')) return PresenceEvent;
  if (name.startsWith('thing-')) return ThingEvent;
  return undefined;
};

describe('events/', () => {
  it.each(readdirSync(join(EVENTS, 'iot')).filter((name) => schemaFor(name)))('iot/%s parses', (name) => {
    expect(schemaFor(name)?.safeParse(read(join('iot', name))).error).toBeUndefined();
  });

  it.each(readdirSync(join(EVENTS, 'sqs')))('sqs/%s is an SQS event whose body parses', (name) => {
    const event = SqsEvent.parse(read(join('sqs', name)));
    const body = JSON.parse(event.Records[0]?.body ?? '');
    const schema = name.startsWith('registration')
      ? CertificateRegisteredEvent
      : name.startsWith('rotation')
        ? RotationRequest
        : LifecycleMessage;
    expect(schema.safeParse(body).error).toBeUndefined();
  });

  it('schedule samples are EventBridge scheduled events', () => {
    for (const name of readdirSync(join(EVENTS, 'schedule'))) {
      expect(ScheduledEventSchema.safeParse(read(join('schedule', name))).error).toBeUndefined();
    }
  });

  it('the rotation request is an envelope with a generated CSR and no private key', () => {
    const text = readFileSync(join(EVENTS, 'rotation', 'rotate-request.json'), 'utf8');
    expect(text).not.toMatch(/PRIVATE KEY/);
    const [event] = readRecordedEvents(join(EVENTS, 'rotation', 'rotate-request.json'));
    expect(event?.topic).toMatch(/^fleetgate\/[^/]+\/rotate\/request$/);
    expect(event?.payload).toMatchObject({ csr: expect.stringContaining('BEGIN CERTIFICATE REQUEST') });
  });

  it('every replayable sample reaches a rule of serverless.yml', () => {
    const model = buildStackModel(loadServerlessConfig());
    const events = [
      ...readRecordedEvents(join(EVENTS, 'iot')),
      ...readRecordedEvents(join(EVENTS, 'rotation')),
    ];
    const unrouted = events.filter(
      (event) => !model.rules.some((rule) => topicMatches(rule.statement.topicFilter, event.topic)),
    );
    expect(unrouted).toEqual([]);
  });

  it.each([
    [{ certificateId: 'a', caCertificateId: 'ca1' }, '$aws/events/certificates/registered/ca1'],
    [{ eventType: 'connected', clientId: 'd1' }, '$aws/events/presence/connected/d1'],
    [{ eventType: 'disconnected', clientId: 'd1' }, '$aws/events/presence/disconnected/d1'],
    [{ eventType: 'THING_EVENT', thingName: 't1', operation: 'CREATED' }, '$aws/events/thing/t1/created'],
    [{ csr: 'x' }, undefined],
  ])('infers the topic of %j', (payload, topic) => {
    expect(inferTopic(payload)).toBe(topic);
  });
});
