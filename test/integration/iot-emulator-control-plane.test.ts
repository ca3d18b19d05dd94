import {
  AddThingToThingGroupCommand,
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CertificateStateException,
  CertificateValidationException,
  CreateCertificateFromCsrCommand,
  CreateKeysAndCertificateCommand,
  CreatePolicyCommand,
  CreateProvisioningTemplateCommand,
  CreateThingCommand,
  CreateThingGroupCommand,
  DeleteCertificateCommand,
  DeleteConflictException,
  DeletePolicyCommand,
  DeleteThingCommand,
  DeleteThingGroupCommand,
  DescribeCACertificateCommand,
  DescribeCertificateCommand,
  DescribeEndpointCommand,
  DescribeEventConfigurationsCommand,
  DescribeProvisioningTemplateCommand,
  DescribeThingCommand,
  DescribeThingGroupCommand,
  DetachPolicyCommand,
  DetachThingPrincipalCommand,
  GetPolicyCommand,
  InvalidRequestException,
  IoTClient,
  ListAttachedPoliciesCommand,
  ListCACertificatesCommand,
  ListCertificatesByCACommand,
  ListCertificatesCommand,
  ListPrincipalThingsCommand,
  ListTargetsForPolicyCommand,
  ListThingGroupsForThingCommand,
  ListThingPrincipalsCommand,
  ListThingsCommand,
  ListThingsInThingGroupCommand,
  MalformedPolicyException,
  RegisterCACertificateCommand,
  type RegisterCACertificateCommandInput,
  RegisterCertificateCommand,
  RegisterCertificateWithoutCACommand,
  RemoveThingFromThingGroupCommand,
  ResourceAlreadyExistsException,
  ResourceNotFoundException,
  UpdateCACertificateCommand,
  UpdateCertificateCommand,
  UpdateEventConfigurationsCommand,
  UpdateThingCommand,
  VersionConflictException,
} from '@aws-sdk/client-iot';
import { IoTDataPlaneClient, PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifiedCaCertificate } from '../../local/ca-registration';
import { type IotEmulator, startIotEmulator } from '../../local/iot-emulator';
import {
  type CertificateAuthority,
  createCertificateAuthority,
  createCsr,
  createDeviceCertificate,
  isSignedBy,
  parseCertificate,
} from '../../local/pki';

const POLICY = JSON.stringify({
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Action: 'iot:Connect', Resource: '*' }],
});

let emulator: IotEmulator;
let iot: IoTClient;
let ca: CertificateAuthority;

beforeAll(async () => {
  emulator = await startIotEmulator({ accountId: '111122223333', region: 'eu-west-1' });
  iot = new IoTClient({ ...emulator.clientConfig(), maxAttempts: 1 });
  ca = await createCertificateAuthority({ subject: { commonName: 'Factory CA', organization: 'Acme' } });
});

afterAll(async () => {
  iot.destroy();
  await emulator.stop();
});

async function registerActiveCa(authority = ca) {
  return registerCaCertificate({
    ...(await verifiedCaCertificate(iot, authority)),
    setAsActive: true,
    allowAutoRegistration: true,
  });
}

async function deviceCert(commonName: string, authority = ca) {
  return createDeviceCertificate(authority, { subject: { commonName } });
}

const registerCaCertificate = (input: RegisterCACertificateCommandInput) =>
  iot.send(new RegisterCACertificateCommand(input));

/** RegisterCertificate of `device` with the registered CA's PEM. */
function registerWithCa(device: { certificatePem: string }) {
  return iot.send(
    new RegisterCertificateCommand({
      certificatePem: device.certificatePem,
      caCertificatePem: ca.certificatePem,
    }),
  );
}

