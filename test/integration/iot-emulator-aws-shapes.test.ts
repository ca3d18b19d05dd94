/**
 * The IoT emulator answers with AWS's shapes and rules, checked against the AWS IoT API reference:
 * CreateKeysAndCertificate's key pair, DescribeEndpoint, RegisterCACertificate's registration-code
 * verification, tags on CA certificates, CreateThing's conflict; the operations a provisioning backend and its operators use
 * (ListThingPrincipalsV2, ListPrincipalThingsV2, ListProvisioningTemplates, GetRegistrationCode,
 * GetEffectivePolicies); and every other operation of the service model failing as not emulated.
 */
import { createPrivateKey, createPublicKey, createSign, createVerify } from 'node:crypto';
import {
  AddThingToThingGroupCommand,
  AttachPolicyCommand,
  AttachPrincipalPolicyCommand,
  AttachThingPrincipalCommand,
  CertificateValidationException,
  CreateCertificateFromCsrCommand,
  CreateKeysAndCertificateCommand,
  CreatePolicyCommand,
  CreateProvisioningTemplateCommand,
  CreateThingCommand,
  CreateThingGroupCommand,
  DeletePolicyVersionCommand,
  DeleteRegistrationCodeCommand,
  DescribeEndpointCommand,
  GetEffectivePoliciesCommand,
  GetRegistrationCodeCommand,
  InvalidRequestException,
  IoTClient,
  ListPolicyVersionsCommand,
  ListPrincipalThingsV2Command,
  ListProvisioningTemplatesCommand,
  ListTagsForResourceCommand,
  ListThingPrincipalsV2Command,
  ListThingTypesCommand,
  RegisterCACertificateCommand,
  RegistrationCodeValidationException,
  ResourceAlreadyExistsException,
  SearchIndexCommand,
  TagResourceCommand,
  UntagResourceCommand,
} from '@aws-sdk/client-iot';
import { IoTDataPlaneClient, ListRetainedMessagesCommand } from '@aws-sdk/client-iot-data-plane';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifiedCaCertificate } from '../../local/ca-registration';
import { type IotEmulator, startIotEmulator } from '../../local/iot-emulator';
import { type MqttBroker, startMqttBroker } from '../../local/mqtt/broker';
import { renderPolicyDocument } from '../../local/mqtt/policies';
import {
  createCertificateAuthority,
  createCsr,
  exportPrivateKeyPem,
  generateKeyPair,
  issueCertificate,
  parseCertificate,
} from '../../local/pki';
import { connect, nextMessage } from '../support/mqtt';

const ACCOUNT = '123456789012';
const REGION = 'us-east-1';

let emulator: IotEmulator;
let broker: MqttBroker;
let iot: IoTClient;

beforeAll(async () => {
  emulator = await startIotEmulator({ accountId: ACCOUNT, region: REGION });
  broker = await startMqttBroker({ emulator });
  iot = new IoTClient({ ...emulator.clientConfig(), maxAttempts: 3 });
});

afterAll(async () => {
  iot?.destroy();
  await broker?.stop();
  await emulator?.stop();
});

/** The key is RSA with a 2048-bit modulus, and signs what the certificate's public key verifies. */
function expectRsa2048Pair(privateKeyPem: string, certificatePem: string) {
  const key = createPrivateKey(privateKeyPem);
  expect(key.asymmetricKeyType).toBe('rsa');
  expect(key.asymmetricKeyDetails?.modulusLength).toBe(2048);
  const signature = createSign('sha256').update('fleetgate').sign(key);
  const certificateKey = createPublicKey(parseCertificate(certificatePem).toString('pem'));
  expect(createVerify('sha256').update('fleetgate').verify(certificateKey, signature)).toBe(true);
}

