import {
  CreatePolicyCommand,
  CreateProvisioningTemplateCommand,
  CreateThingCommand,
  CreateThingGroupCommand,
  DeleteThingCommand,
  DescribeCertificateCommand,
  DescribeThingCommand,
  IoTClient,
  ListAttachedPoliciesCommand,
  ListPrincipalThingsCommand,
  ListThingGroupsForThingCommand,
  RegisterCACertificateCommand,
  RegisterCertificateCommand,
  UpdateCACertificateCommand,
  UpdateCertificateCommand,
  UpdateEventConfigurationsCommand,
  UpdateThingCommand,
} from '@aws-sdk/client-iot';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { verifiedCaCertificate } from '../../local/ca-registration';
import {
  type FleetCertificateResponse,
  type HookInvoker,
  type IotEmulator,
  type IotEmulatorOptions,
  isRejection,
  type PreProvisioningHookEvent,
  startIotEmulator,
} from '../../local/iot-emulator';
import {
  type CertificateAuthority,
  createCertificateAuthority,
  createCsr,
  createDeviceCertificate,
  isSignedBy,
  parseCertificate,
} from '../../local/pki';

const ACCOUNT = '123456789012';
const POLICY = JSON.stringify({
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Action: ['iot:Connect', 'iot:Publish'], Resource: '*' }],
});

let emulator: IotEmulator;
let iot: IoTClient;
let ca: CertificateAuthority;

async function start(options: IotEmulatorOptions = {}) {
  emulator = await startIotEmulator({ accountId: ACCOUNT, ...options });
  iot = new IoTClient({ ...emulator.clientConfig(), maxAttempts: 1 });
}

beforeEach(async () => {
  ca = await createCertificateAuthority({ subject: { commonName: 'Device CA', organization: 'Acme' } });
});

afterEach(async () => {
  iot?.destroy();
  await emulator?.stop();
});

/** Two connection attempts of `device` on `clientId`, one after the other (a device retrying). */
async function connectTwice(device: { certificatePem: string }, clientId: string) {
  const first = await emulator.connect({ certificatePem: device.certificatePem, clientId });
  return [first, await emulator.connect({ certificatePem: device.certificatePem, clientId })] as const;
}

async function registerCa(options: { templateBody?: string } = {}) {
  const { certificateId } = await iot.send(
    new RegisterCACertificateCommand({
      ...(await verifiedCaCertificate(iot, ca)),
      setAsActive: true,
      allowAutoRegistration: true,
      registrationConfig: options.templateBody
        ? { templateBody: options.templateBody, roleArn: `arn:aws:iam::${ACCOUNT}:role/jitp` }
        : undefined,
    }),
  );
  return certificateId ?? '';
}