describe('CA certificates', () => {
  it('registers, describes, updates and lists a CA with AWS field names and ARNs', async () => {
    // Act
    const registered = await registerActiveCa();
    // Assess
    expect(registered.certificateId).toBe(ca.certificateId);
    expect(registered.certificateArn).toBe(`arn:aws:iot:eu-west-1:111122223333:cacert/${ca.certificateId}`);
    const { certificateDescription: d } = await iot.send(
      new DescribeCACertificateCommand({ certificateId: ca.certificateId }),
    );
    expect(d).toMatchObject({
      certificateId: ca.certificateId,
      status: 'ACTIVE',
      autoRegistrationStatus: 'ENABLE',
      ownedBy: '111122223333',
      certificateMode: 'DEFAULT',
      certificatePem: ca.certificatePem,
    });
    expect(d?.creationDate).toBeInstanceOf(Date);
    expect(d?.validity?.notAfter?.toISOString()).toBe(ca.certificate.notAfter.toISOString());

    await iot.send(
      new UpdateCACertificateCommand({
        certificateId: ca.certificateId,
        newAutoRegistrationStatus: 'DISABLE',
        registrationConfig: {
          templateBody: '{"Resources":{}}',
          roleArn: 'arn:aws:iam::111122223333:role/jitp',
        },
      }),
    );
    const after = await iot.send(new DescribeCACertificateCommand({ certificateId: ca.certificateId }));
    expect(after.certificateDescription?.autoRegistrationStatus).toBe('DISABLE');
    expect(after.registrationConfig?.roleArn).toBe('arn:aws:iam::111122223333:role/jitp');
    await iot.send(
      new UpdateCACertificateCommand({
        certificateId: ca.certificateId,
        newAutoRegistrationStatus: 'ENABLE',
        removeAutoRegistration: true,
      }),
    );
    const list = await iot.send(new ListCACertificatesCommand({}));
    expect(list.certificates?.map((c) => c.certificateId)).toContain(ca.certificateId);
  });

  it('refuses a duplicate CA, a non-CA certificate and bad update values', async () => {
    await expect(registerActiveCa()).rejects.toBeInstanceOf(ResourceAlreadyExistsException);
    const leaf = await deviceCert('not-a-ca');
    await expect(registerCaCertificate({ caCertificate: leaf.certificatePem })).rejects.toBeInstanceOf(
      CertificateValidationException,
    );
    await expect(
      iot.send(
        new UpdateCACertificateCommand({ certificateId: ca.certificateId, newStatus: 'MAYBE' as 'ACTIVE' }),
      ),
    ).rejects.toBeInstanceOf(InvalidRequestException);
    await expect(
      iot.send(new DescribeCACertificateCommand({ certificateId: 'f'.repeat(64) })),
    ).rejects.toBeInstanceOf(ResourceNotFoundException);
  });

  it('accepts SNI_ONLY CAs without a verification certificate (and refuses one with it); verifies the signer of a DEFAULT one', async () => {
    const sniCa = await createCertificateAuthority({ subject: 'CN=SNI CA' });
    const verification = await deviceCert('registration-code', sniCa);
    await expect(
      registerCaCertificate({
        caCertificate: sniCa.certificatePem,
        verificationCertificate: verification.certificatePem,
        certificateMode: 'SNI_ONLY',
      }),
    ).rejects.toBeInstanceOf(InvalidRequestException);
    const registered = await registerCaCertificate({
      caCertificate: sniCa.certificatePem,
      certificateMode: 'SNI_ONLY',
    });
    const { certificateDescription } = await iot.send(
      new DescribeCACertificateCommand({ certificateId: registered.certificateId }),
    );
    expect(certificateDescription).toMatchObject({ certificateMode: 'SNI_ONLY', status: 'INACTIVE' });

    const other = await createCertificateAuthority();
    const wrongVerification = await deviceCert('x', ca);
    await expect(
      registerCaCertificate({
        caCertificate: other.certificatePem,
        verificationCertificate: wrongVerification.certificatePem,
      }),
    ).rejects.toBeInstanceOf(CertificateValidationException);
  });
});