describe('CreateKeysAndCertificate: "a 2048-bit RSA key pair" (API reference)', () => {
  it('control plane: PKCS#1 private key (BEGIN RSA PRIVATE KEY), SPKI public key of the certificate', async () => {
    // Act
    const out = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: false }));
    // Assess
    expect(out.keyPair?.PrivateKey).toMatch(/^-----BEGIN RSA PRIVATE KEY-----\n/);
    expect(out.keyPair?.PublicKey).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    expectRsa2048Pair(out.keyPair?.PrivateKey ?? '', out.certificatePem ?? '');
    const fromPublic = createPublicKey(out.keyPair?.PublicKey ?? '').export({ type: 'spki', format: 'der' });
    const fromCertificate = createPublicKey(
      parseCertificate(out.certificatePem ?? '').toString('pem'),
    ).export({
      type: 'spki',
      format: 'der',
    });
    expect(Buffer.compare(fromPublic, fromCertificate)).toBe(0);
  });

  it('Fleet Provisioning MQTT API ($aws/certificates/create/json): privateKey is an RSA 2048 key of the certificate', async () => {
    // Prepare: a claim certificate with the project's claim policy.
    await iot.send(
      new CreatePolicyCommand({
        policyName: 'shapes-claim',
        policyDocument: renderPolicyDocument('claim-policy.json', {
          region: REGION,
          accountId: ACCOUNT,
          parameters: { ProvisioningTemplateName: 'shapes' },
        }),
      }),
    );
    const csr = await createCsr({ subject: { commonName: 'claim' } });
    const claim = await iot.send(
      new CreateCertificateFromCsrCommand({ certificateSigningRequest: csr.csrPem, setAsActive: true }),
    );
    await iot.send(new AttachPolicyCommand({ policyName: 'shapes-claim', target: claim.certificateArn }));
    const client = await connect(
      broker,
      {
        certificatePem: claim.certificatePem ?? '',
        privateKeyPem: await exportPrivateKeyPem(csr.keys.privateKey),
      },
      'claim.shapes-1',
      5,
    );
    await client.subscribeAsync('$aws/certificates/create/json/+', { qos: 1 });
    const reply = nextMessage(client, ['$aws/certificates/create/json/accepted']);
    // Act
    await client.publishAsync('$aws/certificates/create/json', '{}', { qos: 1 });
    const body = JSON.parse((await reply).payload.toString()) as {
      privateKey: string;
      certificatePem: string;
    };
    await client.endAsync();
    // Assess
    expect(body.privateKey).toMatch(/^-----BEGIN RSA PRIVATE KEY-----\n/);
    expectRsa2048Pair(body.privateKey, body.certificatePem);
  });
});

describe('DescribeEndpoint', () => {
  it('iot:Data-ATS is the local MQTT endpoint, with its port: a client connects to mqtts://<endpointAddress>', async () => {
    // Prepare
    const csr = await createCsr({ subject: { commonName: 'endpoint' } });
    const cert = await iot.send(
      new CreateCertificateFromCsrCommand({ certificateSigningRequest: csr.csrPem, setAsActive: true }),
    );
    await iot.send(
      new CreatePolicyCommand({
        policyName: 'shapes-connect',
        policyDocument: JSON.stringify({
          Statement: [{ Effect: 'Allow', Action: 'iot:Connect', Resource: '*' }],
        }),
      }),
    );
    await iot.send(new AttachPolicyCommand({ policyName: 'shapes-connect', target: cert.certificateArn }));
    // Act
    const { endpointAddress } = await iot.send(new DescribeEndpointCommand({ endpointType: 'iot:Data-ATS' }));
    const client = await mqtt.connectAsync(`mqtts://${endpointAddress}`, {
      clientId: 'endpoint-1',
      protocolVersion: 5,
      reconnectPeriod: 0,
      ca: broker.caPem,
      cert: cert.certificatePem,
      key: await exportPrivateKeyPem(csr.keys.privateKey),
    });
    await client.endAsync();
    // Assess
    expect(endpointAddress).toBe(`127.0.0.1:${broker.port}`);
  });

  it('iot:CredentialProvider and iot:Jobs are not emulated (501), an unknown type is InvalidRequestException', async () => {
    for (const endpointType of ['iot:CredentialProvider', 'iot:Jobs']) {
      await expect(iot.send(new DescribeEndpointCommand({ endpointType }))).rejects.toMatchObject({
        name: 'NotEmulatedException',
        message: expect.stringContaining(endpointType),
      });
    }
    await expect(iot.send(new DescribeEndpointCommand({ endpointType: 'iot:Other' }))).rejects.toBeInstanceOf(
      InvalidRequestException,
    );
  });
});

