/**
 * The acceptance suite's cleanup against mocked IoT APIs: the paths the local stack does not show —
 * AWS's eventual consistency after a detach, certificates that never became ACTIVE — and the
 * order (certificates before their things, CAs last). Part of `npm test`.
 */
import {
  DeleteCACertificateCommand,
  DeleteCertificateCommand,
  DeleteThingCommand,
  DescribeCACertificateCommand,
  DescribeCertificateCommand,
  DescribeThingCommand,
  DetachThingPrincipalCommand,
  InvalidRequestException,
  IoTClient,
  ListCertificatesByCACommand,
  ListPrincipalThingsCommand,
  ListThingPrincipalsCommand,
  ResourceNotFoundException,
  UpdateCACertificateCommand,
  UpdateCertificateCommand,
} from '@aws-sdk/client-iot';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { cleanUp, Ledger, leftovers } from './cleanup';

const iot = mockClient(IoTClient);
const client = new IoTClient({ region: 'us-east-1' });
const ARN = 'arn:aws:iot:us-east-1:123456789012:cert/';
const id = (n: number) => String(n).repeat(64).slice(0, 64);
const notFound = () => new ResourceNotFoundException({ message: 'gone', $metadata: {} });

beforeEach(() => {
  iot.reset();
});

describe('cleanUp', () => {
  it('finds certificates through things and CAs, deletes certificates, then things, then CAs', async () => {
    // Prepare: one thing with a certificate fleetgate issued (not in the ledger), one CA.
    const ledger = new Ledger();
    ledger.thing('ACC-1-ROTATE1');
    ledger.certificate(id(1));
    ledger.ca(id(9));
    iot
      .on(ListThingPrincipalsCommand)
      .resolvesOnce({ principals: [`${ARN}${id(2)}`] })
      .resolves({ principals: [] });
    iot.on(ListCertificatesByCACommand).resolves({ certificates: [{ certificateId: id(3) }] });
    iot.on(DescribeCertificateCommand).callsFake((input: { certificateId: string }) => ({
      certificateDescription: {
        certificateId: input.certificateId,
        status: 'ACTIVE',
        certificateArn: `${ARN}${input.certificateId}`,
      },
    }));
    iot.on(ListPrincipalThingsCommand).resolves({ things: [] });
    iot
      .on(ListPrincipalThingsCommand, { principal: `${ARN}${id(2)}` })
      .resolves({ things: ['ACC-1-ROTATE1'] });
    iot.on(DescribeThingCommand).resolves({ thingName: 'ACC-1-ROTATE1' });
    iot.on(DescribeCACertificateCommand).resolves({ certificateDescription: { status: 'ACTIVE' } });
    // Act
    const report = await cleanUp(client, ledger);
    // Assess
    expect(report).toEqual({
      certificatesDeleted: [id(1), id(2), id(3)],
      thingsDeleted: ['ACC-1-ROTATE1'],
      casDeleted: [id(9)],
      failures: [],
    });
    expect(iot.commandCalls(UpdateCertificateCommand).map((call) => call.args[0].input)).toEqual(
      [id(1), id(2), id(3)].map((certificateId) => ({ certificateId, newStatus: 'INACTIVE' })),
    );
    expect(iot.commandCalls(DetachThingPrincipalCommand)[0]?.args[0].input).toEqual({
      thingName: 'ACC-1-ROTATE1',
      principal: `${ARN}${id(2)}`,
    });
    expect(iot.commandCalls(DeleteCertificateCommand).every((call) => call.args[0].input.forceDelete)).toBe(
      true,
    );
    const order = iot.calls().map((call) => call.args[0].constructor.name);
    expect(order.lastIndexOf('DeleteCertificateCommand')).toBeLessThan(order.indexOf('DeleteThingCommand'));
    expect(order.indexOf('DeleteThingCommand')).toBeLessThan(order.indexOf('UpdateCACertificateCommand'));
    expect(iot.commandCalls(DeleteCACertificateCommand)).toHaveLength(1);
    expect(ledger.certificates).toEqual(new Set([id(1), id(2), id(3)]));
  });

  it('retries DeleteThing while AWS still sees the principal it just detached', async () => {
    // Prepare
    const ledger = new Ledger();
    ledger.thing('ACC-1-FLEET1');
    iot.on(ListThingPrincipalsCommand).resolves({ principals: [] });
    iot.on(DescribeThingCommand).resolves({ thingName: 'ACC-1-FLEET1' });
    iot
      .on(DeleteThingCommand)
      .rejectsOnce(
        new InvalidRequestException({
          message: 'Cannot delete thing which has attached principals',
          $metadata: {},
        }),
      )
      .resolves({});
    // Act
    const report = await cleanUp(client, ledger);
    // Assess
    expect(report.failures).toEqual([]);
    expect(report.thingsDeleted).toEqual(['ACC-1-FLEET1']);
    expect(iot.commandCalls(DeleteThingCommand)).toHaveLength(2);
  });

  it('deletes a certificate that never became ACTIVE even when it refuses INACTIVE; an ACTIVE one that refuses is a failure', async () => {
    // Prepare
    const ledger = new Ledger();
    ledger.certificate(id(4));
    ledger.certificate(id(5));
    const refuse = () => Object.assign(new Error('state'), { name: 'CertificateStateException' });
    iot.on(DescribeCertificateCommand, { certificateId: id(4) }).resolves({
      certificateDescription: { status: 'PENDING_ACTIVATION', certificateArn: `${ARN}${id(4)}` },
    });
    iot.on(DescribeCertificateCommand, { certificateId: id(5) }).resolves({
      certificateDescription: { status: 'ACTIVE', certificateArn: `${ARN}${id(5)}` },
    });
    iot.on(UpdateCertificateCommand).rejects(refuse());
    iot.on(ListPrincipalThingsCommand).resolves({ things: [] });
    // Act
    const report = await cleanUp(client, ledger);
    // Assess
    expect(report.certificatesDeleted).toEqual([id(4)]);
    expect(report.failures).toEqual([
      expect.stringMatching(new RegExp(`^certificate ${id(5)}: CertificateStateException`)),
    ]);
  });

  it('skips what is already gone, and leftovers reports only what is still there', async () => {
    // Prepare
    const ledger = new Ledger();
    ledger.certificate(id(6));
    ledger.thing('ACC-1-GONE');
    ledger.ca(id(7));
    iot.on(DescribeCertificateCommand).rejects(notFound());
    iot.on(ListThingPrincipalsCommand).rejects(notFound());
    iot.on(DescribeThingCommand).rejects(notFound());
    iot.on(ListCertificatesByCACommand).resolves({ certificates: [] });
    iot
      .on(DescribeCACertificateCommand)
      .resolvesOnce({ certificateDescription: { status: 'INACTIVE' } })
      .resolves({});
    // Act
    const report = await cleanUp(client, ledger);
    const left = await leftovers(client, ledger);
    // Assess
    expect(report).toEqual({ certificatesDeleted: [], thingsDeleted: [], casDeleted: [id(7)], failures: [] });
    expect(iot.commandCalls(UpdateCACertificateCommand)).toHaveLength(0);
    expect(left).toEqual([`CA ${id(7)}`]);
  });
});