describe('device certificates', () => {
  it('registers a certificate signed by the registered CA and describes it completely', async () => {
    const device = await deviceCert('dev-register');
    const { certificateId, certificateArn } = await registerWithCa(device);
    expect(certificateId).toBe(device.certificateId);
    expect(certificateArn).toBe(`arn:aws:iot:eu-west-1:111122223333:cert/${device.certificateId}`);
    const { certificateDescription: d } = await iot.send(new DescribeCertificateCommand({ certificateId }));
    expect(d).toMatchObject({
      certificateArn,
      certificateId,
      caCertificateId: ca.certificateId,
      status: 'INACTIVE',
      certificatePem: device.certificatePem,
      ownedBy: '111122223333',
      certificateMode: 'DEFAULT',
    });
    expect(d?.lastModifiedDate).toBeInstanceOf(Date);
    expect(d?.validity?.notBefore?.toISOString()).toBe(device.certificate.notBefore.toISOString());
    await expect(registerWithCa(device)).rejects.toBeInstanceOf(ResourceAlreadyExistsException);
  });

  it('rejects a certificate not signed by the given (or any registered) CA', async () => {
    const stranger = await createCertificateAuthority();
    const device = await deviceCert('dev-stranger', stranger);
    await expect(registerWithCa(device)).rejects.toBeInstanceOf(CertificateValidationException);
    await expect(
      iot.send(new RegisterCertificateCommand({ certificatePem: device.certificatePem })),
    ).rejects.toBeInstanceOf(CertificateValidationException);
    await expect(
      iot.send(new RegisterCertificateCommand({ certificatePem: 'garbage' })),
    ).rejects.toBeInstanceOf(CertificateValidationException);
  });

  it('registers without a CA (SNI_ONLY) with the requested status', async () => {
    const stranger = await createCertificateAuthority();
    const device = await deviceCert('dev-no-ca', stranger);
    const { certificateId } = await iot.send(
      new RegisterCertificateWithoutCACommand({ certificatePem: device.certificatePem, status: 'ACTIVE' }),
    );
    const { certificateDescription } = await iot.send(new DescribeCertificateCommand({ certificateId }));
    expect(certificateDescription).toMatchObject({ status: 'ACTIVE', certificateMode: 'SNI_ONLY' });
    expect(certificateDescription?.caCertificateId).toBeUndefined();
  });

  it('applies legal status transitions and refuses illegal ones', async () => {
    const device = await deviceCert('dev-transitions');
    const { certificateId } = await iot.send(
      new RegisterCertificateCommand({ certificatePem: device.certificatePem, setAsActive: true }),
    );
    const status = async () =>
      (await iot.send(new DescribeCertificateCommand({ certificateId }))).certificateDescription?.status;
    expect(await status()).toBe('ACTIVE');
    await iot.send(new UpdateCertificateCommand({ certificateId, newStatus: 'INACTIVE' }));
    expect(await status()).toBe('INACTIVE');
    await iot.send(new UpdateCertificateCommand({ certificateId, newStatus: 'ACTIVE' }));
    expect(await status()).toBe('ACTIVE');
    await expect(
      iot.send(new UpdateCertificateCommand({ certificateId, newStatus: 'PENDING_ACTIVATION' })),
    ).rejects.toBeInstanceOf(InvalidRequestException);
    await expect(
      iot.send(new UpdateCertificateCommand({ certificateId, newStatus: 'PENDING_TRANSFER' })),
    ).rejects.toBeInstanceOf(InvalidRequestException);
    await iot.send(new UpdateCertificateCommand({ certificateId, newStatus: 'REVOKED' }));
    const revived = iot.send(new UpdateCertificateCommand({ certificateId, newStatus: 'ACTIVE' }));
    await expect(revived).rejects.toBeInstanceOf(CertificateStateException);
    await expect(revived).rejects.toMatchObject({ $metadata: { httpStatusCode: 406 } });
    await expect(
      iot.send(new UpdateCertificateCommand({ certificateId, newStatus: 'INACTIVE' })),
    ).rejects.toBeInstanceOf(CertificateStateException);
    expect(await status()).toBe('REVOKED');
  });

  it('refuses to activate a certificate whose CA is inactive', async () => {
    const inactiveCa = await createCertificateAuthority({ subject: 'CN=Inactive CA' });
    await iot.send(new RegisterCACertificateCommand(await verifiedCaCertificate(iot, inactiveCa)));
    const device = await deviceCert('dev-inactive-ca', inactiveCa);
    const { certificateId } = await iot.send(
      new RegisterCertificateCommand({ certificatePem: device.certificatePem }),
    );
    await expect(
      iot.send(new UpdateCertificateCommand({ certificateId, newStatus: 'ACTIVE' })),
    ).rejects.toBeInstanceOf(CertificateStateException);
  });

  it('deletes only inactive, detached certificates; forceDelete skips attached policies', async () => {
    const device = await deviceCert('dev-delete');
    const { certificateId, certificateArn } = await iot.send(
      new RegisterCertificateCommand({ certificatePem: device.certificatePem, setAsActive: true }),
    );
    await iot.send(new CreatePolicyCommand({ policyName: 'delete-test', policyDocument: POLICY }));
    await iot.send(new AttachPolicyCommand({ policyName: 'delete-test', target: certificateArn }));
    await iot.send(new CreateThingCommand({ thingName: 'delete-test-thing' }));
    await iot.send(
      new AttachThingPrincipalCommand({ thingName: 'delete-test-thing', principal: certificateArn }),
    );

    await expect(iot.send(new DeleteCertificateCommand({ certificateId }))).rejects.toBeInstanceOf(
      CertificateStateException,
    );
    await iot.send(new UpdateCertificateCommand({ certificateId, newStatus: 'INACTIVE' }));
    await expect(
      iot.send(new DeleteCertificateCommand({ certificateId, forceDelete: true })),
    ).rejects.toBeInstanceOf(DeleteConflictException);
    await iot.send(
      new DetachThingPrincipalCommand({ thingName: 'delete-test-thing', principal: certificateArn }),
    );
    await expect(iot.send(new DeleteCertificateCommand({ certificateId }))).rejects.toBeInstanceOf(
      DeleteConflictException,
    );
    await iot.send(new DeleteCertificateCommand({ certificateId, forceDelete: true }));
    await expect(iot.send(new DescribeCertificateCommand({ certificateId }))).rejects.toBeInstanceOf(
      ResourceNotFoundException,
    );
    const targets = await iot.send(new ListTargetsForPolicyCommand({ policyName: 'delete-test' }));
    expect(targets.targets).toEqual([]);
  });

  it('creates certificates from a CSR and with generated keys, signed by the emulator CA', async () => {
    const { csrPem } = await createCsr({ subject: { commonName: 'csr-device' } });
    const fromCsr = await iot.send(
      new CreateCertificateFromCsrCommand({ certificateSigningRequest: csrPem, setAsActive: true }),
    );
    const issued = parseCertificate(fromCsr.certificatePem ?? '');
    expect(await isSignedBy(issued, emulator.issuer.certificate)).toBe(true);
    const described = await iot.send(
      new DescribeCertificateCommand({ certificateId: fromCsr.certificateId }),
    );
    expect(described.certificateDescription?.status).toBe('ACTIVE');

    const keys = await iot.send(new CreateKeysAndCertificateCommand({}));
    expect(keys.keyPair?.PrivateKey).toMatch(/BEGIN RSA PRIVATE KEY/);
    expect(keys.keyPair?.PublicKey).toMatch(/BEGIN PUBLIC KEY/);
    const keysStatus = await iot.send(new DescribeCertificateCommand({ certificateId: keys.certificateId }));
    expect(keysStatus.certificateDescription?.status).toBe('INACTIVE');
    await expect(
      iot.send(new CreateCertificateFromCsrCommand({ certificateSigningRequest: 'nope' })),
    ).rejects.toBeInstanceOf(InvalidRequestException);
  });
});

