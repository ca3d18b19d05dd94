import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    packageDir: string;
  }
}

let dir: string | undefined;

/**
 * A folder for the one `serverless package` of this test run. Nothing is packaged here: the first
 * test file that needs the packaged template does it (test/support/packaged-template.ts), and every
 * other file of the run reuses it.
 */
export async function setup(project: TestProject): Promise<void> {
  dir = await mkdtemp(join(tmpdir(), 'fleetgate-package-'));
  project.provide('packageDir', dir);
}

export async function teardown(): Promise<void> {
  if (dir) await rm(dir, { recursive: true, force: true });
}
