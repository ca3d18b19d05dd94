/**
 * IoT Core device-facing behaviour, transport-agnostic: what happens when a device presents a certificate
 * (known, JITR, JITP, refused), presence events, and the Fleet Provisioning API
 * (CreateCertificateFromCsr / CreateKeysAndCertificate / RegisterThing). The MQTT device endpoint
 * (local/mqtt/broker.ts) calls these for every MQTT connection.
 */
import { KeyObject, randomBytes, randomUUID } from 'node:crypto';
import {
  type CertificateAuthority,
  certificateId as computeCertificateId,
  generateKeyPair,
  issueCertificate,
  parseCertificate,
  signCsr,
  subjectFields,
  type x509,
} from '../pki';
import { IotError } from './errors';
import {
  type CertificateRegisteredEvent,
  type DisconnectReason,
  type PresenceConnectedEvent,
  type PresenceDisconnectedEvent,
  type PublishedMessage,
  type Publisher,
  topics,
} from './events';
import type { CaRecord, CertificateRecord, Registry } from './registry';
import { type ResolvedTemplate, resolveTemplate, TemplateError } from './template';

/** Why a connection was refused. */
/** How long a CreateProvisioningClaim certificate is valid (AWS: five minutes). */
export const PROVISIONING_CLAIM_SECONDS = 300;

export type ConnectRefusal =
  | 'BAD_CERTIFICATE'
  | 'UNKNOWN_CERTIFICATE'
  | 'CERTIFICATE_EXPIRED'
  | 'CERTIFICATE_INACTIVE'
  | 'CERTIFICATE_REVOKED'
  | 'CERTIFICATE_PENDING_TRANSFER'
  | 'PENDING_ACTIVATION'
  | 'JITP_PROVISIONED'
  | 'JITP_FAILED';

/** Input of {@link DeviceGateway.connect}. */
export interface ConnectInput {
  certificatePem: string;
  clientId: string;
  /** Source address reported in the presence event; default 127.0.0.1. */
  ipAddress?: string;
}

/** The outcome of a connection attempt. */
export type ConnectOutcome =
  | {
      accepted: true;
      clientId: string;
      certificateId: string;
      sessionIdentifier: string;
      versionNumber: number;
    }
  | {
      accepted: false;
      reason: ConnectRefusal;
      message: string;
      certificateId?: string;
      /** Set when the attempt auto-registered or provisioned something. */
      provisioned?: { thingName?: string; certificateStatus: string };
    };

/** A live session. */
export interface Session {
  clientId: string;
  certificateId: string;
  sessionIdentifier: string;
  versionNumber: number;
  ipAddress: string;
  connectedAt: Date;
}

/** Input of {@link DeviceGateway.publish}. */
export interface DevicePublishInput {
  /** The publishing client; it must have a live session. */
  clientId: string;
  topic: string;
  /** Objects are JSON-encoded, strings sent as UTF-8. */
  payload: Buffer | string | object;
  qos?: 0 | 1;
}

/** The outcome of a device publish. */
export type DevicePublishOutcome =
  | { accepted: true; message: PublishedMessage }
  | { accepted: false; reason: 'NOT_CONNECTED' | 'INVALID_TOPIC' | 'PAYLOAD_TOO_LARGE'; message: string };

/** IoT Core's message size limit (128 KB). */
const MAX_PAYLOAD_BYTES = 128 * 1024;

/** Fleet provisioning: response of CreateCertificateFromCsr / CreateKeysAndCertificate over MQTT. */
export interface FleetCertificateResponse {
  certificateId: string;
  certificatePem: string;
  certificateOwnershipToken: string;
  /** CreateKeysAndCertificate only. */
  privateKey?: string;
}

/** Input of RegisterThing. */
export interface RegisterThingInput {
  templateName: string;
  certificateOwnershipToken: string;
  parameters?: Record<string, string>;
  /** The claim certificate the device is connected with (passed to the hook). */
  claimCertificateId?: string;
  /** The device's MQTT client id (passed to the hook). */
  clientId?: string;
}

/**
 * Rejected fleet-provisioning response, as published on `.../rejected` topics.
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/fleet-provision-api.html
 */
export interface FleetRejection {
  statusCode: number;
  errorCode: string;
  errorMessage: string;
}

/** Accepted RegisterThing response. */
export interface RegisterThingAccepted {
  deviceConfiguration: Record<string, string>;
  thingName: string;
}

