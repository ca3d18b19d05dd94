/**
 * `fleetgate device …` on a running local stack, as a person plays one device by hand over MQTT:
 * claim certificate, fleet provisioning by claim (JSON and CBOR), connect, rotate; the contract's
 * exit codes for a hook denial (1) and a usage error (2).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childOutput, FLEETGATE_BIN, fleetgate } from '../support/cli';

let dir: string;
let env: Record<string, string>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetgate-e2e-device-'));
  env = { FLEETGATE_STACK_FILE: join(dir, 'stack.json'), FLEETGATE_DEVICES_DIR: join(dir, 'devices') };
  const up = await fleetgate(['local', 'up', '--json'], env);
  expect(up.code, up.stderr).toBe(0);
});
afterAll(async () => {
  await fleetgate(['local', 'down'], env);
});

describe('fleetgate device', () => {
  it('claim → provision (JSON, CBOR) → connect → rotate, with the keys kept under the devices folder', async () => {
    // Prepare: a claim certificate, and two serials allowlisted for it.
    const claim = await fleetgate(['device', 'claim', '--json'], env);
    expect(claim.code, claim.stderr).toBe(0);
    const {
      certificateId: claimId,
      privateKeyFile,
      caFile,
    } = claim.json<{
      certificateId: string;
      privateKeyFile: string;
      caFile: string;
    }>();
    expect(claim.stdout).not.toContain('PRIVATE KEY');
    const csv = join(dir, 'serials.csv');
    await writeFile(csv, `serial,allowedClaim\nSN-E2E-01,${claimId}\nSN-E2E-02,${claimId}\n`);
    expect((await fleetgate(['allowlist', 'import', csv, '--json'], env)).json()).toMatchObject({
      imported: 2,
    });

    // Act
    const json = await fleetgate(['device', 'provision', 'dev1', '--serial', 'SN-E2E-01', '--json'], env);
    const cbor = await fleetgate(
      ['device', 'provision', 'dev2', '--serial', 'SN-E2E-02', '--format', 'cbor', '--json'],
      env,
    );
    const connected = await fleetgate(['device', 'connect', 'dev1', '--json'], env);
    const rotated = await fleetgate(['device', 'rotate', 'dev1', '--json'], env);
    const device = await fleetgate(['devices', 'get', 'SN-E2E-01', '--json'], env);

    // Assess
    expect(json.code, json.stderr).toBe(0);
    expect(json.json()).toMatchObject({ serial: 'SN-E2E-01', thingName: 'SN-E2E-01', format: 'json' });
    expect(cbor.code, cbor.stderr).toBe(0);
    expect(cbor.json()).toMatchObject({ serial: 'SN-E2E-02', thingName: 'SN-E2E-02', format: 'cbor' });
    expect(connected.json()).toMatchObject({ clientId: 'SN-E2E-01', connected: true });
    expect(rotated.code, rotated.stderr).toBe(0);
    const rotation = rotated.json<{ previousCertificateId: string; certificateId: string }>();
    expect(rotation.certificateId).not.toBe(rotation.previousCertificateId);
    expect(device.json()).toMatchObject({
      device: { state: 'ACTIVE', certificateId: rotation.certificateId },
    });
    for (const file of [privateKeyFile, caFile, join(dir, 'devices', 'dev1', 'private.key')])
      expect(existsSync(file)).toBe(true);
  });

  it('connect in one terminal, rotate three times in another: one shared session, never quarantined', async () => {
    // Prepare: dev2 (provisioned above) holds its connection, as `device connect dev2` in a terminal.
    const session = spawn(process.execPath, [FLEETGATE_BIN, 'device', 'connect', 'dev2'], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output = childOutput(session);
    const printed = () => output.stdout + output.stderr;
    try {
      const deadline = Date.now() + 60_000;
      while (!printed().includes('subscribed to') && Date.now() < deadline) await sleep(100);
      expect(printed()).toContain('connected as SN-E2E-02');
      // Act: three rotations from "another terminal".
      for (let round = 1; round <= 3; round += 1) {
        const rotated = await fleetgate(['device', 'rotate', 'dev2', '--json'], env);
        expect(rotated.code, `round ${round}: ${rotated.stderr}`).toBe(0);
        expect(rotated.json()).toMatchObject({ viaSession: true });
      }
      // Assess: the session is still there, with the newest certificate; no takeover, no quarantine.
      const device = await fleetgate(['devices', 'get', 'SN-E2E-02', '--json'], env);
      const record = device.json<{ device: { state: string; certificateId: string } }>().device;
      expect(record.state).toBe('ACTIVE');
      expect(printed().match(/reconnected with the new certificate/g)).toHaveLength(3);
      expect(printed()).toContain(
        `reconnected with the new certificate ${record.certificateId.slice(0, 12)}`,
      );
      const history = await fleetgate(['devices', 'history', 'SN-E2E-02', '--json'], env);
      const events = history
        .json<{ history: Array<{ event: string }> }>()
        .history.map((entry) => entry.event);
      expect(events).not.toContain('QUARANTINE');
      expect(events.filter((event) => event === 'COMMIT_ROTATION')).toHaveLength(3);
    } finally {
      session.kill('SIGINT');
    }
    expect(await output.closed).toBe(0);
  });

  it('rotate says when the device was quarantined; after release it rotates again', async () => {
    const added = await fleetgate(['quarantine', 'add', 'SN-E2E-02', '--reason', 'STOLEN', '--json'], env);
    expect(added.code, added.stderr).toBe(0);
    const refused = await fleetgate(['device', 'rotate', 'dev2', '--timeout', '10', '--json'], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/SN-E2E-02 was quarantined at \S+ \(STOLEN, by operator\)/);
    expect(refused.stderr).toContain('fleetgate quarantine release SN-E2E-02');
    expect(refused.json()).toMatchObject({
      result: { quarantined: { serial: 'SN-E2E-02', reason: 'STOLEN' } },
    });
    const released = await fleetgate(
      ['quarantine', 'release', 'SN-E2E-02', '--reason', 'found it', '--json'],
      env,
    );
    expect(released.code, released.stderr).toBe(0);
    const again = await fleetgate(['device', 'rotate', 'dev2', '--json'], env);
    expect(again.code, again.stderr).toBe(0);
    const device = await fleetgate(['devices', 'get', 'SN-E2E-02', '--json'], env);
    expect(device.json()).toMatchObject({ device: { state: 'ACTIVE' } });
  });

  it('exits 1 with the rejection when the hook denies the serial, 2 on a usage error', async () => {
    // Act
    const denied = await fleetgate(
      ['device', 'provision', 'dev3', '--serial', 'SN-E2E-UNKNOWN', '--json'],
      env,
    );
    const usage = await fleetgate(
      ['device', 'provision', 'dev4', '--serial', 'X', '--format', 'xml', '--json'],
      env,
    );
    // Assess
    expect(denied.code).toBe(1);
    expect(denied.json()).toMatchObject({
      ok: false,
      result: {
        // What the device got is AWS's generic answer; the hook's reason is the CLI's own addition.
        rejected: {
          statusCode: 403,
          errorCode: 'AccessDenied',
          errorMessage: 'Provisioning was denied by the pre-provisioning hook',
        },
        hook: { allowProvisioning: false, reason: 'SERIAL_NOT_ALLOWLISTED' },
      },
    });
    expect(denied.stderr).toContain('reason: SERIAL_NOT_ALLOWLISTED');
    expect(denied.stderr).toContain('fleetgate logs --function preProvisionHook');
    expect(denied.stdout + denied.stderr).not.toContain('BEGIN');
    expect(usage.code).toBe(2);
  });

  it('a second provision of an ACTIVE serial says the hook sent its certificate to quarantine, and where to see it', async () => {
    // Act: SN-E2E-01 is ACTIVE (dev1); another device presents a new key for it.
    const again = await fleetgate(['device', 'provision', 'dev5', '--serial', 'SN-E2E-01', '--json'], env);

    // Assess
    expect(again.code).toBe(1);
    const { hook } = again.json<{
      result: { hook: { reason: string; quarantine: { reason: string; certificateId: string } } };
    }>().result;
    expect(hook.reason).toBe('SERIAL_BOUND_TO_OTHER_CERTIFICATE');
    expect(hook.quarantine.reason).toBe('SERIAL_TAKEOVER_ATTEMPT');
    const presented = hook.quarantine.certificateId;
    expect(again.stderr).toContain(
      `the hook sent the presented certificate ${presented.slice(0, 12)}… to quarantine (SERIAL_TAKEOVER_ATTEMPT; the device itself is not quarantined): see \`fleetgate quarantine list\``,
    );
    // What it says is what happened: the certificate is in quarantine (the worker runs from the
    // queue, after the answer), and SN-E2E-01 is still ACTIVE.
    let listed: Array<{ certificateId: string; reason: string }> = [];
    for (let attempt = 0; attempt < 40 && !listed.some((c) => c.certificateId === presented); attempt += 1) {
      if (attempt > 0) await sleep(250);
      listed = (await fleetgate(['quarantine', 'list', '--json'], env)).json<{
        certificates: Array<{ certificateId: string; reason: string }>;
      }>().certificates;
    }
    expect(listed).toContainEqual(
      expect.objectContaining({ certificateId: presented, reason: 'SERIAL_TAKEOVER_ATTEMPT' }),
    );
    const device = await fleetgate(['devices', 'get', 'SN-E2E-01', '--json'], env);
    expect(device.json()).toMatchObject({ device: { state: 'ACTIVE' } });
  });

  it('says when a saved device is from another stack, and every step from there to connected', async () => {
    // A new stack (its IoT and table start empty) with the devices folder of the first one.
    const other = { ...env, FLEETGATE_STACK_FILE: join(dir, 'second', 'stack.json') };
    expect((await fleetgate(['local', 'up', '--json'], other)).code).toBe(0);
    try {
      // Act: the device, its claim, and provisioning with that claim, all from the first stack.
      const connected = await fleetgate(['device', 'connect', 'dev2', '--json'], other);
      const claimConnected = await fleetgate(['device', 'connect', 'claim'], other);
      const provisioned = await fleetgate(['device', 'provision', 'dev2', '--serial', 'SN-E2E-02'], other);

      // Assess: the whole sequence at once — a new claim, the allowlist, provisioning, connecting.
      expect(connected.code).toBe(1);
      expect(connected.json()).toMatchObject({
        ok: false,
        result: {
          connected: false,
          reason: 'UNKNOWN_CERTIFICATE',
          savedBeforeThisStack: true,
          steps: [
            'fleetgate device claim',
            "printf 'serial,allowedClaim\\nSN-E2E-02,<the new claim's certificate id>\\n' > serials.csv",
            'fleetgate allowlist import serials.csv',
            'fleetgate device provision dev2 --serial SN-E2E-02',
            'fleetgate device connect dev2',
          ],
        },
      });
      expect(connected.stderr).toContain('was saved at');
      expect(connected.stderr).toContain(
        "from here: `fleetgate device claim`, then `printf 'serial,allowedClaim\\nSN-E2E-02,<the new claim's certificate id>\\n' > serials.csv` and `fleetgate allowlist import serials.csv`, then `fleetgate device provision dev2 --serial SN-E2E-02`, then `fleetgate device connect dev2`",
      );
      expect(claimConnected.code).toBe(1);
      expect(claimConnected.stderr).toContain(
        'from here: `fleetgate device claim`, then `fleetgate device connect claim`',
      );
      expect(provisioned.code).toBe(1);
      expect(provisioned.stderr).toContain(
        "from here: `fleetgate device claim`, then `printf 'serial,allowedClaim\\nSN-E2E-02,<the new claim's certificate id>\\n' > serials.csv` and `fleetgate allowlist import serials.csv`, then `fleetgate device provision dev2 --serial SN-E2E-02`",
      );
      for (const result of [connected, claimConnected, provisioned])
        expect(result.stderr).not.toContain('device claim claim');

      // Act: the first step done, the hint names what is left, with the new claim's id.
      const claim = await fleetgate(['device', 'claim', '--json'], other);
      expect(claim.code, claim.stderr).toBe(0);
      const claimId = claim.json<{ certificateId: string }>().certificateId;
      const again = await fleetgate(['device', 'connect', 'dev2', '--json'], other);
      const steps = again.json<{ result: { steps: string[] } }>().result.steps;
      expect(steps).toEqual([
        `printf 'serial,allowedClaim\\nSN-E2E-02,${claimId}\\n' > serials.csv`,
        'fleetgate allowlist import serials.csv',
        'fleetgate device provision dev2 --serial SN-E2E-02',
        'fleetgate device connect dev2',
      ]);
      // The steps work as written.
      const csv = join(dir, 'second', 'serials.csv');
      await writeFile(csv, `serial,allowedClaim\nSN-E2E-02,${claimId}\n`);
      expect((await fleetgate(['allowlist', 'import', csv], other)).code).toBe(0);
      const reprovisioned = await fleetgate(['device', 'provision', 'dev2', '--serial', 'SN-E2E-02'], other);
      expect(reprovisioned.code, reprovisioned.stderr).toBe(0);
      expect((await fleetgate(['device', 'connect', 'dev2', '--for', '0'], other)).code).toBe(0);
    } finally {
      await fleetgate(['local', 'down'], other);
    }
  });
});