describe('RegisterCACertificate: the registration code (DEFAULT mode)', () => {
  it('refuses a missing verification certificate, a wrong Common Name, a wrong signer; accepts the registration code', async () => {
    // Prepare
    const ca = await createCertificateAuthority({ subject: { commonName: 'Shapes CA' } });
    const { registrationCode } = await iot.send(new GetRegistrationCodeCommand({}));
    const other = await createCertificateAuthority({ subject: { commonName: 'Other CA' } });
    const verification = (issuer: typeof ca, commonName: string) =>
      generateKeyPair().then((keys) =>
        issueCertificate(issuer, { publicKey: keys.publicKey, subject: { commonName }, validityDays: 1 }),
      );
    const wrongName = await verification(ca, 'not-the-code');
    const wrongSigner = await verification(other, registrationCode ?? '');
    const right = await verification(ca, registrationCode ?? '');
    const register = (verificationCertificate?: string) =>
      iot.send(
        new RegisterCACertificateCommand({
          caCertificate: ca.certificatePem,
          ...(verificationCertificate ? { verificationCertificate } : {}),
        }),
      );
    // Act + Assess
    await expect(register()).rejects.toBeInstanceOf(InvalidRequestException);
    await expect(register(wrongName.certificatePem)).rejects.toBeInstanceOf(
      RegistrationCodeValidationException,
    );
    await expect(register(wrongSigner.certificatePem)).rejects.toBeInstanceOf(CertificateValidationException);
    const registered = await register(right.certificatePem);
    expect(registered.certificateId).toMatch(/^[0-9a-f]{64}$/);
    expect(registrationCode).toMatch(/^[0-9a-f]{64}$/);
  });

  it('GetRegistrationCode is the same code until DeleteRegistrationCode; a verification made with the old code is refused', async () => {
    // Prepare
    const first = await iot.send(new GetRegistrationCodeCommand({}));
    const again = await iot.send(new GetRegistrationCodeCommand({}));
    const ca = await createCertificateAuthority({ subject: { commonName: 'Rotated code CA' } });
    const stale = await verifiedCaCertificate(iot, ca);
    // Act
    await iot.send(new DeleteRegistrationCodeCommand({}));
    const second = await iot.send(new GetRegistrationCodeCommand({}));
    // Assess
    expect(again.registrationCode).toBe(first.registrationCode);
    expect(second.registrationCode).not.toBe(first.registrationCode);
    await expect(iot.send(new RegisterCACertificateCommand(stale))).rejects.toBeInstanceOf(
      RegistrationCodeValidationException,
    );
  });
});

