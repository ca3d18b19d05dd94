/**
 * The `fleetgate` command as an operator runs it: a child process, `--json`, one JSON document on
 * stdout, exit code 0 / 1 / 2.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { childOutput } from '../support/cli';
import { PROJECT_ROOT } from './names';

const BIN = join(PROJECT_ROOT, 'bin', 'fleetgate.mjs');

export interface CliResult {
  args: string[];
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `fleetgate <args>`; never throws for a non-zero exit (see `cliJson`). */
export function runFleetgate(
  args: string[],
  env: Record<string, string | undefined>,
  timeoutMs = 120_000,
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output = childOutput(child);
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    void output.closed.then((code) => {
      clearTimeout(timer);
      resolve({ args, code, stdout: output.stdout, stderr: output.stderr });
    });
  });
}

/** The JSON document of a run that exited 0. @throws Error with the command, exit code and stderr. */
export function cliJson<T = Record<string, unknown>>(result: CliResult): T {
  if (result.code !== 0) {
    throw new Error(
      `fleetgate ${result.args.join(' ')} exited ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`,
    );
  }
  return JSON.parse(result.stdout) as T;
}