/**
 * Pre-provisioning hook event.
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/pre-provisioning-hook.html
 */
export interface PreProvisioningHookEvent {
  claimCertificateId: string;
  certificateId: string;
  certificatePem: string;
  templateArn: string;
  clientId: string;
  parameters: Record<string, string>;
}

/** Invokes the Lambda named by `targetArn` with `event` and returns its response. */
export type HookInvoker = (targetArn: string, event: PreProvisioningHookEvent) => Promise<unknown>;

interface OwnershipToken {
  certificateId: string;
  expiresAt: number;
}

/** Dependencies of the gateway. */
export interface DeviceGatewayContext {
  accountId: string;
  now: () => Date;
  registry: Registry;
  publisher: Publisher;
  /** The emulator's own CA ("Amazon"): signs CreateCertificateFromCsr / CreateKeysAndCertificate. */
  issuer: CertificateAuthority;
  invokeHook?: HookInvoker;
  hookTimeoutMs: number;
  ownershipTokenTtlMs: number;
  /** Validity of certificates the emulator issues (AWS: until 2049-12-31). */
  issuedNotAfter: Date;
}

const JITP_SUBJECT_PARAMETERS: Record<string, keyof ReturnType<typeof subjectFields>> = {
  'AWS::IoT::Certificate::CommonName': 'commonName',
  'AWS::IoT::Certificate::SerialNumber': 'serialNumber',
  'AWS::IoT::Certificate::Organization': 'organization',
  'AWS::IoT::Certificate::OrganizationalUnit': 'organizationalUnit',
  'AWS::IoT::Certificate::Country': 'country',
  'AWS::IoT::Certificate::StateName': 'state',
  'AWS::IoT::Certificate::Locality': 'locality',
};

/** Device-facing behaviour of one emulator. */
export class DeviceGateway {
  readonly sessions = new Map<string, Session>();
  private readonly versionNumbers = new Map<string, number>();
  private readonly tokens = new Map<string, OwnershipToken>();
  private readonly disconnectListeners = new Set<(session: Session, reason: DisconnectReason) => void>();

  constructor(private readonly ctx: DeviceGatewayContext) {}

  /** Called when the emulator ends a session (e.g. DUPLICATE_CLIENTID) so a transport can close it. */
  onDisconnect(listener: (session: Session, reason: DisconnectReason) => void): () => void {
    this.disconnectListeners.add(listener);
    return () => this.disconnectListeners.delete(listener);
  }

  /** A device presents `certificatePem` and connects as `clientId`. */
  async connect(input: ConnectInput): Promise<ConnectOutcome> {
    let certificate: x509.X509Certificate;
    try {
      certificate = parseCertificate(input.certificatePem);
    } catch {
      return {
        accepted: false,
        reason: 'BAD_CERTIFICATE',
        message: 'The client certificate cannot be parsed',
      };
    }
    const certificateId = computeCertificateId(certificate);
    const now = this.ctx.now();
    if (certificate.notAfter < now || certificate.notBefore > now) {
      return {
        accepted: false,
        reason: 'CERTIFICATE_EXPIRED',
        message: 'The client certificate is not within its validity period',
        certificateId,
      };
    }
    const known = this.ctx.registry.certificates.get(certificateId);
    if (known) return this.connectKnown(known, input);

    const ca = await this.ctx.registry.findSigningCa(certificate);
    if (ca?.status !== 'ACTIVE' || ca.autoRegistrationStatus !== 'ENABLE') {
      return {
        accepted: false,
        reason: 'UNKNOWN_CERTIFICATE',
        message: 'The client certificate is not registered',
        certificateId,
      };
    }
    const record = this.ctx.registry.autoRegister(certificate, input.certificatePem, ca);
    if (ca.registrationConfig?.templateBody || ca.registrationConfig?.templateName) {
      return this.justInTimeProvision(record, ca);
    }
    await this.publishRegistered(record, ca);
    return {
      accepted: false,
      reason: 'PENDING_ACTIVATION',
      message: 'The certificate was auto-registered as PENDING_ACTIVATION (JITR); activate it and reconnect',
      certificateId,
      provisioned: { certificateStatus: record.status },
    };
  }