describe('paging', () => {
  it('pages 600 certificates as 250/250/100 with markers, in both orders, and validates pageSize', async () => {
    const paged = await startIotEmulator();
    const client = new IoTClient({ ...paged.clientConfig(), maxAttempts: 1 });
    try {
      // One CSR signed 600 times: 600 certificates (serial numbers differ), no key generation.
      const { csrPem } = await createCsr({ subject: { commonName: 'paged' } });
      for (let batch = 0; batch < 12; batch += 1) {
        await Promise.all(
          Array.from({ length: 50 }, () =>
            client.send(new CreateCertificateFromCsrCommand({ certificateSigningRequest: csrPem })),
          ),
        );
      }
      const sizes: number[] = [];
      const ids: string[] = [];
      let marker: string | undefined;
      do {
        const page = await client.send(new ListCertificatesCommand({ pageSize: 250, marker }));
        sizes.push(page.certificates?.length ?? 0);
        ids.push(...(page.certificates ?? []).map((c) => c.certificateId ?? ''));
        marker = page.nextMarker;
      } while (marker);
      expect(sizes).toEqual([250, 250, 100]);
      expect(new Set(ids).size).toBe(600);
      const ascending = await client.send(new ListCertificatesCommand({ pageSize: 1, ascendingOrder: true }));
      expect(ascending.certificates?.[0]?.certificateId).toBe(ids[599]);
      for (const pageSize of [0, 251]) {
        await expect(client.send(new ListCertificatesCommand({ pageSize }))).rejects.toBeInstanceOf(
          InvalidRequestException,
        );
      }
    } finally {
      client.destroy();
      await paged.stop();
    }
  });

  it('lists certificates by CA', async () => {
    const byCaAuthority = await createCertificateAuthority({ subject: 'CN=ByCA' });
    const { certificateId: caId } = await registerActiveCa(byCaAuthority);
    for (const name of ['a', 'b', 'c']) {
      const device = await deviceCert(`by-ca-${name}`, byCaAuthority);
      await iot.send(new RegisterCertificateCommand({ certificatePem: device.certificatePem }));
    }
    const first = await iot.send(new ListCertificatesByCACommand({ caCertificateId: caId, pageSize: 2 }));
    expect(first.certificates).toHaveLength(2);
    const second = await iot.send(
      new ListCertificatesByCACommand({ caCertificateId: caId, pageSize: 2, marker: first.nextMarker }),
    );
    expect(second.certificates).toHaveLength(1);
    expect(second.nextMarker).toBeUndefined();
  });
});

