/**
 * What each Lambda bundle leaves out of its cold start: packages only a rarely taken or late path
 * needs are reached by dynamic `import()` — with serverless.yml's `splitting`, chunks beside the
 * handler that a cold start neither parses nor runs (bench/handlers.bench.ts measures the load).
 * Built as serverless.yml builds them (test/support/lambda-bundle.ts, shared with the benchmark);
 * each package must be absent from the handler's static imports and present in the zip's chunks.
 * And no zip carries zod's classic build or a locale other than English: every schema is written
 * with zod's `mini` build (schemas/zod.ts), and one classic import would bring it all back.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
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

const builds = new Map<string, Promise<(dynamic: boolean) => string[]>>();
/** The bundle's inputs that a cold start loads (`dynamic` false) or that its zip carries (true). */
function bundleInputs(fn: string): Promise<(dynamic: boolean) => string[]> {
  let built = builds.get(fn);
  if (!built) {
    const entry = join(root, 'functions', fn, 'handler.ts');
    const outdir = join(out, fn);
    built = build(lambdaBuildOptions(settings, entry, outdir, [], root)).then(({ metafile }) => {
      const handler = join(outdir, `handler${settings.outputFileExtension ?? '.js'}`);
      return (dynamic: boolean) =>
        [...reachableOutputs(metafile, handler, { dynamic }, root).values()].flatMap((output) =>
          Object.entries(output.inputs)
            .filter(([, input]) => input.bytesInOutput > 0)
            .map(([path]) => path),
        );
    });
    builds.set(fn, built);
  }
  return built;
}

describe.each(Object.entries(LOADED_WHEN_REACHED))('%s bundle', (fn, packages) => {
  it.each(packages)('loads %s only when reached (%s)', async (pkg) => {
    const inputsOf = await bundleInputs(fn);
    const fromPackage = (input: string) => input.includes(`node_modules/${pkg}/`);
    expect(inputsOf(false).filter(fromPackage)).toEqual([]);
    expect(inputsOf(true).some(fromPackage)).toBe(true);
  });
});

const FUNCTIONS = readdirSync(join(root, 'functions'), { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => entry.name);

describe('zod in the bundles', () => {
  it('knows every function', () => {
    expect(FUNCTIONS.length).toBeGreaterThanOrEqual(10);
  });

  it.each(FUNCTIONS)(
    "%s carries zod's mini build only (if any zod), with English messages alone",
    async (fn) => {
      const inputs = (await bundleInputs(fn))(true).filter((input) => input.includes('node_modules/zod/'));
      expect(inputs.filter((input) => input.includes('/zod/v4/classic/'))).toEqual([]);
      expect(inputs.filter((input) => /\/zod\/v4\/locales\/(?!en\.js)/.test(input))).toEqual([]);
      if (inputs.length > 0) {
        // zod's mini build leaves the messages to the application: schemas/zod.ts configures English.
        expect(inputs.filter((input) => input.endsWith('/zod/v4/locales/en.js'))).toHaveLength(1);
      }
    },
  );
});