describe('presence', () => {
  beforeEach(() => start());

  it('accepts an ACTIVE certificate and publishes the documented connected event', async () => {
    // Prepare
    await registerCa();
    const device = await createDeviceCertificate(ca, { subject: { commonName: 'SN-0001' } });
    await iot.send(
      new RegisterCertificateCommand({ certificatePem: device.certificatePem, setAsActive: true }),
    );
    // Act
    const outcome = await emulator.connect({
      certificatePem: device.certificatePem,
      clientId: 'SN-0001',
      ipAddress: '192.0.2.7',
    });
    // Assess
    expect(outcome).toMatchObject({ accepted: true, certificateId: device.certificateId, versionNumber: 0 });
    const [event] = emulator.publishedOn('$aws/events/presence/connected/SN-0001');
    expect(event?.json).toEqual({
      clientId: 'SN-0001',
      timestamp: expect.any(Number),
      eventType: 'connected',
      sessionIdentifier: expect.stringMatching(/^[0-9a-f-]{36}$/),
      principalIdentifier: device.certificateId,
      ipAddress: '192.0.2.7',
      versionNumber: 0,
    });
  });

  it('disconnects the older session with DUPLICATE_CLIENTID and increments versionNumber per client id', async () => {
    await registerCa();
    const device = await createDeviceCertificate(ca, { subject: { commonName: 'SN-0002' } });
    await iot.send(
      new RegisterCertificateCommand({ certificatePem: device.certificatePem, setAsActive: true }),
    );
    const closed = vi.fn();
    emulator.devices.onDisconnect(closed);

    const [first, second] = await connectTwice(device, 'SN-0002');
    expect(await emulator.disconnect({ clientId: 'SN-0002' })).toBe(true);
    expect(await emulator.disconnect({ clientId: 'SN-0002' })).toBe(false);

    const topics = emulator.publishedOn('$aws/events/presence/').map((m) => m.topic);
    expect(topics).toEqual([
      '$aws/events/presence/connected/SN-0002',
      '$aws/events/presence/disconnected/SN-0002',
      '$aws/events/presence/connected/SN-0002',
      '$aws/events/presence/disconnected/SN-0002',
    ]);
    const [duplicate, clientInitiated] = emulator.publishedOn('$aws/events/presence/disconnected/');
    expect(duplicate?.json).toMatchObject({
      eventType: 'disconnected',
      disconnectReason: 'DUPLICATE_CLIENTID',
      clientInitiatedDisconnect: false,
      sessionIdentifier: first.accepted ? first.sessionIdentifier : 'x',
      versionNumber: 0,
    });
    expect(clientInitiated?.json).toMatchObject({
      disconnectReason: 'CLIENT_INITIATED_DISCONNECT',
      clientInitiatedDisconnect: true,
      sessionIdentifier: second.accepted ? second.sessionIdentifier : 'x',
      versionNumber: 1,
      principalIdentifier: device.certificateId,
    });
    expect(closed).toHaveBeenCalledTimes(2);
    expect(emulator.sessions.size).toBe(0);
  });

  it.each([
    ['INACTIVE', 'CERTIFICATE_INACTIVE'],
    ['REVOKED', 'CERTIFICATE_REVOKED'],
  ] as const)('refuses a %s certificate', async (status, reason) => {
    await registerCa();
    const device = await createDeviceCertificate(ca, { subject: { commonName: 'SN-0003' } });
    const { certificateId } = await iot.send(
      new RegisterCertificateCommand({ certificatePem: device.certificatePem, setAsActive: true }),
    );
    await iot.send(new UpdateCertificateCommand({ certificateId, newStatus: status }));
    const outcome = await emulator.connect({ certificatePem: device.certificatePem, clientId: 'SN-0003' });
    expect(outcome).toMatchObject({ accepted: false, reason });
    expect(emulator.publishedOn('$aws/events/presence/')).toEqual([]);
  });

  it('refuses an unknown certificate, an expired one and one whose CA does not auto-register', async () => {
    const stranger = await createCertificateAuthority();
    const unknown = await createDeviceCertificate(stranger, { subject: { commonName: 'x' } });
    expect(await emulator.connect({ certificatePem: unknown.certificatePem, clientId: 'x' })).toMatchObject({
      accepted: false,
      reason: 'UNKNOWN_CERTIFICATE',
    });
    const caId = await registerCa();
    await iot.send(
      new UpdateCACertificateCommand({ certificateId: caId, newAutoRegistrationStatus: 'DISABLE' }),
    );
    const notAuto = await createDeviceCertificate(ca, { subject: { commonName: 'y' } });
    expect(await emulator.connect({ certificatePem: notAuto.certificatePem, clientId: 'y' })).toMatchObject({
      accepted: false,
      reason: 'UNKNOWN_CERTIFICATE',
    });
    const expired = await createDeviceCertificate(ca, {
      subject: { commonName: 'z' },
      notBefore: new Date('2020-01-01T00:00:00Z'),
      notAfter: new Date('2021-01-01T00:00:00Z'),
    });
    expect(await emulator.connect({ certificatePem: expired.certificatePem, clientId: 'z' })).toMatchObject({
      accepted: false,
      reason: 'CERTIFICATE_EXPIRED',
    });
    expect(await emulator.connect({ certificatePem: 'nope', clientId: 'z' })).toMatchObject({
      accepted: false,
      reason: 'BAD_CERTIFICATE',
    });
  });
});

