/**
 * The AWS IoT operations the emulator serves: their restJson1 HTTP bindings (method, URI, query and header
 * members, exactly as in the `@aws-sdk/client-iot` service model) and handlers that turn registry records
 * into AWS response shapes. Timestamps are epoch seconds, the restJson1 default.
 */
import { IotError, invalidRequest, notFound } from './errors';
import { type CaRecord, type CertificateRecord, paginate, type Registry } from './registry';
import { type ShadowService, shadowHttpError } from './shadow';
import { mergeTags, parseTagKeys, parseTags } from './tags';

/** Where a query/header member goes and how it is typed. */
type Scalar = 'string' | 'number' | 'boolean';

/** One operation's HTTP binding. */
export interface Route {
  api: string;
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** URI template with `{label}` segments. */
  path: string;
  /** input member → [query parameter name, type]. */
  query?: Record<string, readonly [string, Scalar]>;
  /** input member → lower-case header name. */
  headers?: Record<string, string>;
  /** `json` (default): the body's members go into the input; `raw`: input.payload is the body bytes. */
  body?: 'json' | 'raw';
  /** Label that swallows the rest of the path (data-plane topics). */
  greedyLabel?: string;
  /** Label types other than string. */
  labelTypes?: Record<string, Scalar>;
}

const paging = { pageSize: ['pageSize', 'number'], marker: ['marker', 'string'] } as const;
const tokens = { maxResults: ['maxResults', 'number'], nextToken: ['nextToken', 'string'] } as const;
const ascending = { ascendingOrder: ['isAscendingOrder', 'boolean'] } as const;

