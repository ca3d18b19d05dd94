/**
 * `fleetgate doctor`'s table check on DynamoDB Local (DynamoDB is not mocked): a table created as
 * serverless.yml declares it is ok; one missing a GSI, with TTL off, fails naming both; a table that
 * does not exist fails with the fix. And every check runs even when one of them throws something
 * unexpected (SQS and IoT answers from aws-sdk-client-mock, the table from DynamoDB Local).
 */
import { randomUUID } from 'node:crypto';
import { CreateTableCommand, DeleteTableCommand } from '@aws-sdk/client-dynamodb';
import {
  DescribeEventConfigurationsCommand,
  DescribeProvisioningTemplateCommand,
  DescribeThingGroupCommand,
  GetPolicyCommand,
  IoTClient,
  ResourceNotFoundException as IotNotFound,
  ListCACertificatesCommand,
  RegisterCACertificateCommand,
} from '@aws-sdk/client-iot';
import { GetQueueAttributesCommand, GetQueueUrlCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { doctorExpectations } from '../../cli/commands/doctor';
import { verifiedCaCertificate } from '../../local/ca-registration';
import { startIotEmulator } from '../../local/iot-emulator';
import { createCertificateAuthority } from '../../local/pki';
import { loadServerlessConfig, tableDefinition } from '../../local/serverless-config';
import { buildStackModel } from '../../local/stack-model';
import { trustedCaIdsOf } from '../../shared/doctor/ca-trust';
import { checkTable, type DoctorExpectations, runDoctorChecks } from '../../shared/doctor/checks';
import { recordTrustedCa } from '../support/device-ca';
import { useTestTable } from '../support/dynamo';

const config = loadServerlessConfig();
const expected: DoctorExpectations = doctorExpectations(config, buildStackModel(config, { stage: 'dev' }), {
  strict: false,
});
const table = useTestTable('doctor');
/** The declared table's expectations, for the table this file created. */
const declared = () => ({ ...expected.table, name: table.tableName });

describe('checkTable on DynamoDB Local', () => {
  it('is ok for an ACTIVE table with the declared keys, GSIs and TTL', async () => {
    expect(await checkTable(table.client, declared())).toMatchObject({ name: 'table', ok: true });
  });

  it('fails on a missing GSI and TTL off, naming both', async () => {
    // Prepare: the declared table without its ExpiryIndex, and TTL never enabled.
    const name = `doctor-partial-${randomUUID().slice(0, 8)}`;
    const { create } = tableDefinition(name);
    const indexes = (create.GlobalSecondaryIndexes ?? []).filter(
      (index) => index.IndexName !== 'ExpiryIndex',
    );
    const used = new Set(
      [...(create.KeySchema ?? []), ...indexes.flatMap((index) => index.KeySchema ?? [])].map(
        (key) => key.AttributeName,
      ),
    );
    await table.client.send(
      new CreateTableCommand({
        ...create,
        GlobalSecondaryIndexes: indexes,
        AttributeDefinitions: create.AttributeDefinitions?.filter((a) => used.has(a.AttributeName)),
      }),
    );
    try {
      // Act
      const result = await checkTable(table.client, { ...expected.table, name });
      // Assess
      expect(result.ok).toBe(false);
      expect(result.detail).toContain('GSI ExpiryIndex missing');
      expect(result.detail).toContain('TTL DISABLED');
    } finally {
      await table.client.send(new DeleteTableCommand({ TableName: name }));
    }
  });

  it('fails when the table does not exist', async () => {
    const name = `doctor-missing-${randomUUID().slice(0, 8)}`;
    expect(await checkTable(table.client, { ...expected.table, name })).toMatchObject({
      ok: false,
      detail: expect.stringContaining('does not exist'),
      fix: expect.any(String),
    });
  });
});

describe('runDoctorChecks', () => {
  it('runs every check even when one of them throws something unexpected', async () => {
    // Prepare: SQS answers, IoT refuses DescribeEventConfigurations with an unexpected error.
    const sqsMock = mockClient(SQSClient);
    const iotMock = mockClient(IoTClient);
    const notFound = (message: string) => new IotNotFound({ message, $metadata: {} });
    sqsMock
      .on(GetQueueUrlCommand)
      .callsFake((input: { QueueName: string }) => ({ QueueUrl: `http://q/${input.QueueName}` }));
    sqsMock.on(GetQueueAttributesCommand).resolves({ Attributes: {} });
    iotMock
      .on(DescribeEventConfigurationsCommand)
      .rejects(Object.assign(new Error('User is not authorized'), { name: 'AccessDeniedException' }));
    iotMock.on(ListCACertificatesCommand).resolves({ certificates: [] });
    iotMock.on(GetPolicyCommand).resolves({});
    iotMock.on(DescribeThingGroupCommand).rejects(notFound('no group'));
    iotMock.on(DescribeProvisioningTemplateCommand).rejects(notFound('no template'));
    try {
      // Act
      const checks = await runDoctorChecks(
        { dynamodb: table.client, sqs: new SQSClient({}), iot: new IoTClient({}) },
        { ...expected, table: declared() },
      );
      // Assess
      expect(checks.map((check) => check.name)).toEqual([
        'table',
        'queues',
        'events',
        'jitr',
        'device-policy',
        'quarantine',
        'fleet-provisioning',
      ]);
      expect(checks[0]).toMatchObject({ ok: true });
      expect(checks[2]).toMatchObject({
        ok: false,
        detail: expect.stringContaining('AccessDeniedException'),
      });
      expect(checks.find((check) => check.name === 'device-policy')).toMatchObject({ ok: true });
    } finally {
      sqsMock.restore();
      iotMock.restore();
    }
  });
});

describe('the CAs JITR trusts besides TRUSTED_CA_IDS, as doctor reads them', () => {
  it('a CA recorded in the store and a CA tagged fleetgate:trusted=true are trusted; an untagged, unrecorded one is not', async () => {
    // Prepare: three CAs registered in the IoT emulator, one recorded in the store, one tagged.
    const emulator = await startIotEmulator();
    const iot = new IoTClient({ ...emulator.clientConfig(), maxAttempts: 1 });
    try {
      const register = async (commonName: string, tags?: Array<{ Key: string; Value: string }>) => {
        const ca = await createCertificateAuthority({ subject: { commonName } });
        const out = await iot.send(
          new RegisterCACertificateCommand({
            ...(await verifiedCaCertificate(iot, ca)),
            ...(tags ? { tags } : {}),
          }),
        );
        return { ca, listed: { certificateId: out.certificateId ?? '', certificateArn: out.certificateArn } };
      };
      const recorded = await register('Recorded CA');
      await recordTrustedCa(table.store, recorded.ca);
      const tagged = await register('Tagged CA', [{ Key: 'fleetgate:trusted', Value: 'true' }]);
      const neither = await register('Untrusted CA', [{ Key: 'fleetgate:trusted', Value: 'false' }]);
      // Act
      const trusted = await trustedCaIdsOf({ dynamodb: table.client, iot }, table.tableName, [
        recorded.listed,
        tagged.listed,
        neither.listed,
      ]);
      // Assess
      expect([...trusted].sort()).toEqual(
        [recorded.listed.certificateId, tagged.listed.certificateId].sort(),
      );
    } finally {
      iot.destroy();
      await emulator.stop();
    }
  });
});