describe('JITR', () => {
  beforeEach(() => start());

  it('auto-registers as PENDING_ACTIVATION, publishes the registered event on every retry, then connects once activated', async () => {
    // Prepare
    const caId = await registerCa();
    const device = await createDeviceCertificate(ca, {
      subject: { commonName: 'SN-1000', serialNumber: 'SN-1000' },
    });
    // Act
    const [first, retry] = await connectTwice(device, 'SN-1000');
    // Assess
    expect(first).toMatchObject({
      accepted: false,
      reason: 'PENDING_ACTIVATION',
      certificateId: device.certificateId,
    });
    expect(retry).toMatchObject({ accepted: false, reason: 'PENDING_ACTIVATION' });
    const events = emulator.publishedOn(`$aws/events/certificates/registered/${caId}`);
    expect(events).toHaveLength(2);
    expect(events[0]?.json).toEqual({
      certificateId: device.certificateId,
      caCertificateId: caId,
      timestamp: expect.any(Number),
      certificateStatus: 'PENDING_ACTIVATION',
      awsAccountId: ACCOUNT,
      certificateRegistrationTimestamp: expect.any(Number),
    });
    const described = await iot.send(new DescribeCertificateCommand({ certificateId: device.certificateId }));
    expect(described.certificateDescription).toMatchObject({
      status: 'PENDING_ACTIVATION',
      caCertificateId: caId,
    });

    await iot.send(
      new UpdateCertificateCommand({ certificateId: device.certificateId, newStatus: 'ACTIVE' }),
    );
    expect(
      await emulator.connect({ certificatePem: device.certificatePem, clientId: 'SN-1000' }),
    ).toMatchObject({
      accepted: true,
    });
  });

  it('delivers published events to the configured sink and to listeners', async () => {
    const sink = vi.fn(async () => {});
    iot.destroy();
    await emulator.stop();
    await start({ publish: sink });
    const seen: string[] = [];
    const off = emulator.onPublish((m) => seen.push(m.topic));
    const caId = await registerCa();
    const device = await createDeviceCertificate(ca, { subject: { commonName: 'SN-1001' } });
    await emulator.connect({ certificatePem: device.certificatePem, clientId: 'SN-1001' });
    off();
    expect(seen).toEqual([`$aws/events/certificates/registered/${caId}`]);
    expect(sink).toHaveBeenCalledWith(
      `$aws/events/certificates/registered/${caId}`,
      expect.any(Buffer),
      expect.objectContaining({ source: 'certificate-registration', qos: 1 }),
    );
  });
});

describe('JITP', () => {
  beforeEach(() => start());

  const template = JSON.stringify({
    Parameters: {
      'AWS::IoT::Certificate::CommonName': { Type: 'String' },
      'AWS::IoT::Certificate::SerialNumber': { Type: 'String' },
      'AWS::IoT::Certificate::Id': { Type: 'String' },
    },
    Resources: {
      thing: {
        Type: 'AWS::IoT::Thing',
        Properties: {
          ThingName: { 'Fn::Join': ['', ['dev-', { Ref: 'AWS::IoT::Certificate::SerialNumber' }]] },
          AttributePayload: { serial: { Ref: 'AWS::IoT::Certificate::SerialNumber' }, model: 'v1' },
          ThingGroups: ['jitp-fleet'],
        },
      },
      certificate: {
        Type: 'AWS::IoT::Certificate',
        Properties: { CertificateId: { Ref: 'AWS::IoT::Certificate::Id' }, Status: 'ACTIVE' },
      },
      policy: { Type: 'AWS::IoT::Policy', Properties: { PolicyName: 'jitp-policy' } },
    },
  });

  it('provisions thing, group membership, policy and ACTIVE certificate, publishing the THING created event', async () => {
    // Prepare
    await iot.send(
      new UpdateEventConfigurationsCommand({ eventConfigurations: { THING: { Enabled: true } } }),
    );
    await iot.send(new CreatePolicyCommand({ policyName: 'jitp-policy', policyDocument: POLICY }));
    await iot.send(new CreateThingGroupCommand({ thingGroupName: 'jitp-fleet' }));
    await registerCa({ templateBody: template });
    const device = await createDeviceCertificate(ca, {
      subject: { commonName: 'ignored', serialNumber: 'SN-2000' },
    });
    // Act
    const [first, second] = await connectTwice(device, 'dev-SN-2000');
    // Assess
    expect(first).toMatchObject({
      accepted: false,
      reason: 'JITP_PROVISIONED',
      provisioned: { thingName: 'dev-SN-2000', certificateStatus: 'ACTIVE' },
    });
    expect(second).toMatchObject({ accepted: true, certificateId: device.certificateId });
    const thing = await iot.send(new DescribeThingCommand({ thingName: 'dev-SN-2000' }));
    expect(thing.attributes).toEqual({ serial: 'SN-2000', model: 'v1' });
    const certArn = `arn:aws:iot:us-east-1:${ACCOUNT}:cert/${device.certificateId}`;
    expect((await iot.send(new ListPrincipalThingsCommand({ principal: certArn }))).things).toEqual([
      'dev-SN-2000',
    ]);
    expect(
      (await iot.send(new ListAttachedPoliciesCommand({ target: certArn }))).policies?.[0]?.policyName,
    ).toBe('jitp-policy');
    expect(
      (await iot.send(new ListThingGroupsForThingCommand({ thingName: 'dev-SN-2000' }))).thingGroups?.[0]
        ?.groupName,
    ).toBe('jitp-fleet');
    const [created] = emulator.publishedOn('$aws/events/thing/dev-SN-2000/created');
    expect(created?.json).toEqual({
      eventType: 'THING_EVENT',
      eventId: expect.any(String),
      timestamp: expect.any(Number),
      operation: 'CREATED',
      accountId: ACCOUNT,
      thingId: thing.thingId,
      thingName: 'dev-SN-2000',
      versionNumber: 1,
      thingTypeName: null,
      attributes: { serial: 'SN-2000', model: 'v1' },
    });
    expect(emulator.publishedOn('$aws/events/certificates/registered/')).toEqual([]);
  });

  it('leaves the certificate PENDING_ACTIVATION and refuses when the template cannot be applied', async () => {
    await registerCa({ templateBody: template });
    const device = await createDeviceCertificate(ca, { subject: { commonName: 'no-serial' } });
    const outcome = await emulator.connect({ certificatePem: device.certificatePem, clientId: 'c' });
    expect(outcome).toMatchObject({ accepted: false, reason: 'JITP_FAILED' });
    const described = await iot.send(new DescribeCertificateCommand({ certificateId: device.certificateId }));
    expect(described.certificateDescription?.status).toBe('PENDING_ACTIVATION');
  });
});