describe('things', () => {
  it('creates idempotently, describes, updates with versions and deletes', async () => {
    const input = { thingName: 'thing-1', attributePayload: { attributes: { serial: 'SN-1', batch: 'B1' } } };
    const created = await iot.send(new CreateThingCommand(input));
    expect(created.thingArn).toBe('arn:aws:iot:eu-west-1:111122223333:thing/thing-1');
    const again = await iot.send(new CreateThingCommand(input));
    expect(again.thingId).toBe(created.thingId);
    await expect(
      iot.send(
        new CreateThingCommand({
          thingName: 'thing-1',
          attributePayload: { attributes: { serial: 'SN-2' } },
        }),
      ),
    ).rejects.toBeInstanceOf(ResourceAlreadyExistsException);

    const described = await iot.send(new DescribeThingCommand({ thingName: 'thing-1' }));
    expect(described).toMatchObject({
      thingName: 'thing-1',
      thingId: created.thingId,
      version: 1,
      attributes: input.attributePayload.attributes,
    });

    await iot.send(
      new UpdateThingCommand({
        thingName: 'thing-1',
        expectedVersion: 1,
        attributePayload: { attributes: { batch: '', state: 'ok' }, merge: true },
      }),
    );
    const updated = await iot.send(new DescribeThingCommand({ thingName: 'thing-1' }));
    expect(updated.attributes).toEqual({ serial: 'SN-1', state: 'ok' });
    expect(updated.version).toBe(2);
    await expect(
      iot.send(
        new UpdateThingCommand({
          thingName: 'thing-1',
          expectedVersion: 1,
          attributePayload: { attributes: {} },
        }),
      ),
    ).rejects.toBeInstanceOf(VersionConflictException);

    await expect(
      iot.send(new DeleteThingCommand({ thingName: 'thing-1', expectedVersion: 9 })),
    ).rejects.toBeInstanceOf(VersionConflictException);
    await iot.send(new DeleteThingCommand({ thingName: 'thing-1' }));
    await iot.send(new DeleteThingCommand({ thingName: 'thing-1' }));
    await expect(iot.send(new DescribeThingCommand({ thingName: 'thing-1' }))).rejects.toBeInstanceOf(
      ResourceNotFoundException,
    );
  });

  it.each([
    ['a name with a space', 'bad name'],
    ['a name with a slash', 'bad%2Fname'],
    ['a name over 128 characters', 'x'.repeat(129)],
  ])('rejects %s', async (_, thingName) => {
    await expect(iot.send(new CreateThingCommand({ thingName }))).rejects.toBeInstanceOf(
      InvalidRequestException,
    );
  });

  it('lists things with paging and attribute filters', async () => {
    for (let i = 0; i < 5; i += 1) {
      await iot.send(
        new CreateThingCommand({
          thingName: `list-${i}`,
          attributePayload: { attributes: { line: i < 3 ? 'A' : 'B' } },
        }),
      );
    }
    const lineA = await iot.send(new ListThingsCommand({ attributeName: 'line', attributeValue: 'A' }));
    expect(lineA.things?.map((t) => t.thingName)).toEqual(['list-0', 'list-1', 'list-2']);
    const page1 = await iot.send(new ListThingsCommand({ attributeName: 'line', maxResults: 4 }));
    const page2 = await iot.send(
      new ListThingsCommand({ attributeName: 'line', maxResults: 4, nextToken: page1.nextToken }),
    );
    expect([...(page1.things ?? []), ...(page2.things ?? [])].map((t) => t.thingName)).toHaveLength(5);
    await expect(iot.send(new ListThingsCommand({ maxResults: 251 }))).rejects.toBeInstanceOf(
      InvalidRequestException,
    );
  });

  it('attaches and lists principals both ways; refuses to delete a thing with principals', async () => {
    const device = await deviceCert('dev-principal');
    const { certificateArn } = await iot.send(
      new RegisterCertificateCommand({ certificatePem: device.certificatePem, setAsActive: true }),
    );
    await iot.send(new CreateThingCommand({ thingName: 'principal-thing' }));
    await iot.send(
      new AttachThingPrincipalCommand({ thingName: 'principal-thing', principal: certificateArn }),
    );
    await iot.send(
      new AttachThingPrincipalCommand({ thingName: 'principal-thing', principal: certificateArn }),
    );
    expect(
      (await iot.send(new ListThingPrincipalsCommand({ thingName: 'principal-thing' }))).principals,
    ).toEqual([certificateArn]);
    expect((await iot.send(new ListPrincipalThingsCommand({ principal: certificateArn }))).things).toEqual([
      'principal-thing',
    ]);
    await expect(iot.send(new DeleteThingCommand({ thingName: 'principal-thing' }))).rejects.toBeInstanceOf(
      InvalidRequestException,
    );
    await expect(
      iot.send(
        new AttachThingPrincipalCommand({
          thingName: 'principal-thing',
          principal: `arn:aws:iot:eu-west-1:111122223333:cert/${'0'.repeat(64)}`,
        }),
      ),
    ).rejects.toBeInstanceOf(ResourceNotFoundException);
    await expect(
      iot.send(new AttachThingPrincipalCommand({ thingName: 'no-such-thing', principal: certificateArn })),
    ).rejects.toBeInstanceOf(ResourceNotFoundException);
    await iot.send(
      new DetachThingPrincipalCommand({ thingName: 'principal-thing', principal: certificateArn }),
    );
    expect((await iot.send(new ListPrincipalThingsCommand({ principal: certificateArn }))).things).toEqual(
      [],
    );
  });
});

