/**
 * Clone detection and quarantine: a provisioned device's key and certificate copied onto a second
 * device, both connecting as the same client id. Each connection closes the other
 * (DUPLICATE_CLIENTID); at the deployment's threshold deviceLifecycle sends a quarantine request
 * and quarantineDevice deactivates the certificate, puts the thing into the quarantine group and
 * records the device QUARANTINED. The copy cannot connect any more.
 */
import { ListThingGroupsForThingCommand } from '@aws-sdk/client-iot';
import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { cliJson } from '../cli';
import { closed, connect, end, tryConnect } from '../device';
import { allowlist, certificateStatus, deviceReaches, eventually } from '../operator';
import { provisionedDevice } from '../steps';
import { flowContext } from '../suite';

const flow = flowContext();

describe('quarantine of a cloned device', () => {
  it('DUPLICATE_CLIENTID storm → QUARANTINED, certificate INACTIVE, thing in the quarantine group', async () => {
    // Prepare: a provisioned, ACTIVE device whose identity was copied.
    const { target } = flow;
    const claim = await target.createClaim(`claim-clone-${target.runId}`);
    flow.ledger.certificate(claim.certificateId);
    const serial = flow.serial('CLONE1');
    await allowlist(target, [{ serial, allowedClaim: claim.certificateId }]);
    const device = await provisionedDevice(flow, claim, serial);
    await deviceReaches(target, serial, { state: 'ACTIVE', certificateId: device.certificateId });

    // Act: original and copy take the client id from each other, threshold times.
    const open: MqttClient[] = [];
    let current = await connect(target.endpoint, device.identity, device.thingName);
    open.push(current);
    for (let round = 0; round < target.settings.duplicateClientIdThreshold; round += 1) {
      const kicked = closed(current);
      current = await connect(target.endpoint, device.identity, device.thingName);
      open.push(current);
      await kicked;
    }
    const quarantined = await deviceReaches(target, serial, { state: 'QUARANTINED' });
    const status = await eventually(
      `certificate ${device.certificateId.slice(0, 12)}… deactivated`,
      () => certificateStatus(target.iot, device.certificateId),
      (value) => value === 'INACTIVE',
      target.patienceMs,
    );
    for (const client of open) await end(client);
    const again = await tryConnect(target.endpoint, device.identity, device.thingName);
    if (again.connected) await end(again.client);
    const listing = cliJson<{ devices: Array<{ serial: string; reason: string }> }>(
      await target.fleetgate(['quarantine', 'list', '--reason', 'CLONE_DUPLICATE_CLIENTID']),
    );

    // Assess
    expect(quarantined).toMatchObject({
      serial,
      state: 'QUARANTINED',
      quarantine: { reason: 'CLONE_DUPLICATE_CLIENTID' },
    });
    expect(status).toBe('INACTIVE');
    expect(again.connected).toBe(false);
    const groups = await target.iot.send(new ListThingGroupsForThingCommand({ thingName: device.thingName }));
    expect(groups.thingGroups?.map((group) => group.groupName)).toContain(target.names.quarantineGroupName);
    expect(listing.devices.find((entry) => entry.serial === serial)).toMatchObject({
      reason: 'CLONE_DUPLICATE_CLIENTID',
      source: 'deviceLifecycle',
    });
  });
});
