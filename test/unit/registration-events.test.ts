import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CertificateRegisteredEvent, LifecycleEvent } from '../../schemas/iot-events';
import { parseBody } from '../../schemas/issues';

const samples = (dir: string) =>
  readdirSync(dir)
    .filter((file) => file.endsWith('.json'))
    .map((file) => [file, readFileSync(`${dir}/${file}`, 'utf8')] as const);

describe('sample events', () => {
  it.each(samples('events/jitr'))(
    'events/jitr/%s parses as a JITR event unless it is the malformed one',
    (file, body) => {
      const parsed = parseBody(CertificateRegisteredEvent, body);
      expect(parsed.success).toBe(!file.includes('malformed'));
    },
  );

  it.each(samples('events/lifecycle'))('events/lifecycle/%s parses as a lifecycle event', (_file, body) => {
    expect(parseBody(LifecycleEvent, body)).toMatchObject({ success: true });
  });

  it('names the field and the rule of a bad event', () => {
    const parsed = parseBody(
      CertificateRegisteredEvent,
      readFileSync('events/jitr/certificate-registered-malformed.json', 'utf8'),
    );
    expect(parsed).toMatchObject({
      success: false,
      issues: expect.arrayContaining([{ field: 'certificateId', rule: 'must be 64 hex characters' }]),
    });
  });
});