describe('registry events through the control plane', () => {
  beforeEach(() => start());

  it('publishes created/updated/deleted only while THING events are enabled', async () => {
    await iot.send(new CreateThingCommand({ thingName: 'quiet' }));
    expect(emulator.publishedOn('$aws/events/thing/')).toEqual([]);
    await iot.send(
      new UpdateEventConfigurationsCommand({ eventConfigurations: { THING: { Enabled: true } } }),
    );
    await iot.send(
      new CreateThingCommand({ thingName: 'loud', attributePayload: { attributes: { a: '1' } } }),
    );
    await iot.send(
      new UpdateThingCommand({ thingName: 'loud', attributePayload: { attributes: { a: '2' } } }),
    );
    await iot.send(new DeleteThingCommand({ thingName: 'loud' }));
    const events = emulator.publishedOn('$aws/events/thing/loud/');
    expect(events.map((e) => e.topic)).toEqual([
      '$aws/events/thing/loud/created',
      '$aws/events/thing/loud/updated',
      '$aws/events/thing/loud/deleted',
    ]);
    expect(events.map((e) => (e.json as { operation: string; versionNumber: number }).operation)).toEqual([
      'CREATED',
      'UPDATED',
      'DELETED',
    ]);
    expect(events[1]?.json).toMatchObject({ attributes: { a: '2' }, versionNumber: 2 });
  });
});

