/**
 * Provisioning by trusted user on the whole local stack: the installer API (`POST /claims` on the
 * local HTTP API with its JWT authorizer → installerClaim → CreateProvisioningClaim on the emulator,
 * every call authorized against the function's role), then a real MQTT device provisioning with the
 * temporary claim through the trusted-user template and the real pre-provisioning hook.
 * AWS: https://docs.aws.amazon.com/iot/latest/developerguide/provision-wo-cert.html#trusted-user
 * JWT authorizer: https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-jwt-authorizer.html
 */
import { AttachPolicyCommand, CreateCertificateFromCsrCommand } from '@aws-sdk/client-iot';
import { generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCsr, exportPrivateKeyPem } from '../../local/pki';
import type { LocalStack } from '../../local/stack';
import { claimClientId } from '../../shared/domain/client-ids';
import { InstallerStore } from '../../shared/store/installer-store';
import { keys } from '../../shared/store/keys';
import type { ProvisioningStore } from '../../shared/store/provisioning-store';
import { allowlistedDevice } from '../support/devices';
import { connect, type DeviceIdentity, nextMessage } from '../support/mqtt';
import { startTestStack, type TestStack } from '../support/stack';

const INSTALLER_TEMPLATE = 'fleetgate-local-installer';
const FLEET_TEMPLATE = 'fleetgate-local-fleet';

let testStack: TestStack;
let stack: LocalStack;
let store: ProvisioningStore;
let installers: InstallerStore;
let api: string;

interface ClaimAnswer {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

async function postClaim(token: string | undefined, body: unknown): Promise<ClaimAnswer> {
  const response = await fetch(`${api}/claims`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}),
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return {
    status: response.status,
    body: (await response.json()) as Record<string, unknown>,
    headers: response.headers,
  };
}

async function tokenFor(installer: string): Promise<string> {
  if (!stack.httpApi) throw new Error('the local stack started without its HTTP API');
  return stack.httpApi.issueToken(installer);
}

async function allowlist(serial: string, extra: { batch?: string } = {}): Promise<void> {
  await store.createDevice(allowlistedDevice({ serial, ...extra }), {
    id: `import-${serial}`,
    actor: 'test',
  });
}

async function bind(installer: string, scope: 'SERIAL' | 'BATCH', value: string): Promise<void> {
  await installers.bind([{ installer, scope, value, boundBy: 'test', boundAt: new Date().toISOString() }]);
}

/** A device on the claim connection: CreateCertificateFromCsr, then RegisterThing through `template`. */
async function provision(claim: DeviceIdentity, serial: string, template: string) {
  if (!stack.mqtt) throw new Error('no MQTT endpoint');
  const client = await connect(stack.mqtt, claim, claimClientId(serial));
  try {
    const csrTopic = '$aws/certificates/create-from-csr/json';
    const provisionTopic = `$aws/provisioning-templates/${template}/provision/json`;
    await client.subscribeAsync([`${csrTopic}/+`, `${provisionTopic}/+`], { qos: 1 });
    const csr = await createCsr({ subject: { commonName: serial } });
    const created = nextMessage(client, [`${csrTopic}/accepted`, `${csrTopic}/rejected`]);
    await client.publishAsync(csrTopic, JSON.stringify({ certificateSigningRequest: csr.csrPem }), {
      qos: 1,
    });
    const certificate = JSON.parse((await created).payload.toString()) as Record<string, unknown>;
    const registered = nextMessage(client, [`${provisionTopic}/accepted`, `${provisionTopic}/rejected`]);
    await client.publishAsync(
      provisionTopic,
      JSON.stringify({
        certificateOwnershipToken: certificate.certificateOwnershipToken,
        parameters: { SerialNumber: serial },
      }),
      { qos: 1 },
    );
    const reply = await registered;
    return {
      accepted: reply.topic.endsWith('/accepted'),
      body: JSON.parse(reply.payload.toString()) as Record<string, unknown>,
      identity: {
        certificatePem: String(certificate.certificatePem),
        privateKeyPem: await exportPrivateKeyPem(csr.keys.privateKey),
      },
    };
  } finally {
    await client.endAsync();
  }
}

function claimOf(answer: ClaimAnswer): DeviceIdentity & { certificateId: string } {
  return {
    certificateId: String(answer.body.certificateId),
    certificatePem: String(answer.body.certificatePem),
    privateKeyPem: String(answer.body.privateKey),
  };
}

