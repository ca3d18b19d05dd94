/**
 * In-memory AWS IoT registry: CA and device certificates, things, thing groups, policies, provisioning
 * templates and event configurations, with AWS's validation rules, idempotency and error codes.
 * Transport-agnostic: the HTTP layer and the device-facing behaviour both call these methods.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import {
  certificateId as computeCertificateId,
  isCaCertificate,
  isSignedBy,
  parseCertificate,
  subjectFields,
  type x509,
} from '../pki';
import { IotError, invalidRequest, notFound } from './errors';
import { type Publisher, type ThingEvent, topics } from './events';
import { caIdOfTaggedArn, mergeTags, parseTags } from './tags';
import { parseTemplateBody, type ResolvedTemplate, TemplateError } from './template';

/** Statuses a device certificate can have. */
export type CertificateStatus =
  | 'ACTIVE'
  | 'INACTIVE'
  | 'REVOKED'
  | 'PENDING_TRANSFER'
  | 'REGISTER_INACTIVE'
  | 'PENDING_ACTIVATION';

const CERTIFICATE_STATUSES: readonly CertificateStatus[] = [
  'ACTIVE',
  'INACTIVE',
  'REVOKED',
  'PENDING_TRANSFER',
  'REGISTER_INACTIVE',
  'PENDING_ACTIVATION',
];

/** The event types UpdateEventConfigurations accepts. */
export const EVENT_TYPES = [
  'THING',
  'THING_GROUP',
  'THING_TYPE',
  'THING_GROUP_MEMBERSHIP',
  'THING_GROUP_HIERARCHY',
  'THING_TYPE_ASSOCIATION',
  'JOB',
  'JOB_EXECUTION',
  'POLICY',
  'CERTIFICATE',
  'CA_CERTIFICATE',
] as const;

/** A registered CA certificate. */
export interface CaRecord {
  certificateId: string;
  certificateArn: string;
  certificatePem: string;
  certificate: x509.X509Certificate;
  status: 'ACTIVE' | 'INACTIVE';
  autoRegistrationStatus: 'ENABLE' | 'DISABLE';
  registrationConfig?: { templateBody?: string; roleArn?: string; templateName?: string };
  certificateMode: 'DEFAULT' | 'SNI_ONLY';
  creationDate: Date;
  lastModifiedDate: Date;
  customerVersion: number;
  generationId: string;
  seq: number;
  /** Its tags (RegisterCACertificate's `tags`, TagResource); local/iot-emulator/tags.ts. */
  tags: Map<string, string>;
}

/** A registered device certificate. */
export interface CertificateRecord {
  certificateId: string;
  certificateArn: string;
  certificatePem: string;
  certificate: x509.X509Certificate;
  caCertificateId?: string;
  status: CertificateStatus;
  certificateMode: 'DEFAULT' | 'SNI_ONLY';
  /** A temporary provisioning claim (CreateProvisioningClaim): the template it is for, and its end. */
  provisioningClaim?: { templateName: string; expiration: Date };
  creationDate: Date;
  lastModifiedDate: Date;
  customerVersion: number;
  generationId: string;
  seq: number;
}

/** A thing. */
export interface ThingRecord {
  thingName: string;
  thingId: string;
  thingArn: string;
  thingTypeName?: string;
  billingGroupName?: string;
  attributes: Record<string, string>;
  version: number;
  principals: Set<string>;
  groups: Set<string>;
  seq: number;
}

/** A thing group (static groups only). */
export interface ThingGroupRecord {
  thingGroupName: string;
  thingGroupId: string;
  thingGroupArn: string;
  parentGroupName?: string;
  description?: string;
  attributes: Record<string, string>;
  version: number;
  creationDate: Date;
  things: Set<string>;
  seq: number;
}

/** A policy (single version). */
export interface PolicyRecord {
  policyName: string;
  policyArn: string;
  policyDocument: string;
  creationDate: Date;
  lastModifiedDate: Date;
  generationId: string;
  targets: Set<string>;
}

/** A provisioning template. */
export interface TemplateRecord {
  templateName: string;
  templateArn: string;
  templateBody: string;
  provisioningRoleArn: string;
  description?: string;
  enabled: boolean;
  preProvisioningHook?: { targetArn: string; payloadVersion: string };
  type: 'FLEET_PROVISIONING' | 'JITP';
  creationDate: Date;
  lastModifiedDate: Date;
  defaultVersionId: number;
}

/** Context the registry needs from its emulator. */
export interface RegistryContext {
  accountId: string;
  region: string;
  now: () => Date;
  publisher: Publisher;
}

