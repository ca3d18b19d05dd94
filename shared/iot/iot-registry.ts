/**
 * The AWS IoT control-plane operations automatic registration and the lifecycle function use, each
 * safe to repeat: creating what already exists with the same inputs is success, attaching what is
 * attached is success. SDK errors leave this module as `TransientError` (throttling, 5xx, network:
 * a retry can help) or `PermanentError` (anything else), with the SDK error as `cause`.
 *
 * The SDK retries throttling and 5xx itself (adaptive mode: backoff with jitter and a client-side
 * rate limiter); what still fails after that fails the SQS record, which SQS redelivers.
 */
import {
  AddThingToThingGroupCommand,
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  type CertificateStatus,
  CreateCertificateFromCsrCommand,
  CreateThingCommand,
  DeleteCertificateCommand,
  DescribeCACertificateCommand,
  DescribeCertificateCommand,
  DescribeThingCommand,
  DetachThingPrincipalCommand,
  IoTClient,
  type IoTClientConfig,
  ListPrincipalThingsCommand,
  ListTagsForResourceCommand,
  ListThingPrincipalsCommand,
  RegisterCertificateCommand,
  RegisterCertificateWithoutCACommand,
  UpdateCertificateCommand,
  UpdateThingCommand,
} from '@aws-sdk/client-iot';
import { isTransientAwsError, PermanentError, TransientError } from '../errors';

/** An IoT client with the retry behaviour fleetgate wants (endpoint from `AWS_ENDPOINT_URL_IOT`). */
export function iotClient(config: IoTClientConfig = {}): IoTClient {
  return new IoTClient({ maxAttempts: 5, retryMode: 'adaptive', ...config });
}

export interface CertificateDescription {
  certificateId: string;
  certificateArn: string;
  status: string;
  certificatePem: string;
  caCertificateId?: string;
}

export interface CaCertificateDescription {
  certificateId: string;
  certificateArn?: string;
  status: string;
  autoRegistrationStatus?: string;
  certificatePem: string;
}

export type EnsureThingResult = 'created' | 'existing' | 'updated';

/** Thrown (as a `PermanentError`) when IoT refuses a request for good; `awsCode` is AWS's name. */
export class IotRequestError extends PermanentError {
  constructor(
    readonly operation: string,
    readonly awsCode: string,
    options: { cause?: unknown },
  ) {
    super(`${operation} failed: ${awsCode}`, options);
  }
}

export class IotRegistry {
  constructor(readonly client: IoTClient) {}

  /** The certificate, or undefined when IoT does not know it. */
  async describeCertificate(certificateId: string): Promise<CertificateDescription | undefined> {
    try {
      const out = await this.client.send(new DescribeCertificateCommand({ certificateId }));
      const description = out.certificateDescription;
      if (!description?.certificateArn || !description.certificatePem || !description.status) {
        throw new PermanentError('DescribeCertificate returned an incomplete description');
      }
      return {
        certificateId: (description.certificateId ?? certificateId).toLowerCase(),
        certificateArn: description.certificateArn,
        status: description.status,
        certificatePem: description.certificatePem,
        ...(description.caCertificateId
          ? { caCertificateId: description.caCertificateId.toLowerCase() }
          : {}),
      };
    } catch (error) {
      if (awsName(error) === 'ResourceNotFoundException') return undefined;
      throw mapped('DescribeCertificate', error);
    }
  }

  /** The CA certificate, or undefined when IoT does not know it. */
  async describeCaCertificate(certificateId: string): Promise<CaCertificateDescription | undefined> {
    try {
      const out = await this.client.send(new DescribeCACertificateCommand({ certificateId }));
      const description = out.certificateDescription;
      if (!description?.certificatePem || !description.status) {
        throw new PermanentError('DescribeCACertificate returned an incomplete description');
      }
      return {
        certificateId: (description.certificateId ?? certificateId).toLowerCase(),
        ...(description.certificateArn ? { certificateArn: description.certificateArn } : {}),
        status: description.status,
        ...(description.autoRegistrationStatus
          ? { autoRegistrationStatus: description.autoRegistrationStatus }
          : {}),
        certificatePem: description.certificatePem,
      };
    } catch (error) {
      if (awsName(error) === 'ResourceNotFoundException') return undefined;
      throw mapped('DescribeCACertificate', error);
    }
  }

