/**
 * Device-side steps more than one flow takes: fleet provisioning by claim over MQTT, and a JITR
 * device's first connections (dropped until fleetgate has registered its certificate).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { MqttClient } from 'mqtt';
import {
  type CertificateAuthority,
  createCsr,
  createDeviceCertificate,
  exportPrivateKeyPem,
} from '../../local/pki';
import { claimClientId } from '../../shared/domain/client-ids';
import { connect, type DeviceIdentity, end, fleetApi, request, tryConnect } from './device';
import type { FlowContext } from './suite';
import type { ClaimCertificate } from './target';

export interface ProvisionOutcome {
  /** CreateCertificateFromCsr's answer (certificateId, certificatePem, certificateOwnershipToken). */
  created: Record<string, unknown>;
  /** RegisterThing's answer: accepted (thingName, deviceConfiguration) or rejected (statusCode, errorCode). */
  registered: { accepted: boolean; body: Record<string, unknown> };
  /** The new key and certificate, as the device keeps them. */
  identity: DeviceIdentity;
  certificateId: string;
}

/**
 * On the claim connection: CreateCertificateFromCsr with a CSR of a new key, then RegisterThing of
 * the deployment's template with `SerialNumber` — the AWS IoT Device SDK's fleet-provisioning sample,
 * in JSON.
 */
export async function provisionByClaim(
  flow: FlowContext,
  claim: ClaimCertificate,
  serial: string,
): Promise<ProvisionOutcome> {
  const { target, ledger } = flow;
  // A claim certificate created a moment ago may take a few seconds to be usable on AWS.
  const { client } = await connectUntilAccepted(flow, claim, claimClientId(serial), 30_000);
  try {
    const csr = await createCsr({ subject: { commonName: serial } });
    const created = await request(client, fleetApi.createFromCsr, { certificateSigningRequest: csr.csrPem });
    if (!created.accepted)
      throw new Error(`CreateCertificateFromCsr rejected: ${JSON.stringify(created.body)}`);
    const certificateId = String(created.body.certificateId);
    ledger.certificate(certificateId);
    const registered = await request(client, fleetApi.registerThing(target.names.templateName), {
      certificateOwnershipToken: created.body.certificateOwnershipToken,
      parameters: { SerialNumber: serial },
    });
    if (registered.accepted) ledger.thing(String(registered.body.thingName));
    return {
      created: created.body,
      registered,
      certificateId,
      identity: {
        certificatePem: String(created.body.certificatePem),
        privateKeyPem: await exportPrivateKeyPem(csr.keys.privateKey),
      },
    };
  } finally {
    await end(client);
  }
}

/** A provisioned device that has connected once (the store has it ACTIVE): what most flows start from. */
export async function provisionedDevice(
  flow: FlowContext,
  claim: ClaimCertificate,
  serial: string,
): Promise<ProvisionOutcome & { thingName: string }> {
  const outcome = await provisionByClaim(flow, claim, serial);
  if (!outcome.registered.accepted)
    throw new Error(`RegisterThing rejected ${serial}: ${JSON.stringify(outcome.registered.body)}`);
  const thingName = String(outcome.registered.body.thingName);
  await end(await connect(flow.target.endpoint, outcome.identity, thingName));
  return { ...outcome, thingName };
}

/** A device certificate signed by the run's CA: CN and subject serialNumber carry the serial. */
export async function jitrIdentity(
  ca: CertificateAuthority,
  serial: string,
  validity: { notAfter?: Date } = {},
): Promise<DeviceIdentity & { certificateId: string }> {
  const device = await createDeviceCertificate(ca, {
    subject: { commonName: serial, serialNumber: serial },
    ...validity,
  });
  return {
    certificateId: device.certificateId,
    certificatePem: device.certificatePem,
    privateKeyPem: await exportPrivateKeyPem(device.keys.privateKey),
    // JITR: the first connection presents the registered CA after the device certificate.
    chainPem: ca.certificatePem,
  };
}

/**
 * What JITR firmware does: connect; the first connection is dropped while AWS IoT registers the
 * certificate (PENDING_ACTIVATION) and fleetgate activates it; retry with backoff until accepted.
 */
export async function connectUntilAccepted(
  flow: FlowContext,
  identity: DeviceIdentity,
  clientId: string,
  withinMs = flow.target.patienceMs,
): Promise<{ firstAccepted: boolean; attempts: number; client: MqttClient }> {
  const deadline = Date.now() + withinMs;
  let attempts = 0;
  let firstAccepted = false;
  let delayMs = 1000;
  for (;;) {
    attempts += 1;
    const attempt = await tryConnect(flow.target.endpoint, identity, clientId);
    if (attempt.connected) {
      if (attempts === 1) firstAccepted = true;
      return { firstAccepted, attempts, client: attempt.client };
    }
    if (Date.now() > deadline)
      throw new Error(`${clientId}: still refused after ${attempts} attempts (${attempt.error})`);
    await sleep(delayMs);
    delayMs = Math.min(delayMs * 2, 8000);
  }
}