describe('policies', () => {
  it('creates, gets, attaches, lists and deletes policies with AWS errors', async () => {
    const device = await deviceCert('dev-policy');
    const { certificateArn } = await iot.send(
      new RegisterCertificateCommand({ certificatePem: device.certificatePem }),
    );
    const created = await iot.send(
      new CreatePolicyCommand({ policyName: 'device-policy', policyDocument: POLICY }),
    );
    expect(created).toMatchObject({
      policyName: 'device-policy',
      policyArn: 'arn:aws:iot:eu-west-1:111122223333:policy/device-policy',
      policyVersionId: '1',
    });
    await expect(
      iot.send(new CreatePolicyCommand({ policyName: 'device-policy', policyDocument: POLICY })),
    ).rejects.toBeInstanceOf(ResourceAlreadyExistsException);
    await expect(
      iot.send(new CreatePolicyCommand({ policyName: 'broken', policyDocument: '{not json' })),
    ).rejects.toBeInstanceOf(MalformedPolicyException);
    const got = await iot.send(new GetPolicyCommand({ policyName: 'device-policy' }));
    expect(got).toMatchObject({ policyDocument: POLICY, defaultVersionId: '1' });
    expect(got.creationDate).toBeInstanceOf(Date);

    await iot.send(new AttachPolicyCommand({ policyName: 'device-policy', target: certificateArn }));
    const attached = await iot.send(new ListAttachedPoliciesCommand({ target: certificateArn }));
    expect(attached.policies).toEqual([{ policyName: 'device-policy', policyArn: created.policyArn }]);
    expect(
      (await iot.send(new ListTargetsForPolicyCommand({ policyName: 'device-policy' }))).targets,
    ).toEqual([certificateArn]);
    await expect(iot.send(new DeletePolicyCommand({ policyName: 'device-policy' }))).rejects.toBeInstanceOf(
      DeleteConflictException,
    );
    await expect(
      iot.send(new AttachPolicyCommand({ policyName: 'missing-policy', target: certificateArn })),
    ).rejects.toBeInstanceOf(ResourceNotFoundException);
    await iot.send(new DetachPolicyCommand({ policyName: 'device-policy', target: certificateArn }));
    await iot.send(new DeletePolicyCommand({ policyName: 'device-policy' }));
    await expect(iot.send(new GetPolicyCommand({ policyName: 'device-policy' }))).rejects.toBeInstanceOf(
      ResourceNotFoundException,
    );
  });
});

