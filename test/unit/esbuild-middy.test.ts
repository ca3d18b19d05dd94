/**
 * scripts/esbuild-plugins.cjs, `middy-streams-when-streaming`: @middy/core bundled without its
 * top-level `node:stream/web` / `node:stream/promises` imports (a cold-start cost for functions
 * that never stream), and still working on both of middy's paths — a plain handler with its
 * middlewares, and `streamifyResponse`, where the rewritten code reaches `pipeline` through a
 * dynamic import and tells a web ReadableStream by the global class.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { build, type Plugin } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);
const plugins = require('../../scripts/esbuild-plugins.cjs') as {
  middyStreamsWhenStreaming: Plugin;
  middyWithoutStreamImports: (source: string) => string;
};
const root = join(__dirname, '..', '..');
const out = mkdtempSync(join(tmpdir(), 'fg-middy-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

const ENTRY = `
import middy from '@middy/core';
export const plain = middy()
  .before((request) => { request.event.seen = 'before'; })
  .handler(async (event) => ({ echoed: event.value, seen: event.seen }));
export const streaming = (body) =>
  middy({ streamifyResponse: true }).handler(async () => body);
`;

async function bundle(withPlugin: boolean): Promise<string> {
  const outfile = join(out, withPlugin ? 'with.mjs' : 'without.mjs');
  await build({
    stdin: { contents: ENTRY, resolveDir: root, loader: 'js' },
    bundle: true,
    format: 'esm',
    platform: 'node',
    mainFields: ['module', 'main'],
    outfile,
    logLevel: 'silent',
    plugins: withPlugin ? [plugins.middyStreamsWhenStreaming] : [],
  });
  return outfile;
}

/** The `awslambda` global of Lambda's Node runtime, as much of it as middy's streaming path uses. */
function lambdaStreamingGlobal(): { chunks: string[]; restore: () => void } {
  const chunks: string[] = [];
  const previous = (globalThis as { awslambda?: unknown }).awslambda;
  (globalThis as { awslambda?: unknown }).awslambda = {
    streamifyResponse: (fn: (event: unknown, stream: Writable, context: unknown) => Promise<void>) => fn,
    HttpResponseStream: { from: (stream: Writable) => stream },
  };
  return {
    chunks,
    restore: () => {
      (globalThis as { awslambda?: unknown }).awslambda = previous;
    },
  };
}

function sink(chunks: string[]): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
}

describe('middy-streams-when-streaming', () => {
  it('bundles @middy/core without importing node:stream/web or node:stream/promises at load', async () => {
    const without = readFileSync(await bundle(false), 'utf8');
    const withPlugin = readFileSync(await bundle(true), 'utf8');
    expect(without).toMatch(/from\s*"node:stream\/web"/);
    expect(without).toMatch(/from\s*"node:stream\/promises"/);
    expect(withPlugin).not.toMatch(/from\s*"node:stream\/(web|promises)"/);
    expect(withPlugin).toContain('import("node:stream/promises")');
  });

  it('keeps a plain handler and its middlewares working', async () => {
    const mod = await import(pathToFileURL(await bundle(true)).href);
    await expect(mod.plain({ value: 7 }, {})).resolves.toEqual({ echoed: 7, seen: 'before' });
  });

  it('keeps streamifyResponse working: a string body and a web ReadableStream are piped to the response', async () => {
    const lambda = lambdaStreamingGlobal();
    try {
      const mod = await import(pathToFileURL(await bundle(true)).href);
      const text: string[] = [];
      await mod.streaming('hello')({}, sink(text), {});
      expect(text.join('')).toBe('hello');

      const web: string[] = [];
      const body = new ReadableStream({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('from a web stream'));
          controller.close();
        },
      });
      await mod.streaming(body)({}, sink(web), {});
      expect(web.join('')).toBe('from a web stream');
    } finally {
      lambda.restore();
    }
  });

  it('fails the build when @middy/core no longer has the lines it rewrites', () => {
    const source = readFileSync(join(root, 'node_modules', '@middy', 'core', 'index.js'), 'utf8');
    const changed = source.replace('await pipeline(handlerStream, responseStream);', 'await pipeline(a, b);');
    expect(() => plugins.middyWithoutStreamImports(changed)).toThrow(
      /expected 1 "await pipeline\(handlerStream, responseStream\);" in @middy\/core, found 0/,
    );
  });
});