  private async connectKnown(cert: CertificateRecord, input: ConnectInput): Promise<ConnectOutcome> {
    const certificateId = cert.certificateId;
    switch (cert.status) {
      case 'ACTIVE':
        return this.openSession(cert, input);
      case 'PENDING_ACTIVATION': {
        const ca = cert.caCertificateId ? this.ctx.registry.cas.get(cert.caCertificateId) : undefined;
        // AWS republishes the registration event on every connection attempt while PENDING_ACTIVATION.
        if (ca && ca.status === 'ACTIVE' && ca.autoRegistrationStatus === 'ENABLE')
          await this.publishRegistered(cert, ca);
        return {
          accepted: false,
          reason: 'PENDING_ACTIVATION',
          message: 'The certificate is PENDING_ACTIVATION',
          certificateId,
        };
      }
      case 'REVOKED':
        return {
          accepted: false,
          reason: 'CERTIFICATE_REVOKED',
          message: 'The certificate is REVOKED',
          certificateId,
        };
      case 'PENDING_TRANSFER':
        return {
          accepted: false,
          reason: 'CERTIFICATE_PENDING_TRANSFER',
          message: 'The certificate is PENDING_TRANSFER',
          certificateId,
        };
      default:
        return {
          accepted: false,
          reason: 'CERTIFICATE_INACTIVE',
          message: `The certificate is ${cert.status}`,
          certificateId,
        };
    }
  }

  private async openSession(cert: CertificateRecord, input: ConnectInput): Promise<ConnectOutcome> {
    const previous = this.sessions.get(input.clientId);
    if (previous) await this.endSession(previous, 'DUPLICATE_CLIENTID');
    const versionNumber = (this.versionNumbers.get(input.clientId) ?? -1) + 1;
    this.versionNumbers.set(input.clientId, versionNumber);
    const session: Session = {
      clientId: input.clientId,
      certificateId: cert.certificateId,
      sessionIdentifier: randomUUID(),
      versionNumber,
      ipAddress: input.ipAddress ?? '127.0.0.1',
      connectedAt: this.ctx.now(),
    };
    this.sessions.set(input.clientId, session);
    const event: PresenceConnectedEvent = {
      clientId: session.clientId,
      timestamp: this.ctx.now().getTime(),
      eventType: 'connected',
      sessionIdentifier: session.sessionIdentifier,
      principalIdentifier: session.certificateId,
      ipAddress: session.ipAddress,
      versionNumber,
    };
    await this.ctx.publisher.publish(topics.presenceConnected(session.clientId), event, {
      source: 'presence',
    });
    return {
      accepted: true,
      clientId: session.clientId,
      certificateId: session.certificateId,
      sessionIdentifier: session.sessionIdentifier,
      versionNumber,
    };
  }

  private async endSession(session: Session, reason: DisconnectReason): Promise<void> {
    if (this.sessions.get(session.clientId) === session) this.sessions.delete(session.clientId);
    const event: PresenceDisconnectedEvent = {
      clientId: session.clientId,
      timestamp: this.ctx.now().getTime(),
      eventType: 'disconnected',
      sessionIdentifier: session.sessionIdentifier,
      principalIdentifier: session.certificateId,
      clientInitiatedDisconnect: reason === 'CLIENT_INITIATED_DISCONNECT',
      disconnectReason: reason,
      versionNumber: session.versionNumber,
    };
    for (const listener of this.disconnectListeners) listener(session, reason);
    await this.ctx.publisher.publish(topics.presenceDisconnected(session.clientId), event, {
      source: 'presence',
    });
  }

  /**
   * Ends `clientId`'s session and publishes the disconnected event (default reason
   * CLIENT_INITIATED_DISCONNECT). Returns false when the client has no session (or another session id).
   */
  async disconnect(input: {
    clientId: string;
    sessionIdentifier?: string;
    reason?: DisconnectReason;
  }): Promise<boolean> {
    const session = this.sessions.get(input.clientId);
    if (!session) return false;
    if (input.sessionIdentifier && session.sessionIdentifier !== input.sessionIdentifier) return false;
    await this.endSession(session, input.reason ?? 'CLIENT_INITIATED_DISCONNECT');
    return true;
  }

