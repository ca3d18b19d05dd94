/**
 * Everything a flow creates in IoT is written down here as it is created, and removed at the end
 * of the file whatever happened (things, certificates — deactivated, detached, deleted —, device
 * CAs). Certificates fleetgate issued on its own (rotation, JITR registration) are found through the
 * things they are attached to and the CAs that signed them.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DeleteCACertificateCommand,
  DeleteCertificateCommand,
  DeleteThingCommand,
  DescribeCACertificateCommand,
  DescribeCertificateCommand,
  type DescribeCertificateCommandOutput,
  DescribeThingCommand,
  DetachThingPrincipalCommand,
  type IoTClient,
  ListCertificatesByCACommand,
  ListPrincipalThingsCommand,
  ListThingPrincipalsCommand,
  UpdateCACertificateCommand,
  UpdateCertificateCommand,
} from '@aws-sdk/client-iot';

export class Ledger {
  readonly certificates = new Set<string>();
  readonly things = new Set<string>();
  readonly cas = new Set<string>();

  certificate(certificateId: string): void {
    this.certificates.add(certificateId);
  }
  thing(thingName: string): void {
    this.things.add(thingName);
  }
  ca(caCertificateId: string): void {
    this.cas.add(caCertificateId);
  }
}

export interface CleanupReport {
  certificatesDeleted: string[];
  thingsDeleted: string[];
  casDeleted: string[];
  /** What could not be removed, with why. */
  failures: string[];
}

const name = (error: unknown) => (error as { name?: string }).name ?? 'Error';
const notFound = (error: unknown) => name(error) === 'ResourceNotFoundException';

/** Removes what the ledger holds; resolves with what it did and what it could not do. */
export async function cleanUp(iot: IoTClient, ledger: Ledger): Promise<CleanupReport> {
  const report: CleanupReport = { certificatesDeleted: [], thingsDeleted: [], casDeleted: [], failures: [] };
  const attempt = async (what: string, step: () => Promise<void>) => {
    try {
      await step();
    } catch (error) {
      report.failures.push(`${what}: ${name(error)}: ${(error as Error).message}`);
    }
  };
  const certificates = new Set(ledger.certificates);
  for (const thingName of ledger.things) {
    await attempt(`principals of ${thingName}`, async () => {
      for (const arn of await thingPrincipals(iot, thingName)) {
        const id = arn.split('/').pop();
        if (id && /^[0-9a-f]{64}$/.test(id)) certificates.add(id);
      }
    });
  }
  for (const caId of ledger.cas) {
    await attempt(`certificates of CA ${caId}`, async () => {
      let marker: string | undefined;
      do {
        const page = await iot.send(new ListCertificatesByCACommand({ caCertificateId: caId, marker }));
        for (const c of page.certificates ?? []) if (c.certificateId) certificates.add(c.certificateId);
        marker = page.nextMarker;
      } while (marker);
    });
  }
  for (const certificateId of certificates) {
    ledger.certificate(certificateId);
    await attempt(`certificate ${certificateId}`, async () => {
      if (await deleteCertificate(iot, certificateId)) report.certificatesDeleted.push(certificateId);
    });
  }
  for (const thingName of ledger.things) {
    await attempt(`thing ${thingName}`, async () => {
      if (await deleteThing(iot, thingName)) report.thingsDeleted.push(thingName);
    });
  }
  for (const caId of ledger.cas) {
    await attempt(`CA ${caId}`, async () => {
      if (await deleteCa(iot, caId)) report.casDeleted.push(caId);
    });
  }
  return report;
}

async function thingPrincipals(iot: IoTClient, thingName: string): Promise<string[]> {
  const arns: string[] = [];
  let nextToken: string | undefined;
  try {
    do {
      const page = await iot.send(new ListThingPrincipalsCommand({ thingName, nextToken }));
      arns.push(...(page.principals ?? []));
      nextToken = page.nextToken;
    } while (nextToken);
  } catch (error) {
    if (notFound(error)) return [];
    throw error;
  }
  return arns;
}