const THING_NAME = /^[a-zA-Z0-9:_-]+$/;
const POLICY_NAME = /^[\w+=,.@-]+$/;
const TEMPLATE_NAME = /^[0-9A-Za-z_-]+$/;
const ATTRIBUTE_NAME = /^[a-zA-Z0-9_.,@/:#=[\]-]+$/;
const ATTRIBUTE_VALUE = /^[a-zA-Z0-9_.,@/:#=[\]-]*$/;
const CERTIFICATE_ID = /^[0-9a-fA-F]{64}$/;
const MAX_PEM = 65_536;
const MAX_POLICIES_PER_TARGET = 10;
const MAX_GROUPS_PER_THING = 10;

/** Checks a name against AWS's length and pattern rules; throws InvalidRequestException. */
export function checkName(kind: string, value: unknown, pattern: RegExp, max: number): string {
  if (typeof value !== 'string' || value.length < 1 || value.length > max || !pattern.test(value)) {
    throw invalidRequest(`${kind} must match ${pattern.source} and be 1..${max} characters`);
  }
  return value;
}

function checkCertificateId(value: unknown): string {
  if (typeof value !== 'string' || !CERTIFICATE_ID.test(value)) {
    throw invalidRequest('certificateId must be 64 hexadecimal characters');
  }
  return value.toLowerCase();
}

function checkAttributes(attributes: unknown, allowEmptyValues: boolean): Record<string, string> {
  if (attributes === undefined || attributes === null) return {};
  if (typeof attributes !== 'object' || Array.isArray(attributes))
    throw invalidRequest('attributes must be a map');
  const entries = Object.entries(attributes as Record<string, unknown>);
  if (entries.length > 50) throw invalidRequest('a thing can have at most 50 attributes');
  const out: Record<string, string> = {};
  for (const [name, value] of entries) {
    if (name.length > 128 || !ATTRIBUTE_NAME.test(name))
      throw invalidRequest(`invalid attribute name ${name}`);
    if (typeof value !== 'string' || value.length > 800 || !ATTRIBUTE_VALUE.test(value)) {
      throw invalidRequest(`invalid value for attribute ${name}`);
    }
    if (value === '' && !allowEmptyValues) continue;
    out[name] = value;
  }
  return out;
}

function sameAttributes(a: Record<string, string>, b: Record<string, string>): boolean {
  const ak = Object.keys(a);
  return ak.length === Object.keys(b).length && ak.every((k) => a[k] === b[k]);
}

function parsePem(pem: unknown, what: string): x509.X509Certificate {
  if (typeof pem !== 'string' || pem.length === 0 || pem.length > MAX_PEM) {
    throw new IotError('CertificateValidationException', `${what} is missing or too large`);
  }
  try {
    return parseCertificate(pem);
  } catch {
    throw new IotError('CertificateValidationException', `${what} is not a valid X.509 certificate`);
  }
}

/** Offset-based paging over an already ordered list; tokens are opaque to callers. */
export function paginate<T>(
  items: T[],
  token: string | undefined,
  size: number | undefined,
  { defaultSize, maxSize, what }: { defaultSize: number; maxSize: number; what: string },
): { page: T[]; next?: string } {
  const pageSize = size ?? defaultSize;
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > maxSize) {
    throw invalidRequest(`${what} must be between 1 and ${maxSize}`);
  }
  let offset = 0;
  if (token !== undefined && token !== '') {
    const decoded = Number.parseInt(Buffer.from(token, 'base64url').toString('utf8').replace(/^o:/, ''), 10);
    if (!Number.isInteger(decoded) || decoded < 0) throw invalidRequest('invalid paging token');
    offset = decoded;
  }
  const page = items.slice(offset, offset + pageSize);
  const nextOffset = offset + page.length;
  return {
    page,
    next: nextOffset < items.length ? Buffer.from(`o:${nextOffset}`).toString('base64url') : undefined,
  };
}

/** The registry of one emulator instance. */
export class Registry {
  readonly cas = new Map<string, CaRecord>();
  readonly certificates = new Map<string, CertificateRecord>();
  readonly things = new Map<string, ThingRecord>();
  readonly thingGroups = new Map<string, ThingGroupRecord>();
  readonly policies = new Map<string, PolicyRecord>();
  readonly templates = new Map<string, TemplateRecord>();
  /** principal (ARN or Cognito id) → thing names. */
  readonly principalThings = new Map<string, Set<string>>();
  /** principal → thing name it is exclusively attached to. */
  readonly exclusivePrincipals = new Map<string, string>();
  /** target (certificate ARN, thing group ARN, Cognito id) → policy names. */
  readonly targetPolicies = new Map<string, Set<string>>();
  readonly eventConfigurations = new Map<string, boolean>(EVENT_TYPES.map((t) => [t, false]));
  eventConfigurationsCreated: Date;
  eventConfigurationsModified: Date;
  private seq = 0;

  constructor(private readonly ctx: RegistryContext) {
    this.eventConfigurationsCreated = ctx.now();
    this.eventConfigurationsModified = this.eventConfigurationsCreated;
  }

  private arn(resource: string): string {
    return `arn:aws:iot:${this.ctx.region}:${this.ctx.accountId}:${resource}`;
  }

  certificateArn(certificateId: string): string {
    return this.arn(`cert/${certificateId}`);
  }

  // ---------------------------------------------------------------- CA certificates

  /** RegisterCACertificate. */
  async registerCaCertificate(input: {
    caCertificate: unknown;
    verificationCertificate?: unknown;
    setAsActive?: boolean;
    allowAutoRegistration?: boolean;
    registrationConfig?: CaRecord['registrationConfig'];
    certificateMode?: unknown;
    tags?: unknown;
  }): Promise<CaRecord> {
    const mode = input.certificateMode ?? 'DEFAULT';
    const tags = new Map<string, string>();
    mergeTags(tags, parseTags(input.tags) ?? new Map());
    if (mode !== 'DEFAULT' && mode !== 'SNI_ONLY')
      throw invalidRequest('certificateMode must be DEFAULT or SNI_ONLY');
    const certificate = parsePem(input.caCertificate, 'caCertificate');
    if (!isCaCertificate(certificate)) {
      throw new IotError(
        'CertificateValidationException',
        'caCertificate is not a CA certificate (basicConstraints cA=false)',
      );
    }
    const now = this.ctx.now();
    if (certificate.notAfter < now)
      throw new IotError('CertificateValidationException', 'caCertificate has expired');
    // The API reference: "If certificateMode is SNI_ONLY, the verificationCertificate field must be empty.
    // If certificateMode is DEFAULT or not provided, the verificationCertificate field must not be
    // empty." The verification certificate proves possession of the CA's key: signed by it, with the
    // account's registration code (GetRegistrationCode) as its Common Name.
    const verificationPem = input.verificationCertificate;
    const hasVerification =
      verificationPem !== undefined && verificationPem !== null && verificationPem !== '';
    if (mode === 'SNI_ONLY' && hasVerification) {
      throw invalidRequest('verificationCertificate must be empty when certificateMode is SNI_ONLY');
    }
    if (mode === 'DEFAULT') {
      if (!hasVerification) {
        throw invalidRequest(
          'verificationCertificate is required when certificateMode is DEFAULT: a certificate signed by the CA ' +
            'with the registration code (GetRegistrationCode) as its Common Name',
        );
      }
      const verification = parsePem(verificationPem, 'verificationCertificate');
      if (!(await isSignedBy(verification, certificate))) {
        throw new IotError(
          'CertificateValidationException',
          'verificationCertificate is not signed by caCertificate',
        );
      }
      if (verification.notAfter < now || verification.notBefore > now) {
        throw new IotError(
          'CertificateValidationException',
          'verificationCertificate is not within its validity period',
        );
      }
      const commonName = subjectFields(verification).commonName;
      if (commonName !== this.registrationCode) {
        throw new IotError(
          'RegistrationCodeValidationException',
          `The verification certificate's Common Name (${commonName ?? 'none'}) is not this account's registration code`,
        );
      }
    }
    // "You can register up to 10 CA certificates with the same CA subject field per account."
    const sameSubject = [...this.cas.values()].filter(
      (ca) =>
        ca.certificate.subject === certificate.subject &&
        ca.certificateId !== computeCertificateId(certificate),
    );
    if (sameSubject.length >= 10) {
      throw new IotError(
        'LimitExceededException',
        `10 CA certificates with the subject ${certificate.subject} are registered already`,
      );
    }
    this.checkRegistrationConfig(input.registrationConfig);
    const certificateId = computeCertificateId(certificate);
    if (this.cas.has(certificateId)) {
      throw new IotError('ResourceAlreadyExistsException', 'The CA certificate is already registered', {
        resourceId: certificateId,
        resourceArn: this.arn(`cacert/${certificateId}`),
      });
    }
    const record: CaRecord = {
      certificateId,
      certificateArn: this.arn(`cacert/${certificateId}`),
      certificatePem: input.caCertificate as string,
      certificate,
      status: input.setAsActive ? 'ACTIVE' : 'INACTIVE',
      autoRegistrationStatus: input.allowAutoRegistration ? 'ENABLE' : 'DISABLE',
      registrationConfig: input.registrationConfig ?? undefined,
      certificateMode: mode,
      creationDate: now,
      lastModifiedDate: now,
      customerVersion: 1,
      generationId: randomUUID(),
      seq: ++this.seq,
      tags,
    };
    this.cas.set(certificateId, record);
    return record;
  }

  private registrationCodeValue?: string;

  /**
   * GetRegistrationCode: the account's CA registration code (64 hex characters), the same on every call
   * until DeleteRegistrationCode.
   */
  get registrationCode(): string {
    // Stable per account, as on AWS, so a verification certificate made once (e.g. for a CA declared in
    // serverless.yml) stays valid across restarts of the local stack; a new one after each delete.
    this.registrationCodeValue ??=
      this.registrationCodeDeleted === 0
        ? createHash('sha256').update(`fleetgate local registration code ${this.ctx.accountId}`).digest('hex')
        : randomBytes(32).toString('hex');
    return this.registrationCodeValue;
  }

  private registrationCodeDeleted = 0;

  /** DeleteRegistrationCode: the next GetRegistrationCode returns a new code. */
  deleteRegistrationCode(): void {
    this.registrationCodeValue = undefined;
    this.registrationCodeDeleted += 1;
  }

  private checkRegistrationConfig(config: CaRecord['registrationConfig'] | undefined): void {
    if (!config) return;
    if (config.templateBody !== undefined) {
      try {
        parseTemplateBody(config.templateBody);
      } catch (error) {
        throw invalidRequest(error instanceof TemplateError ? error.message : 'invalid templateBody');
      }
    }
    if (config.templateName !== undefined && !this.templates.has(config.templateName)) {
      throw notFound(`provisioning template ${config.templateName} does not exist`);
    }
  }

  /** DescribeCACertificate and friends. */
  getCa(certificateId: unknown): CaRecord {
    const id = checkCertificateId(certificateId);
    const ca = this.cas.get(id);
    if (!ca) throw notFound(`CA certificate ${id} does not exist`);
    return ca;
  }

  /** The CA certificate a tag call names by ARN (tags are emulated on CA certificates only). */
  taggedCa(resourceArn: unknown): CaRecord {
    return this.getCa(caIdOfTaggedArn(resourceArn));
  }

  /** UpdateCACertificate. */
  updateCaCertificate(input: {
    certificateId: unknown;
    newStatus?: unknown;
    newAutoRegistrationStatus?: unknown;
    registrationConfig?: CaRecord['registrationConfig'];
    removeAutoRegistration?: boolean;
  }): void {
    const ca = this.getCa(input.certificateId);
    if (input.newStatus !== undefined && input.newStatus !== 'ACTIVE' && input.newStatus !== 'INACTIVE') {
      throw invalidRequest('newStatus must be ACTIVE or INACTIVE');
    }
    const auto = input.newAutoRegistrationStatus;
    if (auto !== undefined && auto !== 'ENABLE' && auto !== 'DISABLE') {
      throw invalidRequest('newAutoRegistrationStatus must be ENABLE or DISABLE');
    }
    this.checkRegistrationConfig(input.registrationConfig);
    if (input.newStatus) ca.status = input.newStatus;
    if (auto) ca.autoRegistrationStatus = auto;
    if (input.registrationConfig) ca.registrationConfig = input.registrationConfig;
    if (input.removeAutoRegistration) ca.registrationConfig = undefined;
    ca.lastModifiedDate = this.ctx.now();
    ca.customerVersion += 1;
    ca.generationId = randomUUID();
  }

  /** DeleteCACertificate: the CA must be INACTIVE and no certificate it signed may remain. */
  deleteCaCertificate(certificateId: unknown): void {
    const ca = this.getCa(certificateId);
    if (ca.status !== 'INACTIVE')
      throw new IotError('CertificateStateException', 'The CA certificate must be INACTIVE');
    for (const cert of this.certificates.values()) {
      if (cert.caCertificateId === ca.certificateId) {
        throw new IotError(
          'CertificateStateException',
          'Certificates signed by this CA are still registered',
        );
      }
    }
    this.cas.delete(ca.certificateId);
  }

  /** The registered CA (any status) whose key signed `certificate`, if any. */
  async findSigningCa(certificate: x509.X509Certificate): Promise<CaRecord | undefined> {
    for (const ca of this.cas.values()) {
      if (await isSignedBy(certificate, ca.certificate)) return ca;
    }
    return undefined;
  }

  // ---------------------------------------------------------------- device certificates

  private checkStatusParam(status: unknown): CertificateStatus | undefined {
    if (status === undefined || status === null) return undefined;
    if (!CERTIFICATE_STATUSES.includes(status as CertificateStatus)) {
      throw invalidRequest(`status must be one of ${CERTIFICATE_STATUSES.join(', ')}`);
    }
    return status as CertificateStatus;
  }

  private addCertificate(
    certificate: x509.X509Certificate,
    pem: string,
    status: CertificateStatus,
    caCertificateId: string | undefined,
    mode: 'DEFAULT' | 'SNI_ONLY',
  ): CertificateRecord {
    const certificateId = computeCertificateId(certificate);
    if (this.certificates.has(certificateId)) {
      throw new IotError(
        'ResourceAlreadyExistsException',
        'The certificate is already provisioned or registered',
        {
          resourceId: certificateId,
          resourceArn: this.certificateArn(certificateId),
        },
      );
    }
    const now = this.ctx.now();
    const record: CertificateRecord = {
      certificateId,
      certificateArn: this.certificateArn(certificateId),
      certificatePem: pem,
      certificate,
      caCertificateId,
      status,
      certificateMode: mode,
      creationDate: now,
      lastModifiedDate: now,
      customerVersion: 1,
      generationId: randomUUID(),
      seq: ++this.seq,
    };
    this.certificates.set(certificateId, record);
    return record;
  }

  /** RegisterCertificate: the certificate must be signed by a registered CA (the given one, if any). */
  async registerCertificate(input: {
    certificatePem: unknown;
    caCertificatePem?: unknown;
    setAsActive?: boolean;
    status?: unknown;
  }): Promise<CertificateRecord> {
    const certificate = parsePem(input.certificatePem, 'certificatePem');
    let status = this.checkStatusParam(input.status) ?? 'INACTIVE';
    if (input.setAsActive) status = 'ACTIVE';
    let ca: CaRecord | undefined;
    if (input.caCertificatePem !== undefined && input.caCertificatePem !== null) {
      const caCert = parsePem(input.caCertificatePem, 'caCertificatePem');
      ca = this.cas.get(computeCertificateId(caCert));
      if (!ca) throw new IotError('CertificateValidationException', 'The CA certificate is not registered');
      if (!(await isSignedBy(certificate, ca.certificate))) {
        throw new IotError(
          'CertificateValidationException',
          'The certificate is not signed by the given CA certificate',
        );
      }
    } else {
      ca = await this.findSigningCa(certificate);
      if (!ca)
        throw new IotError(
          'CertificateValidationException',
          'The certificate is not signed by a registered CA',
        );
    }
    this.checkValidity(certificate);
    if (status === 'ACTIVE' && ca.status !== 'ACTIVE') {
      throw new IotError(
        'CertificateStateException',
        'Cannot activate a certificate whose CA certificate is INACTIVE',
      );
    }
    return this.addCertificate(
      certificate,
      input.certificatePem as string,
      status,
      ca.certificateId,
      'DEFAULT',
    );
  }

  /** Adds a certificate signed by `ca` without re-verifying the signature (auto-registration). */
  autoRegister(certificate: x509.X509Certificate, pem: string, ca: CaRecord): CertificateRecord {
    return this.addCertificate(certificate, pem, 'PENDING_ACTIVATION', ca.certificateId, 'DEFAULT');
  }

  /** Adds a certificate issued by the emulator's own CA (CreateCertificateFromCsr, fleet provisioning). */
  addIssuedCertificate(
    certificate: x509.X509Certificate,
    pem: string,
    status: CertificateStatus,
  ): CertificateRecord {
    return this.addCertificate(certificate, pem, status, undefined, 'DEFAULT');
  }

  private checkValidity(certificate: x509.X509Certificate): void {
    const now = this.ctx.now();
    if (certificate.notAfter < now)
      throw new IotError('CertificateValidationException', 'The certificate has expired');
    if (certificate.notBefore > now)
      throw new IotError('CertificateValidationException', 'The certificate is not yet valid');
  }

  /** RegisterCertificateWithoutCA (multi-account / SNI_ONLY registration). */
  registerCertificateWithoutCa(input: { certificatePem: unknown; status?: unknown }): CertificateRecord {
    const certificate = parsePem(input.certificatePem, 'certificatePem');
    const status = this.checkStatusParam(input.status) ?? 'INACTIVE';
    this.checkValidity(certificate);
    return this.addCertificate(certificate, input.certificatePem as string, status, undefined, 'SNI_ONLY');
  }

  /** DescribeCertificate and friends. */
  getCertificate(certificateId: unknown): CertificateRecord {
    const id = checkCertificateId(certificateId);
    const cert = this.certificates.get(id);
    if (!cert) throw notFound(`Certificate ${id} does not exist`);
    return cert;
  }

  /**
   * UpdateCertificate. PENDING_TRANSFER and PENDING_ACTIVATION are internal statuses and cannot be set;
   * a REVOKED certificate cannot change status; a certificate in PENDING_TRANSFER cannot be updated;
   * a certificate whose CA is INACTIVE cannot be activated.
   */
  updateCertificate(input: { certificateId: unknown; newStatus: unknown }): void {
    const cert = this.getCertificate(input.certificateId);
    const newStatus = this.checkStatusParam(input.newStatus);
    if (!newStatus) throw invalidRequest('newStatus is required');
    if (newStatus === 'PENDING_TRANSFER' || newStatus === 'PENDING_ACTIVATION') {
      throw invalidRequest(`${newStatus} is an internal status and cannot be set`);
    }
    if (cert.status === 'REVOKED' && newStatus !== 'REVOKED') {
      throw new IotError('CertificateStateException', 'A revoked certificate cannot change status');
    }
    if (cert.status === 'PENDING_TRANSFER') {
      throw new IotError('CertificateStateException', 'The certificate is pending transfer');
    }
    if (newStatus === 'ACTIVE' && cert.caCertificateId) {
      const ca = this.cas.get(cert.caCertificateId);
      if (ca && ca.status !== 'ACTIVE') {
        throw new IotError(
          'CertificateStateException',
          'Cannot activate a certificate whose CA certificate is INACTIVE',
        );
      }
    }
    this.setCertificateStatus(cert, newStatus);
  }

  setCertificateStatus(cert: CertificateRecord, status: CertificateStatus): void {
    if (cert.status === status) return;
    cert.status = status;
    cert.lastModifiedDate = this.ctx.now();
    cert.customerVersion += 1;
    cert.generationId = randomUUID();
  }

  /**
   * DeleteCertificate: an ACTIVE certificate → CertificateStateException; attached to a thing →
   * DeleteConflictException; attached policies → DeleteConflictException unless `forceDelete`.
   */
  deleteCertificate(input: { certificateId: unknown; forceDelete?: boolean }): void {
    const cert = this.getCertificate(input.certificateId);
    if (cert.status === 'ACTIVE') {
      throw new IotError(
        'CertificateStateException',
        `Certificate must be deactivated (not ACTIVE) before deletion. Id: ${cert.certificateId}`,
      );
    }
    if ((this.principalThings.get(cert.certificateArn)?.size ?? 0) > 0) {
      throw new IotError('DeleteConflictException', 'Things must be detached before deletion');
    }
    const policies = this.targetPolicies.get(cert.certificateArn);
    if ((policies?.size ?? 0) > 0) {
      if (!input.forceDelete)
        throw new IotError(
          'DeleteConflictException',
          'Certificate policies must be detached before deletion',
        );
      for (const policyName of policies ?? [])
        this.policies.get(policyName)?.targets.delete(cert.certificateArn);
      this.targetPolicies.delete(cert.certificateArn);
    }
    this.certificates.delete(cert.certificateId);
  }

  /** Certificates ordered by creation (descending unless `ascending`). */
  listCertificates(ascending: boolean, caCertificateId?: string): CertificateRecord[] {
    const list = [...this.certificates.values()].filter(
      (c) => caCertificateId === undefined || c.caCertificateId === caCertificateId,
    );
    list.sort((a, b) => (ascending ? a.seq - b.seq : b.seq - a.seq));
    return list;
  }

  /** Resolves a principal: a certificate ARN must name a registered certificate. */
  checkPrincipal(principal: unknown): string {
    if (typeof principal !== 'string' || principal.length === 0)
      throw invalidRequest('principal is required');
    const match = /^arn:aws[\w-]*:iot:[^:]*:[^:]*:cert\/([0-9a-f]{64})$/.exec(principal);
    if (match?.[1]) {
      if (!this.certificates.has(match[1])) throw notFound(`Certificate ${match[1]} does not exist`);
    } else if (principal.startsWith('arn:')) {
      if (!/^arn:aws[\w-]*:(iot|cognito-identity|sts|iam):/.test(principal))
        throw invalidRequest('unsupported principal');
    }
    return principal;
  }

  // ---------------------------------------------------------------- things

  private thingEventsEnabled(): boolean {
    return this.eventConfigurations.get('THING') === true;
  }

  private async publishThingEvent(thing: ThingRecord, operation: ThingEvent['operation']): Promise<void> {
    if (!this.thingEventsEnabled()) return;
    const event: ThingEvent = {
      eventType: 'THING_EVENT',
      eventId: randomUUID(),
      timestamp: this.ctx.now().getTime(),
      operation,
      accountId: this.ctx.accountId,
      thingId: thing.thingId,
      thingName: thing.thingName,
      versionNumber: thing.version,
      thingTypeName: thing.thingTypeName ?? null,
      attributes: { ...thing.attributes },
    };
    await this.ctx.publisher.publish(topics.thing(thing.thingName, operation), event, { source: 'registry' });
  }

  /** CreateThing: idempotent when the existing thing has the same type and attributes. */
  async createThing(input: {
    thingName: unknown;
    thingTypeName?: unknown;
    attributePayload?: { attributes?: unknown };
    billingGroupName?: unknown;
  }): Promise<ThingRecord> {
    const thingName = checkName('thingName', input.thingName, THING_NAME, 128);
    const thingTypeName =
      input.thingTypeName === undefined || input.thingTypeName === null
        ? undefined
        : checkName('thingTypeName', input.thingTypeName, THING_NAME, 128);
    const attributes = checkAttributes(input.attributePayload?.attributes, false);
    const existing = this.things.get(thingName);
    if (existing) {
      if (existing.thingTypeName === thingTypeName && sameAttributes(existing.attributes, attributes))
        return existing;
      // CreateThing is idempotent only for the same thing type and attributes; the message names what
      // differs so the caller can tell a conflicting claim on the name from a retry.
      const differences: string[] = [];
      if (existing.thingTypeName !== thingTypeName) {
        differences.push(
          `thingTypeName (existing: ${existing.thingTypeName ?? 'none'}, requested: ${thingTypeName ?? 'none'})`,
        );
      }
      const names = [...new Set([...Object.keys(existing.attributes), ...Object.keys(attributes)])].sort();
      const changed = names.filter((name) => existing.attributes[name] !== attributes[name]);
      if (changed.length > 0) {
        differences.push(
          `attributes (${changed
            .map(
              (name) =>
                `${name}: existing ${JSON.stringify(existing.attributes[name] ?? null)}, requested ${JSON.stringify(attributes[name] ?? null)}`,
            )
            .join('; ')})`,
        );
      }
      throw new IotError(
        'ResourceAlreadyExistsException',
        `Thing ${thingName} already exists with a different ${differences.join(' and ')}`,
        {
          resourceId: existing.thingId,
          resourceArn: existing.thingArn,
        },
      );
    }
    const thing: ThingRecord = {
      thingName,
      thingId: randomUUID(),
      thingArn: this.arn(`thing/${thingName}`),
      thingTypeName,
      billingGroupName: typeof input.billingGroupName === 'string' ? input.billingGroupName : undefined,
      attributes,
      version: 1,
      principals: new Set(),
      groups: new Set(),
      seq: ++this.seq,
    };
    this.things.set(thingName, thing);
    await this.publishThingEvent(thing, 'CREATED');
    return thing;
  }

  getThing(thingName: unknown): ThingRecord {
    const name = checkName('thingName', thingName, THING_NAME, 128);
    const thing = this.things.get(name);
    if (!thing) throw notFound(`Thing ${name} does not exist`);
    return thing;
  }

  /** UpdateThing with AWS's attribute merge rules (an empty value removes the attribute when merging). */
  async updateThing(input: {
    thingName: unknown;
    thingTypeName?: unknown;
    attributePayload?: { attributes?: unknown; merge?: boolean };
    expectedVersion?: unknown;
    removeThingType?: boolean;
  }): Promise<void> {
    const thing = this.getThing(input.thingName);
    if (
      input.expectedVersion !== undefined &&
      input.expectedVersion !== null &&
      input.expectedVersion !== thing.version
    ) {
      throw new IotError(
        'VersionConflictException',
        `expectedVersion ${input.expectedVersion} does not match ${thing.version}`,
      );
    }
    if (input.removeThingType && input.thingTypeName) {
      throw invalidRequest('removeThingType and thingTypeName cannot both be set');
    }
    if (input.attributePayload?.attributes !== undefined) {
      const attributes = checkAttributes(input.attributePayload.attributes, true);
      if (input.attributePayload.merge) {
        for (const [k, v] of Object.entries(attributes)) {
          if (v === '') delete thing.attributes[k];
          else thing.attributes[k] = v;
        }
      } else {
        thing.attributes = Object.fromEntries(Object.entries(attributes).filter(([, v]) => v !== ''));
      }
    }
    if (typeof input.thingTypeName === 'string') {
      thing.thingTypeName = checkName('thingTypeName', input.thingTypeName, THING_NAME, 128);
    }
    if (input.removeThingType) thing.thingTypeName = undefined;
    thing.version += 1;
    await this.publishThingEvent(thing, 'UPDATED');
  }

  /** DeleteThing: succeeds for a thing that does not exist; refuses while principals are attached. */
  async deleteThing(input: { thingName: unknown; expectedVersion?: unknown }): Promise<void> {
    const name = checkName('thingName', input.thingName, THING_NAME, 128);
    const thing = this.things.get(name);
    if (!thing) return;
    if (input.expectedVersion !== undefined && input.expectedVersion !== thing.version) {
      throw new IotError(
        'VersionConflictException',
        `expectedVersion ${input.expectedVersion} does not match ${thing.version}`,
      );
    }
    if (thing.principals.size > 0) {
      throw invalidRequest(`Cannot delete. Thing ${name} is still attached to one or more principals`);
    }
    for (const group of thing.groups) this.thingGroups.get(group)?.things.delete(name);
    this.things.delete(name);
    await this.publishThingEvent(thing, 'DELETED');
  }

  /** ListThings with its filters, ordered by name. */
  listThings(filter: {
    attributeName?: string;
    attributeValue?: string;
    thingTypeName?: string;
    usePrefixAttributeValue?: boolean;
  }): ThingRecord[] {
    return [...this.things.values()]
      .filter((t) => {
        if (filter.thingTypeName !== undefined && t.thingTypeName !== filter.thingTypeName) return false;
        if (filter.attributeName !== undefined) {
          const value = t.attributes[filter.attributeName];
          if (value === undefined) return false;
          if (filter.attributeValue !== undefined) {
            return filter.usePrefixAttributeValue
              ? value.startsWith(filter.attributeValue)
              : value === filter.attributeValue;
          }
        }
        return true;
      })
      .sort((a, b) => (a.thingName < b.thingName ? -1 : a.thingName > b.thingName ? 1 : 0));
  }

  /** AttachThingPrincipal (idempotent). */
  attachThingPrincipal(input: {
    thingName: unknown;
    principal: unknown;
    thingPrincipalType?: unknown;
  }): void {
    const thing = this.getThing(input.thingName);
    const principal = this.checkPrincipal(input.principal);
    const type = input.thingPrincipalType ?? 'NON_EXCLUSIVE_THING';
    if (type !== 'EXCLUSIVE_THING' && type !== 'NON_EXCLUSIVE_THING') {
      throw invalidRequest('thingPrincipalType must be EXCLUSIVE_THING or NON_EXCLUSIVE_THING');
    }
    const exclusiveTo = this.exclusivePrincipals.get(principal);
    if (exclusiveTo && exclusiveTo !== thing.thingName) {
      throw invalidRequest(`Principal is exclusively attached to thing ${exclusiveTo}`);
    }
    const attached = this.principalThings.get(principal) ?? new Set<string>();
    if (type === 'EXCLUSIVE_THING') {
      if ([...attached].some((name) => name !== thing.thingName)) {
        throw invalidRequest('Principal is already attached to another thing');
      }
      this.exclusivePrincipals.set(principal, thing.thingName);
    }
    attached.add(thing.thingName);
    this.principalThings.set(principal, attached);
    thing.principals.add(principal);
  }

  /** DetachThingPrincipal (idempotent for a principal that is not attached). */
  detachThingPrincipal(input: { thingName: unknown; principal: unknown }): void {
    const thing = this.getThing(input.thingName);
    if (typeof input.principal !== 'string' || input.principal === '')
      throw invalidRequest('principal is required');
    thing.principals.delete(input.principal);
    this.principalThings.get(input.principal)?.delete(thing.thingName);
    if (this.exclusivePrincipals.get(input.principal) === thing.thingName)
      this.exclusivePrincipals.delete(input.principal);
  }

  // ---------------------------------------------------------------- policies

  /** CreatePolicy. */
  createPolicy(input: { policyName: unknown; policyDocument: unknown }): PolicyRecord {
    const policyName = checkName('policyName', input.policyName, POLICY_NAME, 128);
    if (typeof input.policyDocument !== 'string' || input.policyDocument.length === 0) {
      throw invalidRequest('policyDocument is required');
    }
    let doc: unknown;
    try {
      doc = JSON.parse(input.policyDocument);
    } catch {
      throw new IotError('MalformedPolicyException', 'policyDocument is not valid JSON');
    }
    if (typeof doc !== 'object' || doc === null || !('Statement' in doc)) {
      throw new IotError('MalformedPolicyException', 'policyDocument has no Statement');
    }
    const existing = this.policies.get(policyName);
    if (existing) {
      throw new IotError('ResourceAlreadyExistsException', `Policy ${policyName} already exists`, {
        resourceId: policyName,
        resourceArn: existing.policyArn,
      });
    }
    const now = this.ctx.now();
    const policy: PolicyRecord = {
      policyName,
      policyArn: this.arn(`policy/${policyName}`),
      policyDocument: input.policyDocument,
      creationDate: now,
      lastModifiedDate: now,
      generationId: randomUUID(),
      targets: new Set(),
    };
    this.policies.set(policyName, policy);
    return policy;
  }

  getPolicy(policyName: unknown): PolicyRecord {
    const name = checkName('policyName', policyName, POLICY_NAME, 128);
    const policy = this.policies.get(name);
    if (!policy) throw notFound(`Policy ${name} does not exist`);
    return policy;
  }

  /** DeletePolicy: refuses while the policy is attached to any target. */
  deletePolicy(policyName: unknown): void {
    const policy = this.getPolicy(policyName);
    if (policy.targets.size > 0) {
      throw new IotError(
        'DeleteConflictException',
        `Policy ${policy.policyName} is attached to ${policy.targets.size} target(s)`,
      );
    }
    this.policies.delete(policy.policyName);
  }

  private checkTarget(target: unknown): string {
    if (typeof target !== 'string' || target.length === 0) throw invalidRequest('target is required');
    const group = /^arn:aws[\w-]*:iot:[^:]*:[^:]*:thinggroup\/(.+)$/.exec(target);
    if (group?.[1]) {
      if (!this.thingGroups.has(group[1])) throw notFound(`Thing group ${group[1]} does not exist`);
      return target;
    }
    return this.checkPrincipal(target);
  }

  /** AttachPolicy (idempotent; at most 10 policies per target). */
  attachPolicy(input: { policyName: unknown; target: unknown }): void {
    const policy = this.getPolicy(input.policyName);
    const target = this.checkTarget(input.target);
    const attached = this.targetPolicies.get(target) ?? new Set<string>();
    if (!attached.has(policy.policyName) && attached.size >= MAX_POLICIES_PER_TARGET) {
      throw new IotError(
        'LimitExceededException',
        `At most ${MAX_POLICIES_PER_TARGET} policies can be attached to a target`,
      );
    }
    attached.add(policy.policyName);
    this.targetPolicies.set(target, attached);
    policy.targets.add(target);
  }

  /** DetachPolicy (idempotent for a target the policy is not attached to). */
  detachPolicy(input: { policyName: unknown; target: unknown }): void {
    const policy = this.getPolicy(input.policyName);
    if (typeof input.target !== 'string' || input.target === '') throw invalidRequest('target is required');
    policy.targets.delete(input.target);
    this.targetPolicies.get(input.target)?.delete(policy.policyName);
  }

  /** Policies attached to `target`; `recursive` adds those of a thing group's ancestors. */
  attachedPolicies(target: string, recursive: boolean): PolicyRecord[] {
    const names = new Set(this.targetPolicies.get(target) ?? []);
    const group = /:thinggroup\/(.+)$/.exec(target)?.[1];
    if (recursive && group) {
      let parent = this.thingGroups.get(group)?.parentGroupName;
      while (parent) {
        const parentGroup = this.thingGroups.get(parent);
        for (const name of this.targetPolicies.get(parentGroup?.thingGroupArn ?? '') ?? []) names.add(name);
        parent = parentGroup?.parentGroupName;
      }
    }
    return [...names].flatMap((name) => this.policies.get(name) ?? []);
  }

  // ---------------------------------------------------------------- thing groups

  /** CreateThingGroup: idempotent when the properties are the same. */
  createThingGroup(input: {
    thingGroupName: unknown;
    parentGroupName?: unknown;
    thingGroupProperties?: { thingGroupDescription?: unknown; attributePayload?: { attributes?: unknown } };
  }): ThingGroupRecord {
    const name = checkName('thingGroupName', input.thingGroupName, THING_NAME, 128);
    const parent =
      input.parentGroupName === undefined || input.parentGroupName === null
        ? undefined
        : checkName('parentGroupName', input.parentGroupName, THING_NAME, 128);
    if (parent !== undefined && !this.thingGroups.has(parent))
      throw notFound(`Thing group ${parent} does not exist`);
    const description =
      typeof input.thingGroupProperties?.thingGroupDescription === 'string'
        ? input.thingGroupProperties.thingGroupDescription
        : undefined;
    const attributes = checkAttributes(input.thingGroupProperties?.attributePayload?.attributes, false);
    const existing = this.thingGroups.get(name);
    if (existing) {
      if (
        existing.parentGroupName === parent &&
        existing.description === description &&
        sameAttributes(existing.attributes, attributes)
      ) {
        return existing;
      }
      throw new IotError(
        'ResourceAlreadyExistsException',
        `Thing group ${name} already exists with different properties`,
        {
          resourceId: existing.thingGroupId,
          resourceArn: existing.thingGroupArn,
        },
      );
    }
    const group: ThingGroupRecord = {
      thingGroupName: name,
      thingGroupId: randomUUID(),
      thingGroupArn: this.arn(`thinggroup/${name}`),
      parentGroupName: parent,
      description,
      attributes,
      version: 1,
      creationDate: this.ctx.now(),
      things: new Set(),
      seq: ++this.seq,
    };
    this.thingGroups.set(name, group);
    return group;
  }

  getThingGroup(name: unknown): ThingGroupRecord {
    const groupName = checkName('thingGroupName', name, THING_NAME, 128);
    const group = this.thingGroups.get(groupName);
    if (!group) throw notFound(`Thing group ${groupName} does not exist`);
    return group;
  }

  /** DeleteThingGroup: succeeds when missing; refuses while child groups exist. */
  deleteThingGroup(input: { thingGroupName: unknown; expectedVersion?: unknown }): void {
    const name = checkName('thingGroupName', input.thingGroupName, THING_NAME, 128);
    const group = this.thingGroups.get(name);
    if (!group) return;
    if (input.expectedVersion !== undefined && input.expectedVersion !== group.version) {
      throw new IotError(
        'VersionConflictException',
        `expectedVersion ${input.expectedVersion} does not match ${group.version}`,
      );
    }
    for (const child of this.thingGroups.values()) {
      if (child.parentGroupName === name) throw invalidRequest(`Thing group ${name} has child groups`);
    }
    for (const thingName of group.things) this.things.get(thingName)?.groups.delete(name);
    for (const policyName of this.targetPolicies.get(group.thingGroupArn) ?? []) {
      this.policies.get(policyName)?.targets.delete(group.thingGroupArn);
    }
    this.targetPolicies.delete(group.thingGroupArn);
    this.thingGroups.delete(name);
  }

  private resolveGroupAndThing(input: {
    thingGroupName?: unknown;
    thingGroupArn?: unknown;
    thingName?: unknown;
    thingArn?: unknown;
  }): { group: ThingGroupRecord; thing: ThingRecord } {
    const groupName =
      input.thingGroupName ??
      (typeof input.thingGroupArn === 'string' ? input.thingGroupArn.split('/').pop() : undefined);
    const thingName =
      input.thingName ?? (typeof input.thingArn === 'string' ? input.thingArn.split('/').pop() : undefined);
    if (groupName === undefined) throw invalidRequest('thingGroupName or thingGroupArn is required');
    if (thingName === undefined) throw invalidRequest('thingName or thingArn is required');
    return { group: this.getThingGroup(groupName), thing: this.getThing(thingName) };
  }

  private async publishMembership(
    group: ThingGroupRecord,
    thing: ThingRecord,
    operation: 'ADDED' | 'REMOVED',
  ) {
    if (this.eventConfigurations.get('THING_GROUP_MEMBERSHIP') !== true) return;
    await this.ctx.publisher.publish(
      topics.thingGroupMembership(group.thingGroupName, thing.thingName, operation),
      {
        eventType: 'THING_GROUP_MEMBERSHIP_EVENT',
        eventId: randomUUID(),
        timestamp: this.ctx.now().getTime(),
        operation,
        accountId: this.ctx.accountId,
        groupArn: group.thingGroupArn,
        groupName: group.thingGroupName,
        thingArn: thing.thingArn,
        thingName: thing.thingName,
        membershipId: createHash('sha256')
          .update(`${group.thingGroupId}:${thing.thingId}`)
          .digest('hex')
          .slice(0, 32),
      },
      { source: 'registry' },
    );
  }

  /** AddThingToThingGroup (idempotent; a thing can be in at most 10 groups). */
  async addThingToThingGroup(input: {
    thingGroupName?: unknown;
    thingGroupArn?: unknown;
    thingName?: unknown;
    thingArn?: unknown;
  }): Promise<void> {
    const { group, thing } = this.resolveGroupAndThing(input);
    if (thing.groups.has(group.thingGroupName)) return;
    if (thing.groups.size >= MAX_GROUPS_PER_THING) {
      throw invalidRequest(`A thing can belong to at most ${MAX_GROUPS_PER_THING} thing groups`);
    }
    thing.groups.add(group.thingGroupName);
    group.things.add(thing.thingName);
    await this.publishMembership(group, thing, 'ADDED');
  }

  /** RemoveThingFromThingGroup (idempotent). */
  async removeThingFromThingGroup(input: {
    thingGroupName?: unknown;
    thingGroupArn?: unknown;
    thingName?: unknown;
    thingArn?: unknown;
  }): Promise<void> {
    const { group, thing } = this.resolveGroupAndThing(input);
    if (!thing.groups.delete(group.thingGroupName)) return;
    group.things.delete(thing.thingName);
    await this.publishMembership(group, thing, 'REMOVED');
  }

  /** Names of a group's things; `recursive` includes descendants' things. */
  thingsInGroup(group: ThingGroupRecord, recursive: boolean): string[] {
    const names = new Set(group.things);
    if (recursive) {
      for (const child of this.thingGroups.values()) {
        if (child.parentGroupName === group.thingGroupName) {
          for (const name of this.thingsInGroup(child, true)) names.add(name);
        }
      }
    }
    return [...names].sort();
  }

  /** Ancestors of a group, root first. */
  rootToParent(group: ThingGroupRecord): ThingGroupRecord[] {
    const chain: ThingGroupRecord[] = [];
    let parent = group.parentGroupName;
    while (parent) {
      const record = this.thingGroups.get(parent);
      if (!record) break;
      chain.unshift(record);
      parent = record.parentGroupName;
    }
    return chain;
  }

  // ---------------------------------------------------------------- event configurations

  /** UpdateEventConfigurations. */
  updateEventConfigurations(configurations: unknown): void {
    if (configurations === undefined || configurations === null) return;
    if (typeof configurations !== 'object') throw invalidRequest('eventConfigurations must be a map');
    const updates: [string, boolean][] = [];
    for (const [type, config] of Object.entries(configurations as Record<string, unknown>)) {
      if (!this.eventConfigurations.has(type)) throw invalidRequest(`Unknown event type ${type}`);
      const enabled = (config as { Enabled?: unknown } | null)?.Enabled;
      if (typeof enabled !== 'boolean')
        throw invalidRequest(`eventConfigurations.${type}.Enabled must be a boolean`);
      updates.push([type, enabled]);
    }
    for (const [type, enabled] of updates) this.eventConfigurations.set(type, enabled);
    this.eventConfigurationsModified = this.ctx.now();
  }

  // ---------------------------------------------------------------- provisioning templates

  /** CreateProvisioningTemplate. */
  createProvisioningTemplate(input: {
    templateName: unknown;
    templateBody: unknown;
    provisioningRoleArn: unknown;
    description?: unknown;
    enabled?: boolean;
    preProvisioningHook?: { targetArn?: unknown; payloadVersion?: unknown };
    type?: unknown;
  }): TemplateRecord {
    const templateName = checkName('templateName', input.templateName, TEMPLATE_NAME, 36);
    if (typeof input.templateBody !== 'string') throw invalidRequest('templateBody is required');
    try {
      parseTemplateBody(input.templateBody);
    } catch (error) {
      throw invalidRequest(error instanceof TemplateError ? error.message : 'invalid templateBody');
    }
    if (typeof input.provisioningRoleArn !== 'string' || !input.provisioningRoleArn.startsWith('arn:')) {
      throw invalidRequest('provisioningRoleArn must be an IAM role ARN');
    }
    const type = input.type ?? 'FLEET_PROVISIONING';
    if (type !== 'FLEET_PROVISIONING' && type !== 'JITP')
      throw invalidRequest('type must be FLEET_PROVISIONING or JITP');
    let hook: TemplateRecord['preProvisioningHook'];
    if (input.preProvisioningHook) {
      const { targetArn, payloadVersion } = input.preProvisioningHook;
      if (typeof targetArn !== 'string' || !targetArn.startsWith('arn:')) {
        throw invalidRequest('preProvisioningHook.targetArn must be a Lambda function ARN');
      }
      if (type === 'JITP') throw invalidRequest('A JITP template cannot have a pre-provisioning hook');
      hook = {
        targetArn,
        payloadVersion: typeof payloadVersion === 'string' ? payloadVersion : '2020-04-01',
      };
    }
    if (this.templates.has(templateName)) {
      throw new IotError('ResourceAlreadyExistsException', `Template ${templateName} already exists`, {
        resourceId: templateName,
        resourceArn: this.arn(`provisioningtemplate/${templateName}`),
      });
    }
    const now = this.ctx.now();
    const record: TemplateRecord = {
      templateName,
      templateArn: this.arn(`provisioningtemplate/${templateName}`),
      templateBody: input.templateBody,
      provisioningRoleArn: input.provisioningRoleArn,
      description: typeof input.description === 'string' ? input.description : undefined,
      enabled: input.enabled === true,
      preProvisioningHook: hook,
      type,
      creationDate: now,
      lastModifiedDate: now,
      defaultVersionId: 1,
    };
    this.templates.set(templateName, record);
    return record;
  }

  getTemplate(templateName: unknown): TemplateRecord {
    const name = checkName('templateName', templateName, TEMPLATE_NAME, 36);
    const template = this.templates.get(name);
    if (!template) throw notFound(`Template ${name} does not exist`);
    return template;
  }

  // ---------------------------------------------------------------- provisioning (JITP, fleet provisioning)

  /**
   * Creates the resources of a resolved template for `cert`: the thing (or the existing one, per
   * OverrideSettings), thing groups, policies (named or inline), principal attachment, and finally the
   * certificate status. Throws IotError/TemplateError; on error nothing already created is rolled back
   * (AWS does not promise atomicity either).
   */
  async provision(resolved: ResolvedTemplate, cert: CertificateRecord): Promise<ThingRecord | undefined> {
    let thing: ThingRecord | undefined;
    if (resolved.thing) {
      const spec = resolved.thing;
      for (const group of spec.thingGroups) {
        if (!this.thingGroups.has(group)) throw notFound(`Thing group ${group} does not exist`);
      }
      const existing = this.things.get(spec.thingName);
      if (!existing) {
        thing = await this.createThing({
          thingName: spec.thingName,
          thingTypeName: spec.thingTypeName,
          attributePayload: { attributes: spec.attributes },
        });
      } else {
        thing = existing;
        const attrMode = spec.overrideSettings.AttributePayload ?? 'DO_NOTHING';
        if (attrMode === 'FAIL' && !sameAttributes(existing.attributes, spec.attributes)) {
          throw new TemplateError(`Thing ${spec.thingName} exists with different attributes`);
        }
        if (attrMode === 'MERGE' || attrMode === 'REPLACE') {
          await this.updateThing({
            thingName: spec.thingName,
            attributePayload: { attributes: spec.attributes, merge: attrMode === 'MERGE' },
          });
        }
      }
      for (const group of spec.thingGroups)
        await this.addThingToThingGroup({ thingGroupName: group, thingName: thing.thingName });
    }
    for (const policy of resolved.policies) {
      let policyName: string;
      if ('policyName' in policy) {
        policyName = this.getPolicy(policy.policyName).policyName;
      } else {
        policyName = createHash('sha256').update(policy.policyDocument).digest('hex');
        if (!this.policies.has(policyName))
          this.createPolicy({ policyName, policyDocument: policy.policyDocument });
      }
      this.attachPolicy({ policyName, target: cert.certificateArn });
    }
    if (thing) this.attachThingPrincipal({ thingName: thing.thingName, principal: cert.certificateArn });
    if (resolved.certificate?.status) this.setCertificateStatus(cert, resolved.certificate.status);
    return thing;
  }
}
