/**
 * shared/reports/report-sink.ts: the `s3://` sink (PutObject / GetObject under its prefix, a missing
 * key read as "no report"), whose S3 client is imported on first use (that the report functions'
 * bundles do not load it at cold start: test/unit/bundle-cold-start.test.ts).
 */
import { GetObjectCommand, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { createReportSink } from '../../shared/reports/report-sink';

const s3 = mockClient(S3Client);
beforeEach(() => s3.reset());

describe('createReportSink, s3://', () => {
  it('names its location without loading the client, and puts under the prefix', async () => {
    const sink = createReportSink('s3://fleet-reports/expiry/');
    expect(sink.location).toBe('s3://fleet-reports/expiry');
    expect(s3.calls()).toHaveLength(0);
    s3.on(PutObjectCommand).resolves({});
    await expect(sink.put('2026/12/report.html', '<html>', 'text/html')).resolves.toBe(
      's3://fleet-reports/expiry/2026/12/report.html',
    );
    expect(s3.commandCalls(PutObjectCommand)[0]?.args[0].input).toEqual({
      Bucket: 'fleet-reports',
      Key: 'expiry/2026/12/report.html',
      Body: '<html>',
      ContentType: 'text/html',
    });
  });

  it('reads an object back, and a missing key as undefined', async () => {
    const sink = createReportSink('s3://fleet-reports');
    s3.on(GetObjectCommand, { Key: 'latest.json' }).resolves({
      // The part of the SDK's stream mixin the sink uses.
      Body: { transformToString: async () => '{"run":"r1"}' } as never,
    });
    s3.on(GetObjectCommand, { Key: 'missing.json' }).rejects(
      new S3ServiceException({ name: 'NoSuchKey', $fault: 'client', $metadata: {} }),
    );
    await expect(sink.get('latest.json')).resolves.toBe('{"run":"r1"}');
    await expect(sink.get('missing.json')).resolves.toBeUndefined();
  });

  it('passes other S3 errors on, and refuses . and .. in names before any request', async () => {
    const sink = createReportSink('s3://fleet-reports/p');
    s3.on(GetObjectCommand).rejects(
      new S3ServiceException({ name: 'AccessDenied', $fault: 'client', $metadata: {} }),
    );
    await expect(sink.get('a.json')).rejects.toMatchObject({ name: 'AccessDenied' });
    await expect(sink.put('../escape.html', 'x', 'text/html')).rejects.toThrow(
      /report name must be a relative path without \. or \.\. segments: \.\.\/escape\.html/,
    );
    expect(s3.commandCalls(PutObjectCommand)).toHaveLength(0);
  });

  it('rejects a destination that is neither s3:// nor file://', () => {
    expect(() => createReportSink('s3://Bad_Bucket/x')).toThrow(
      /REPORT_DESTINATION must be s3:\/\/bucket\/prefix or file:\/\/dir/,
    );
  });
});
