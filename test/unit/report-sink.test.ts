/**
 * shared/reports/report-sink.ts: the `s3://` sink (PutObject / GetObject under its prefix, a missing
 * key read as "no report"), whose S3 client is imported on first use — the report functions' cold
 * start does not load it (checked on the expiry sweep's bundle, as serverless.yml builds it).
 */
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { build, type Metafile } from 'esbuild';
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

describe('the expiry sweep bundle', () => {
  it('loads the S3 client only through a dynamic import (a chunk of its own), not at cold start', async () => {
    const root = join(__dirname, '..', '..');
    const result = await build({
      entryPoints: [join(root, 'functions', 'expiry-sweep', 'handler.ts')],
      outdir: join(root, 'node_modules', '.cache', 'fg-report-sink-test'),
      bundle: true,
      splitting: true,
      format: 'esm',
      platform: 'node',
      mainFields: ['module', 'main'],
      metafile: true,
      write: false,
      logLevel: 'silent',
      alias: { '@aws-sdk/credential-provider-node': join(root, 'shared', 'aws', 'lambda-credentials.ts') },
    });
    const { outputs } = result.metafile as Metafile;
    const staticClosure = staticallyImported(outputs, 'functions/expiry-sweep/handler.ts');
    const inputsOf = (files: Iterable<string>) =>
      [...files].flatMap((file) => Object.keys(outputs[file]?.inputs ?? {}));
    expect(inputsOf(staticClosure).filter((input) => input.includes('@aws-sdk/client-s3'))).toEqual([]);
    expect(inputsOf(Object.keys(outputs)).some((input) => input.includes('@aws-sdk/client-s3'))).toBe(true);
  });
});

/**
 * The entry's output and every chunk it imports statically (what a cold start loads). A module
 * reached by dynamic import() is an entry point of its own in the metafile, hence the name.
 */
function staticallyImported(outputs: Metafile['outputs'], entryPoint: string): Set<string> {
  const seen = new Set<string>();
  const stack = Object.keys(outputs).filter((file) => outputs[file]?.entryPoint === entryPoint);
  if (stack.length !== 1) throw new Error(`no single output for ${entryPoint}`);
  for (let file = stack.pop(); file !== undefined; file = stack.pop()) {
    if (seen.has(file)) continue;
    seen.add(file);
    for (const imported of outputs[file]?.imports ?? []) {
      if (imported.kind === 'import-statement' && outputs[imported.path]) stack.push(imported.path);
    }
  }
  return seen;
}
