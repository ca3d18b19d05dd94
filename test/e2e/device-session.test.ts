/**
 * `fleetgate device rotate` through a running `fleetgate device connect` session when things go
 * wrong, on a running local stack: the device is quarantined while its session runs (the endpoint
 * closes its connection at its next publish), and the rotate command gives up before the answer
 * arrives. Both ends must say what happened, fast, and never crash.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChildOutput, childOutput, FLEETGATE_BIN, fleetgate } from '../support/cli';

let dir: string;
let env: Record<string, string>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetgate-e2e-session-'));
  env = { FLEETGATE_STACK_FILE: join(dir, 'stack.json'), FLEETGATE_DEVICES_DIR: join(dir, 'devices') };
  const up = await fleetgate(['local', 'up', '--json'], env);
  expect(up.code, up.stderr).toBe(0);
  const claim = await fleetgate(['device', 'claim', '--json'], env);
  expect(claim.code, claim.stderr).toBe(0);
  const { certificateId } = claim.json<{ certificateId: string }>();
  const csv = join(dir, 'serials.csv');
  await writeFile(csv, `serial,allowedClaim\nSN-SES-01,${certificateId}\nSN-SES-02,${certificateId}\n`);
  expect((await fleetgate(['allowlist', 'import', csv, '--json'], env)).code).toBe(0);
  for (const [name, serial] of [
    ['dev1', 'SN-SES-01'],
    ['dev2', 'SN-SES-02'],
  ] as const) {
    const provisioned = await fleetgate(['device', 'provision', name, '--serial', serial, '--json'], env);
    expect(provisioned.code, provisioned.stderr).toBe(0);
  }
});
afterAll(async () => {
  await fleetgate(['local', 'down'], env);
});

/** `device connect <name>` in "another terminal", once it holds its connection. */
async function startSession(name: string) {
  const child = spawn(process.execPath, [FLEETGATE_BIN, 'device', 'connect', name], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = childOutput(child);
  await until(output, 'subscribed to');
  return { child, output, printed: () => output.stdout + output.stderr };
}

async function until(output: ChildOutput, text: string, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(output.stdout + output.stderr).includes(text) && Date.now() < deadline) await sleep(100);
  expect(output.stdout + output.stderr).toContain(text);
}

describe('fleetgate device rotate through a device connect session', () => {
  it('fails fast with the quarantine when the endpoint closes the quarantined device; the session reports it and exits 1', async () => {
    const session = await startSession('dev1');
    try {
      expect(
        (await fleetgate(['quarantine', 'add', 'SN-SES-01', '--reason', 'STOLEN', '--json'], env)).code,
      ).toBe(0);
      // Act
      const rotated = await fleetgate(['device', 'rotate', 'dev1', '--timeout', '30', '--json'], env);
      const sessionCode = await Promise.race([session.output.closed, sleep(15_000, 'still running')]);

      // Assess: the rotate command fails on the closed connection with what the store says (as
      // without a session), not on its own 30 s timeout.
      expect(rotated.code).toBe(1);
      expect(rotated.stderr).not.toContain('may still complete');
      expect(rotated.stderr).toMatch(/SN-SES-01 was quarantined at \S+ \(STOLEN, by operator\)/);
      expect(rotated.stderr).toContain('fleetgate quarantine release SN-SES-01');
      expect(rotated.stderr).toContain('closed the connection');
      expect(rotated.stderr).not.toContain('not JSON');
      expect(rotated.json()).toMatchObject({
        ok: false,
        result: { quarantined: { serial: 'SN-SES-01', reason: 'STOLEN' } },
      });
      // The session: no uncaught error, the closed connection and why, a non-zero exit.
      expect(sessionCode).toBe(1);
      expect(session.printed()).not.toMatch(/uncaught|Error:|at .*\.js:\d+/i);
      expect(session.output.stderr).toMatch(/the endpoint closed the connection/);
      expect(session.output.stderr).toMatch(/SN-SES-01 was quarantined at \S+ \(STOLEN, by operator\)/);
      // The stack log says which connection the endpoint closed, and why (the certificate by its id).
      const endpointLog = await fleetgate(['logs', '--function', 'iot-endpoint', '--json'], env);
      expect(endpointLog.json<{ lines: unknown[] }>().lines).toContainEqual(
        expect.objectContaining({
          message: 'MQTT connection closed by the endpoint',
          clientId: 'SN-SES-01',
          principalId: expect.stringMatching(/^[0-9a-f]{64}$/),
          reason: 'AUTH_ERROR',
          detail: expect.any(String),
        }),
      );
    } finally {
      session.child.kill('SIGINT');
    }
  });

  it('a rotate that times out says the rotation may still complete; the next one is told its deadline and what to do', async () => {
    const session = await startSession('dev2');
    try {
      // Act: too short to get the answer.
      const early = await fleetgate(['device', 'rotate', 'dev2', '--timeout', '0.01'], env);
      await until(session.output, 'rotate/accepted');
      const again = await fleetgate(['device', 'rotate', 'dev2', '--json'], env);

      // Assess
      expect(early.code).toBe(1);
      expect(early.stderr).toContain('no answer');
      expect(early.stderr).toContain('may still complete');
      expect(early.stderr).toMatch(/ROTATION_IN_PROGRESS/);
      expect(again.code).toBe(1);
      const device = (await fleetgate(['devices', 'get', 'SN-SES-02', '--json'], env)).json<{
        device: { state: string; rotationDeadline: string };
      }>().device;
      expect(device.state).toBe('ROTATING');
      expect(again.stderr).toContain('ROTATION_IN_PROGRESS');
      expect(again.stderr).toContain(device.rotationDeadline);
      expect(again.stderr).toContain('fleetgate invoke sweepRotations');
      expect(again.json()).toMatchObject({
        ok: false,
        result: { rejected: { reason: 'ROTATION_IN_PROGRESS' }, rotationDeadline: device.rotationDeadline },
      });
      // The hint works: the sweep as of the deadline aborts the rotation; then rotate succeeds.
      const event = join(dir, 'sweep-now.json');
      await writeFile(event, JSON.stringify({ now: device.rotationDeadline }));
      const swept = await fleetgate(['invoke', 'sweepRotations', '--event', event, '--json'], env);
      expect(swept.code, swept.stderr).toBe(0);
      const third = await fleetgate(['device', 'rotate', 'dev2', '--json'], env);
      expect(third.code, third.stderr).toBe(0);
      expect(third.json()).toMatchObject({ viaSession: true });
      // The session lived through all three.
      expect(session.printed()).not.toMatch(/uncaught/i);
      expect(session.child.exitCode).toBeNull();
    } finally {
      session.child.kill('SIGINT');
    }
    expect(await session.output.closed).toBe(0);
  });
});

describe('fleetgate device connect when the local stack stops under it', () => {
  it('says the local IoT endpoint closed the connection because the stack stopped, and exits 1', async () => {
    const session = await startSession('dev2');
    try {
      // Act
      const down = await fleetgate(['local', 'down'], env);
      const code = await session.output.closed;

      // Assess
      expect(down.code, down.stderr).toBe(0);
      expect(code).toBe(1);
      expect(session.output.stderr).toContain(
        'fleetgate: the local IoT endpoint closed the connection of SN-SES-02 (stack stopped?',
      );
      expect(session.output.stderr).toContain('fleetgate local up');
      expect(session.printed()).not.toMatch(/ECONNREFUSED|uncaught|at .*\.js:\d+/i);
    } finally {
      session.child.kill('SIGINT');
    }
  });
});