/** INACTIVE (unless already INACTIVE or REVOKED), detached from every thing, deleted with its policies. */
async function deleteCertificate(iot: IoTClient, certificateId: string): Promise<boolean> {
  let description: DescribeCertificateCommandOutput;
  try {
    description = await iot.send(new DescribeCertificateCommand({ certificateId }));
  } catch (error) {
    if (notFound(error)) return false;
    throw error;
  }
  const status = description.certificateDescription?.status;
  const arn = description.certificateDescription?.certificateArn;
  // A certificate that never became ACTIVE (PENDING_ACTIVATION, or the emulator's INACTIVE after a
  // refused RegisterThing) may refuse the update; the delete below is what has to succeed.
  let deactivation: unknown;
  if (status !== 'INACTIVE' && status !== 'REVOKED') {
    try {
      await iot.send(new UpdateCertificateCommand({ certificateId, newStatus: 'INACTIVE' }));
    } catch (error) {
      if (status === 'ACTIVE') throw error;
      deactivation = error;
    }
  }
  if (arn) {
    let nextToken: string | undefined;
    const things: string[] = [];
    do {
      const page = await iot.send(new ListPrincipalThingsCommand({ principal: arn, nextToken }));
      things.push(...(page.things ?? []));
      nextToken = page.nextToken;
    } while (nextToken);
    for (const thingName of things)
      await iot.send(new DetachThingPrincipalCommand({ thingName, principal: arn }));
  }
  // Detaching is eventually consistent on AWS: a DeleteConflict right after it is retried.
  try {
    await retrying(
      () => iot.send(new DeleteCertificateCommand({ certificateId, forceDelete: true })),
      'DeleteConflictException',
    );
  } catch (error) {
    if (deactivation)
      throw new Error(`${(error as Error).message} (after ${name(deactivation)} on INACTIVE)`);
    throw error;
  }
  return true;
}

/** DeleteThing once its principals are detached (retried while AWS still sees them). */
async function deleteThing(iot: IoTClient, thingName: string): Promise<boolean> {
  try {
    await iot.send(new DescribeThingCommand({ thingName }));
  } catch (error) {
    if (notFound(error)) return false;
    throw error;
  }
  for (const arn of await thingPrincipals(iot, thingName))
    await iot.send(new DetachThingPrincipalCommand({ thingName, principal: arn }));
  await retrying(() => iot.send(new DeleteThingCommand({ thingName })), 'InvalidRequestException');
  return true;
}

/** INACTIVE, then deleted (the certificates it signed are gone by now). */
async function deleteCa(iot: IoTClient, certificateId: string): Promise<boolean> {
  try {
    const out = await iot.send(new DescribeCACertificateCommand({ certificateId }));
    if (out.certificateDescription?.status !== 'INACTIVE')
      await iot.send(new UpdateCACertificateCommand({ certificateId, newStatus: 'INACTIVE' }));
  } catch (error) {
    if (notFound(error)) return false;
    throw error;
  }
  await retrying(
    () => iot.send(new DeleteCACertificateCommand({ certificateId })),
    'CertificateStateException',
  );
  return true;
}

async function retrying(call: () => Promise<unknown>, retryOn: string, attempts = 10): Promise<void> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      await call();
      return;
    } catch (error) {
      if (name(error) !== retryOn || attempt >= attempts) throw error;
      await sleep(500 * attempt);
    }
  }
}

/** What is still there of what the ledger held (after `cleanUp`: must be nothing). */
export async function leftovers(iot: IoTClient, ledger: Ledger): Promise<string[]> {
  const left: string[] = [];
  const exists = async (what: string, call: () => Promise<unknown>) => {
    try {
      await call();
      left.push(what);
    } catch (error) {
      if (!notFound(error)) left.push(`${what} (${name(error)})`);
    }
  };
  for (const id of ledger.certificates)
    await exists(`certificate ${id}`, () => iot.send(new DescribeCertificateCommand({ certificateId: id })));
  for (const thingName of ledger.things)
    await exists(`thing ${thingName}`, () => iot.send(new DescribeThingCommand({ thingName })));
  for (const id of ledger.cas)
    await exists(`CA ${id}`, () => iot.send(new DescribeCACertificateCommand({ certificateId: id })));
  return left;
}