async function waitForState(serial: string, state: string, timeoutMs = 30_000): Promise<string | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const device = await store.getDevice(serial);
    if (device?.state === state || Date.now() > deadline) return device?.state;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

beforeAll(async () => {
  testStack = await startTestStack('trusted-user', { overrides: { INSTALLER_CLAIMS_PER_MINUTE: '3' } });
  ({ stack, store } = testStack);
  installers = new InstallerStore(store);
  api = stack.endpoints.httpApi ?? '';
  expect(api).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  expect(stack.declared.installerTemplateName).toBe(INSTALLER_TEMPLATE);
});

afterAll(async () => {
  await testStack?.stop();
});

describe('POST /claims: the JWT authorizer (API Gateway rules)', () => {
  it('answers 401 without a token, with a token of another key, issuer or audience, or an expired one', async () => {
    // Prepare: a serial the installer may install, so only the token decides.
    await allowlist('SN-TU-AUTH');
    await bind('alice', 'SERIAL', 'SN-TU-AUTH');
    const foreign = await generateKeyPair('RS256');
    const authorizer = stack.model.httpApiAuthorizers.installerJwt;
    if (!authorizer) throw new Error('installerJwt is not declared');
    const now = Math.floor(Date.now() / 1000);
    const signed = (claims: { iss?: string; aud?: string; exp?: number }, key = foreign.privateKey) =>
      new SignJWT({})
        .setProtectedHeader({ alg: 'RS256' })
        .setSubject('alice')
        .setIssuer(claims.iss ?? authorizer.issuer)
        .setAudience(claims.aud ?? authorizer.audience[0] ?? '')
        .setIssuedAt(now - 10)
        .setExpirationTime(claims.exp ?? now + 600)
        .sign(key);

    // Act
    const answers = await Promise.all([
      postClaim(undefined, { serial: 'SN-TU-AUTH' }),
      postClaim('not-a-jwt', { serial: 'SN-TU-AUTH' }),
      postClaim(await signed({}), { serial: 'SN-TU-AUTH' }),
      postClaim(await stack.httpApi?.issueToken('alice', { issuer: 'https://idp.example.com/' }), {
        serial: 'SN-TU-AUTH',
      }),
      postClaim(await stack.httpApi?.issueToken('alice', { audience: 'another-app' }), {
        serial: 'SN-TU-AUTH',
      }),
      postClaim(await stack.httpApi?.issueToken('alice', { ttlSeconds: -10 }), { serial: 'SN-TU-AUTH' }),
    ]);

    // Assess: API Gateway's own answer; the function never ran, so nothing was recorded.
    for (const answer of answers) {
      expect(answer.status).toBe(401);
      expect(answer.body).toEqual({ message: 'Unauthorized' });
    }
    const history = await store.history('SN-TU-AUTH');
    expect(history.map((entry) => entry.event)).toEqual(['CREATED']);
  });
});

