// The newest modification time (ms) of what the bundled CLI is built from: the TypeScript of cli/,
// local/, shared/, schemas/ and functions/, plus package.json. Used by scripts/build-cli.mjs to stamp
// the bundle and by bin/fleetgate.mjs to tell a stale bundle (~300 stat calls, a few milliseconds).
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const FOLDERS = ['cli', 'local', 'shared', 'schemas', 'functions'];

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
