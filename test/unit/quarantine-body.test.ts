import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseQuarantineBody } from '../../functions/quarantine-device/consumer';
import { ValidationError } from '../../shared/errors';

const sample = JSON.parse(
  readFileSync(new URL('../../events/quarantine/quarantine-request.json', import.meta.url), 'utf8'),
) as {
  Records: Array<{ body: string }>;
};

function issuesOf(body: string): string[] {
  try {
    parseQuarantineBody(body);
  } catch (error) {
    if (error instanceof ValidationError) return error.issues.map((issue) => `${issue.field}: ${issue.rule}`);
    throw error;
  }
  return [];
}

describe('parseQuarantineBody', () => {
  it('reads the sample quarantine-queue event', () => {
    // Act
    const request = parseQuarantineBody(sample.Records[0]?.body ?? '');
    // Assess
    expect(request).toMatchObject({
      serial: 'SN-000001',
      reason: 'CLONE_CONCURRENT_SESSIONS',
      source: 'deviceLifecycle',
    });
  });

  it.each([
    ['{"requestId": "r1", "serial": ', 'body: must be a JSON document'],
    ['[]', 'event: '],
    [
      '{"requestId":"r1","serial":"S1","reason":"lower","source":"deviceLifecycle","at":"2026-11-24T12:00:00Z"}',
      'reason: must be an UPPER_SNAKE reason code',
    ],
    [
      '{"requestId":"r1","reason":"CLONE_X","source":"deviceLifecycle","at":"2026-11-24T12:00:00Z"}',
      'serial: a serial or a certificateId is required',
    ],
    [
      '{"requestId":"r1","certificateId":"ABC","reason":"CLONE_X","source":"deviceLifecycle","at":"2026-11-24T12:00:00Z"}',
      'certificateId: must be 64 lower-case hex characters',
    ],
    [
      '{"requestId":"r1","serial":"S1","reason":"CLONE_X","source":"somebody","at":"2026-11-24T12:00:00Z"}',
      'source: ',
    ],
    ['{"requestId":"r1","serial":"S1","reason":"CLONE_X","source":"operator","at":"yesterday"}', 'at: '],
  ])('names the field: %s', (body, issue) => {
    // Act / Assess
    expect(issuesOf(body).join('; ')).toContain(issue);
  });
});