describe('fleet provisioning', () => {
  const HOOK_ARN = `arn:aws:lambda:us-east-1:${ACCOUNT}:function:preProvisionHook`;
  const fleetTemplate = JSON.stringify({
    Parameters: {
      SerialNumber: { Type: 'String' },
      ThingName: { Type: 'String', Default: 'unset' },
      'AWS::IoT::Certificate::Id': { Type: 'String' },
    },
    Resources: {
      thing: {
        Type: 'AWS::IoT::Thing',
        Properties: {
          ThingName: { Ref: 'ThingName' },
          AttributePayload: { serial: { Ref: 'SerialNumber' } },
          ThingGroups: ['fleet'],
        },
        OverrideSettings: { AttributePayload: 'MERGE' },
      },
      certificate: {
        Type: 'AWS::IoT::Certificate',
        Properties: { CertificateId: { Ref: 'AWS::IoT::Certificate::Id' }, Status: 'Active' },
      },
      policy: { Type: 'AWS::IoT::Policy', Properties: { PolicyName: 'device-policy' } },
    },
    DeviceConfiguration: { serial: { Ref: 'SerialNumber' }, endpoint: 'local' },
  });

  let clock: Date;
  let hook: ReturnType<typeof vi.fn<HookInvoker>>;

  async function startFleet(hookImpl: HookInvoker, extra: IotEmulatorOptions = {}) {
    clock = new Date('2026-11-24T12:00:00Z');
    hook = vi.fn(hookImpl);
    await start({ now: () => clock, invokeHook: hook, hookTimeoutMs: 200, ...extra });
    await iot.send(new CreatePolicyCommand({ policyName: 'device-policy', policyDocument: POLICY }));
    await iot.send(new CreateThingGroupCommand({ thingGroupName: 'fleet' }));
    await iot.send(
      new CreateProvisioningTemplateCommand({
        templateName: 'fleet',
        templateBody: fleetTemplate,
        provisioningRoleArn: `arn:aws:iam::${ACCOUNT}:role/provisioning`,
        enabled: true,
        preProvisioningHook: { targetArn: HOOK_ARN },
      }),
    );
  }

  const claimCertificateId = 'c'.repeat(64);

  it('provisions through CreateCertificateFromCsr + RegisterThing with hook overrides', async () => {
    // Prepare
    await startFleet(async (_arn, event) => ({
      allowProvisioning: true,
      parameterOverrides: { ThingName: `thing-${event.parameters.SerialNumber}` },
    }));
    const { csrPem } = await createCsr({ subject: { commonName: 'SN-3000' } });
    // Act
    const created = await emulator.createCertificateFromCsr({ csr: csrPem });
    if (isRejection(created)) throw new Error(created.errorMessage);
    const statusBefore = (
      await iot.send(new DescribeCertificateCommand({ certificateId: created.certificateId }))
    ).certificateDescription?.status;
    const result = await emulator.registerThing({
      templateName: 'fleet',
      certificateOwnershipToken: created.certificateOwnershipToken,
      parameters: { SerialNumber: 'SN-3000' },
      claimCertificateId,
      clientId: 'SN-3000',
    });
    // Assess
    expect(statusBefore).toBe('INACTIVE');
    expect(await isSignedBy(parseCertificate(created.certificatePem), emulator.issuer.certificate)).toBe(
      true,
    );
    expect(result).toEqual({
      deviceConfiguration: { serial: 'SN-3000', endpoint: 'local' },
      thingName: 'thing-SN-3000',
    });
    expect(hook).toHaveBeenCalledWith(HOOK_ARN, {
      claimCertificateId,
      certificateId: created.certificateId,
      certificatePem: created.certificatePem,
      templateArn: `arn:aws:iot:us-east-1:${ACCOUNT}:provisioningtemplate/fleet`,
      clientId: 'SN-3000',
      parameters: { SerialNumber: 'SN-3000' },
    } satisfies PreProvisioningHookEvent);
    const described = await iot.send(
      new DescribeCertificateCommand({ certificateId: created.certificateId }),
    );
    expect(described.certificateDescription?.status).toBe('ACTIVE');
    const thing = await iot.send(new DescribeThingCommand({ thingName: 'thing-SN-3000' }));
    expect(thing.attributes).toEqual({ serial: 'SN-3000' });
    const certArn = `arn:aws:iot:us-east-1:${ACCOUNT}:cert/${created.certificateId}`;
    expect((await iot.send(new ListPrincipalThingsCommand({ principal: certArn }))).things).toEqual([
      'thing-SN-3000',
    ]);
    expect(
      (await iot.send(new ListAttachedPoliciesCommand({ target: certArn }))).policies?.[0]?.policyName,
    ).toBe('device-policy');
    // the token is single-use
    const reuse = await emulator.registerThing({
      templateName: 'fleet',
      certificateOwnershipToken: created.certificateOwnershipToken,
      parameters: { SerialNumber: 'SN-3000' },
    });
    expect(reuse).toMatchObject({ statusCode: 400, errorCode: 'InvalidCertificateOwnershipToken' });
  });

  it('supports CreateKeysAndCertificate', async () => {
    await startFleet(async () => ({
      allowProvisioning: true,
      parameterOverrides: { ThingName: 'keys-thing' },
    }));
    const created = (await emulator.createKeysAndCertificate()) as FleetCertificateResponse;
    expect(created.privateKey).toMatch(/BEGIN RSA PRIVATE KEY/);
    const result = await emulator.registerThing({
      templateName: 'fleet',
      certificateOwnershipToken: created.certificateOwnershipToken,
      parameters: { SerialNumber: 'SN-3001' },
    });
    expect(result).toMatchObject({ thingName: 'keys-thing' });
  });

  it.each([
    ['denies', async () => ({ allowProvisioning: false })],
    [
      'throws',
      async () => {
        throw new Error('boom');
      },
    ],
    [
      'times out',
      () => new Promise<unknown>((resolve) => setTimeout(() => resolve({ allowProvisioning: true }), 1000)),
    ],
    ['returns garbage', async () => 'yes'],
  ] as [string, HookInvoker][])('rejects with 403 AccessDenied when the hook %s', async (_, impl) => {
    await startFleet(impl);
    const { csrPem } = await createCsr({ subject: { commonName: 'SN-4000' } });
    const created = await emulator.createCertificateFromCsr({ csr: csrPem });
    if (isRejection(created)) throw new Error(created.errorMessage);
    const result = await emulator.registerThing({
      templateName: 'fleet',
      certificateOwnershipToken: created.certificateOwnershipToken,
      parameters: { SerialNumber: 'SN-4000' },
    });
    expect(result).toEqual({ statusCode: 403, errorCode: 'AccessDenied', errorMessage: expect.any(String) });
    const described = await iot.send(
      new DescribeCertificateCommand({ certificateId: created.certificateId }),
    );
    expect(described.certificateDescription?.status).toBe('INACTIVE');
    expect(emulator.registry.things.size).toBe(0);
  });

  it('rejects an ownership token older than one hour', async () => {
    await startFleet(async () => ({ allowProvisioning: true }));
    const created = (await emulator.createKeysAndCertificate()) as FleetCertificateResponse;
    clock = new Date(clock.getTime() + 3_600_001);
    const result = await emulator.registerThing({
      templateName: 'fleet',
      certificateOwnershipToken: created.certificateOwnershipToken,
      parameters: { SerialNumber: 'SN-5000' },
    });
    expect(result).toMatchObject({ statusCode: 400, errorCode: 'InvalidCertificateOwnershipToken' });
    expect(hook).not.toHaveBeenCalled();
  });

  it('rejects unknown templates, missing parameters and bad CSRs', async () => {
    await startFleet(async () => ({ allowProvisioning: true }));
    const created = (await emulator.createKeysAndCertificate()) as FleetCertificateResponse;
    expect(
      await emulator.registerThing({
        templateName: 'nope',
        certificateOwnershipToken: created.certificateOwnershipToken,
      }),
    ).toMatchObject({ statusCode: 404, errorCode: 'NotFound' });
    expect(
      await emulator.registerThing({
        templateName: 'fleet',
        certificateOwnershipToken: created.certificateOwnershipToken,
      }),
    ).toMatchObject({ statusCode: 400, errorCode: 'InvalidParameters' });
    expect(await emulator.createCertificateFromCsr({ csr: 'not a csr' })).toMatchObject({
      statusCode: 400,
      errorCode: 'InvalidCertificateSigningRequest',
    });
  });

  it('exposes device-facing actions over the introspection routes', async () => {
    await startFleet(async () => ({
      allowProvisioning: true,
      parameterOverrides: { ThingName: 'via-http' },
    }));
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${emulator.endpoint}${path}`, { method: 'POST', body: JSON.stringify(body) });
      return (await res.json()) as Record<string, unknown>;
    };
    const created = await post('/_emulator/fleet/create-keys-and-certificate', {});
    const registered = await post('/_emulator/fleet/register-thing', {
      templateName: 'fleet',
      certificateOwnershipToken: created.certificateOwnershipToken,
      parameters: { SerialNumber: 'SN-6000' },
    });
    expect(registered).toMatchObject({ thingName: 'via-http' });
    const connected = await post('/_emulator/connect', {
      certificatePem: created.certificatePem,
      clientId: 'via-http',
    });
    expect(connected).toMatchObject({ accepted: true });
    const state = (await (await fetch(`${emulator.endpoint}/_emulator/state`)).json()) as {
      things: { thingName: string }[];
      sessions: { clientId: string }[];
    };
    expect(state.things.map((t) => t.thingName)).toEqual(['via-http']);
    expect(state.sessions.map((s) => s.clientId)).toEqual(['via-http']);
    const published = (await (
      await fetch(`${emulator.endpoint}/_emulator/published?topicPrefix=$aws/events/presence`)
    ).json()) as {
      messages: { topic: string; payload: { eventType: string } }[];
    };
    expect(published.messages.map((m) => m.payload.eventType)).toEqual(['connected']);
  });
});
