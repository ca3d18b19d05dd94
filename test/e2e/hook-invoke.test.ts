/**
 * `fleetgate invoke preProvisionHook` on a running local stack, as an operator replays a recorded
 * hook event: denied while the serial is unknown, allowed (with the same overrides on every retry)
 * once the allowlist names it.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childOutput, FLEETGATE_BIN, fleetgate } from '../support/cli';
import { PROJECT_ROOT } from '../support/serverless-copy';

interface HookEvent {
  claimCertificateId: string;
  parameters: { SerialNumber: string };
}
interface InvokeResult {
  function: string;
  result: { allowProvisioning: boolean; parameterOverrides?: Record<string, string> };
  decision?: { allowProvisioning: boolean; reason?: string; detail?: string };
  logs: unknown[];
}

const EVENT = join(PROJECT_ROOT, 'events', 'hook', 'allowed.json');
let dir: string;
let env: Record<string, string>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetgate-e2e-hook-'));
  env = { FLEETGATE_STACK_FILE: join(dir, 'stack.json') };
  const up = await fleetgate(['local', 'up', '--json'], env);
  expect(up.code, up.stderr).toBe(0);
});
afterAll(async () => {
  await fleetgate(['local', 'down'], env);
});

describe('fleetgate invoke preProvisionHook', () => {
  it('denies an unknown serial, then allows it once allowlisted, idempotently', async () => {
    const event = JSON.parse(await readFile(EVENT, 'utf8')) as HookEvent;
    const serial = event.parameters.SerialNumber;

    const denied = await fleetgate(['invoke', 'preProvisionHook', '--event', EVENT, '--json'], env);
    expect(denied.code, denied.stderr).toBe(0);
    expect(denied.json<InvokeResult>().result).toEqual({ allowProvisioning: false });
    // The answer to IoT carries no reason; the invocation's log does, and invoke shows it.
    expect(denied.json<InvokeResult>().decision).toEqual({
      allowProvisioning: false,
      reason: 'SERIAL_NOT_ALLOWLISTED',
      detail: 'serial is not on the allowlist',
    });
    const human = await fleetgate(['invoke', 'preProvisionHook', '--event', EVENT], env);
    expect(human.stdout).toContain('denied: SERIAL_NOT_ALLOWLISTED — serial is not on the allowlist');
    expect(`${human.stdout}${human.stderr}${denied.stdout}`).not.toMatch(/BEGIN CERTIFICATE/);

    const csv = join(dir, 'allowlist.csv');
    await writeFile(
      csv,
      `serial,productLine,batch,allowedClaim\n${serial},gateway-x1,B7,${event.claimCertificateId}\n`,
    );
    const imported = await fleetgate(['allowlist', 'import', csv, '--json'], env);
    expect(imported.json()).toMatchObject({ imported: 1, rejected: [] });

    const allowed = await fleetgate(['invoke', 'preProvisionHook', '--event', EVENT, '--json'], env);
    const first = allowed.json<InvokeResult>().result;
    expect(first).toMatchObject({
      allowProvisioning: true,
      parameterOverrides: {
        ThingName: expect.stringContaining(serial),
        ProductLine: 'gateway-x1',
        Batch: 'B7',
      },
    });
    const retried = await fleetgate(['invoke', 'preProvisionHook', '--event', EVENT, '--json'], env);
    expect(retried.json<InvokeResult>().result).toEqual(first);

    const device = await fleetgate(['devices', 'get', serial, '--json'], env);
    expect(device.json()).toMatchObject({ device: { serial, state: 'PROVISIONING' } });
  });

  it('shows the reason of a denial whose input is malformed, never the PEM', async () => {
    const csr = join(PROJECT_ROOT, 'events', 'hook', 'csr-instead-of-certificate.json');
    const result = await fleetgate(['invoke', 'preProvisionHook', '--event', csr, '--json'], env);
    expect(result.code, result.stderr).toBe(0);
    expect(result.json<InvokeResult>().decision).toMatchObject({
      allowProvisioning: false,
      reason: 'INVALID_CERTIFICATE',
      detail: expect.stringContaining('certificatePem'),
    });
    expect(result.stdout).not.toMatch(/-----BEGIN/);
  });
});

describe('fleetgate logs', () => {
  it("prints a function's lines from the stack log, with the reason fields", async () => {
    const lines = await fleetgate(['logs', '--function', 'preProvisionHook', '--json'], env);
    expect(lines.code, lines.stderr).toBe(0);
    const document = lines.json<{ file: string; lines: Array<Record<string, unknown>> }>();
    expect(document.file).toBe(join(dir, 'stack.log'));
    expect(document.lines).toContainEqual(
      expect.objectContaining({ message: 'provisioning denied', reason: 'SERIAL_NOT_ALLOWLISTED' }),
    );
    expect(document.lines.every((line) => line.function === 'preProvisionHook')).toBe(true);
    // Metric lines only when asked.
    expect(document.lines.some((line) => '_aws' in line)).toBe(false);
    expect(JSON.stringify(document)).not.toMatch(/-----BEGIN/);
    const human = await fleetgate(['logs', '--function', 'preProvisionHook'], env);
    expect(human.stdout).toMatch(
      /WARN\s+preProvisionHook {2}provisioning denied .*reason=SERIAL_NOT_ALLOWLISTED/,
    );
  });

  it('refuses an unknown function and --follow with --json (exit 2)', async () => {
    const unknown = await fleetgate(['logs', '--function', 'noSuchFunction', '--json'], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no function "noSuchFunction"');
    const both = await fleetgate(['logs', '--follow', '--json'], env);
    expect(both.code).toBe(2);
  });

  it('--follow prints new lines as functions write them, until Ctrl-C', async () => {
    const child = spawn(
      process.execPath,
      [FLEETGATE_BIN, 'logs', '--follow', '--function', 'preProvisionHook'],
      {
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const output = childOutput(child);
    try {
      const deadline = Date.now() + 60_000;
      while (!output.stderr.includes('following') && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 100));
      const before = output.stdout.length;
      const missing = join(PROJECT_ROOT, 'events', 'hook', 'missing-serial.json');
      expect((await fleetgate(['invoke', 'preProvisionHook', '--event', missing], env)).code).toBe(0);
      while (!output.stdout.slice(before).includes('reason=INVALID_EVENT') && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 100));
      expect(output.stdout.slice(before)).toContain('reason=INVALID_EVENT');
    } finally {
      child.kill('SIGINT');
    }
    expect(await output.closed).toBe(0);
  });
  // Last: it restarts this file's stack.
  it("shows the latest stack run's lines: a restarted stack never shows the previous one's (--all does)", async () => {
    const reasons = async (args: string[] = []) =>
      (await fleetgate(['logs', '--function', 'preProvisionHook', '--json', ...args], env)).json<{
        since?: string;
        lines: Array<{ reason?: string }>;
      }>();
    // The tests above left this run's denials in the log.
    const first = await reasons();
    expect(first.lines.map((line) => line.reason)).toContain('INVALID_EVENT');
    expect(first.since).toEqual(expect.any(String));
    // Act: the stack restarted on the same log.
    expect((await fleetgate(['local', 'down'], env)).code).toBe(0);
    expect((await fleetgate(['local', 'up', '--json'], env)).code).toBe(0);
    // Assess
    const second = await reasons();
    expect(second.lines).toEqual([]);
    expect(Date.parse(second.since ?? '')).toBeGreaterThan(Date.parse(first.since ?? ''));
    expect((await reasons(['--all'])).lines.map((line) => line.reason)).toContain('INVALID_EVENT');
    const human = await fleetgate(['logs'], env);
    expect(human.stdout).toMatch(/— local up stack started \S+ — \(earlier runs: --all\)/);
  });
});
