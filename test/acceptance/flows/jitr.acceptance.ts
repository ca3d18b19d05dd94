/**
 * JITR with the operator's own CA: the CA registered with auto-registration (GetRegistrationCode,
 * verification certificate, RegisterCACertificate), a device with a certificate it signed connects:
 * dropped while AWS IoT registers the certificate and fleetgate's registerCertificate creates the
 * thing, attaches the device policy and activates it; the device reconnects and is ACTIVE.
 */
import {
  DescribeCACertificateCommand,
  DescribeThingCommand,
  ListAttachedPoliciesCommand,
  ListThingPrincipalsCommand,
} from '@aws-sdk/client-iot';
import { describe, expect, it } from 'vitest';
import { end } from '../device';
import { allowlist, certificateStatus, deviceReaches, registerDeviceCa } from '../operator';
import { connectUntilAccepted, jitrIdentity } from '../steps';
import { flowContext } from '../suite';

const flow = flowContext();

describe('JITR with a registered CA', () => {
  it('drops the first connection, registers and activates the certificate, the reconnect is ACTIVE', async () => {
    // Prepare
    const { target } = flow;
    const { ca, caCertificateId } = await registerDeviceCa(target, flow.ledger, 'jitr');
    const serial = flow.serial('JITR1');
    const thingName = flow.thingName(serial);
    flow.ledger.thing(thingName);
    await allowlist(target, [{ serial }]);
    const identity = await jitrIdentity(ca, serial);
    flow.ledger.certificate(identity.certificateId);

    // Act
    const { firstAccepted, attempts, client } = await connectUntilAccepted(flow, identity, thingName);
    const device = await deviceReaches(target, serial, {
      state: 'ACTIVE',
      certificateId: identity.certificateId,
    });
    await end(client);

    // Assess
    const registeredCa = await target.iot.send(
      new DescribeCACertificateCommand({ certificateId: caCertificateId }),
    );
    expect(registeredCa.certificateDescription).toMatchObject({
      status: 'ACTIVE',
      autoRegistrationStatus: 'ENABLE',
    });
    expect(firstAccepted).toBe(false);
    expect(attempts).toBeGreaterThan(1);
    expect(device).toMatchObject({
      serial,
      state: 'ACTIVE',
      thingName,
      certificateId: identity.certificateId,
    });
    expect(await certificateStatus(target.iot, identity.certificateId)).toBe('ACTIVE');
    const thing = await target.iot.send(new DescribeThingCommand({ thingName }));
    expect(thing.attributes).toMatchObject({ serial });
    const principals = await target.iot.send(new ListThingPrincipalsCommand({ thingName }));
    expect(principals.principals?.filter((arn) => arn.endsWith(`/${identity.certificateId}`))).toHaveLength(
      1,
    );
    const arn = principals.principals?.find((value) =>
      value.endsWith(`/${identity.certificateId}`),
    ) as string;
    const policies = await target.iot.send(new ListAttachedPoliciesCommand({ target: arn }));
    expect(policies.policies?.map((policy) => policy.policyName)).toEqual([target.names.devicePolicyName]);
  });
});
