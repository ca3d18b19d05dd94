/**
 * Issue 15: `fleetgate … | head -1` must not crash with an unhandled EPIPE. Once the reader of
 * stdout is gone, the rest of the output is discarded and the command ends quietly with its own
 * exit code (no stack trace on stderr).
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { FLEETGATE_BIN } from '../support/cli';

/** Runs the CLI with its stdout closed by the reader before anything is written. */
function withClosedStdout(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FLEETGATE_BIN, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, FLEETGATE_STACK_FILE: '/nonexistent/stack.json' },
    });
    // The reader goes away at once, as `head -1` does after its first line.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

describe('fleetgate with a reader that goes away (| head -1)', () => {
  it('ends quietly with exit 0 when the output of --help cannot be written', async () => {
    const result = await withClosedStdout(['--help']);
    expect(result.stderr).not.toMatch(/EPIPE|Unhandled 'error' event|at .*\(/);
    expect(result.code).toBe(0);
  });

  it('keeps its own exit code and its one-line reason on stderr (a usage error, exit 2)', async () => {
    const result = await withClosedStdout(['doctor', '--target', 'gcp', '--json']);
    expect(result.code).toBe(2);
    expect(result.stderr).not.toMatch(/EPIPE|Unhandled/);
    expect(result.stderr).toMatch(/^fleetgate: /);
  });
});
