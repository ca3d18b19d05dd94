/**
 * The Fleet Provisioning MQTT API's own rate quotas (issue 19): a factory line powering on at once
 * is answered with ThrottlingException on the request's `/rejected` topic once an operation's
 * bucket (AWS's default TPS, https://docs.aws.amazon.com/general/latest/gr/iot-core.html#throttling-limits)
 * is empty; requests within the quota are handled as before. `fleetgate simulate --burst`
 * (test/e2e/simulate.test.ts) shows the devices backing off and all provisioning.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  AWS_FLEET_PROVISIONING_QUOTAS,
  type IotEmulator,
  isRejection,
  startIotEmulator,
} from '../../local/iot-emulator';
import { handleFleetRequest, parseFleetTopic } from '../../local/mqtt/fleet-api';
import { createCsr } from '../../local/pki';

let emulator: IotEmulator;

afterEach(async () => {
  await emulator?.stop();
});

describe('Fleet Provisioning rate quotas', () => {
  it("has AWS's default TPS per operation", () => {
    expect(AWS_FLEET_PROVISIONING_QUOTAS).toEqual({
      CreateCertificateFromCsr: 15,
      CreateKeysAndCertificate: 10,
      RegisterThing: 10,
    });
  });

  it('answers a CreateCertificateFromCsr burst over the quota with ThrottlingException on /rejected', async () => {
    // Prepare
    emulator = await startIotEmulator({ faults: { fleetQuotas: 'aws-default' } });
    const { csrPem } = await createCsr({ subject: { commonName: 'SN-BURST-0001' } });
    const request = parseFleetTopic('$aws/certificates/create-from-csr/json');
    if (!request) throw new Error('topic not recognised');
    const payload = Buffer.from(JSON.stringify({ certificateSigningRequest: csrPem }));
    const requester = { certificateId: 'c'.repeat(64), clientId: 'claim.SN-BURST-0001' };
    // Act: 40 at once against a 15 TPS bucket
    const started = performance.now();
    const replies = await Promise.all(
      Array.from({ length: 40 }, () => handleFleetRequest(emulator.devices, request, payload, requester)),
    );
    const refilled = Math.ceil(((performance.now() - started) / 1000) * 15);
    // Assess
    const accepted = replies.filter((reply) => reply.accepted);
    const throttled = replies.filter((reply) => !reply.accepted);
    expect(accepted.length).toBeGreaterThanOrEqual(15);
    expect(accepted.length).toBeLessThanOrEqual(15 + refilled);
    expect(throttled.length).toBeGreaterThan(0);
    for (const reply of throttled) {
      expect(reply.topic).toBe('$aws/certificates/create-from-csr/json/rejected');
      expect(reply.response).toEqual({
        statusCode: 429,
        errorCode: 'ThrottlingException',
        errorMessage: 'Rate exceeded',
      });
    }
    for (const reply of accepted) expect(reply.topic).toBe('$aws/certificates/create-from-csr/json/accepted');
  });

  it('throttles RegisterThing on its own bucket, before the ownership token is even looked at', async () => {
    // Prepare
    emulator = await startIotEmulator({ faults: { fleetQuotas: { RegisterThing: 3 } } });
    // Act: 8 at once with a token nobody issued (an unthrottled request is refused for the token)
    const results = await Promise.all(
      Array.from({ length: 8 }, () =>
        emulator.registerThing({ templateName: 'none', certificateOwnershipToken: 'x', parameters: {} }),
      ),
    );
    // Assess
    const codes = results.map((result) => (isRejection(result) ? result.errorCode : 'accepted'));
    expect(codes.filter((code) => code === 'ThrottlingException').length).toBeGreaterThanOrEqual(4);
    expect(codes.filter((code) => code === 'ThrottlingException').length).toBeLessThanOrEqual(5);
    expect(codes.filter((code) => code !== 'ThrottlingException').every((code) => code === 'NotFound')).toBe(
      true,
    );
  });

  it('leaves the API unthrottled by default (fleetQuotas off)', async () => {
    emulator = await startIotEmulator();
    const results = await Promise.all(
      Array.from({ length: 30 }, () =>
        emulator.registerThing({ templateName: 'none', certificateOwnershipToken: 'x', parameters: {} }),
      ),
    );
    expect(results.every((result) => isRejection(result) && result.errorCode === 'NotFound')).toBe(true);
  });
});
