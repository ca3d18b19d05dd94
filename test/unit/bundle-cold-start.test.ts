/**
 * What each Lambda bundle leaves out of its cold start: packages only a rarely taken or late path
 * needs are reached by dynamic `import()` — with serverless.yml's `splitting`, chunks beside the
 * handler that a cold start neither parses nor runs (bench/handlers.bench.ts measures the load).
 * Built as serverless.yml builds them (test/support/lambda-bundle.ts, shared with the benchmark);
 * each package must be absent from the handler's static imports and present in the zip's chunks.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';
import { lambdaBuildOptions, reachableOutputs, serverlessEsbuildSettings } from '../support/lambda-bundle';

const root = join(__dirname, '..', '..');
const settings = serverlessEsbuildSettings(root);
const out = mkdtempSync(join(tmpdir(), 'fg-bundle-cold-start-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

/** Function folder → packages its cold start must not load, and why. */
const LOADED_WHEN_REACHED: Record<string, Array<[pkg: string, why: string]>> = {
  'pre-provision-hook': [['@aws-sdk/client-sqs', 'quarantine queue, on clone or takeover evidence']],
  'register-certificate': [['@aws-sdk/client-sqs', 'dead-letter and quarantine queues, on first send']],
  'device-lifecycle': [['@aws-sdk/client-sqs', 'dead-letter and quarantine queues, on first send']],
  'rotate-certificate': [['@aws-sdk/client-sqs', 'dead-letter queue, on first send']],
  'quarantine-device': [['@aws-sdk/client-sqs', 'dead-letter queue, on first send']],
  'expiry-sweep': [['@aws-sdk/client-s3', 'S3 report sink, when the run writes its report']],
  'reconcile-inventory': [
    ['@aws-sdk/client-s3', 'S3 report sink, when the run writes its report'],
    ['@aws-sdk/client-sqs', 'continuation and dead-letter queues, on first send'],
  ],
};

describe.each(Object.entries(LOADED_WHEN_REACHED))('%s bundle', (fn, packages) => {
  it.each(packages)('loads %s only when reached (%s)', async (pkg) => {
    const entry = join(root, 'functions', fn, 'handler.ts');
    const outdir = join(out, fn);
    const { metafile } = await build(lambdaBuildOptions(settings, entry, outdir, [], root));
    const handler = join(outdir, `handler${settings.outputFileExtension ?? '.js'}`);
    const inputsOf = (dynamic: boolean) =>
      [...reachableOutputs(metafile, handler, { dynamic }, root).values()].flatMap((output) =>
        Object.keys(output.inputs),
      );
    const fromPackage = (input: string) => input.includes(`node_modules/${pkg}/`);
    expect(inputsOf(false).filter(fromPackage)).toEqual([]);
    expect(inputsOf(true).some(fromPackage)).toBe(true);
  });
});
