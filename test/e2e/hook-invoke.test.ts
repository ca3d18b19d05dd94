/**
 * `fleetgate invoke preProvisionHook` on a running local stack, as an operator replays a recorded
 * hook event: denied while the serial is unknown, allowed (with the same overrides on every retry)
 * once the allowlist names it.
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fleetgate } from '../support/cli';
import { PROJECT_ROOT } from '../support/serverless-copy';

interface HookEvent {
  claimCertificateId: string;
  parameters: { SerialNumber: string };
}
interface InvokeResult {
  function: string;
  result: { allowProvisioning: boolean; parameterOverrides?: Record<string, string> };
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
});