  /** A resource's tags (ListTagsForResource, every page); a resource IoT does not know has none. */
  async listTags(resourceArn: string): Promise<Map<string, string>> {
    const tags = new Map<string, string>();
    let nextToken: string | undefined;
    try {
      do {
        const out = await this.client.send(
          new ListTagsForResourceCommand({ resourceArn, ...(nextToken ? { nextToken } : {}) }),
        );
        for (const tag of out.tags ?? []) if (tag.Key) tags.set(tag.Key, tag.Value ?? '');
        nextToken = out.nextToken;
      } while (nextToken);
    } catch (error) {
      if (awsName(error) === 'ResourceNotFoundException') return tags;
      throw mapped('ListTagsForResource', error);
    }
    return tags;
  }

  /**
   * Creates the thing with `attributes`. An existing thing with the same attributes is success
   * (IoT answers CreateThing itself in that case); with different ones, `attributes` are merged in
   * with UpdateThing, conditional on the version just read.
   */
  async ensureThing(thingName: string, attributes: Record<string, string>): Promise<EnsureThingResult> {
    try {
      await this.client.send(new CreateThingCommand({ thingName, attributePayload: { attributes } }));
      return 'created';
    } catch (error) {
      if (awsName(error) !== 'ResourceAlreadyExistsException') throw mapped('CreateThing', error);
    }
    let existing: { attributes: Record<string, string>; version?: number };
    try {
      const out = await this.client.send(new DescribeThingCommand({ thingName }));
      existing = {
        attributes: out.attributes ?? {},
        ...(out.version !== undefined ? { version: out.version } : {}),
      };
    } catch (error) {
      throw mapped('DescribeThing', error);
    }
    if (Object.entries(attributes).every(([name, value]) => existing.attributes[name] === value))
      return 'existing';
    try {
      await this.client.send(
        new UpdateThingCommand({
          thingName,
          attributePayload: { attributes, merge: true },
          ...(existing.version !== undefined ? { expectedVersion: existing.version } : {}),
        }),
      );
      return 'updated';
    } catch (error) {
      // Someone changed the thing between our read and write: read again on the next delivery.
      if (awsName(error) === 'VersionConflictException') {
        throw new TransientError('UpdateThing lost a version race', { cause: error });
      }
      throw mapped('UpdateThing', error);
    }
  }

  async addThingToThingGroup(thingGroupName: string, thingName: string): Promise<void> {
    try {
      await this.client.send(new AddThingToThingGroupCommand({ thingGroupName, thingName }));
    } catch (error) {
      throw mapped('AddThingToThingGroup', error);
    }
  }

  /** Attaches `policyName` to the certificate (idempotent in IoT). */
  async attachPolicy(policyName: string, certificateArn: string): Promise<void> {
    try {
      await this.client.send(new AttachPolicyCommand({ policyName, target: certificateArn }));
    } catch (error) {
      throw mapped('AttachPolicy', error);
    }
  }

  /** Attaches the certificate to the thing (idempotent in IoT). */
  async attachThingPrincipal(thingName: string, certificateArn: string): Promise<void> {
    try {
      await this.client.send(new AttachThingPrincipalCommand({ thingName, principal: certificateArn }));
    } catch (error) {
      throw mapped('AttachThingPrincipal', error);
    }
  }

  async updateCertificateStatus(certificateId: string, newStatus: CertificateStatus): Promise<void> {
    try {
      await this.client.send(new UpdateCertificateCommand({ certificateId, newStatus }));
    } catch (error) {
      throw mapped('UpdateCertificate', error);
    }
  }

  /**
   * CreateCertificateFromCsr (certificate rotation). Not idempotent in IoT: every call issues a new
   * certificate, so callers claim the request in the store first.
   */
  async createCertificateFromCsr(
    certificateSigningRequest: string,
    setAsActive: boolean,
  ): Promise<{ certificateId: string; certificateArn: string; certificatePem: string }> {
    try {
      const out = await this.client.send(
        new CreateCertificateFromCsrCommand({ certificateSigningRequest, setAsActive }),
      );
      if (!out.certificateId || !out.certificateArn || !out.certificatePem) {
        throw new PermanentError('CreateCertificateFromCsr returned an incomplete answer');
      }
      return {
        certificateId: out.certificateId.toLowerCase(),
        certificateArn: out.certificateArn,
        certificatePem: out.certificatePem,
      };
    } catch (error) {
      throw mapped('CreateCertificateFromCsr', error);
    }
  }