describe('tags on CA certificates (API reference: Tag, TagResource, UntagResource, ListTagsForResource)', () => {
  it('RegisterCACertificate keeps its tags; TagResource adds, UntagResource removes; ListTagsForResource lists them', async () => {
    // Prepare
    const ca = await createCertificateAuthority({ subject: { commonName: 'Tagged CA' } });
    const registered = await iot.send(
      new RegisterCACertificateCommand({
        ...(await verifiedCaCertificate(iot, ca)),
        tags: [{ Key: 'fleetgate:trusted', Value: 'true' }],
      }),
    );
    const resourceArn = registered.certificateArn ?? '';
    const tags = async () => (await iot.send(new ListTagsForResourceCommand({ resourceArn }))).tags;
    // Act + Assess
    expect(await tags()).toEqual([{ Key: 'fleetgate:trusted', Value: 'true' }]);
    await iot.send(new TagResourceCommand({ resourceArn, tags: [{ Key: 'owner', Value: 'factory-7' }] }));
    expect(await tags()).toEqual([
      { Key: 'fleetgate:trusted', Value: 'true' },
      { Key: 'owner', Value: 'factory-7' },
    ]);
    await iot.send(new UntagResourceCommand({ resourceArn, tagKeys: ['fleetgate:trusted'] }));
    expect(await tags()).toEqual([{ Key: 'owner', Value: 'factory-7' }]);
  });

  it('refuses a reserved aws: key, a key over 128 characters and a 51st tag, and registers nothing on a bad tag', async () => {
    // Prepare
    const ca = await createCertificateAuthority({ subject: { commonName: 'Badly tagged CA' } });
    const proof = await verifiedCaCertificate(iot, ca);
    const register = (tags: Array<{ Key: string; Value: string }>) =>
      iot.send(new RegisterCACertificateCommand({ ...proof, tags }));
    // Act + Assess
    await expect(register([{ Key: 'aws:owner', Value: 'x' }])).rejects.toBeInstanceOf(
      InvalidRequestException,
    );
    await expect(register([{ Key: 'k'.repeat(129), Value: 'x' }])).rejects.toBeInstanceOf(
      InvalidRequestException,
    );
    const many = Array.from({ length: 51 }, (_, i) => ({ Key: `k${i}`, Value: 'v' }));
    await expect(register(many)).rejects.toMatchObject({ name: 'LimitExceededException' });
    const registered = await register([{ Key: 'ok', Value: '' }]);
    expect(registered.certificateId).toBe(ca.certificateId);
  });

  it('tags of a thing, a policy or a template are not emulated (NotEmulatedException), an unknown CA is ResourceNotFoundException', async () => {
    // Act
    const onThing = await iot
      .send(new ListTagsForResourceCommand({ resourceArn: `arn:aws:iot:${REGION}:${ACCOUNT}:thing/dev-1` }))
      .catch((e: unknown) => e);
    const unknownCa = await iot
      .send(
        new ListTagsForResourceCommand({
          resourceArn: `arn:aws:iot:${REGION}:${ACCOUNT}:cacert/${'0'.repeat(64)}`,
        }),
      )
      .catch((e: unknown) => e);
    // Assess
    expect(onThing).toMatchObject({
      name: 'NotEmulatedException',
      message: expect.stringContaining('thing'),
    });
    expect(unknownCa).toMatchObject({ name: 'ResourceNotFoundException' });
  });
});

describe('CreateThing', () => {
  it('is idempotent for the same definition; a conflict names what differs (thing type, attribute values)', async () => {
    // Prepare
    await iot.send(
      new CreateThingCommand({
        thingName: 'shapes-thing',
        attributePayload: { attributes: { batch: 'B1' } },
      }),
    );
    await iot.send(
      new CreateThingCommand({
        thingName: 'shapes-thing',
        attributePayload: { attributes: { batch: 'B1' } },
      }),
    );
    // Act
    const conflict = await iot
      .send(
        new CreateThingCommand({
          thingName: 'shapes-thing',
          attributePayload: { attributes: { batch: 'B2' } },
        }),
      )
      .catch((error: unknown) => error as Error);
    const typeConflict = await iot
      .send(
        new CreateThingCommand({
          thingName: 'shapes-thing',
          thingTypeName: 'sensor',
          attributePayload: { attributes: { batch: 'B1' } },
        }),
      )
      .catch((error: unknown) => error as Error);
    // Assess
    expect(conflict).toBeInstanceOf(ResourceAlreadyExistsException);
    expect((conflict as Error).message).toBe(
      'Thing shapes-thing already exists with a different attributes (batch: existing "B1", requested "B2")',
    );
    expect((typeConflict as Error).message).toContain('thingTypeName (existing: none, requested: sensor)');
  });
});

