/**
 * The CloudFormation template and artifacts `npm run package` (offline `serverless package`) writes,
 * built once per test run: packaging takes half a minute, so the first test file to ask packages
 * into the run's folder (test/support/package-setup.ts) under a lock, and the others wait for it.
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { inject } from 'vitest';
import type { CfnTemplate } from '../../scripts/deploy-rules/index';

const root = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);

export interface Packaged {
  /** The `--package` folder: the templates and one zip per function. */
  dir: string;
  /** A fresh copy of cloudformation-template-update-stack.json (callers may change it). */
  template: CfnTemplate;
}

let packaging: Promise<string> | undefined;

export async function packagedTemplate(): Promise<Packaged> {
  packaging ??= packageOnce(inject('packageDir'));
  const dir = await packaging;
  const text = await readFile(join(dir, 'cloudformation-template-update-stack.json'), 'utf8');
  return { dir, template: JSON.parse(text) as CfnTemplate };
}

async function packageOnce(base: string): Promise<string> {
  const out = join(base, 'out');
  const done = join(base, 'done');
  const failed = join(base, 'failed');
  try {
    await mkdir(join(base, 'lock'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return waitForOther(out, done, failed);
  }
  try {
    await run(process.execPath, [join(root, 'scripts', 'package.mjs'), '--package', out], {
      cwd: root,
      timeout: 300_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    await writeFile(done, '');
    return out;
  } catch (error) {
    const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
    const message = `serverless package failed: ${(error as Error).message}\n${stdout}\n${stderr}`;
    await writeFile(failed, message);
    throw new Error(message);
  }
}

async function waitForOther(out: string, done: string, failed: string): Promise<string> {
  const deadline = Date.now() + 300_000;
  while (Date.now() < deadline) {
    if (await exists(done)) return out;
    if (await exists(failed)) throw new Error(await readFile(failed, 'utf8'));
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error('timed out waiting for another test file to package the service');
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}
