/**
 * Fleet provisioning by claim over MQTT: a claim certificate (the deployment's claim policy), an
 * allowlisted serial, CreateCertificateFromCsr → RegisterThing through the pre-provisioning hook →
 * the device connects with its new certificate and is ACTIVE; a serial nobody allowlisted is denied.
 */
import { DescribeThingCommand, ListThingPrincipalsCommand } from '@aws-sdk/client-iot';
import { describe, expect, it } from 'vitest';
import { connect, end, tryConnect } from '../device';
import { allowlist, certificateStatus, deviceReaches } from '../operator';
import { provisionByClaim } from '../steps';
import { flowContext } from '../suite';

const flow = flowContext();

describe('fleet provisioning by claim over MQTT', () => {
  it('provisions an allowlisted serial, which connects with its new certificate and is ACTIVE', async () => {
    // Prepare
    const { target } = flow;
    const claim = await target.createClaim(`claim-fleet-${target.runId}`);
    flow.ledger.certificate(claim.certificateId);
    const serial = flow.serial('FLEET1');
    const imported = await allowlist(target, [{ serial, allowedClaim: claim.certificateId }]);

    // Act
    const outcome = await provisionByClaim(flow, claim, serial);
    const thingName = String(outcome.registered.body.thingName);
    const client = await connect(target.endpoint, outcome.identity, thingName);
    const device = await deviceReaches(target, serial, {
      state: 'ACTIVE',
      certificateId: outcome.certificateId,
    });
    await end(client);

    // Assess
    expect(imported).toMatchObject({ imported: 1, rejected: [] });
    expect(outcome.created).toMatchObject({
      certificateId: expect.stringMatching(/^[0-9a-f]{64}$/),
      certificatePem: expect.stringContaining('BEGIN CERTIFICATE'),
      certificateOwnershipToken: expect.any(String),
    });
    expect(outcome.registered).toMatchObject({ accepted: true, body: { thingName: flow.thingName(serial) } });
    expect(device).toMatchObject({
      serial,
      state: 'ACTIVE',
      thingName,
      certificateId: outcome.certificateId,
    });
    expect(await certificateStatus(target.iot, outcome.certificateId)).toBe('ACTIVE');
    const thing = await target.iot.send(new DescribeThingCommand({ thingName }));
    expect(thing.attributes).toMatchObject({ serial });
    const principals = await target.iot.send(new ListThingPrincipalsCommand({ thingName }));
    expect(principals.principals?.some((arn) => arn.endsWith(`/${outcome.certificateId}`))).toBe(true);
  });

  it('denies RegisterThing for a serial that is not allowlisted; its certificate cannot connect', async () => {
    // Prepare
    const { target } = flow;
    const claim = await target.createClaim(`claim-denied-${target.runId}`);
    flow.ledger.certificate(claim.certificateId);
    const serial = flow.serial('UNKNOWN1');

    // Act
    const outcome = await provisionByClaim(flow, claim, serial);
    const attempt = await tryConnect(target.endpoint, outcome.identity, flow.thingName(serial));
    if (attempt.connected) await end(attempt.client);

    // Assess
    expect(outcome.registered).toMatchObject({
      accepted: false,
      body: { statusCode: 403, errorCode: 'AccessDenied' },
    });
    expect(attempt.connected).toBe(false);
    expect(await certificateStatus(target.iot, outcome.certificateId)).not.toBe('ACTIVE');
    expect((await target.fleetgate(['devices', 'get', serial])).code).toBe(1);
  });
});