describe('POST /claims: what the installer may ask for', () => {
  it('refuses with the reason: bad body (400), not bound (403), not allowlisted (404), quarantined (409)', async () => {
    // Prepare
    await allowlist('SN-TU-OTHER');
    await bind('bob', 'SERIAL', 'SN-TU-MISSING');
    await store.createDevice(
      allowlistedDevice({ serial: 'SN-TU-Q', state: 'QUARANTINED', previousState: 'ALLOWLISTED' }),
      { id: 'import-SN-TU-Q', actor: 'test' },
    );
    await bind('bob', 'SERIAL', 'SN-TU-Q');
    const token = await tokenFor('bob');

    // Act
    const badJson = await postClaim(token, '{"serial":');
    const extraField = await postClaim(token, { serial: 'SN-TU-OTHER', thingName: 'x' });
    const badSerial = await postClaim(token, { serial: 'no spaces allowed' });
    const notBound = await postClaim(token, { serial: 'SN-TU-OTHER' });
    const missing = await postClaim(token, { serial: 'SN-TU-MISSING' });
    const quarantined = await postClaim(token, { serial: 'SN-TU-Q' });

    // Assess
    expect(badJson).toMatchObject({
      status: 400,
      body: { error: 'INVALID_REQUEST', message: 'body: must be JSON' },
    });
    expect(extraField.status).toBe(400);
    expect(String(extraField.body.message)).toContain('body');
    expect(badSerial).toMatchObject({ status: 400, body: { error: 'INVALID_SERIAL' } });
    // Not bound: the same answer whether or not the serial exists (no allowlist probing).
    expect(notBound).toMatchObject({ status: 403, body: { error: 'INSTALLER_NOT_BOUND' } });
    expect(missing).toMatchObject({ status: 404, body: { error: 'SERIAL_NOT_ALLOWLISTED' } });
    expect(quarantined).toMatchObject({ status: 409, body: { error: 'DEVICE_QUARANTINED' } });
    expect(notBound.headers.get('cache-control')).toBe('no-store');
  });

  it('binds by batch, and limits each installer per minute (429 with Retry-After) under concurrency', async () => {
    // Prepare: five serials of one batch; carol is bound to the batch; the stack allows 3 a minute.
    const serials = ['SN-TU-B1', 'SN-TU-B2', 'SN-TU-B3', 'SN-TU-B4', 'SN-TU-B5'];
    for (const serial of serials) await allowlist(serial, { batch: 'BATCH-TU' });
    await bind('carol', 'BATCH', 'BATCH-TU');
    const token = await tokenFor('carol');

    // Act: all five at once.
    const answers = await Promise.all(serials.map((serial) => postClaim(token, { serial })));

    // Assess: at most 3 per minute bucket (two buckets if the minute turns mid-test), the rest 429.
    const issued = answers.filter((answer) => answer.status === 201);
    const limited = answers.filter((answer) => answer.status === 429);
    expect(issued.length + limited.length).toBe(5);
    expect(issued.length).toBeGreaterThanOrEqual(3);
    expect(issued.length).toBeLessThanOrEqual(4);
    for (const answer of limited) {
      expect(answer.body.error).toBe('RATE_EXCEEDED');
      expect(Number(answer.headers.get('retry-after'))).toBeGreaterThan(0);
    }
    // Every issued claim is recorded once, with who asked, in the device's history.
    for (const answer of issued) {
      const record = await installers.temporaryClaim(String(answer.body.certificateId));
      expect(record).toMatchObject({
        installer: 'carol',
        serial: answer.body.serial,
        templateName: INSTALLER_TEMPLATE,
      });
      const history = await store.history(String(answer.body.serial));
      expect(history.filter((entry) => entry.event === 'TEMPORARY_CLAIM_ISSUED')).toHaveLength(1);
    }
  });
});

