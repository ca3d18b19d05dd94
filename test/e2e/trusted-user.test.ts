/**
 * Provisioning by trusted user with the `fleetgate` command on a running local stack, as an operator
 * and an installer would: bind the installer, get a temporary claim as the app does (`installer
 * claim`), provision the device with it over MQTT (`device provision --claim`), and the exit codes and
 * reasons of what the installer API refuses.
 * https://docs.aws.amazon.com/iot/latest/developerguide/provision-wo-cert.html#trusted-user
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fleetgate } from '../support/cli';

let dir: string;
let env: Record<string, string>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetgate-e2e-trusted-user-'));
  env = { FLEETGATE_STACK_FILE: join(dir, 'stack.json'), FLEETGATE_DEVICES_DIR: join(dir, 'devices') };
  const up = await fleetgate(['local', 'up', '--json'], env);
  expect(up.code, up.stderr).toBe(0);
  const csv = join(dir, 'serials.csv');
  await writeFile(csv, 'serial,batch\nSN-TU-E2E-1,LOT-9\nSN-TU-E2E-2,LOT-9\nSN-TU-E2E-3,LOT-7\n');
  const imported = await fleetgate(['allowlist', 'import', csv, '--json'], env);
  expect(imported.code, imported.stderr).toBe(0);
});

afterAll(async () => {
  await fleetgate(['local', 'down'], env);
});

/** The device's state once it is `state`, or the last state read when `timeoutMs` passes. */
async function stateWithin(serial: string, state: string, timeoutMs: number): Promise<string | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const read = await fleetgate(['devices', 'get', serial, '--json'], env);
    const current = read.code === 0 ? read.json<{ device: { state: string } }>().device.state : undefined;
    if (current === state || Date.now() > deadline) return current;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

describe('fleetgate installer', () => {
  it('bind → claim → device provision with the claim → ACTIVE, with the claim recorded in the history', async () => {
    // Prepare
    const bound = await fleetgate(['installer', 'bind', 'ina', '--batch', 'LOT-9', '--json'], env);
    expect(bound.code, bound.stderr).toBe(0);
    expect(bound.json()).toEqual({ installer: 'ina', bound: 1, existing: 0 });
    const again = await fleetgate(['installer', 'bind', 'ina', '--batch', 'LOT-9', '--json'], env);
    expect(again.json()).toEqual({ installer: 'ina', bound: 0, existing: 1 });

    // Act
    const claim = await fleetgate(['installer', 'claim', 'SN-TU-E2E-1', '--installer', 'ina', '--json'], env);
    const provisioned = await fleetgate(
      ['device', 'provision', 'tu1', '--serial', 'SN-TU-E2E-1', '--claim', 'claim-SN-TU-E2E-1', '--json'],
      env,
    );
    // The first connection reaches deviceLifecycle through the presence rule and its queue: the
    // device turns ACTIVE shortly after `device provision` returns, not at once.
    const device = await stateWithin('SN-TU-E2E-1', 'ACTIVE', 30_000);
    const history = await fleetgate(['devices', 'history', 'SN-TU-E2E-1', '--json'], env);

    // Assess
    expect(claim.code, claim.stderr).toBe(0);
    const issued = claim.json<{ certificateId: string; templateName: string; expiration: string }>();
    expect(issued.templateName).toBe('fleetgate-local-installer');
    expect(claim.stdout).not.toContain('PRIVATE KEY');
    expect(provisioned.code, provisioned.stderr).toBe(0);
    expect(provisioned.json()).toMatchObject({ serial: 'SN-TU-E2E-1', thingName: 'SN-TU-E2E-1' });
    expect(device).toBe('ACTIVE');
    expect(history.stdout).toContain('TEMPORARY_CLAIM_ISSUED');
  });

  it('refuses a serial the installer is not bound to (exit 1, the reason), and a claim used for another serial', async () => {
    // Prepare: ina is bound to LOT-9 only; SN-TU-E2E-3 is LOT-7.
    const claim = await fleetgate(['installer', 'claim', 'SN-TU-E2E-2', '--installer', 'ina', '--json'], env);
    expect(claim.code, claim.stderr).toBe(0);

    // Act
    const notBound = await fleetgate(
      ['installer', 'claim', 'SN-TU-E2E-3', '--installer', 'ina', '--json'],
      env,
    );
    const otherSerial = await fleetgate(
      ['device', 'provision', 'tu3', '--serial', 'SN-TU-E2E-3', '--claim', 'claim-SN-TU-E2E-2', '--json'],
      env,
    );
    const usage = await fleetgate(['installer', 'claim', 'SN-TU-E2E-3', '--json'], env);
    const device = await fleetgate(['devices', 'get', 'SN-TU-E2E-3', '--json'], env);

    // Assess
    expect(notBound.code).toBe(1);
    expect(JSON.stringify(notBound.json())).toContain('INSTALLER_NOT_BOUND');
    expect(otherSerial.code).toBe(1);
    expect(usage.code).toBe(2);
    expect(device.json<{ device: { state: string } }>().device.state).toBe('ALLOWLISTED');
  });

  it('simulates a trusted-user fleet with bad actors: nothing lost, duplicated or stuck (from the store)', async () => {
    // Act
    const run = await fleetgate(
      ['simulate', '--flow', 'trusted-user', '--devices', '6', '--clones', '1', '--invalid', '1', '--json'],
      env,
    );

    // Assess: a clone racing its original for a claim may get the original quarantined (its key
    // presented twice is clone evidence), which the simulation counts as caught, not lost.
    expect(run.code, run.stderr).toBe(0);
    expect(run.json()).toMatchObject({
      flow: 'trusted-user',
      devices: 6,
      duplicatesCreated: 0,
      lost: 0,
      stuck: 0,
      admittedBadActors: [],
    });
  });
});