describe('operations a provisioning backend and its operators use', () => {
  it('ListThingPrincipalsV2 and ListPrincipalThingsV2 give each attachment with its type, and filter on it', async () => {
    // Prepare
    const exclusive = await iot.send(new CreateKeysAndCertificateCommand({}));
    const shared = await iot.send(new CreateKeysAndCertificateCommand({}));
    await iot.send(new CreateThingCommand({ thingName: 'v2-thing' }));
    await iot.send(
      new AttachThingPrincipalCommand({
        thingName: 'v2-thing',
        principal: exclusive.certificateArn,
        thingPrincipalType: 'EXCLUSIVE_THING',
      }),
    );
    await iot.send(
      new AttachThingPrincipalCommand({ thingName: 'v2-thing', principal: shared.certificateArn }),
    );
    // Act
    const all = await iot.send(new ListThingPrincipalsV2Command({ thingName: 'v2-thing' }));
    const onlyExclusive = await iot.send(
      new ListThingPrincipalsV2Command({ thingName: 'v2-thing', thingPrincipalType: 'EXCLUSIVE_THING' }),
    );
    const things = await iot.send(new ListPrincipalThingsV2Command({ principal: exclusive.certificateArn }));
    // Assess
    expect(all.thingPrincipalObjects).toEqual([
      { principal: exclusive.certificateArn, thingPrincipalType: 'EXCLUSIVE_THING' },
      { principal: shared.certificateArn, thingPrincipalType: 'NON_EXCLUSIVE_THING' },
    ]);
    expect(onlyExclusive.thingPrincipalObjects).toEqual([
      { principal: exclusive.certificateArn, thingPrincipalType: 'EXCLUSIVE_THING' },
    ]);
    expect(things.principalThingObjects).toEqual([
      { thingName: 'v2-thing', thingPrincipalType: 'EXCLUSIVE_THING' },
    ]);
  });

  it('ListProvisioningTemplates lists the templates with their summary, paged', async () => {
    // Prepare
    for (const name of ['shapes-a', 'shapes-b']) {
      await iot.send(
        new CreateProvisioningTemplateCommand({
          templateName: name,
          description: `template ${name}`,
          templateBody: JSON.stringify({ Resources: {} }),
          provisioningRoleArn: `arn:aws:iam::${ACCOUNT}:role/provisioning`,
          enabled: name === 'shapes-a',
        }),
      );
    }
    // Act
    const first = await iot.send(new ListProvisioningTemplatesCommand({ maxResults: 1 }));
    const second = await iot.send(
      new ListProvisioningTemplatesCommand({ maxResults: 1, nextToken: first.nextToken }),
    );
    // Assess
    expect(first.templates?.[0]).toMatchObject({
      templateName: 'shapes-a',
      templateArn: `arn:aws:iot:${REGION}:${ACCOUNT}:provisioningtemplate/shapes-a`,
      description: 'template shapes-a',
      enabled: true,
      type: 'FLEET_PROVISIONING',
      creationDate: expect.any(Date),
    });
    expect(second.templates?.map((t) => [t.templateName, t.enabled])).toEqual([['shapes-b', false]]);
    expect(second.nextToken).toBeUndefined();
  });

  it("GetEffectivePolicies: the certificate's policies and those of the thing's groups", async () => {
    // Prepare
    const cert = await iot.send(new CreateKeysAndCertificateCommand({}));
    const document = JSON.stringify({
      Statement: [{ Effect: 'Allow', Action: 'iot:Connect', Resource: '*' }],
    });
    await iot.send(new CreatePolicyCommand({ policyName: 'eff-cert', policyDocument: document }));
    await iot.send(new CreatePolicyCommand({ policyName: 'eff-group', policyDocument: document }));
    await iot.send(new AttachPolicyCommand({ policyName: 'eff-cert', target: cert.certificateArn }));
    const group = await iot.send(new CreateThingGroupCommand({ thingGroupName: 'eff-group' }));
    await iot.send(new AttachPolicyCommand({ policyName: 'eff-group', target: group.thingGroupArn }));
    await iot.send(new CreateThingCommand({ thingName: 'eff-thing' }));
    await iot.send(new AddThingToThingGroupCommand({ thingName: 'eff-thing', thingGroupName: 'eff-group' }));
    // Act
    const certOnly = await iot.send(new GetEffectivePoliciesCommand({ principal: cert.certificateArn }));
    const withThing = await iot.send(
      new GetEffectivePoliciesCommand({ principal: cert.certificateArn, thingName: 'eff-thing' }),
    );
    // Assess
    expect(certOnly.effectivePolicies?.map((p) => p.policyName)).toEqual(['eff-cert']);
    expect(withThing.effectivePolicies).toEqual([
      {
        policyName: 'eff-cert',
        policyArn: `arn:aws:iot:${REGION}:${ACCOUNT}:policy/eff-cert`,
        policyDocument: document,
      },
      {
        policyName: 'eff-group',
        policyArn: `arn:aws:iot:${REGION}:${ACCOUNT}:policy/eff-group`,
        policyDocument: document,
      },
    ]);
  });
});

