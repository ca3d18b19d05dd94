#!/usr/bin/env node
// The `fleetgate` command. It runs the bundle in dist/cli/ (built at `npm ci` by `prepare`, or
// `npm run build:cli`) while that bundle is newer than every source file it was built from
// (bin/sources.mjs); otherwise — a clone without a build, or sources edited since — the TypeScript
// through tsx, as before.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { newestOf, newestSource } from './sources.mjs';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bundle = join(root, 'dist', 'cli', 'main.mjs');

function bundleIsFresh() {
  if (process.env.FLEETGATE_CLI === 'tsx' || !existsSync(bundle)) return false;
  try {
    const { sourcesNewest, sources } = JSON.parse(
      readFileSync(join(root, 'dist', 'cli', 'build.json'), 'utf8'),
    );
    // The files the bundle was built from (a bundle from before that list: every source file).
    return (Array.isArray(sources) ? newestOf(root, sources) : newestSource(root)) <= sourcesNewest;
  } catch {
    return false;
  }
}

let main;
if (bundleIsFresh()) {
  // The local stack imports the functions' TypeScript handlers itself (local/lambda-runtime.ts).
  process.env.FLEETGATE_CLI_BUNDLED = '1';
  ({ main } = await import(pathToFileURL(bundle).href));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../cli/main.ts'));
}
process.exitCode = await main(process.argv.slice(2));