/** Every served operation's binding; literal routes are listed before label routes that could shadow them. */
export const ROUTES: Route[] = [
  {
    api: 'RegisterCACertificate',
    method: 'POST',
    path: '/cacertificate',
    query: {
      setAsActive: ['setAsActive', 'boolean'],
      allowAutoRegistration: ['allowAutoRegistration', 'boolean'],
    },
  },
  { api: 'DescribeCACertificate', method: 'GET', path: '/cacertificate/{certificateId}' },
  {
    api: 'ListTagsForResource',
    method: 'GET',
    path: '/tags',
    query: { resourceArn: ['resourceArn', 'string'], nextToken: ['nextToken', 'string'] },
  },
  { api: 'TagResource', method: 'POST', path: '/tags' },
  { api: 'UntagResource', method: 'POST', path: '/untag' },
  {
    api: 'UpdateCACertificate',
    method: 'PUT',
    path: '/cacertificate/{certificateId}',
    query: {
      newStatus: ['newStatus', 'string'],
      newAutoRegistrationStatus: ['newAutoRegistrationStatus', 'string'],
    },
  },
  { api: 'DeleteCACertificate', method: 'DELETE', path: '/cacertificate/{certificateId}' },
  {
    api: 'ListCACertificates',
    method: 'GET',
    path: '/cacertificates',
    query: { ...paging, ...ascending, templateName: ['templateName', 'string'] },
  },
  {
    api: 'RegisterCertificate',
    method: 'POST',
    path: '/certificate/register',
    query: { setAsActive: ['setAsActive', 'boolean'] },
  },
  { api: 'RegisterCertificateWithoutCA', method: 'POST', path: '/certificate/register-no-ca' },
  {
    api: 'CreateCertificateFromCsr',
    method: 'POST',
    path: '/certificates',
    query: { setAsActive: ['setAsActive', 'boolean'] },
  },
  { api: 'ListCertificates', method: 'GET', path: '/certificates', query: { ...paging, ...ascending } },
  { api: 'DescribeCertificate', method: 'GET', path: '/certificates/{certificateId}' },
  {
    api: 'UpdateCertificate',
    method: 'PUT',
    path: '/certificates/{certificateId}',
    query: { newStatus: ['newStatus', 'string'] },
  },
  {
    api: 'DeleteCertificate',
    method: 'DELETE',
    path: '/certificates/{certificateId}',
    query: { forceDelete: ['forceDelete', 'boolean'] },
  },
  {
    api: 'ListCertificatesByCA',
    method: 'GET',
    path: '/certificates-by-ca/{caCertificateId}',
    query: { ...paging, ...ascending },
  },
  {
    api: 'CreateKeysAndCertificate',
    method: 'POST',
    path: '/keys-and-certificate',
    query: { setAsActive: ['setAsActive', 'boolean'] },
  },
  {
    api: 'ListThings',
    method: 'GET',
    path: '/things',
    query: {
      ...tokens,
      attributeName: ['attributeName', 'string'],
      attributeValue: ['attributeValue', 'string'],
      thingTypeName: ['thingTypeName', 'string'],
      usePrefixAttributeValue: ['usePrefixAttributeValue', 'boolean'],
    },
  },
  { api: 'CreateThing', method: 'POST', path: '/things/{thingName}' },
  { api: 'DescribeThing', method: 'GET', path: '/things/{thingName}' },
  { api: 'UpdateThing', method: 'PATCH', path: '/things/{thingName}' },
  {
    api: 'DeleteThing',
    method: 'DELETE',
    path: '/things/{thingName}',
    query: { expectedVersion: ['expectedVersion', 'number'] },
  },
  {
    api: 'AttachThingPrincipal',
    method: 'PUT',
    path: '/things/{thingName}/principals',
    headers: { principal: 'x-amzn-principal' },
    query: { thingPrincipalType: ['thingPrincipalType', 'string'] },
  },
  {
    api: 'DetachThingPrincipal',
    method: 'DELETE',
    path: '/things/{thingName}/principals',
    headers: { principal: 'x-amzn-principal' },
  },
  { api: 'ListThingPrincipals', method: 'GET', path: '/things/{thingName}/principals', query: tokens },
  {
    api: 'ListThingPrincipalsV2',
    method: 'GET',
    path: '/things/{thingName}/principals-v2',
    query: { ...tokens, thingPrincipalType: ['thingPrincipalType', 'string'] },
  },
  { api: 'ListThingGroupsForThing', method: 'GET', path: '/things/{thingName}/thing-groups', query: tokens },
  {
    api: 'ListPrincipalThings',
    method: 'GET',
    path: '/principals/things',
    headers: { principal: 'x-amzn-principal' },
    query: tokens,
  },
  {
    api: 'ListPrincipalThingsV2',
    method: 'GET',
    path: '/principals/things-v2',
    headers: { principal: 'x-amzn-principal' },
    query: { ...tokens, thingPrincipalType: ['thingPrincipalType', 'string'] },
  },
  {
    api: 'GetEffectivePolicies',
    method: 'POST',
    path: '/effective-policies',
    query: { thingName: ['thingName', 'string'] },
  },
  { api: 'GetRegistrationCode', method: 'GET', path: '/registrationcode' },
  { api: 'DeleteRegistrationCode', method: 'DELETE', path: '/registrationcode' },
  { api: 'ListPolicies', method: 'GET', path: '/policies', query: { ...paging, ...ascending } },
  { api: 'CreatePolicy', method: 'POST', path: '/policies/{policyName}' },
  { api: 'GetPolicy', method: 'GET', path: '/policies/{policyName}' },
  { api: 'DeletePolicy', method: 'DELETE', path: '/policies/{policyName}' },
  { api: 'ListPolicyVersions', method: 'GET', path: '/policies/{policyName}/version' },
  {
    api: 'DeletePolicyVersion',
    method: 'DELETE',
    path: '/policies/{policyName}/version/{policyVersionId}',
  },
  { api: 'AttachPolicy', method: 'PUT', path: '/target-policies/{policyName}' },
  { api: 'DetachPolicy', method: 'POST', path: '/target-policies/{policyName}' },
  {
    api: 'ListAttachedPolicies',
    method: 'POST',
    path: '/attached-policies/{target}',
    query: { ...paging, recursive: ['recursive', 'boolean'] },
  },
  { api: 'ListTargetsForPolicy', method: 'POST', path: '/policy-targets/{policyName}', query: paging },
  { api: 'AddThingToThingGroup', method: 'PUT', path: '/thing-groups/addThingToThingGroup' },
  { api: 'RemoveThingFromThingGroup', method: 'PUT', path: '/thing-groups/removeThingFromThingGroup' },
  {
    api: 'ListThingGroups',
    method: 'GET',
    path: '/thing-groups',
    query: {
      ...tokens,
      parentGroup: ['parentGroup', 'string'],
      namePrefixFilter: ['namePrefixFilter', 'string'],
      recursive: ['recursive', 'boolean'],
    },
  },
  { api: 'CreateThingGroup', method: 'POST', path: '/thing-groups/{thingGroupName}' },
  { api: 'DescribeThingGroup', method: 'GET', path: '/thing-groups/{thingGroupName}' },
  {
    api: 'DeleteThingGroup',
    method: 'DELETE',
    path: '/thing-groups/{thingGroupName}',
    query: { expectedVersion: ['expectedVersion', 'number'] },
  },
  {
    api: 'ListThingsInThingGroup',
    method: 'GET',
    path: '/thing-groups/{thingGroupName}/things',
    query: { ...tokens, recursive: ['recursive', 'boolean'] },
  },
  { api: 'DescribeEventConfigurations', method: 'GET', path: '/event-configurations' },
  { api: 'UpdateEventConfigurations', method: 'PATCH', path: '/event-configurations' },
  { api: 'CreateProvisioningTemplate', method: 'POST', path: '/provisioning-templates' },
  {
    api: 'CreateProvisioningClaim',
    method: 'POST',
    path: '/provisioning-templates/{templateName}/provisioning-claim',
  },
  { api: 'ListProvisioningTemplates', method: 'GET', path: '/provisioning-templates', query: tokens },
  { api: 'DescribeProvisioningTemplate', method: 'GET', path: '/provisioning-templates/{templateName}' },
  {
    api: 'DescribeEndpoint',
    method: 'GET',
    path: '/endpoint',
    query: { endpointType: ['endpointType', 'string'] },
  },
  // Data plane (@aws-sdk/client-iot-data-plane), served on the same port.
  {
    api: 'ListNamedShadowsForThing',
    method: 'GET',
    path: '/api/things/shadow/ListNamedShadowsForThing/{thingName}',
    query: { nextToken: ['nextToken', 'string'], pageSize: ['pageSize', 'number'] },
  },
  {
    api: 'GetThingShadow',
    method: 'GET',
    path: '/things/{thingName}/shadow',
    query: { shadowName: ['name', 'string'] },
  },
  {
    api: 'UpdateThingShadow',
    method: 'POST',
    path: '/things/{thingName}/shadow',
    body: 'raw',
    query: { shadowName: ['name', 'string'] },
  },
  {
    api: 'DeleteThingShadow',
    method: 'DELETE',
    path: '/things/{thingName}/shadow',
    query: { shadowName: ['name', 'string'] },
  },
  {
    api: 'Publish',
    method: 'POST',
    path: '/topics/{topic}',
    greedyLabel: 'topic',
    body: 'raw',
    query: {
      qos: ['qos', 'number'],
      retain: ['retain', 'boolean'],
      contentType: ['contentType', 'string'],
      responseTopic: ['responseTopic', 'string'],
      messageExpiry: ['messageExpiry', 'number'],
    },
    headers: {
      userProperties: 'x-amz-mqtt5-user-properties',
      payloadFormatIndicator: 'x-amz-mqtt5-payload-format-indicator',
      correlationData: 'x-amz-mqtt5-correlation-data',
    },
  },
];

