import { type ChildProcess, spawn } from 'node:child_process';
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

/** What a child process writes on stdout and stderr (so far), and its exit code once it closes. */
export interface ChildOutput {
  stdout: string;
  stderr: string;
  closed: Promise<number | null>;
}

/** Collects a spawned process's output (its piped streams) as it writes it. */
export function childOutput(child: ChildProcess): ChildOutput {
  const output: ChildOutput = {
    stdout: '',
    stderr: '',
    closed: new Promise((resolve) => child.on('close', resolve)),
  };
  child.stdout?.on('data', (chunk: Buffer) => {
    output.stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output.stderr += chunk.toString();
  });
  return output;
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
    const output = childOutput(child);
    child.on('error', reject);
    void output.closed.then((code) => {
      const { stdout, stderr } = output;
      resolve({ code, stdout, stderr, json: <T>() => JSON.parse(stdout) as T });
    });
  });
}