describe('thing groups', () => {
  it('creates nested groups, manages membership and policies, and deletes', async () => {
    await iot.send(new CreateThingGroupCommand({ thingGroupName: 'fleet' }));
    const child = await iot.send(
      new CreateThingGroupCommand({ thingGroupName: 'quarantine', parentGroupName: 'fleet' }),
    );
    expect(child.thingGroupArn).toBe('arn:aws:iot:eu-west-1:111122223333:thinggroup/quarantine');
    const again = await iot.send(
      new CreateThingGroupCommand({ thingGroupName: 'quarantine', parentGroupName: 'fleet' }),
    );
    expect(again.thingGroupId).toBe(child.thingGroupId);
    const described = await iot.send(new DescribeThingGroupCommand({ thingGroupName: 'quarantine' }));
    expect(described.thingGroupMetadata?.parentGroupName).toBe('fleet');
    expect(described.thingGroupMetadata?.rootToParentThingGroups?.map((g) => g.groupName)).toEqual(['fleet']);

    await iot.send(new CreateThingCommand({ thingName: 'grouped' }));
    await iot.send(new AddThingToThingGroupCommand({ thingGroupName: 'quarantine', thingName: 'grouped' }));
    expect(
      (await iot.send(new ListThingGroupsForThingCommand({ thingName: 'grouped' }))).thingGroups,
    ).toEqual([{ groupName: 'quarantine', groupArn: child.thingGroupArn }]);
    expect((await iot.send(new ListThingsInThingGroupCommand({ thingGroupName: 'fleet' }))).things).toEqual(
      [],
    );
    expect(
      (await iot.send(new ListThingsInThingGroupCommand({ thingGroupName: 'fleet', recursive: true })))
        .things,
    ).toEqual(['grouped']);

    await iot.send(new CreatePolicyCommand({ policyName: 'deny-all', policyDocument: POLICY }));
    await iot.send(new AttachPolicyCommand({ policyName: 'deny-all', target: child.thingGroupArn }));
    const policies = await iot.send(new ListAttachedPoliciesCommand({ target: child.thingGroupArn }));
    expect(policies.policies?.map((p) => p.policyName)).toEqual(['deny-all']);

    await expect(
      iot.send(new AddThingToThingGroupCommand({ thingGroupName: 'missing', thingName: 'grouped' })),
    ).rejects.toBeInstanceOf(ResourceNotFoundException);
    await expect(iot.send(new DeleteThingGroupCommand({ thingGroupName: 'fleet' }))).rejects.toBeInstanceOf(
      InvalidRequestException,
    );
    await iot.send(
      new RemoveThingFromThingGroupCommand({ thingGroupName: 'quarantine', thingName: 'grouped' }),
    );
    expect(
      (await iot.send(new ListThingsInThingGroupCommand({ thingGroupName: 'quarantine' }))).things,
    ).toEqual([]);
    await iot.send(new DeleteThingGroupCommand({ thingGroupName: 'quarantine' }));
    await expect(
      iot.send(new DescribeThingGroupCommand({ thingGroupName: 'quarantine' })),
    ).rejects.toBeInstanceOf(ResourceNotFoundException);
  });
});

