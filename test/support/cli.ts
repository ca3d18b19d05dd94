import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
export const FLEETGATE_BIN = join(root, 'bin', 'fleetgate.mjs');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON (throws if it is not exactly one JSON document). */
  json<T = Record<string, unknown>>(): T;
}

/** Runs the built `fleetgate` command as a user would, in a child process. */
export function fleetgate(
  args: string[],
  env: Record<string, string | undefined> = {},
  cwd = root,
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FLEETGATE_BIN, ...args], {
      cwd,
      env: {
        ...process.env,
        FLEETGATE_STACK_FILE: join(root, '.fleetgate', 'no-stack-for-tests.json'),
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, json: <T>() => JSON.parse(stdout) as T }));
  });
}
