// When the bundled CLI (dist/cli/) is stale. scripts/build-cli.mjs stamps the bundle with the newest
// modification time (ms) of the sources — the TypeScript and JSON of cli/, local/, shared/, schemas/,
// functions/ and iot/, plus package.json — and lists in dist/cli/build.json the project files the
// bundle was built from; bin/fleetgate.mjs stats only those (~140 files, no directory walk: the
// check is part of every command's start) and runs the TypeScript when one is newer than the stamp.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const FOLDERS = ['cli', 'local', 'shared', 'schemas', 'functions', 'iot'];

/** The newest modification time of every source file under the project's source folders. */
export function newestSource(root) {
  let newest = statSync(join(root, 'package.json')).mtimeMs;
  const walk = (dir) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (/\.(ts|mts|cjs|mjs|js|json)$/.test(entry.name))
        newest = Math.max(newest, statSync(path).mtimeMs);
    }
  };
  for (const folder of FOLDERS) walk(join(root, folder));
  return newest;
}

/**
 * The newest modification time of package.json and `files` (paths relative to `root`); Infinity
 * when one of them is gone (the bundle was built from a file that no longer exists: stale).
 */
export function newestOf(root, files) {
  let newest = statSync(join(root, 'package.json')).mtimeMs;
  for (const file of files) {
    const stats = statSync(join(root, file), { throwIfNoEntry: false });
    if (!stats) return Number.POSITIVE_INFINITY;
    if (stats.mtimeMs > newest) newest = stats.mtimeMs;
  }
  return newest;
}