/** Seconds since the epoch, as restJson1 serialises timestamps. */
export function epochSeconds(date: Date): number {
  return date.getTime() / 1000;
}

function caSummary(ca: CaRecord) {
  return {
    certificateArn: ca.certificateArn,
    certificateId: ca.certificateId,
    status: ca.status,
    creationDate: epochSeconds(ca.creationDate),
  };
}

function certificateSummary(cert: CertificateRecord) {
  return {
    certificateArn: cert.certificateArn,
    certificateId: cert.certificateId,
    status: cert.status,
    certificateMode: cert.certificateMode,
    creationDate: epochSeconds(cert.creationDate),
  };
}

/** Operations implemented by device-facing/emulator code rather than the registry alone. */
export interface ControlPlaneServices {
  registry: Registry;
  accountId: string;
  endpointAddress: (endpointType: string) => string;
  createCertificateFromCsr(csr: unknown, setAsActive: boolean): Promise<CertificateRecord>;
  createKeysAndCertificate(
    setAsActive: boolean,
  ): Promise<{ record: CertificateRecord; publicKeyPem: string; privateKeyPem: string }>;
  /** A temporary claim certificate and key for one fleet-provisioning template (provisioning by trusted user). */
  createProvisioningClaim(
    templateName: string,
  ): Promise<{ record: CertificateRecord; publicKeyPem: string; privateKeyPem: string; expiration: Date }>;
  publish(input: Record<string, unknown>): Promise<void>;
  shadows: ShadowService;
}

/** An operation handler: input members in, response body out (undefined = empty body). */
export type Handler = (input: Record<string, unknown>) => Promise<unknown> | unknown;

type Input = Record<string, unknown>;

function str(input: Input, key: string): string | undefined {
  const value = input[key];
  return typeof value === 'string' ? value : undefined;
}

function num(input: Input, key: string): number | undefined {
  const value = input[key];
  return typeof value === 'number' ? value : undefined;
}

/** `thingPrincipalType` filter of the V2 lists: EXCLUSIVE_THING, NON_EXCLUSIVE_THING or none. */
function thingPrincipalType(value: unknown): 'EXCLUSIVE_THING' | 'NON_EXCLUSIVE_THING' | undefined {
  if (value === undefined) return undefined;
  if (value !== 'EXCLUSIVE_THING' && value !== 'NON_EXCLUSIVE_THING') {
    throw invalidRequest('thingPrincipalType must be EXCLUSIVE_THING or NON_EXCLUSIVE_THING');
  }
  return value;
}