  /**
   * A connected device publishes `payload` on `topic`. The message goes to the publisher (sink, listeners,
   * log) with the session's certificate id as `principal` and its client id, which the rules engine's
   * `principal()` and `clientid()` return. Refused without a live session, on a topic with wildcards or
   * longer than 256 bytes, and over 128 KB (AWS closes such connections; here the publish is refused).
   */
  async publish(input: DevicePublishInput): Promise<DevicePublishOutcome> {
    const session = this.sessions.get(input.clientId);
    if (!session) {
      return {
        accepted: false,
        reason: 'NOT_CONNECTED',
        message: `Client ${input.clientId} is not connected`,
      };
    }
    const topic = input.topic;
    if (
      typeof topic !== 'string' ||
      topic.length === 0 ||
      Buffer.byteLength(topic) > 256 ||
      topic.includes('+') ||
      topic.includes('#')
    ) {
      return {
        accepted: false,
        reason: 'INVALID_TOPIC',
        message: 'A publish topic is 1-256 bytes without wildcards',
      };
    }
    const bytes = Buffer.isBuffer(input.payload)
      ? input.payload
      : Buffer.from(typeof input.payload === 'string' ? input.payload : JSON.stringify(input.payload));
    if (bytes.length > MAX_PAYLOAD_BYTES) {
      return { accepted: false, reason: 'PAYLOAD_TOO_LARGE', message: 'The payload exceeds 128 KB' };
    }
    const message = await this.ctx.publisher.publish(topic, bytes, {
      source: 'device',
      qos: input.qos ?? 0,
      principal: session.certificateId,
      clientId: session.clientId,
    });
    return { accepted: true, message };
  }

  private async publishRegistered(cert: CertificateRecord, ca: CaRecord): Promise<void> {
    const event: CertificateRegisteredEvent = {
      certificateId: cert.certificateId,
      caCertificateId: ca.certificateId,
      timestamp: this.ctx.now().getTime(),
      certificateStatus: 'PENDING_ACTIVATION',
      awsAccountId: this.ctx.accountId,
      certificateRegistrationTimestamp: cert.creationDate.getTime(),
    };
    await this.ctx.publisher.publish(topics.certificateRegistered(ca.certificateId), event, {
      source: 'certificate-registration',
    });
  }

  /**
   * JITP: applies the CA's template with parameters from the certificate subject. Like AWS, the attempt
   * that triggers provisioning is itself refused; the device reconnects with its now-active certificate.
   */
  private async justInTimeProvision(cert: CertificateRecord, ca: CaRecord): Promise<ConnectOutcome> {
    const config = ca.registrationConfig ?? {};
    const body =
      config.templateBody ??
      (config.templateName ? this.ctx.registry.templates.get(config.templateName)?.templateBody : undefined);
    const fields = subjectFields(cert.certificate);
    const parameters: Record<string, string> = { 'AWS::IoT::Certificate::Id': cert.certificateId };
    for (const [name, field] of Object.entries(JITP_SUBJECT_PARAMETERS)) {
      const value = fields[field];
      if (value !== undefined) parameters[name] = value;
    }
    try {
      if (!body) throw new TemplateError('The CA has no provisioning template');
      const resolved = resolveTemplate(body, parameters);
      const thing = await this.ctx.registry.provision(resolved, cert);
      return {
        accepted: false,
        reason: 'JITP_PROVISIONED',
        message: 'The device was provisioned just in time; reconnect',
        certificateId: cert.certificateId,
        provisioned: { thingName: thing?.thingName, certificateStatus: cert.status },
      };
    } catch (error) {
      return {
        accepted: false,
        reason: 'JITP_FAILED',
        message: error instanceof Error ? error.message : String(error),
        certificateId: cert.certificateId,
        provisioned: { certificateStatus: cert.status },
      };
    }
  }

  // ---------------------------------------------------------------- fleet provisioning (MQTT API)

  private newOwnershipToken(certificateId: string): string {
    const token = randomBytes(96).toString('base64');
    this.tokens.set(token, {
      certificateId,
      expiresAt: this.ctx.now().getTime() + this.ctx.ownershipTokenTtlMs,
    });
    return token;
  }

  /** Issues a certificate for `csrPem` from the emulator CA; throws IotError on a bad CSR. */
  async issueFromCsr(csrPem: unknown, status: 'ACTIVE' | 'INACTIVE'): Promise<CertificateRecord> {
    if (typeof csrPem !== 'string' || csrPem.length === 0) {
      throw new IotError('InvalidRequestException', 'certificateSigningRequest is required');
    }
    let issued: Awaited<ReturnType<typeof signCsr>>;
    try {
      issued = await signCsr(this.ctx.issuer, csrPem, {
        notAfter: this.ctx.issuedNotAfter,
        notBefore: this.ctx.now(),
        subject: 'CN=AWS IoT Certificate',
      });
    } catch {
      throw new IotError('InvalidRequestException', 'The certificate signing request is not valid');
    }
    return this.ctx.registry.addIssuedCertificate(issued.certificate, issued.certificatePem, status);
  }

