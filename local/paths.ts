import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root: the nearest folder above this file that holds `serverless.yml`. */
export function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'serverless.yml'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('fleetgate: cannot find serverless.yml above the local/ folder');
    dir = parent;
  }
  return dir;
}