/** Builds the handler table for one emulator. */
export function createHandlers(services: ControlPlaneServices): Record<string, Handler> {
  const { registry } = services;
  const listPage = { defaultSize: 25, maxSize: 250, what: 'pageSize' };
  const tokenPage = { defaultSize: 50, maxSize: 250, what: 'maxResults' };

  return {
    RegisterCACertificate: async (input) => {
      const ca = await registry.registerCaCertificate({
        caCertificate: input.caCertificate,
        verificationCertificate: input.verificationCertificate,
        setAsActive: input.setAsActive === true,
        allowAutoRegistration: input.allowAutoRegistration === true,
        registrationConfig: input.registrationConfig as CaRecord['registrationConfig'],
        certificateMode: input.certificateMode,
        tags: input.tags,
      });
      return { certificateArn: ca.certificateArn, certificateId: ca.certificateId };
    },
    // Tags, on CA certificates only (local/iot-emulator/tags.ts); all of a CA's tags fit one page.
    ListTagsForResource: (input) => {
      if (input.nextToken !== undefined) throw invalidRequest('nextToken is not valid');
      const ca = registry.taggedCa(input.resourceArn);
      return { tags: [...ca.tags].map(([Key, Value]) => ({ Key, Value })) };
    },
    TagResource: (input) => {
      const ca = registry.taggedCa(input.resourceArn);
      mergeTags(ca.tags, parseTags(input.tags) ?? new Map());
      return {};
    },
    UntagResource: (input) => {
      const ca = registry.taggedCa(input.resourceArn);
      for (const key of parseTagKeys(input.tagKeys)) ca.tags.delete(key);
      return {};
    },
    DescribeCACertificate: (input) => {
      const ca = registry.getCa(input.certificateId);
      return {
        certificateDescription: {
          ...caSummary(ca),
          certificatePem: ca.certificatePem,
          ownedBy: services.accountId,
          autoRegistrationStatus: ca.autoRegistrationStatus,
          lastModifiedDate: epochSeconds(ca.lastModifiedDate),
          customerVersion: ca.customerVersion,
          generationId: ca.generationId,
          validity: {
            notBefore: epochSeconds(ca.certificate.notBefore),
            notAfter: epochSeconds(ca.certificate.notAfter),
          },
          certificateMode: ca.certificateMode,
        },
        registrationConfig: ca.registrationConfig,
      };
    },
    UpdateCACertificate: (input) => {
      registry.updateCaCertificate({
        certificateId: input.certificateId,
        newStatus: input.newStatus,
        newAutoRegistrationStatus: input.newAutoRegistrationStatus,
        registrationConfig: input.registrationConfig as CaRecord['registrationConfig'],
        removeAutoRegistration: input.removeAutoRegistration === true,
      });
      return undefined;
    },
    DeleteCACertificate: (input) => {
      registry.deleteCaCertificate(input.certificateId);
      return {};
    },
    ListCACertificates: (input) => {
      let list = [...registry.cas.values()].sort((a, b) =>
        input.ascendingOrder === true ? a.seq - b.seq : b.seq - a.seq,
      );
      const templateName = str(input, 'templateName');
      if (templateName) list = list.filter((ca) => ca.registrationConfig?.templateName === templateName);
      const { page, next } = paginate(list, str(input, 'marker'), num(input, 'pageSize'), listPage);
      return { certificates: page.map(caSummary), nextMarker: next };
    },
    RegisterCertificate: async (input) => {
      const cert = await registry.registerCertificate({
        certificatePem: input.certificatePem,
        caCertificatePem: input.caCertificatePem,
        setAsActive: input.setAsActive === true,
        status: input.status,
      });
      return { certificateArn: cert.certificateArn, certificateId: cert.certificateId };
    },
    RegisterCertificateWithoutCA: (input) => {
      const cert = registry.registerCertificateWithoutCa({
        certificatePem: input.certificatePem,
        status: input.status,
      });
      return { certificateArn: cert.certificateArn, certificateId: cert.certificateId };
    },
    DescribeCertificate: (input) => {
      const cert = registry.getCertificate(input.certificateId);
      return {
        certificateDescription: {
          ...certificateSummary(cert),
          caCertificateId: cert.caCertificateId,
          certificatePem: cert.certificatePem,
          ownedBy: services.accountId,
          lastModifiedDate: epochSeconds(cert.lastModifiedDate),
          customerVersion: cert.customerVersion,
          generationId: cert.generationId,
          validity: {
            notBefore: epochSeconds(cert.certificate.notBefore),
            notAfter: epochSeconds(cert.certificate.notAfter),
          },
        },
      };
    },
    UpdateCertificate: (input) => {
      registry.updateCertificate({ certificateId: input.certificateId, newStatus: input.newStatus });
      return undefined;
    },
    DeleteCertificate: (input) => {
      registry.deleteCertificate({
        certificateId: input.certificateId,
        forceDelete: input.forceDelete === true,
      });
      return undefined;
    },
    ListCertificates: (input) => {
      const list = registry.listCertificates(input.ascendingOrder === true);
      const { page, next } = paginate(list, str(input, 'marker'), num(input, 'pageSize'), listPage);
      return { certificates: page.map(certificateSummary), nextMarker: next };
    },
    ListCertificatesByCA: (input) => {
      const ca = registry.getCa(input.caCertificateId);
      const list = registry.listCertificates(input.ascendingOrder === true, ca.certificateId);
      const { page, next } = paginate(list, str(input, 'marker'), num(input, 'pageSize'), listPage);
      return { certificates: page.map(certificateSummary), nextMarker: next };
    },
    CreateCertificateFromCsr: async (input) => {
      const cert = await services.createCertificateFromCsr(
        input.certificateSigningRequest,
        input.setAsActive === true,
      );
      return {
        certificateArn: cert.certificateArn,
        certificateId: cert.certificateId,
        certificatePem: cert.certificatePem,
      };
    },
    CreateKeysAndCertificate: async (input) => {
      const { record, publicKeyPem, privateKeyPem } = await services.createKeysAndCertificate(
        input.setAsActive === true,
      );
      return {
        certificateArn: record.certificateArn,
        certificateId: record.certificateId,
        certificatePem: record.certificatePem,
        keyPair: { PublicKey: publicKeyPem, PrivateKey: privateKeyPem },
      };
    },
    CreateThing: async (input) => {
      const thing = await registry.createThing({
        thingName: input.thingName,
        thingTypeName: input.thingTypeName,
        attributePayload: input.attributePayload as { attributes?: unknown },
        billingGroupName: input.billingGroupName,
      });
      return { thingName: thing.thingName, thingArn: thing.thingArn, thingId: thing.thingId };
    },
    DescribeThing: (input) => {
      const thing = registry.getThing(input.thingName);
      return {
        defaultClientId: thing.thingName,
        thingName: thing.thingName,
        thingId: thing.thingId,
        thingArn: thing.thingArn,
        thingTypeName: thing.thingTypeName,
        attributes: { ...thing.attributes },
        version: thing.version,
        billingGroupName: thing.billingGroupName,
      };
    },
    UpdateThing: async (input) => {
      await registry.updateThing({
        thingName: input.thingName,
        thingTypeName: input.thingTypeName,
        attributePayload: input.attributePayload as { attributes?: unknown; merge?: boolean },
        expectedVersion: input.expectedVersion,
        removeThingType: input.removeThingType === true,
      });
      return {};
    },
    DeleteThing: async (input) => {
      await registry.deleteThing({ thingName: input.thingName, expectedVersion: input.expectedVersion });
      return {};
    },
    ListThings: (input) => {
      const list = registry.listThings({
        attributeName: str(input, 'attributeName'),
        attributeValue: str(input, 'attributeValue'),
        thingTypeName: str(input, 'thingTypeName'),
        usePrefixAttributeValue: input.usePrefixAttributeValue === true,
      });
      const { page, next } = paginate(list, str(input, 'nextToken'), num(input, 'maxResults'), tokenPage);
      return {
        things: page.map((t) => ({
          thingName: t.thingName,
          thingTypeName: t.thingTypeName,
          thingArn: t.thingArn,
          attributes: { ...t.attributes },
          version: t.version,
        })),
        nextToken: next,
      };
    },
    AttachThingPrincipal: (input) => {
      registry.attachThingPrincipal({
        thingName: input.thingName,
        principal: input.principal,
        thingPrincipalType: input.thingPrincipalType,
      });
      return {};
    },
    DetachThingPrincipal: (input) => {
      registry.detachThingPrincipal({ thingName: input.thingName, principal: input.principal });
      return {};
    },
    ListThingPrincipals: (input) => {
      const thing = registry.getThing(input.thingName);
      const { page, next } = paginate(
        [...thing.principals],
        str(input, 'nextToken'),
        num(input, 'maxResults'),
        tokenPage,
      );
      return { principals: page, nextToken: next };
    },
    ListPrincipalThings: (input) => {
      const principal = registry.checkPrincipal(input.principal);
      const list = [...(registry.principalThings.get(principal) ?? [])].sort();
      const { page, next } = paginate(list, str(input, 'nextToken'), num(input, 'maxResults'), tokenPage);
      return { things: page, nextToken: next };
    },
    ListThingPrincipalsV2: (input) => {
      const thing = registry.getThing(input.thingName);
      const type = thingPrincipalType(input.thingPrincipalType);
      const list = [...thing.principals]
        .map((principal) => ({
          principal,
          thingPrincipalType:
            registry.exclusivePrincipals.get(principal) === thing.thingName
              ? 'EXCLUSIVE_THING'
              : 'NON_EXCLUSIVE_THING',
        }))
        .filter((entry) => type === undefined || entry.thingPrincipalType === type);
      const { page, next } = paginate(list, str(input, 'nextToken'), num(input, 'maxResults'), tokenPage);
      return { thingPrincipalObjects: page, nextToken: next };
    },
    ListPrincipalThingsV2: (input) => {
      const principal = registry.checkPrincipal(input.principal);
      const type = thingPrincipalType(input.thingPrincipalType);
      const list = [...(registry.principalThings.get(principal) ?? [])]
        .sort()
        .map((thingName) => ({
          thingName,
          thingPrincipalType:
            registry.exclusivePrincipals.get(principal) === thingName
              ? 'EXCLUSIVE_THING'
              : 'NON_EXCLUSIVE_THING',
        }))
        .filter((entry) => type === undefined || entry.thingPrincipalType === type);
      const { page, next } = paginate(list, str(input, 'nextToken'), num(input, 'maxResults'), tokenPage);
      return { principalThingObjects: page, nextToken: next };
    },
    GetEffectivePolicies: (input) => {
      // The policies IoT evaluates for a device connecting with `principal` (a certificate ARN) as
      // `thingName`: the certificate's, then those of the thing's groups and their ancestors.
      if (input.cognitoIdentityPoolId !== undefined) {
        throw new IotError(
          'NotEmulatedException',
          'GetEffectivePolicies: Amazon Cognito principals are not emulated',
        );
      }
      const principal = registry.checkPrincipal(input.principal);
      const certificateId = /:cert\/([0-9a-f]{64})$/.exec(principal)?.[1];
      if (certificateId) registry.getCertificate(certificateId);
      const names: string[] = [...(registry.targetPolicies.get(principal) ?? [])];
      const thingName = str(input, 'thingName');
      if (thingName) {
        const thing = registry.getThing(thingName);
        for (const groupName of [...thing.groups].sort()) {
          const group = registry.thingGroups.get(groupName);
          if (!group) continue;
          for (const ancestor of [...registry.rootToParent(group), group]) {
            names.push(...(registry.targetPolicies.get(ancestor.thingGroupArn) ?? []));
          }
        }
      }
      const effectivePolicies = [...new Set(names)].flatMap((name) => {
        const policy = registry.policies.get(name);
        return policy
          ? [
              {
                policyName: policy.policyName,
                policyArn: policy.policyArn,
                policyDocument: policy.policyDocument,
              },
            ]
          : [];
      });
      return { effectivePolicies };
    },
    GetRegistrationCode: () => ({ registrationCode: registry.registrationCode }),
    DeleteRegistrationCode: () => {
      registry.deleteRegistrationCode();
      return {};
    },
    ListPolicies: (input) => {
      const list = [...registry.policies.values()].sort((a, b) => a.policyName.localeCompare(b.policyName));
      if (input.ascendingOrder === false) list.reverse();
      const { page, next } = paginate(list, str(input, 'marker'), num(input, 'pageSize'), listPage);
      return {
        policies: page.map((p) => ({ policyName: p.policyName, policyArn: p.policyArn })),
        nextMarker: next,
      };
    },
    CreatePolicy: (input) => {
      const policy = registry.createPolicy({
        policyName: input.policyName,
        policyDocument: input.policyDocument,
      });
      return {
        policyName: policy.policyName,
        policyArn: policy.policyArn,
        policyDocument: policy.policyDocument,
        policyVersionId: '1',
      };
    },
    GetPolicy: (input) => {
      const policy = registry.getPolicy(input.policyName);
      return {
        policyName: policy.policyName,
        policyArn: policy.policyArn,
        policyDocument: policy.policyDocument,
        defaultVersionId: '1',
        creationDate: epochSeconds(policy.creationDate),
        lastModifiedDate: epochSeconds(policy.lastModifiedDate),
        generationId: policy.generationId,
      };
    },
    // Policies here have one version, `1`, the default (CreatePolicyVersion is not emulated).
    // @see https://docs.aws.amazon.com/iot/latest/apireference/API_ListPolicyVersions.html
    ListPolicyVersions: (input) => {
      const policy = registry.getPolicy(input.policyName);
      return {
        policyVersions: [
          { versionId: '1', isDefaultVersion: true, createDate: epochSeconds(policy.creationDate) },
        ],
      };
    },
    // AWS refuses to delete the default version (DeleteConflictException); any other id is unknown.
    // @see https://docs.aws.amazon.com/iot/latest/apireference/API_DeletePolicyVersion.html
    DeletePolicyVersion: (input) => {
      const policy = registry.getPolicy(input.policyName);
      if (String(input.policyVersionId) === '1') {
        throw new IotError(
          'DeleteConflictException',
          `Cannot delete the default version 1 of policy ${policy.policyName}; use DeletePolicy`,
        );
      }
      throw notFound(`policy ${policy.policyName} has no version ${String(input.policyVersionId)}`);
    },
    DeletePolicy: (input) => {
      registry.deletePolicy(input.policyName);
      return undefined;
    },
    AttachPolicy: (input) => {
      registry.attachPolicy({ policyName: input.policyName, target: input.target });
      return undefined;
    },
    DetachPolicy: (input) => {
      registry.detachPolicy({ policyName: input.policyName, target: input.target });
      return undefined;
    },
    ListAttachedPolicies: (input) => {
      const target = str(input, 'target');
      if (!target) throw invalidRequest('target is required');
      const list = registry.attachedPolicies(target, input.recursive === true);
      const { page, next } = paginate(list, str(input, 'marker'), num(input, 'pageSize'), listPage);
      return {
        policies: page.map((p) => ({ policyName: p.policyName, policyArn: p.policyArn })),
        nextMarker: next,
      };
    },
    ListTargetsForPolicy: (input) => {
      const policy = registry.getPolicy(input.policyName);
      const { page, next } = paginate(
        [...policy.targets],
        str(input, 'marker'),
        num(input, 'pageSize'),
        listPage,
      );
      return { targets: page, nextMarker: next };
    },
    CreateThingGroup: (input) => {
      const group = registry.createThingGroup({
        thingGroupName: input.thingGroupName,
        parentGroupName: input.parentGroupName,
        thingGroupProperties: input.thingGroupProperties as {
          thingGroupDescription?: unknown;
          attributePayload?: { attributes?: unknown };
        },
      });
      return {
        thingGroupName: group.thingGroupName,
        thingGroupArn: group.thingGroupArn,
        thingGroupId: group.thingGroupId,
      };
    },
    DescribeThingGroup: (input) => {
      const group = registry.getThingGroup(input.thingGroupName);
      return {
        thingGroupName: group.thingGroupName,
        thingGroupId: group.thingGroupId,
        thingGroupArn: group.thingGroupArn,
        version: group.version,
        thingGroupProperties: {
          thingGroupDescription: group.description,
          attributePayload: { attributes: { ...group.attributes } },
        },
        thingGroupMetadata: {
          parentGroupName: group.parentGroupName,
          rootToParentThingGroups: registry
            .rootToParent(group)
            .map((g) => ({ groupName: g.thingGroupName, groupArn: g.thingGroupArn })),
          creationDate: epochSeconds(group.creationDate),
        },
      };
    },
    DeleteThingGroup: (input) => {
      registry.deleteThingGroup({
        thingGroupName: input.thingGroupName,
        expectedVersion: input.expectedVersion,
      });
      return {};
    },
    AddThingToThingGroup: async (input) => {
      await registry.addThingToThingGroup(input);
      return {};
    },
    RemoveThingFromThingGroup: async (input) => {
      await registry.removeThingFromThingGroup(input);
      return {};
    },
    ListThingGroups: (input) => {
      const prefix = str(input, 'namePrefixFilter');
      const parent = str(input, 'parentGroup');
      const list = [...registry.thingGroups.values()]
        .filter(
          (g) =>
            (prefix === undefined || g.thingGroupName.startsWith(prefix)) &&
            (parent === undefined || g.parentGroupName === parent),
        )
        .sort((a, b) => a.thingGroupName.localeCompare(b.thingGroupName));
      const { page, next } = paginate(list, str(input, 'nextToken'), num(input, 'maxResults'), tokenPage);
      return {
        thingGroups: page.map((g) => ({ groupName: g.thingGroupName, groupArn: g.thingGroupArn })),
        nextToken: next,
      };
    },
    ListThingGroupsForThing: (input) => {
      const thing = registry.getThing(input.thingName);
      const list = [...thing.groups].sort().flatMap((name) => registry.thingGroups.get(name) ?? []);
      const { page, next } = paginate(list, str(input, 'nextToken'), num(input, 'maxResults'), tokenPage);
      return {
        thingGroups: page.map((g) => ({ groupName: g.thingGroupName, groupArn: g.thingGroupArn })),
        nextToken: next,
      };
    },
    ListThingsInThingGroup: (input) => {
      const group = registry.getThingGroup(input.thingGroupName);
      const list = registry.thingsInGroup(group, input.recursive === true);
      const { page, next } = paginate(list, str(input, 'nextToken'), num(input, 'maxResults'), tokenPage);
      return { things: page, nextToken: next };
    },
    DescribeEventConfigurations: () => ({
      eventConfigurations: Object.fromEntries(
        [...registry.eventConfigurations].map(([type, enabled]) => [type, { Enabled: enabled }]),
      ),
      creationDate: epochSeconds(registry.eventConfigurationsCreated),
      lastModifiedDate: epochSeconds(registry.eventConfigurationsModified),
    }),
    UpdateEventConfigurations: (input) => {
      registry.updateEventConfigurations(input.eventConfigurations);
      return {};
    },
    CreateProvisioningTemplate: (input) => {
      const template = registry.createProvisioningTemplate({
        templateName: input.templateName,
        templateBody: input.templateBody,
        provisioningRoleArn: input.provisioningRoleArn,
        description: input.description,
        enabled: input.enabled === true,
        preProvisioningHook: input.preProvisioningHook as { targetArn?: unknown; payloadVersion?: unknown },
        type: input.type,
      });
      return {
        templateArn: template.templateArn,
        templateName: template.templateName,
        defaultVersionId: template.defaultVersionId,
      };
    },
    ListProvisioningTemplates: (input) => {
      const list = [...registry.templates.values()].sort((a, b) =>
        a.templateName.localeCompare(b.templateName),
      );
      const { page, next } = paginate(list, str(input, 'nextToken'), num(input, 'maxResults'), tokenPage);
      return {
        templates: page.map((t) => ({
          templateArn: t.templateArn,
          templateName: t.templateName,
          description: t.description,
          creationDate: epochSeconds(t.creationDate),
          lastModifiedDate: epochSeconds(t.lastModifiedDate),
          enabled: t.enabled,
          type: t.type,
        })),
        nextToken: next,
      };
    },
    // Provisioning by trusted user: a claim certificate valid for five minutes, usable only with
    // this template. https://docs.aws.amazon.com/iot/latest/apireference/API_CreateProvisioningClaim.html
    CreateProvisioningClaim: async (input) => {
      const template = registry.getTemplate(input.templateName);
      if (template.type !== 'FLEET_PROVISIONING') {
        throw invalidRequest(`Template ${template.templateName} is not a FLEET_PROVISIONING template`);
      }
      if (!template.enabled) throw invalidRequest(`Template ${template.templateName} is disabled`);
      const claim = await services.createProvisioningClaim(template.templateName);
      return {
        certificateId: claim.record.certificateId,
        certificatePem: claim.record.certificatePem,
        keyPair: { PublicKey: claim.publicKeyPem, PrivateKey: claim.privateKeyPem },
        expiration: epochSeconds(claim.expiration),
      };
    },
    DescribeProvisioningTemplate: (input) => {
      const t = registry.getTemplate(input.templateName);
      return {
        templateArn: t.templateArn,
        templateName: t.templateName,
        description: t.description,
        creationDate: epochSeconds(t.creationDate),
        lastModifiedDate: epochSeconds(t.lastModifiedDate),
        defaultVersionId: t.defaultVersionId,
        templateBody: t.templateBody,
        enabled: t.enabled,
        provisioningRoleArn: t.provisioningRoleArn,
        preProvisioningHook: t.preProvisioningHook,
        type: t.type,
      };
    },
    DescribeEndpoint: (input) => {
      const endpointType = str(input, 'endpointType') ?? 'iot:Data';
      const known = ['iot:Data', 'iot:Data-ATS', 'iot:CredentialProvider', 'iot:Jobs'];
      if (!known.includes(endpointType))
        throw invalidRequest(`endpointType must be one of ${known.join(', ')}`);
      return { endpointAddress: services.endpointAddress(endpointType) };
    },
    GetThingShadow: (input) => {
      try {
        return services.shadows.get(String(input.thingName), str(input, 'shadowName'));
      } catch (error) {
        throw shadowHttpError(error);
      }
    },
    UpdateThingShadow: async (input) => {
      try {
        const payload = Buffer.isBuffer(input.payload) ? input.payload : Buffer.alloc(0);
        return await services.shadows.update(String(input.thingName), str(input, 'shadowName'), payload);
      } catch (error) {
        throw shadowHttpError(error);
      }
    },
    DeleteThingShadow: async (input) => {
      try {
        return await services.shadows.delete(String(input.thingName), str(input, 'shadowName'));
      } catch (error) {
        throw shadowHttpError(error);
      }
    },
    ListNamedShadowsForThing: (input) => {
      let names: string[];
      try {
        names = services.shadows.namedShadows(String(input.thingName));
      } catch (error) {
        throw shadowHttpError(error);
      }
      const { page, next } = paginate(names, str(input, 'nextToken'), num(input, 'pageSize'), {
        defaultSize: 25,
        maxSize: 100,
        what: 'pageSize',
      });
      return { results: page, nextToken: next, timestamp: Math.floor(Date.now() / 1000) };
    },
    Publish: async (input) => {
      await services.publish(input);
      return undefined;
    },
  };
}