describe('a device provisions with its temporary claim (MQTT, the real hook)', () => {
  it('provisions the claimed serial; the same claim for another serial is denied; the device goes ACTIVE', async () => {
    // Prepare: dave may install two serials and asks for a claim for the first only.
    await allowlist('SN-TU-D1');
    await allowlist('SN-TU-D2');
    await bind('dave', 'SERIAL', 'SN-TU-D1');
    await bind('dave', 'SERIAL', 'SN-TU-D2');
    const answer = await postClaim(await tokenFor('dave'), { serial: 'SN-TU-D1' });
    expect(answer.status, JSON.stringify(answer.body)).toBe(201);
    expect(Date.parse(String(answer.body.expiration)) - Date.now()).toBeLessThanOrEqual(300_000);
    const claim = claimOf(answer);

    // Act
    const other = await provision(claim, 'SN-TU-D2', INSTALLER_TEMPLATE);
    const own = await provision(claim, 'SN-TU-D1', INSTALLER_TEMPLATE);

    // Assess
    expect(other.accepted).toBe(false);
    expect(other.body).toMatchObject({ statusCode: 403, errorCode: 'AccessDenied' });
    expect((await store.getDevice('SN-TU-D2'))?.state).toBe('ALLOWLISTED');
    expect(own.accepted, JSON.stringify(own.body)).toBe(true);
    expect(own.body.thingName).toBe('SN-TU-D1');
    const device = await store.getDevice('SN-TU-D1');
    expect(device?.state).toBe('PROVISIONING');
    const provisioned = (await store.history('SN-TU-D1')).find((entry) => entry.event === 'PROVISION');
    expect(provisioned?.detail).toMatchObject({ installer: 'dave', claimCertificateId: claim.certificateId });

    // The device's own certificate connects: the lifecycle flow makes it ACTIVE, as for every flow.
    if (!stack.mqtt) throw new Error('no MQTT endpoint');
    const client = await connect(stack.mqtt, own.identity, 'SN-TU-D1');
    await client.endAsync();
    expect(await waitForState('SN-TU-D1', 'ACTIVE')).toBe('ACTIVE');
  });

  it('denies an expired temporary claim, a claim nobody recorded, and a product claim through the trusted-user template', async () => {
    // Prepare: a temporary claim recorded as expired (the store's record is what the hook trusts;
    // the emulator's own expiry at the handshake is tested in iot-emulator-provisioning-claim.test.ts).
    await allowlist('SN-TU-E1');
    await bind('erin', 'SERIAL', 'SN-TU-E1');
    const issued = claimOf(await postClaim(await tokenFor('erin'), { serial: 'SN-TU-E1' }));
    await store.db.update({
      Key: keys.temporaryClaim(issued.certificateId),
      UpdateExpression: 'SET expiration = :past',
      ExpressionAttributeValues: { ':past': new Date(Date.now() - 1000).toISOString() },
    });
    // A temporary claim created behind the API's back: never recorded.
    const unrecorded = await testStack.emulator.devices.issueProvisioningClaim(INSTALLER_TEMPLATE);
    // The product line's claim certificate (provisioning by claim), used through the wrong template.
    const productCsr = await createCsr({ subject: { commonName: 'product claim' } });
    const product = await testStack.iot.send(
      new CreateCertificateFromCsrCommand({
        certificateSigningRequest: productCsr.csrPem,
        setAsActive: true,
      }),
    );
    await testStack.iot.send(
      new AttachPolicyCommand({ policyName: 'fleetgate-local-claim', target: product.certificateArn }),
    );

    // Act
    const expired = await provision(issued, 'SN-TU-E1', INSTALLER_TEMPLATE);
    const notRecorded = await provision(
      { certificatePem: unrecorded.record.certificatePem, privateKeyPem: unrecorded.privateKeyPem },
      'SN-TU-E1',
      INSTALLER_TEMPLATE,
    );
    // Over MQTT the product claim's own policy already refuses the trusted-user template's topics
    // (SUBACK failure); the hook refuses it too, asked directly as IoT would ask it.
    const productOverMqtt = await provision(
      {
        certificatePem: product.certificatePem ?? '',
        privateKeyPem: await exportPrivateKeyPem(productCsr.keys.privateKey),
      },
      'SN-TU-E1',
      INSTALLER_TEMPLATE,
    ).catch((error: unknown) => ({ accepted: false, error: String(error) }));
    const hookAnswer = await stack.invoke('preProvisionHook', {
      claimCertificateId: product.certificateId,
      certificateId: unrecorded.record.certificateId,
      certificatePem: unrecorded.record.certificatePem,
      templateArn: `arn:aws:iot:us-east-1:123456789012:provisioningtemplate/${INSTALLER_TEMPLATE}`,
      clientId: claimClientId('SN-TU-E1'),
      parameters: { SerialNumber: 'SN-TU-E1' },
    });

    // Assess: all denied; the device never left ALLOWLISTED.
    expect(productOverMqtt.accepted).toBe(false);
    expect(hookAnswer).toMatchObject({ allowProvisioning: false });
    for (const attempt of [expired, notRecorded]) {
      expect(attempt.accepted).toBe(false);
      expect(attempt.body).toMatchObject({ statusCode: 403, errorCode: 'AccessDenied' });
    }
    expect((await store.getDevice('SN-TU-E1'))?.state).toBe('ALLOWLISTED');
  });

  it('a temporary claim does not work through the claim template (the emulator refuses it, as AWS does)', async () => {
    // Prepare
    await allowlist('SN-TU-F1');
    await bind('frank', 'SERIAL', 'SN-TU-F1');
    const claim = claimOf(await postClaim(await tokenFor('frank'), { serial: 'SN-TU-F1' }));

    // Act
    const attempt = await provision(claim, 'SN-TU-F1', FLEET_TEMPLATE).catch((error: unknown) => ({
      accepted: false,
      error: String(error),
    }));

    // Assess: refused (by the claim's topic scope or RegisterThing's template check), nothing bound.
    expect(attempt.accepted).toBe(false);
    expect((await store.getDevice('SN-TU-F1'))?.state).toBe('ALLOWLISTED');
  });
});
