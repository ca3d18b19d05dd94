/**
 * What each Lambda bundle leaves out of its cold start: packages only a rarely taken or late path
 * needs are reached by dynamic `import()` — with serverless.yml's `splitting`, chunks beside the
 * handler that a cold start neither parses nor runs (bench/handlers.bench.ts measures the load).
 * Built here as serverless.yml builds them (esbuild, ESM, splitting, the same alias and plugins);
 * each package must be absent from the handler's static imports and present in the zip's chunks.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build, type Metafile, type Plugin } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);
const root = join(__dirname, '..', '..');
const plugins = (require('../../scripts/esbuild-plugins.cjs') as () => Plugin[])();
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
    const entryPoint = `functions/${fn}/handler.ts`;
    const result = await build({
      entryPoints: [join(root, entryPoint)],
      absWorkingDir: root,
      outdir: join(out, fn),
      bundle: true,
      splitting: true,
      format: 'esm',
      platform: 'node',
      target: 'node22',
      mainFields: ['module', 'main'],
      metafile: true,
      write: true,
      logLevel: 'silent',
      plugins,
      alias: { '@aws-sdk/credential-provider-node': join(root, 'shared', 'aws', 'lambda-credentials.ts') },
    });
    const { outputs } = result.metafile as Metafile;
    const inputsOf = (files: Iterable<string>) =>
      [...files].flatMap((file) => Object.keys(outputs[file]?.inputs ?? {}));
    const atColdStart = inputsOf(staticallyImported(outputs, entryPoint));
    expect(atColdStart.filter((input) => input.includes(`node_modules/${pkg}/`))).toEqual([]);
    expect(inputsOf(Object.keys(outputs)).some((input) => input.includes(`node_modules/${pkg}/`))).toBe(true);
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