describe('policy versions (one per policy here: CreatePolicyVersion is not emulated)', () => {
  it('ListPolicyVersions lists version 1 as the default; DeletePolicyVersion refuses the default (DeleteConflictException) and an unknown version (ResourceNotFoundException)', async () => {
    // Prepare
    const document = JSON.stringify({
      Statement: [{ Effect: 'Allow', Action: 'iot:Connect', Resource: '*' }],
    });
    await iot.send(new CreatePolicyCommand({ policyName: 'versions-1', policyDocument: document }));
    // Act
    const listed = await iot.send(new ListPolicyVersionsCommand({ policyName: 'versions-1' }));
    const deleteDefault = iot.send(
      new DeletePolicyVersionCommand({ policyName: 'versions-1', policyVersionId: '1' }),
    );
    const deleteUnknown = iot.send(
      new DeletePolicyVersionCommand({ policyName: 'versions-1', policyVersionId: '7' }),
    );
    const unknownPolicy = iot.send(new ListPolicyVersionsCommand({ policyName: 'versions-none' }));
    // Assess
    expect(listed.policyVersions).toEqual([
      { versionId: '1', isDefaultVersion: true, createDate: expect.any(Date) },
    ]);
    await expect(deleteDefault).rejects.toMatchObject({ name: 'DeleteConflictException' });
    await expect(deleteUnknown).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
    await expect(unknownPolicy).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
  });
});

describe('operations the emulator does not emulate', () => {
  it.each([
    [
      'AttachPrincipalPolicy',
      () => iot.send(new AttachPrincipalPolicyCommand({ policyName: 'p', principal: 'x' })),
    ],
    ['ListThingTypes', () => iot.send(new ListThingTypesCommand({}))],
    ['SearchIndex', () => iot.send(new SearchIndexCommand({ queryString: 'thingName:*' }))],
    [
      'ListRetainedMessages',
      () =>
        new IoTDataPlaneClient({ ...emulator.clientConfig(), maxAttempts: 3 }).send(
          new ListRetainedMessagesCommand({}),
        ),
    ],
  ] as const)(
    '%s fails with NotEmulatedException (HTTP 501, not retried) naming the operation',
    async (operation, call) => {
      // Act
      const error = (await call().catch((e: unknown) => e)) as {
        name: string;
        message: string;
        $metadata: { httpStatusCode?: number; attempts?: number };
      };
      // Assess
      expect(error.name).toBe('NotEmulatedException');
      expect(error.message).toContain(`${operation} is an AWS IoT`);
      expect(error.message).toContain('does not emulate');
      expect(error.$metadata.httpStatusCode).toBe(501);
      expect(error.$metadata.attempts).toBe(1);
      expect(emulator.callCount(operation, 'NotEmulatedException')).toBe(1);
    },
  );
});
