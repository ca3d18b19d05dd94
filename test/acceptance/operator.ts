/**
 * What an operator does around the devices: AWS IoT control-plane calls (as the AWS CLI would make
 * them) and the `fleetgate` command's JSON output. No fleetgate module is imported for the flows.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AttachPolicyCommand,
  CreateKeysAndCertificateCommand,
  DescribeCertificateCommand,
  type IoTClient,
  RegisterCACertificateCommand,
} from '@aws-sdk/client-iot';
import {
  type CertificateAuthority,
  createCertificateAuthority,
  generateKeyPair,
  issueCertificate,
} from '../../local/pki';
import type { Ledger } from './cleanup';
import { cliJson } from './cli';
import type { DeployedNames } from './names';
import type { AcceptanceTarget, ClaimCertificate } from './target';

/** CreateKeysAndCertificate (ACTIVE) + AttachPolicy of the deployment's claim policy. */
export async function createClaimCertificate(
  iot: IoTClient,
  names: DeployedNames,
): Promise<ClaimCertificate> {
  const out = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
  if (!out.certificateId || !out.certificatePem || !out.keyPair?.PrivateKey || !out.certificateArn)
    throw new Error('CreateKeysAndCertificate returned no certificate');
  await iot.send(new AttachPolicyCommand({ policyName: names.claimPolicyName, target: out.certificateArn }));
  return {
    certificateId: out.certificateId,
    certificatePem: out.certificatePem,
    privateKeyPem: out.keyPair.PrivateKey,
  };
}

/**
 * A device CA of this run, registered as an operator does for JITR: GetRegistrationCode, a
 * verification certificate with that code as its subject signed by the CA, RegisterCACertificate
 * ACTIVE with auto-registration on, then recorded in the store as a trusted CA (`fleetgate certificates
 * register <ca.pem> --kind ca`), since JITR fails closed.
 */
export async function registerDeviceCa(
  target: AcceptanceTarget,
  ledger: Ledger,
  label: string,
): Promise<{ ca: CertificateAuthority; caCertificateId: string }> {
  const ca = await createCertificateAuthority({
    subject: { commonName: `fleetgate acceptance ${label} CA ${target.runId}`, organization: 'fleetgate' },
  });
  const code = await target.registrationCode();
  const verification = await issueCertificate(ca, {
    publicKey: (await generateKeyPair()).publicKey,
    subject: { commonName: code },
    validityDays: 1,
  });
  const out = await target.iot.send(
    new RegisterCACertificateCommand({
      caCertificate: ca.certificatePem,
      verificationCertificate: verification.certificatePem,
      setAsActive: true,
      allowAutoRegistration: true,
    }),
  );
  if (!out.certificateId) throw new Error('RegisterCACertificate returned no id');
  ledger.ca(out.certificateId);
  // JITR trusts only CAs on TRUSTED_CA_IDS or recorded in the store: record it as an operator does.
  const pem = join(target.workDir, `ca-${label}.pem`);
  await writeFile(pem, ca.certificatePem);
  const recorded = await target.fleetgate(['certificates', 'register', pem, '--kind', 'ca', '--json']);
  if (recorded.code !== 0) throw new Error(`fleetgate certificates register --kind ca: ${recorded.stderr}`);
  return { ca, caCertificateId: out.certificateId };
}

export interface AllowlistRow {
  serial: string;
  allowedClaim?: string;
}

/** `fleetgate allowlist import <csv>`; resolves with the import summary. */
export async function allowlist(
  target: AcceptanceTarget,
  rows: AllowlistRow[],
): Promise<{ imported: number; updated: number; unchanged: number; rejected: unknown[] }> {
  const file = join(target.workDir, `allowlist-${rows[0]?.serial ?? 'empty'}.csv`);
  const lines = rows.map(
    (row) => `${row.serial},${row.allowedClaim ?? ''},fleetgate-acceptance,acceptance-${target.runId}`,
  );
  await writeFile(file, `serial,allowedClaim,productLine,batch\n${lines.join('\n')}\n`);
  return cliJson(await target.fleetgate(['allowlist', 'import', file]));
}

/** The store's record of a device (`fleetgate devices get`), or undefined when there is none. */
export interface DeviceView {
  serial: string;
  state: string;
  thingName?: string;
  certificateId?: string;
  pendingCertificateId?: string;
  quarantine?: { reason: string; certificateIds?: string[]; thingName?: string };
}

export async function getDevice(target: AcceptanceTarget, serial: string): Promise<DeviceView | undefined> {
  const result = await target.fleetgate(['devices', 'get', serial]);
  if (result.code === 1 && result.stdout.includes('no device')) return undefined;
  return cliJson<{ device: DeviceView }>(result).device;
}

/** Polls `read` until `done` holds; resolves with the last value. @throws Error with it after the timeout. */
export async function eventually<T>(
  what: string,
  read: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs: number,
  intervalMs = 1000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T = await read();
  while (!done(last)) {
    if (Date.now() > deadline)
      throw new Error(`${what}: not reached within ${timeoutMs} ms; last seen ${JSON.stringify(last)}`);
    await sleep(intervalMs);
    last = await read();
  }
  return last;
}

/** Waits until the store shows the device in `state` (and, if given, with `certificateId`). */
export function deviceReaches(
  target: AcceptanceTarget,
  serial: string,
  expected: { state: string; certificateId?: string },
): Promise<DeviceView | undefined> {
  return eventually(
    `device ${serial} ${expected.state}${expected.certificateId ? ` with ${expected.certificateId.slice(0, 12)}…` : ''}`,
    () => getDevice(target, serial),
    (device) =>
      device?.state === expected.state &&
      (expected.certificateId === undefined || device.certificateId === expected.certificateId),
    target.patienceMs,
    1500,
  );
}

/** DescribeCertificate's status, or `NOT_FOUND`. */
export async function certificateStatus(iot: IoTClient, certificateId: string): Promise<string> {
  try {
    const out = await iot.send(new DescribeCertificateCommand({ certificateId }));
    return out.certificateDescription?.status ?? 'UNKNOWN';
  } catch (error) {
    if ((error as { name?: string }).name === 'ResourceNotFoundException') return 'NOT_FOUND';
    throw error;
  }
}