  /**
   * Generates a key pair and a certificate from the emulator CA. As AWS documents for
   * CreateKeysAndCertificate (control plane and MQTT API): "a 2048-bit RSA key pair"; the private key in
   * PEM as AWS returns it (PKCS#1, `-----BEGIN RSA PRIVATE KEY-----`), the public key as SPKI PEM.
   * @see https://docs.aws.amazon.com/iot/latest/apireference/API_CreateKeysAndCertificate.html
   */
  async issueWithKeys(
    status: 'ACTIVE' | 'INACTIVE',
  ): Promise<{ record: CertificateRecord; publicKeyPem: string; privateKeyPem: string }> {
    const keys = await generateKeyPair('RSA-2048');
    const issued = await issueCertificate(this.ctx.issuer, {
      publicKey: keys.publicKey,
      subject: 'CN=AWS IoT Certificate',
      notBefore: this.ctx.now(),
      notAfter: this.ctx.issuedNotAfter,
    });
    const record = this.ctx.registry.addIssuedCertificate(issued.certificate, issued.certificatePem, status);
    return {
      record,
      publicKeyPem: issued.certificate.publicKey.toString('pem'),
      privateKeyPem: KeyObject.from(keys.privateKey).export({ type: 'pkcs1', format: 'pem' }).toString(),
    };
  }

  /**
   * CreateProvisioningClaim: an ACTIVE claim certificate (RSA 2048 key pair) valid for five minutes,
   * as AWS issues them for provisioning by trusted user; RegisterThing accepts it only for its
   * template, and the handshake refuses it once it has expired.
   */
  async issueProvisioningClaim(
    templateName: string,
  ): Promise<{ record: CertificateRecord; publicKeyPem: string; privateKeyPem: string; expiration: Date }> {
    const now = this.ctx.now();
    const expiration = new Date(now.getTime() + PROVISIONING_CLAIM_SECONDS * 1000);
    const keys = await generateKeyPair('RSA-2048');
    const issued = await issueCertificate(this.ctx.issuer, {
      publicKey: keys.publicKey,
      subject: 'CN=AWS IoT Provisioning Claim',
      notBefore: now,
      notAfter: expiration,
    });
    const record = this.ctx.registry.addIssuedCertificate(
      issued.certificate,
      issued.certificatePem,
      'ACTIVE',
    );
    record.provisioningClaim = { templateName, expiration };
    return {
      record,
      publicKeyPem: issued.certificate.publicKey.toString('pem'),
      privateKeyPem: KeyObject.from(keys.privateKey).export({ type: 'pkcs1', format: 'pem' }).toString(),
      expiration,
    };
  }

  /** Fleet provisioning CreateCertificateFromCsr: certificate INACTIVE until RegisterThing activates it. */
  async createCertificateFromCsr(input: { csr: string }): Promise<FleetCertificateResponse | FleetRejection> {
    try {
      const record = await this.issueFromCsr(input.csr, 'INACTIVE');
      return {
        certificateId: record.certificateId,
        certificatePem: record.certificatePem,
        certificateOwnershipToken: this.newOwnershipToken(record.certificateId),
      };
    } catch (error) {
      return {
        statusCode: 400,
        errorCode: 'InvalidCertificateSigningRequest',
        errorMessage: messageOf(error),
      };
    }
  }

  /** Fleet provisioning CreateKeysAndCertificate. */
  async createKeysAndCertificate(): Promise<FleetCertificateResponse> {
    const { record, privateKeyPem } = await this.issueWithKeys('INACTIVE');
    return {
      certificateId: record.certificateId,
      certificatePem: record.certificatePem,
      privateKey: privateKeyPem,
      certificateOwnershipToken: this.newOwnershipToken(record.certificateId),
    };
  }