describe('event configurations, templates, endpoint and data-plane publish', () => {
  it('reads and updates event configurations', async () => {
    const before = await iot.send(new DescribeEventConfigurationsCommand({}));
    expect(before.eventConfigurations?.THING).toEqual({ Enabled: false });
    await iot.send(
      new UpdateEventConfigurationsCommand({ eventConfigurations: { THING: { Enabled: true } } }),
    );
    const after = await iot.send(new DescribeEventConfigurationsCommand({}));
    expect(after.eventConfigurations?.THING).toEqual({ Enabled: true });
    expect(after.eventConfigurations?.CA_CERTIFICATE).toEqual({ Enabled: false });
    await expect(
      iot.send(
        new UpdateEventConfigurationsCommand({
          eventConfigurations: { NOPE: { Enabled: true } } as Record<string, { Enabled: boolean }>,
        }),
      ),
    ).rejects.toBeInstanceOf(InvalidRequestException);
  });

  it('creates and describes a provisioning template with a pre-provisioning hook', async () => {
    const templateBody = JSON.stringify({
      Parameters: { SerialNumber: { Type: 'String' } },
      Resources: { thing: { Type: 'AWS::IoT::Thing', Properties: { ThingName: { Ref: 'SerialNumber' } } } },
    });
    const created = await iot.send(
      new CreateProvisioningTemplateCommand({
        templateName: 'fleet-template',
        templateBody,
        provisioningRoleArn: 'arn:aws:iam::111122223333:role/provisioning',
        enabled: true,
        preProvisioningHook: { targetArn: 'arn:aws:lambda:eu-west-1:111122223333:function:hook' },
      }),
    );
    expect(created).toMatchObject({
      templateName: 'fleet-template',
      templateArn: 'arn:aws:iot:eu-west-1:111122223333:provisioningtemplate/fleet-template',
      defaultVersionId: 1,
    });
    const described = await iot.send(
      new DescribeProvisioningTemplateCommand({ templateName: 'fleet-template' }),
    );
    expect(described).toMatchObject({
      templateBody,
      enabled: true,
      type: 'FLEET_PROVISIONING',
      preProvisioningHook: {
        targetArn: 'arn:aws:lambda:eu-west-1:111122223333:function:hook',
        payloadVersion: '2020-04-01',
      },
    });
    await expect(
      iot.send(
        new CreateProvisioningTemplateCommand({
          templateName: 'fleet-template',
          templateBody,
          provisioningRoleArn: 'arn:aws:iam::111122223333:role/provisioning',
        }),
      ),
    ).rejects.toBeInstanceOf(ResourceAlreadyExistsException);
    await expect(
      iot.send(new DescribeProvisioningTemplateCommand({ templateName: 'nope' })),
    ).rejects.toBeInstanceOf(ResourceNotFoundException);
  });

  it('DescribeEndpoint without an MQTT endpoint running says so instead of naming an AWS host', async () => {
    await expect(
      iot.send(new DescribeEndpointCommand({ endpointType: 'iot:Data-ATS' })),
    ).rejects.toMatchObject({
      name: 'NotEmulatedException',
      $metadata: { httpStatusCode: 501 },
    });
    await expect(iot.send(new DescribeEndpointCommand({ endpointType: 'bogus' }))).rejects.toBeInstanceOf(
      InvalidRequestException,
    );
  });

  it('accepts data-plane Publish from the IoT data client on the same port', async () => {
    const data = new IoTDataPlaneClient({ ...emulator.clientConfig(), maxAttempts: 1 });
    try {
      await data.send(
        new PublishCommand({
          topic: 'fleetgate/devices/SN-1/rotate',
          qos: 1,
          payload: Buffer.from('{"go":true}'),
        }),
      );
    } finally {
      data.destroy();
    }
    const [message] = emulator.publishedOn('fleetgate/devices/SN-1/rotate');
    expect(message?.json).toEqual({ go: true });
    expect(message?.meta).toMatchObject({ source: 'data-plane', qos: 1 });
    expect(emulator.callCount('Publish', 'ok')).toBe(1);
  });
});

describe('SDK configuration', () => {
  it('is reachable through AWS_ENDPOINT_URL_IOT without an explicit endpoint', async () => {
    const previous = process.env.AWS_ENDPOINT_URL_IOT;
    process.env.AWS_ENDPOINT_URL_IOT = emulator.endpoint;
    const viaEnv = new IoTClient({ region: 'eu-west-1', maxAttempts: 1 });
    try {
      const { certificates } = await viaEnv.send(new ListCACertificatesCommand({}));
      expect(certificates?.length).toBeGreaterThan(0);
    } finally {
      viaEnv.destroy();
      if (previous === undefined) delete process.env.AWS_ENDPOINT_URL_IOT;
      else process.env.AWS_ENDPOINT_URL_IOT = previous;
    }
  });
});

describe('isolation', () => {
  it('runs two emulators side by side without shared state', async () => {
    const other = await startIotEmulator();
    const client = new IoTClient({ ...other.clientConfig(), maxAttempts: 1 });
    try {
      await client.send(new CreateThingCommand({ thingName: 'only-here' }));
      await expect(iot.send(new DescribeThingCommand({ thingName: 'only-here' }))).rejects.toBeInstanceOf(
        ResourceNotFoundException,
      );
      expect(other.port).not.toBe(emulator.port);
    } finally {
      client.destroy();
      await other.stop();
    }
  });
});
