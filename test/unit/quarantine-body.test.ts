/**
 * quarantineDevice on the shared SQS consumer, for bodies that can never be processed: each goes to
 * QuarantineDLQ at once with its reason naming the field and the rule, and is acknowledged (never
 * redelivered); nothing reaches the store or IoT. The sample event parses.
 */
import { readFileSync } from 'node:fs';
import { Logger } from '@aws-lambda-powertools/logger';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { createHandler } from '../../functions/quarantine-device/create-handler';
import type { QuarantineWorkDeps } from '../../functions/quarantine-device/quarantine';
import { type RecordedOutcome, recordingMetrics } from '../support/hook';
import { RecordingDeadLetters, sqsRecord } from '../support/jitr';
import { lambdaContext } from '../support/lambda';

const sample = JSON.parse(
  readFileSync(new URL('../../events/quarantine/quarantine-request.json', import.meta.url), 'utf8'),
) as SQSEvent;

/** A handler whose store and IoT fail the test if anything reaches them. */
function build() {
  const touched: string[] = [];
  const untouchable = new Proxy(
    {},
    {
      get: (_target, name) => () => {
        touched.push(String(name));
        throw new Error(`unexpected call ${String(name)}`);
      },
    },
  );
  const deadLetters = new RecordingDeadLetters();
  const outcomes: RecordedOutcome[] = [];
  const handler = createHandler({
    config: { quarantineGroupName: 'fleetgate-test-quarantine' },
    store: untouchable as QuarantineWorkDeps['store'],
    quarantineStore: untouchable as QuarantineWorkDeps['quarantineStore'],
    iot: untouchable as QuarantineWorkDeps['iot'],
    logger: new Logger({ serviceName: 'fleetgate', logLevel: 'SILENT' }),
    metrics: recordingMetrics(outcomes),
    deadLetters,
  });
  const run = (body: string) =>
    handler({ Records: [sqsRecord(body, 'm-1')] }, lambdaContext()) as Promise<SQSBatchResponse>;
  return { run, deadLetters, outcomes, touched };
}

describe('quarantineDevice: a body that can never be processed', () => {
  it('parses the sample quarantine-queue event (it reaches the store)', async () => {
    // Prepare
    const { run, touched, deadLetters } = build();
    // Act
    const response = await run(sample.Records[0]?.body ?? '');
    // Assess: it got past the parser and asked the store (which this test forbids: retried).
    expect(deadLetters.records).toEqual([]);
    expect(touched.length).toBeGreaterThan(0);
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: 'm-1' }]);
  });

  it.each([
    ['{"requestId": "r1", "serial": ', 'body: Invalid JSON'],
    ['[]', 'body: '],
    [
      '{"requestId":"r1","serial":"S1","reason":"lower","source":"deviceLifecycle","at":"2026-11-24T12:00:00Z"}',
      'body.reason: must be an UPPER_SNAKE reason code',
    ],
    [
      '{"requestId":"r1","reason":"CLONE_X","source":"deviceLifecycle","at":"2026-11-24T12:00:00Z"}',
      'body.serial: a serial or a certificateId is required',
    ],
    [
      '{"requestId":"r1","certificateId":"ABC","reason":"CLONE_X","source":"deviceLifecycle","at":"2026-11-24T12:00:00Z"}',
      'body.certificateId: must be 64 lower-case hex characters',
    ],
    [
      '{"requestId":"r1","serial":"S1","reason":"CLONE_X","source":"somebody","at":"2026-11-24T12:00:00Z"}',
      'body.source: ',
    ],
    ['{"requestId":"r1","serial":"S1","reason":"CLONE_X","source":"operator","at":"yesterday"}', 'body.at: '],
  ])('sends %s to the DLQ at once with the reason "%s…", acknowledged', async (body, reason) => {
    // Prepare
    const { run, deadLetters, outcomes, touched } = build();
    // Act
    const response = await run(body);
    // Assess
    expect(response.batchItemFailures).toEqual([]);
    expect(deadLetters.records.map(({ record }) => record.body)).toEqual([body]);
    expect(deadLetters.records[0]?.reason).toContain(reason);
    expect(outcomes).toEqual([{ name: 'QuarantineInvalid', reason: 'body' }]);
    expect(touched).toEqual([]);
  });
});
