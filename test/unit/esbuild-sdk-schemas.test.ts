/**
 * scripts/esbuild-plugins.cjs, `sdk-schema-literal-keys`: the AWS SDK clients' schema modules with
 * their computed keys (`{ [_h]: … }`) written as string literals must describe exactly the same
 * operations and shapes — the Lambda bundles serialize every AWS request from them — and must let
 * esbuild drop the schemas a bundle does not use (the reason the plugin exists).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build, type Plugin } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);
const plugins = require('../../scripts/esbuild-plugins.cjs') as {
  sdkSchemaLiteralKeys: Plugin;
  literalSchemaKeys: (source: string) => { contents: string; unknown: string[] };
};
const root = join(__dirname, '..', '..');
const sdk = join(root, 'node_modules', '@aws-sdk');
/** Every SDK client installed (the functions', the CLI's and the tools'). */
const clients = readdirSync(sdk).filter((name) => name.startsWith('client-'));
const out = mkdtempSync(join(tmpdir(), 'fg-sdk-schemas-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

async function bundle(source: string, file: string, withPlugin: boolean, minify = false) {
  const outfile = join(out, file);
  const result = await build({
    stdin: { contents: source, resolveDir: root, loader: 'js' },
    bundle: true,
    format: 'esm',
    platform: 'node',
    mainFields: ['module', 'main'],
    minify,
    outfile,
    metafile: true,
    write: true,
    logLevel: 'silent',
    plugins: withPlugin ? [plugins.sdkSchemaLiteralKeys] : [],
  });
  return { outfile, result };
}

type Seen = Map<unknown, unknown>;
type Lazy = (...args: never) => unknown;

/** Deep equality of two schema graphs; `() => Shape$` references are followed (cycles allowed). */
function sameSchema(a: unknown, b: unknown, path: string, seen: Seen = new Map()): string | undefined {
  if (typeof a === 'function' && typeof b === 'function')
    return sameReference(a as Lazy, b as Lazy, path, seen);
  if (typeof a !== 'object' || a === null || typeof b !== 'object' || b === null) {
    return Object.is(a, b) ? undefined : `${path}: ${String(a)} ≠ ${String(b)}`;
  }
  if (seen.get(a) === b) return undefined;
  seen.set(a, b);
  if (Array.isArray(a) !== Array.isArray(b)) return `${path}: array vs object`;
  const keys = Object.keys(a);
  const other = Object.keys(b);
  if (keys.join('\u0000') !== other.join('\u0000')) return `${path}: keys [${keys}] ≠ [${other}]`;
  const values = (o: object, key: string) => (o as Record<string, unknown>)[key];
  for (const key of keys) {
    const diff = sameSchema(values(a, key), values(b, key), `${path}.${key}`, seen);
    if (diff) return diff;
  }
  return undefined;
}

/** A lazy schema reference (`() => Shape$`) is followed; a class (an error type) is compared by name. */
function sameReference(a: Lazy, b: Lazy, path: string, seen: Seen): string | undefined {
  if (seen.get(a) === b) return undefined;
  seen.set(a, b);
  if (a.length > 0 || b.length > 0 || /^class\b/.test(Function.prototype.toString.call(a))) {
    return a.name === b.name ? undefined : `${path}: ${a.name} ≠ ${b.name}`;
  }
  return sameSchema((a as () => unknown)(), (b as () => unknown)(), `${path}()`, seen);
}

describe('sdk-schema-literal-keys (esbuild plugin of the Lambda bundles and the CLI)', () => {
  it.each(clients)(
    '@aws-sdk/%s: every schema equals the unrewritten one, and no computed key is left',
    async (client) => {
      const schemas = readdirSync(join(sdk, client, 'dist-es', 'schemas')).filter((f) =>
        /^schemas_\d+\.js$/.test(f),
      );
      expect(schemas.length).toBeGreaterThan(0);
      for (const file of schemas) {
        const path = join(sdk, client, 'dist-es', 'schemas', file);
        expect(plugins.literalSchemaKeys(readFileSync(path, 'utf8')).unknown).toEqual([]);
        const source = `export * from ${JSON.stringify(path)};`;
        const original = await bundle(source, `${client}-${file}-original.mjs`, false);
        const rewritten = await bundle(source, `${client}-${file}-literal.mjs`, true);
        const a = (await import(pathToFileURL(original.outfile).href)) as Record<string, unknown>;
        const b = (await import(pathToFileURL(rewritten.outfile).href)) as Record<string, unknown>;
        expect(Object.keys(b).sort()).toEqual(Object.keys(a).sort());
        const shapes = Object.keys(a).filter((name) => name.endsWith('$'));
        expect(shapes.length).toBeGreaterThan(10);
        for (const name of shapes) expect(sameSchema(a[name], b[name], name)).toBeUndefined();
      }
    },
  );

  it('lets esbuild drop the operations a bundle does not call (client-iot: DescribeThing only)', async () => {
    const source =
      "import { IoTClient, DescribeThingCommand } from '@aws-sdk/client-iot';" +
      'export const describe = (name) => new IoTClient({}).send(new DescribeThingCommand({ thingName: name }));';
    const schemaBytes = async (withPlugin: boolean) => {
      const { outfile, result } = await bundle(source, `iot-describe-${withPlugin}.mjs`, withPlugin, true);
      const inputs = Object.values(result.metafile.outputs)[0]?.inputs ?? {};
      const bytes = Object.entries(inputs)
        .filter(([input]) => /client-iot[\\/]dist-es[\\/]schemas[\\/]/.test(input))
        .reduce((sum, [, input]) => sum + input.bytesInOutput, 0);
      return { bytes, text: readFileSync(outfile, 'utf8') };
    };
    const without = await schemaBytes(false);
    const withKeys = await schemaBytes(true);
    // An operation the bundle never calls (an IoT Device Defender audit shape).
    expect(without.text).toContain('AuditMitigationActionsTaskTarget');
    expect(withKeys.text).not.toContain('AuditMitigationActionsTaskTarget');
    expect(withKeys.text).toContain('DescribeThing');
    expect(withKeys.bytes).toBeLessThan(without.bytes / 5);
  });
});
