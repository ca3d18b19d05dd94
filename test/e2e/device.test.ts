/**
 * `fleetgate device …` on a running local stack, as a person plays one device by hand over MQTT:
 * claim certificate, fleet provisioning by claim (JSON and CBOR), connect, rotate; the contract's
 * exit codes for a hook denial (1) and a usage error (2).
 */
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fleetgate } from '../support/cli';

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
      result: { rejected: { statusCode: 403, errorCode: 'AccessDenied' } },
    });
    expect(usage.code).toBe(2);
  });
});
