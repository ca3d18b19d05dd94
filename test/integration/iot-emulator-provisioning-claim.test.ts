/**
 * The emulator's CreateProvisioningClaim (provisioning by trusted user) through the real SDK, as AWS
 * answers it (https://docs.aws.amazon.com/iot/latest/apireference/API_CreateProvisioningClaim.html):
 * POST /provisioning-templates/{templateName}/provisioning-claim, templateName 1–36 of
 * [0-9A-Za-z_-], an ACTIVE claim certificate with its key pair and `expiration`, valid five minutes;
 * RegisterThing accepts the claim for its own template only and only until it expires; the handshake
 * refuses it after its expiry.
 */
import { X509Certificate } from 'node:crypto';
import {
  CreatePolicyCommand,
  CreateProvisioningClaimCommand,
  CreateProvisioningTemplateCommand,
  DescribeCertificateCommand,
  IoTClient,
} from '@aws-sdk/client-iot';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type FleetCertificateResponse,
  type IotEmulator,
  isRejection,
  startIotEmulator,
} from '../../local/iot-emulator';
import { fleetTemplateBody } from '../support/iot-emulator';

const ACCOUNT = '123456789012';
const TEMPLATE = fleetTemplateBody('device-policy');

let emulator: IotEmulator;
let iot: IoTClient;
let clock: Date;

async function start() {
  clock = new Date('2026-12-01T10:00:00Z');
  emulator = await startIotEmulator({ accountId: ACCOUNT, now: () => clock });
  iot = new IoTClient({ ...emulator.clientConfig(), maxAttempts: 1 });
  await iot.send(
    new CreatePolicyCommand({
      policyName: 'device-policy',
      policyDocument: JSON.stringify({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Action: 'iot:Connect', Resource: '*' }],
      }),
    }),
  );
  for (const templateName of ['installer', 'other'])
    await iot.send(
      new CreateProvisioningTemplateCommand({
        templateName,
        templateBody: TEMPLATE,
        provisioningRoleArn: `arn:aws:iam::${ACCOUNT}:role/provisioning`,
        enabled: true,
      }),
    );
}

afterEach(async () => {
  iot?.destroy();
  await emulator?.stop();
});

describe('CreateProvisioningClaim', () => {
  it('returns an ACTIVE claim certificate, its key pair and an expiration five minutes out', async () => {
    // Prepare
    await start();
    // Act
    const claim = await iot.send(new CreateProvisioningClaimCommand({ templateName: 'installer' }));
    // Assess
    expect(claim.certificateId).toMatch(/^[0-9a-f]{64}$/);
    expect(claim.keyPair?.PrivateKey).toContain('BEGIN RSA PRIVATE KEY');
    expect(claim.keyPair?.PublicKey).toContain('BEGIN PUBLIC KEY');
    expect(claim.expiration?.toISOString()).toBe('2026-12-01T10:05:00.000Z');
    const x509 = new X509Certificate(claim.certificatePem ?? '');
    expect(new Date(x509.validTo).toISOString()).toBe('2026-12-01T10:05:00.000Z');
    const described = await iot.send(new DescribeCertificateCommand({ certificateId: claim.certificateId }));
    expect(described.certificateDescription?.status).toBe('ACTIVE');
  });

  it('refuses an unknown template (ResourceNotFoundException) and a malformed name (InvalidRequestException)', async () => {
    await start();
    await expect(
      iot.send(new CreateProvisioningClaimCommand({ templateName: 'missing' })),
    ).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
    await expect(
      iot.send(new CreateProvisioningClaimCommand({ templateName: 'x'.repeat(37) })),
    ).rejects.toMatchObject({ name: 'InvalidRequestException' });
  });

  it('works for its own template until it expires; another template or a late use is AccessDenied', async () => {
    // Prepare
    await start();
    const claim = await iot.send(new CreateProvisioningClaimCommand({ templateName: 'installer' }));
    const claimCertificateId = claim.certificateId as string;
    const register = async (templateName: string, serial: string) => {
      const created = (await emulator.createKeysAndCertificate()) as FleetCertificateResponse;
      return emulator.registerThing({
        templateName,
        certificateOwnershipToken: created.certificateOwnershipToken,
        parameters: { SerialNumber: serial },
        claimCertificateId,
        clientId: `claim.${serial}`,
      });
    };
    // Act
    const connectedInTime = await emulator.connect({
      certificatePem: claim.certificatePem as string,
      clientId: 'claim.SN-1',
    });
    const own = await register('installer', 'SN-1');
    const other = await register('other', 'SN-2');
    clock = new Date('2026-12-01T10:05:01Z');
    const late = await register('installer', 'SN-3');
    const connectedLate = await emulator.connect({
      certificatePem: claim.certificatePem as string,
      clientId: 'claim.SN-4',
    });
    // Assess
    expect(connectedInTime.accepted).toBe(true);
    expect(isRejection(own)).toBe(false);
    expect(other).toMatchObject({ errorCode: 'AccessDenied' });
    expect(late).toMatchObject({
      errorCode: 'AccessDenied',
      errorMessage: expect.stringContaining('expired'),
    });
    expect(connectedLate).toMatchObject({ accepted: false, reason: 'CERTIFICATE_EXPIRED' });
  });
});
