import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SqsSchema } from '@aws-lambda-powertools/parser/schemas/sqs';
import { describe, expect, it } from 'vitest';
import type * as z from 'zod/mini';
import { inferTopic, readRecordedEvents } from '../../cli/commands/replay';
import { topicMatches } from '../../local/iot-sql';
import { loadServerlessConfig } from '../../local/serverless-config';
import { buildStackModel } from '../../local/stack-model';
import { ExpirySweepEventSchema } from '../../schemas/expiry-sweep';
import { installerClaimBodySchema, installerClaimEventSchema } from '../../schemas/installer-claim';
import {
  CertificateRegisteredEvent,
  LifecycleEvent,
  PresenceEvent,
  RotationRequest,
  ThingEvent,
} from '../../schemas/iot-events';
import { parseBody } from '../../schemas/issues';
import { parsePreProvisionHookEvent, preProvisionHookEventSchema } from '../../schemas/pre-provision-hook';
import { QuarantineRequest } from '../../schemas/quarantine-request';
import { ReconcileRunEventSchema } from '../../schemas/reconcile-inventory';
import { configFor } from '../../shared/config';

const EVENTS = join(import.meta.dirname, '..', '..', 'events');
const read = (path: string): unknown => JSON.parse(readFileSync(join(EVENTS, path), 'utf8'));
const config = configFor({ THING_NAME_PREFIX: 'fg-' });
const hookSchema = preProvisionHookEventSchema(config);
/** Powertools' SQS schema for the envelope; each record's body as the SQS consumer parses it (JSON, then the function's body schema). */
const sqsBodies = (schema: z.ZodMiniType) => (path: string) => {
  const envelope = SqsSchema.safeParse(read(path));
  return envelope.success && envelope.data.Records.every((record) => parseBody(schema, record.body).success);
};

/**
 * How production parses each sample of `events/`, with the schema the function uses: `true` when
 * the sample must parse, `false` for the samples of bad input. Every sample has a row.
 */
const parsers: Array<[RegExp, (path: string) => boolean]> = [
  // The hook's schema, built from the configuration as the hook builds it.
  [/^hook\//, (path) => parsePreProvisionHookEvent(hookSchema, config, read(path)).success],
  [/^(iot|jitr)\/certificate-registered/, (path) => CertificateRegisteredEvent.safeParse(read(path)).success],
  [/^iot\/presence-/, (path) => PresenceEvent.safeParse(read(path)).success],
  [/^iot\/thing-(created|updated|deleted)/, (path) => ThingEvent.safeParse(read(path)).success],
  [/^lifecycle\//, (path) => LifecycleEvent.safeParse(read(path)).success],
  // SQS events: Powertools' SQS envelope, the body JSON (the consumer's `json` transformer) parsed
  // with the body schema of the consuming function.
  [/^sqs\/registration/, sqsBodies(CertificateRegisteredEvent)],
  [/^sqs\/lifecycle/, sqsBodies(LifecycleEvent)],
  [/^sqs\/rotation/, sqsBodies(RotationRequest)],
  [/^quarantine\//, sqsBodies(QuarantineRequest)],
  // A replay envelope: the payload plus what RotationRequestRule adds (principal, clientId, thing).
  [
    /^rotation\//,
    (path) => {
      const { topic, principal, clientId, payload } = read(path) as Record<string, unknown>;
      const thingName = String(topic).split('/')[1];
      return RotationRequest.safeParse({ ...(payload as object), principal, clientId, thingName }).success;
    },
  ],
  // The installer API's HTTP API (payload 2.0) request, with the body schema of POST /claims.
  [
    /^http\/claims-post/,
    (path) => {
      const event = installerClaimEventSchema.safeParse(read(path));
      return (
        event.success && installerClaimBodySchema.safeParse(JSON.parse(String(event.data.body ?? ''))).success
      );
    },
  ],
  [/^schedule\/expiry-sweep/, (path) => ExpirySweepEventSchema.safeParse(read(path)).success],
  [/^schedule\/reconcile-inventory/, (path) => ReconcileRunEventSchema.safeParse(read(path)).success],
];

/**
 * Samples of bad input the schema must refuse. (`hook/csr-instead-of-certificate.json` is a
 * well-formed event: the hook denies it when it reads the certificate, INVALID_CERTIFICATE.)
 */
const BAD = new Set([
  'hook/invalid-serial.json',
  'hook/missing-serial.json',
  'jitr/certificate-registered-malformed.json',
]);

const samples = readdirSync(EVENTS, { recursive: true, encoding: 'utf8' })
  .filter((name) => name.endsWith('.json'))
  .map((name) => name.split('\\').join('/'))
  .sort();

describe('events/', () => {
  it.each(samples)('%s is parsed by the schema production uses', (name) => {
    const parse = parsers.find(([pattern]) => pattern.test(name))?.[1];
    expect(parse, `no production schema for events/${name}`).toBeDefined();
    expect(parse?.(name)).toBe(!BAD.has(name));
  });

  it('the SQS samples are Lambda SQS events (Powertools SqsSchema)', () => {
    for (const name of samples.filter(
      (sample) => sample.startsWith('sqs/') || sample.startsWith('quarantine/'),
    )) {
      expect(SqsSchema.safeParse(read(name)).error).toBeUndefined();
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
