/**
 * `fleetgate doctor` against `fleetgate local up`, as a developer runs it: a fresh local stack
 * passes (the stack prepares the table, queues, events and quarantine group itself; what only the
 * simulator or a deploy creates is a warning), and the JITR check turns ok once a CA with
 * auto-registration is registered through the stack's IoT endpoint and recorded as trusted.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IoTClient, RegisterCACertificateCommand } from '@aws-sdk/client-iot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifiedCaCertificate } from '../../local/ca-registration';
import { createCertificateAuthority } from '../../local/pki';
import { fleetgate } from '../support/cli';

interface UpResult {
  endpoints: Record<string, string>;
  region?: string;
}
interface Check {
  name: string;
  ok: boolean;
  warn?: boolean;
  detail: string;
  fix?: string;
}
interface DoctorReport {
  ok: boolean;
  target: string;
  checks: Check[];
}

let env: Record<string, string>;
let up: UpResult;

const doctor = async () => {
  const result = await fleetgate(['doctor', '--json'], env);
  return { ...result, report: result.json<DoctorReport>() };
};
const check = (report: DoctorReport, name: string) => report.checks.find((c) => c.name === name);

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'fleetgate-e2e-doctor-'));
  env = { FLEETGATE_STACK_FILE: join(dir, 'stack.json') };
  const result = await fleetgate(['local', 'up', '--json'], env);
  expect(result.code, result.stderr).toBe(0);
  up = result.json<UpResult>();
});
afterAll(async () => {
  await fleetgate(['local', 'down'], env);
});

describe('fleetgate doctor', () => {
  it('passes on a fresh local stack; JITR is a warning until a CA auto-registers', async () => {
    const { code, stderr, report } = await doctor();
    expect(code, stderr).toBe(0);
    expect(report).toMatchObject({ ok: true, target: 'local' });
    for (const name of ['table', 'queues', 'events', 'quarantine', 'device-policy', 'fleet-provisioning']) {
      expect(check(report, name), name).toMatchObject({ ok: true });
      expect(check(report, name)?.warn, name).toBeUndefined();
    }
    expect(check(report, 'jitr')).toMatchObject({ ok: true, warn: true, fix: expect.any(String) });
    // No CA at all: the fix registers one (nothing to update), with the AWS CLI pointed at this stack.
    const jitrFix = check(report, 'jitr')?.fix ?? '';
    expect(jitrFix).toContain(`aws --endpoint-url ${up.endpoints.iot} iot get-registration-code`);
    expect(jitrFix).toContain(`aws --endpoint-url ${up.endpoints.iot} iot register-ca-certificate`);
    expect(jitrFix).not.toContain('update-ca-certificate');
    const human = await fleetgate(['doctor'], env);
    expect(human.stdout).toContain(`    fix: register your device CA`);
    expect(human.stdout).toMatch(/^note: the aws commands need credentials and a region, any value: /m);
    expect(human.stdout).toContain('AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local');

    const iot = new IoTClient({
      endpoint: up.endpoints.iot,
      region: up.region ?? 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    const ca = await createCertificateAuthority({ subject: { commonName: 'Doctor Test CA' } });
    try {
      await iot.send(
        new RegisterCACertificateCommand({
          ...(await verifiedCaCertificate(iot, ca)),
          setAsActive: true,
          allowAutoRegistration: true,
        }),
      );
    } finally {
      iot.destroy();
    }
    // Registered in IoT is not trusted (JITR fails closed): doctor says how to trust it.
    const untrusted = await doctor();
    expect(check(untrusted.report, 'jitr')).toMatchObject({
      ok: true,
      warn: true,
      detail: expect.stringContaining('none trusted'),
      fix: expect.stringContaining('fleetgate certificates register <ca.pem> --kind ca'),
    });
    const pem = join(await mkdtemp(join(tmpdir(), 'fleetgate-e2e-doctor-ca-')), 'ca.pem');
    await writeFile(pem, ca.certificatePem);
    const recorded = await fleetgate(['certificates', 'register', pem, '--kind', 'ca', '--json'], env);
    expect(recorded.code, recorded.stderr).toBe(0);
    const after = await doctor();
    expect(after.code, after.stderr).toBe(0);
    expect(check(after.report, 'jitr')).toMatchObject({ ok: true });
    expect(check(after.report, 'jitr')?.warn).toBeUndefined();
  });

  it('prints one line per check in human mode, and exits 2 on a bad --target', async () => {
    const human = await fleetgate(['doctor'], env);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/^✔ table: /m);
    expect(human.stdout).toMatch(/^✔ fleet-provisioning: /m);

    const usage = await fleetgate(['doctor', '--target', 'gcp', '--json'], env);
    expect(usage.code).toBe(2);
    expect(usage.json()).toMatchObject({ ok: false, error: { code: 'USAGE' } });
  });

  it('exits 1 with the full report and a one-line reason when checks fail', async () => {
    // Names of a stage this stack does not have: table, queues and quarantine group are missing.
    const result = await fleetgate(['doctor', '--stage', 'nowhere', '--json'], env);
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^fleetgate: \d+ doctor check\(s\) failed: table, queues/),
    ]);
    const report = result.json<DoctorReport>();
    expect(report).toMatchObject({ ok: false, target: 'local' });
    expect(check(report, 'table')).toMatchObject({
      ok: false,
      detail: expect.stringContaining('fleetgate-nowhere-provisioning'),
    });
    expect(check(report, 'quarantine')).toMatchObject({ ok: false, fix: expect.any(String) });
    expect(check(report, 'events')).toMatchObject({ ok: true });
  });
});