  /**
   * Registers a certificate issued outside AWS IoT (factory import) with the given status:
   * `RegisterCertificate` with the CA that signed it, or `RegisterCertificateWithoutCA` (multi-account
   * registration, SNI_ONLY) without one. A certificate IoT already has is success: the certificate id
   * is the SHA-256 of its DER, so it is this very certificate; the answer says which it was.
   */
  async registerCertificate(input: {
    certificatePem: string;
    caCertificatePem?: string;
    status: 'INACTIVE' | 'ACTIVE';
  }): Promise<{ certificateArn: string; certificateId: string; created: boolean }> {
    const operation = input.caCertificatePem ? 'RegisterCertificate' : 'RegisterCertificateWithoutCA';
    try {
      const out = input.caCertificatePem
        ? await this.client.send(
            new RegisterCertificateCommand({
              certificatePem: input.certificatePem,
              caCertificatePem: input.caCertificatePem,
              status: input.status,
            }),
          )
        : await this.client.send(
            new RegisterCertificateWithoutCACommand({
              certificatePem: input.certificatePem,
              status: input.status,
            }),
          );
      if (!out.certificateArn || !out.certificateId) {
        throw new PermanentError(`${operation} returned an incomplete answer`);
      }
      return {
        certificateArn: out.certificateArn,
        certificateId: out.certificateId.toLowerCase(),
        created: true,
      };
    } catch (error) {
      if (awsName(error) === 'ResourceAlreadyExistsException') {
        const existing = error as { resourceId?: string; resourceArn?: string };
        if (existing.resourceArn && existing.resourceId) {
          return {
            certificateArn: existing.resourceArn,
            certificateId: existing.resourceId.toLowerCase(),
            created: false,
          };
        }
      }
      throw mapped(operation, error);
    }
  }

  /** Detaches the certificate from the thing; a thing or attachment that is gone is success. */
  async detachThingPrincipal(thingName: string, certificateArn: string): Promise<void> {
    try {
      await this.client.send(new DetachThingPrincipalCommand({ thingName, principal: certificateArn }));
    } catch (error) {
      if (awsName(error) === 'ResourceNotFoundException') return;
      throw mapped('DetachThingPrincipal', error);
    }
  }

  /** Things the certificate is attached to. */
  async listPrincipalThings(certificateArn: string): Promise<string[]> {
    const things: string[] = [];
    let nextToken: string | undefined;
    try {
      do {
        const out = await this.client.send(
          new ListPrincipalThingsCommand({ principal: certificateArn, nextToken }),
        );
        things.push(...(out.things ?? []));
        nextToken = out.nextToken;
      } while (nextToken);
    } catch (error) {
      if (awsName(error) === 'ResourceNotFoundException') return [];
      throw mapped('ListPrincipalThings', error);
    }
    return things;
  }

  /**
   * Deletes a certificate that is not ACTIVE and attached to no thing; its policies are detached by
   * IoT (`forceDelete`). A certificate that is already gone is success.
   */
  async deleteCertificate(certificateId: string): Promise<void> {
    try {
      await this.client.send(new DeleteCertificateCommand({ certificateId, forceDelete: true }));
    } catch (error) {
      if (awsName(error) === 'ResourceNotFoundException') return;
      throw mapped('DeleteCertificate', error);
    }
  }

  /** Certificate ids attached to the thing (other principal kinds are skipped). */
  async listThingCertificateIds(thingName: string): Promise<string[]> {
    const ids: string[] = [];
    let nextToken: string | undefined;
    try {
      do {
        const out = await this.client.send(new ListThingPrincipalsCommand({ thingName, nextToken }));
        for (const principal of out.principals ?? []) {
          const match = /:cert\/([0-9a-f]{64})$/i.exec(principal);
          if (match?.[1]) ids.push(match[1].toLowerCase());
        }
        nextToken = out.nextToken;
      } while (nextToken);
    } catch (error) {
      if (awsName(error) === 'ResourceNotFoundException') return [];
      throw mapped('ListThingPrincipals', error);
    }
    return ids;
  }
}

/** AWS's name of an SDK error (`ThrottlingException`, …), or 'Unknown'. */
export function awsName(error: unknown): string {
  const name = (error as { name?: unknown } | null)?.name;
  return typeof name === 'string' ? name : 'Unknown';
}

function mapped(operation: string, error: unknown): Error {
  if (error instanceof TransientError || error instanceof PermanentError) return error;
  if (isTransientAwsError(error) || awsName(error) === 'VersionConflictException') {
    return new TransientError(`${operation} failed: ${awsName(error)}`, { cause: error });
  }
  return new IotRequestError(operation, awsName(error), { cause: error });
}
