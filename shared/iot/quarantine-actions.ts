/**
 * The AWS IoT side of quarantine, release and reject. Every method is safe to repeat: a certificate
 * already in the wanted status, or a thing already in (or out of) the group, is success.
 */
import {
  AddThingToThingGroupCommand,
  DescribeCertificateCommand,
  DescribeThingCommand,
  type IoTClient,
  ListPrincipalThingsCommand,
  RemoveThingFromThingGroupCommand,
  UpdateCertificateCommand,
} from '@aws-sdk/client-iot';
import { isTransientAwsError, PermanentError, TransientError } from '../errors';

export type SettableStatus = 'ACTIVE' | 'INACTIVE' | 'REVOKED';

export interface CertificateFacts {
  certificateId: string;
  certificateArn: string;
  status: string;
  caCertificateId?: string;
  notBefore?: string;
  notAfter?: string;
}

/** What a status change did: changed it, found it already there, or found no such certificate. */
export type StatusOutcome =
  | { certificateId: string; result: 'changed'; from: string }
  | { certificateId: string; result: 'unchanged'; from: string }
  | { certificateId: string; result: 'missing' };

/** How restrictive a status is; quarantine never makes a certificate less restricted. */
const RESTRICTION: Record<string, number> = { ACTIVE: 0, PENDING_ACTIVATION: 1, INACTIVE: 2, REVOKED: 3 };

export class IotQuarantineActions {
  constructor(private readonly iot: IoTClient) {}

  /** The certificate as IoT knows it, or undefined when it does not exist. */
  async describeCertificate(certificateId: string): Promise<CertificateFacts | undefined> {
    try {
      const out = await this.iot.send(new DescribeCertificateCommand({ certificateId }));
      const description = out.certificateDescription;
      return {
        certificateId,
        certificateArn: description?.certificateArn ?? '',
        status: description?.status ?? 'UNKNOWN',
        ...(description?.caCertificateId ? { caCertificateId: description.caCertificateId } : {}),
        ...(description?.validity?.notBefore
          ? { notBefore: description.validity.notBefore.toISOString() }
          : {}),
        ...(description?.validity?.notAfter ? { notAfter: description.validity.notAfter.toISOString() } : {}),
      };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw mapped(error, `DescribeCertificate ${certificateId}`);
    }
  }

  /**
   * Deactivates a certificate; one already INACTIVE or REVOKED is left as it is (quarantine only
   * ever restricts more).
   */
  async deactivate(certificateId: string): Promise<StatusOutcome> {
    return this.setStatus(certificateId, 'INACTIVE', { onlyMoreRestrictive: true });
  }

  /** Sets `status` (release: ACTIVE; reject: REVOKED). A REVOKED certificate stays REVOKED. */
  async setStatus(
    certificateId: string,
    status: SettableStatus,
    options: { onlyMoreRestrictive?: boolean } = {},
  ): Promise<StatusOutcome> {
    const facts = await this.describeCertificate(certificateId);
    if (!facts) return { certificateId, result: 'missing' };
    const current = RESTRICTION[facts.status] ?? 0;
    if (facts.status === status || (options.onlyMoreRestrictive && current >= (RESTRICTION[status] ?? 0))) {
      return { certificateId, result: 'unchanged', from: facts.status };
    }
    if (facts.status === 'REVOKED') {
      throw new PermanentError(`certificate ${certificateId} is REVOKED and cannot become ${status}`);
    }
    try {
      await this.iot.send(new UpdateCertificateCommand({ certificateId, newStatus: status }));
      return { certificateId, result: 'changed', from: facts.status };
    } catch (error) {
      if (isNotFound(error)) return { certificateId, result: 'missing' };
      // Lost a race with another writer: look again, and accept it if it is already where we want it.
      const again = await this.describeCertificate(certificateId);
      if (again?.status === status) return { certificateId, result: 'unchanged', from: facts.status };
      throw mapped(error, `UpdateCertificate ${certificateId} → ${status}`);
    }
  }

  /** Things the certificate is attached to (ListPrincipalThings, all pages). */
  async thingsOf(certificateArn: string): Promise<string[]> {
    const things: string[] = [];
    let nextToken: string | undefined;
    try {
      do {
        const out = await this.iot.send(
          new ListPrincipalThingsCommand({ principal: certificateArn, maxResults: 25, nextToken }),
        );
        things.push(...(out.things ?? []));
        nextToken = out.nextToken;
      } while (nextToken);
    } catch (error) {
      if (isNotFound(error)) return things;
      throw mapped(error, 'ListPrincipalThings');
    }
    return things;
  }

  /** Adds the thing to the group; false when the thing does not exist. A missing group is an error. */
  async addToGroup(thingName: string, thingGroupName: string): Promise<boolean> {
    try {
      await this.iot.send(new AddThingToThingGroupCommand({ thingName, thingGroupName }));
      return true;
    } catch (error) {
      if (isNotFound(error) && (await this.thingMissing(thingName))) return false;
      throw mapped(error, `AddThingToThingGroup ${thingName} → ${thingGroupName}`);
    }
  }

  /** Removes the thing from the group (idempotent; a missing thing or group is success). */
  async removeFromGroup(thingName: string, thingGroupName: string): Promise<void> {
    try {
      await this.iot.send(new RemoveThingFromThingGroupCommand({ thingName, thingGroupName }));
    } catch (error) {
      if (isNotFound(error)) return;
      throw mapped(error, `RemoveThingFromThingGroup ${thingName} ← ${thingGroupName}`);
    }
  }

  private async thingMissing(thingName: string): Promise<boolean> {
    // IoT answers ResourceNotFoundException for a missing thing and for a missing group alike; the
    // message is the only difference, so ask about the thing instead of reading the message.
    try {
      await this.iot.send(new DescribeThingCommand({ thingName }));
      return false;
    } catch (describeError) {
      if (isNotFound(describeError)) return true;
      throw mapped(describeError, `DescribeThing ${thingName}`);
    }
  }
}

function isNotFound(error: unknown): boolean {
  return (error as { name?: string } | null)?.name === 'ResourceNotFoundException';
}

/** Throttling and 5xx become TransientError; anything else a PermanentError; the cause is kept. */
function mapped(error: unknown, what: string): Error {
  const name = (error as { name?: string } | null)?.name ?? 'Error';
  if (isTransientAwsError(error)) return new TransientError(`${what}: ${name}`, { cause: error });
  return new PermanentError(`${what}: ${name}`, { cause: error });
}
