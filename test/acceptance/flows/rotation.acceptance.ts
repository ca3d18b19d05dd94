/**
 * Certificate rotation over MQTT: an ACTIVE device publishes a CSR of a new key on
 * `fleetgate/<thing>/rotate/request`, gets its new certificate on `…/rotate/accepted`, connects
 * with it (the commit), and the old certificate is retired: INACTIVE, detached from the thing,
 * refused at the endpoint.
 */
import { ListThingPrincipalsCommand } from '@aws-sdk/client-iot';
import { describe, expect, it } from 'vitest';
import { createCsr, exportPrivateKeyPem } from '../../../local/pki';
import { connect, end, request, rotationTopics, tryConnect } from '../device';
import { allowlist, certificateStatus, deviceReaches, eventually } from '../operator';
import { provisionedDevice } from '../steps';
import { flowContext } from '../suite';

const flow = flowContext();

describe('certificate rotation over MQTT', () => {
  it('issues a new certificate, commits on the first connection with it, retires the old one', async () => {
    // Prepare
    const { target } = flow;
    const claim = await target.createClaim(`claim-rotate-${target.runId}`);
    flow.ledger.certificate(claim.certificateId);
    const serial = flow.serial('ROTATE1');
    await allowlist(target, [{ serial, allowedClaim: claim.certificateId }]);
    const device = await provisionedDevice(flow, claim, serial);
    await deviceReaches(target, serial, { state: 'ACTIVE', certificateId: device.certificateId });

    // Act
    const client = await connect(target.endpoint, device.identity, device.thingName);
    const csr = await createCsr({ subject: { commonName: serial } });
    const topics = rotationTopics(device.thingName);
    const answer = await request(
      client,
      topics.request,
      { csr: csr.csrPem },
      { replyBase: topics.replyBase, timeoutMs: target.patienceMs },
    );
    await end(client);
    const newCertificateId = String(answer.body.certificateId);
    if (answer.accepted) flow.ledger.certificate(newCertificateId);
    const rotated = {
      certificatePem: String(answer.body.certificatePem),
      privateKeyPem: await exportPrivateKeyPem(csr.keys.privateKey),
    };
    await end(await connect(target.endpoint, rotated, device.thingName));
    const committed = await deviceReaches(target, serial, {
      state: 'ACTIVE',
      certificateId: newCertificateId,
    });
    // Retirement right after the commit: INACTIVE, then detached (deleted after the grace period).
    const retired = await eventually(
      `old certificate ${device.certificateId.slice(0, 12)}… retired`,
      async () => ({
        status: await certificateStatus(target.iot, device.certificateId),
        attached: (
          (await target.iot.send(new ListThingPrincipalsCommand({ thingName: device.thingName })))
            .principals ?? []
        ).map((arn) => arn.split('/').pop()),
      }),
      (value) => value.status !== 'ACTIVE' && !value.attached.includes(device.certificateId),
      target.patienceMs,
    );
    const old = await tryConnect(target.endpoint, device.identity, device.thingName);
    if (old.connected) await end(old.client);

    // Assess
    expect(answer).toMatchObject({
      accepted: true,
      body: {
        certificateId: expect.stringMatching(/^[0-9a-f]{64}$/),
        certificatePem: expect.stringContaining('BEGIN CERTIFICATE'),
        rotationDeadline: expect.any(String),
      },
    });
    expect(newCertificateId).not.toBe(device.certificateId);
    expect(committed).toMatchObject({ state: 'ACTIVE', certificateId: newCertificateId });
    expect(committed?.pendingCertificateId).toBeUndefined();
    expect(retired.status).toMatch(/^(INACTIVE|NOT_FOUND)$/);
    expect(retired.attached).toEqual([newCertificateId]);
    expect(await certificateStatus(target.iot, newCertificateId)).toBe('ACTIVE');
    expect(old.connected).toBe(false);
  });
});