  /**
   * Fleet provisioning RegisterThing: checks the ownership token (valid one hour), calls the template's
   * pre-provisioning hook (5 s limit; a throw, timeout or `allowProvisioning: false` is an AccessDenied
   * rejection), merges `parameterOverrides`, creates the template's resources and activates the certificate.
   */
  async registerThing(input: RegisterThingInput): Promise<RegisterThingAccepted | FleetRejection> {
    const template = this.ctx.registry.templates.get(input.templateName);
    if (!template) return reject(404, 'NotFound', `Template ${input.templateName} does not exist`);
    if (!template.enabled) return reject(400, 'InvalidRequest', `Template ${input.templateName} is disabled`);
    const token = this.tokens.get(input.certificateOwnershipToken);
    if (!token)
      return reject(400, 'InvalidCertificateOwnershipToken', 'The certificate ownership token is invalid');
    if (this.ctx.now().getTime() > token.expiresAt) {
      this.tokens.delete(input.certificateOwnershipToken);
      return reject(400, 'InvalidCertificateOwnershipToken', 'The certificate ownership token has expired');
    }
    const cert = this.ctx.registry.certificates.get(token.certificateId);
    if (!cert) return reject(400, 'InvalidCertificateOwnershipToken', 'The certificate no longer exists');
    // A temporary provisioning claim works for its own template only, and only until it expires.
    const claim = input.claimCertificateId
      ? this.ctx.registry.certificates.get(input.claimCertificateId)?.provisioningClaim
      : undefined;
    if (claim && claim.templateName !== template.templateName) {
      return reject(403, 'AccessDenied', 'The provisioning claim is not valid for this template');
    }
    if (claim && this.ctx.now().getTime() >= claim.expiration.getTime()) {
      return reject(403, 'AccessDenied', 'The provisioning claim has expired');
    }
    let parameters: Record<string, string> = { ...(input.parameters ?? {}) };

    if (template.preProvisioningHook) {
      const event: PreProvisioningHookEvent = {
        claimCertificateId: input.claimCertificateId ?? '',
        certificateId: cert.certificateId,
        certificatePem: cert.certificatePem,
        templateArn: template.templateArn,
        clientId: input.clientId ?? '',
        parameters: { ...parameters },
      };
      const verdict = await this.callHook(template.preProvisioningHook.targetArn, event);
      if (!verdict.allow) return reject(403, 'AccessDenied', verdict.message);
      parameters = { ...parameters, ...verdict.overrides };
    }

    let resolved: ResolvedTemplate;
    try {
      resolved = resolveTemplate(template.templateBody, {
        ...parameters,
        'AWS::IoT::Certificate::Id': cert.certificateId,
      });
    } catch (error) {
      return reject(400, 'InvalidParameters', messageOf(error));
    }
    try {
      const thing = await this.ctx.registry.provision(
        {
          ...resolved,
          certificate: { ...resolved.certificate, status: resolved.certificate?.status ?? 'ACTIVE' },
        },
        cert,
      );
      this.tokens.delete(input.certificateOwnershipToken);
      return { deviceConfiguration: resolved.deviceConfiguration, thingName: thing?.thingName ?? '' };
    } catch (error) {
      return reject(400, 'ResourceCreationFailure', messageOf(error));
    }
  }

  private async callHook(
    targetArn: string,
    event: PreProvisioningHookEvent,
  ): Promise<{ allow: true; overrides: Record<string, string> } | { allow: false; message: string }> {
    const invoke = this.ctx.invokeHook;
    if (!invoke)
      return {
        allow: false,
        message: 'The pre-provisioning hook could not be invoked (no invoker configured)',
      };
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.ctx.hookTimeoutMs);
    });
    try {
      const response = await Promise.race([invoke(targetArn, event), timeout]);
      if (response === 'timeout') return { allow: false, message: 'The pre-provisioning hook timed out' };
      if (typeof response !== 'object' || response === null) {
        return { allow: false, message: 'The pre-provisioning hook returned an invalid response' };
      }
      const { allowProvisioning, parameterOverrides } = response as {
        allowProvisioning?: unknown;
        parameterOverrides?: unknown;
      };
      if (allowProvisioning !== true)
        return { allow: false, message: 'Provisioning was denied by the pre-provisioning hook' };
      const overrides: Record<string, string> = {};
      if (typeof parameterOverrides === 'object' && parameterOverrides !== null) {
        for (const [k, v] of Object.entries(parameterOverrides)) overrides[k] = String(v);
      }
      return { allow: true, overrides };
    } catch (error) {
      return { allow: false, message: `The pre-provisioning hook failed: ${messageOf(error)}` };
    } finally {
      clearTimeout(timer);
    }
  }
}

function reject(statusCode: number, errorCode: string, errorMessage: string): FleetRejection {
  return { statusCode, errorCode, errorMessage };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Type guard: true when a fleet-provisioning response is a rejection. */
export function isRejection(response: object): response is FleetRejection {
  return 'statusCode' in response && 'errorCode' in response;
}
