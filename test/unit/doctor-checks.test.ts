/**
 * `fleetgate doctor` checks of SQS and IoT with mocked clients (aws-sdk-client-mock): each check's ok
 * and failing path, warnings that stay ok, strict (aws) vs local severity of a missing JITR CA, what
 * serverless.yml declares failing on both targets. The table check, and every check running when one
 * throws, are on DynamoDB Local: test/integration/doctor-table.test.ts.
 */
import {
  DescribeCACertificateCommand,
  DescribeEventConfigurationsCommand,
  DescribeProvisioningTemplateCommand,
  DescribeThingGroupCommand,
  GetPolicyCommand,
  IoTClient,
  ResourceNotFoundException as IotNotFound,
  ListAttachedPoliciesCommand,
  ListCACertificatesCommand,
} from '@aws-sdk/client-iot';
import {
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  QueueDoesNotExist,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { doctorExpectations } from '../../cli/commands/doctor';
import { loadServerlessConfig } from '../../local/serverless-config';
import { buildStackModel } from '../../local/stack-model';
import {
  checkDevicePolicy,
  checkEventConfigurations,
  checkJitr,
  checkProvisioningTemplate,
  checkQuarantine,
  checkQueues,
  type DoctorExpectations,
} from '../../shared/doctor/checks';

const sqsMock = mockClient(SQSClient);
const iotMock = mockClient(IoTClient);
const sqs = new SQSClient({});
const iot = new IoTClient({});

const config = loadServerlessConfig();
const expected: DoctorExpectations = doctorExpectations(config, buildStackModel(config, { stage: 'dev' }), {
  strict: true,
});
const local: DoctorExpectations = { ...expected, strict: false };
const notFound = (message: string) => new IotNotFound({ message, $metadata: {} });

beforeEach(() => {
  sqsMock.reset();
  iotMock.reset();
});

describe('doctorExpectations', () => {
  it('takes every name from serverless.yml for the stage', () => {
    expect(expected).toMatchObject({
      table: { name: 'fleetgate-dev-provisioning', ttlAttribute: 'ttl' },
      devicePolicyName: 'fleetgate-dev-device',
      quarantine: { thingGroupName: 'fleetgate-dev-quarantine', policyName: 'fleetgate-dev-quarantine' },
      provisioningTemplate: {
        templateName: 'fleetgate-dev-fleet',
        hookFunctionName: 'fleetgate-dev-preProvisionHook',
      },
      trustedCaIds: [],
    });
    expect(expected.table.indexes.map((index) => index.indexName)).toEqual([
      'ExpiryIndex',
      'StateIndex',
      'IssuedIndex',
    ]);
    expect(expected.queues).toContainEqual({
      name: 'fleetgate-dev-registration',
      deadLetterQueue: 'fleetgate-dev-registration-dlq',
    });
    expect(expected.deadLetterQueues).toEqual(
      expect.arrayContaining(['fleetgate-dev-registration-dlq', 'fleetgate-dev-rule-errors']),
    );
    expect(expected.eventTypes).toEqual(expect.arrayContaining(['THING', 'THING_GROUP_MEMBERSHIP']));
  });
});

describe('checkQueues', () => {
  const urlOf = (name: string) => `https://sqs.us-east-1.amazonaws.com/123456789012/${name}`;
  const redriveOf = new Map(expected.queues.map((queue) => [urlOf(queue.name), queue.deadLetterQueue]));

  function declaredQueues(depth: Record<string, number> = {}, missing: string[] = []) {
    sqsMock.on(GetQueueUrlCommand).callsFake((input: { QueueName: string }) => {
      if (missing.includes(input.QueueName)) throw new QueueDoesNotExist({ message: 'no', $metadata: {} });
      return { QueueUrl: urlOf(input.QueueName) };
    });
    sqsMock
      .on(GetQueueAttributesCommand)
      .callsFake((input: { QueueUrl: string; AttributeNames: string[] }) => {
        const name = input.QueueUrl.split('/').pop() ?? '';
        if (input.AttributeNames.includes('RedrivePolicy')) {
          const dlq = redriveOf.get(input.QueueUrl);
          return {
            Attributes: dlq
              ? {
                  RedrivePolicy: JSON.stringify({
                    deadLetterTargetArn: `arn:aws:sqs:us-east-1:123456789012:${dlq}`,
                    maxReceiveCount: 5,
                  }),
                }
              : {},
          };
        }
        return { Attributes: { ApproximateNumberOfMessages: String(depth[name] ?? 0) } };
      });
  }

  it('is ok when every queue exists and redrives to its DLQ', async () => {
    declaredQueues();
    expect(await checkQueues(sqs, expected)).toMatchObject({ name: 'queues', ok: true });
  });

  it('warns (still ok) about dead letters waiting', async () => {
    declaredQueues({ 'fleetgate-dev-quarantine-dlq': 3 });
    const result = await checkQueues(sqs, expected);
    expect(result).toMatchObject({ ok: true, warn: true, fix: expect.stringContaining('dlq') });
    expect(result.detail).toContain('fleetgate-dev-quarantine-dlq=3');
  });

  it('fails on a missing queue and on a redrive to the wrong queue', async () => {
    declaredQueues({}, ['fleetgate-dev-rotation']);
    redriveOf.set(urlOf('fleetgate-dev-lifecycle'), 'fleetgate-dev-registration-dlq');
    const result = await checkQueues(sqs, expected);
    redriveOf.set(urlOf('fleetgate-dev-lifecycle'), 'fleetgate-dev-lifecycle-dlq');
    expect(result.ok).toBe(false);
    expect(result.detail).toContain('fleetgate-dev-rotation missing');
    expect(result.detail).toContain('fleetgate-dev-lifecycle redrives to fleetgate-dev-registration-dlq');
  });
});

describe('checkEventConfigurations', () => {
  it('is ok when every declared event type is enabled', async () => {
    iotMock.on(DescribeEventConfigurationsCommand).resolves({
      eventConfigurations: Object.fromEntries(expected.eventTypes.map((type) => [type, { Enabled: true }])),
    });
    expect(await checkEventConfigurations(iot, expected.eventTypes)).toMatchObject({ ok: true });
  });

  it('fails naming THING when it is off, with the command that fixes it', async () => {
    iotMock.on(DescribeEventConfigurationsCommand).resolves({
      eventConfigurations: { THING: { Enabled: false }, THING_GROUP_MEMBERSHIP: { Enabled: true } },
    });
    const result = await checkEventConfigurations(iot, []);
    expect(result).toMatchObject({
      ok: false,
      detail: 'disabled: THING',
      fix: expect.stringContaining('THING'),
    });
  });
});

describe('checkJitr', () => {
  function cas(list: Array<{ id: string; status: string; auto: string }>) {
    iotMock.on(ListCACertificatesCommand).resolves({
      certificates: list.map((ca) => ({ certificateId: ca.id, status: ca.status as 'ACTIVE' })),
    });
    for (const ca of list) {
      iotMock.on(DescribeCACertificateCommand, { certificateId: ca.id }).resolves({
        certificateDescription: {
          certificateId: ca.id,
          status: ca.status as 'ACTIVE',
          autoRegistrationStatus: ca.auto as 'ENABLE',
        },
      });
    }
  }

  it('is ok with an ACTIVE CA that has auto-registration on and that JITR trusts (recorded or listed)', async () => {
    cas([
      { id: 'a'.repeat(64), status: 'INACTIVE', auto: 'ENABLE' },
      { id: 'b'.repeat(64), status: 'ACTIVE', auto: 'ENABLE' },
    ]);
    const recorded = async (listed: Array<{ certificateId: string }>) =>
      new Set(listed.map((ca) => ca.certificateId).filter((id) => id === 'b'.repeat(64)));
    expect(await checkJitr(iot, expected, recorded)).toMatchObject({ name: 'jitr', ok: true });
    expect((await checkJitr(iot, expected, recorded)).warn).toBeUndefined();
    expect(await checkJitr(iot, { ...expected, trustedCaIds: ['b'.repeat(64)] })).toMatchObject({ ok: true });
  });

  it('fails on aws, warns locally, when CAs auto-register but none is trusted (issue 15: fail closed), saying how to add one', async () => {
    cas([{ id: 'b'.repeat(64), status: 'ACTIVE', auto: 'ENABLE' }]);
    const result = await checkJitr(iot, expected);
    expect(result).toMatchObject({
      ok: false,
      detail: expect.stringContaining('none trusted'),
      fix: expect.stringContaining('fleetgate certificates register <ca.pem> --kind ca'),
    });
    expect(result.fix).toContain('TRUSTED_CA_IDS');
    expect(await checkJitr(iot, local)).toMatchObject({ ok: true, warn: true });
  });

  it('warns when one CA is trusted and another auto-registering CA is not', async () => {
    cas([
      { id: 'b'.repeat(64), status: 'ACTIVE', auto: 'ENABLE' },
      { id: 'c'.repeat(64), status: 'ACTIVE', auto: 'ENABLE' },
    ]);
    const result = await checkJitr(iot, { ...expected, trustedCaIds: ['b'.repeat(64)] });
    expect(result).toMatchObject({ ok: true, warn: true, detail: expect.stringContaining('not trusted') });
  });

  it('fails on aws, warns locally, when no CA auto-registers', async () => {
    cas([{ id: 'a'.repeat(64), status: 'ACTIVE', auto: 'DISABLE' }]);
    expect(await checkJitr(iot, expected)).toMatchObject({
      ok: false,
      fix: expect.stringContaining('ENABLE'),
    });
    expect(await checkJitr(iot, local)).toMatchObject({ ok: true, warn: true });
  });

  it('with no CA registered at all, says how to register one (there is no id to update)', async () => {
    cas([]);
    const result = await checkJitr(iot, expected);
    expect(result).toMatchObject({ ok: false, detail: expect.stringContaining('0 CA(s) registered') });
    expect(result.fix).not.toContain('update-ca-certificate');
    expect(result.fix).toContain('aws iot get-registration-code');
    expect(result.fix).toContain('aws iot register-ca-certificate');
    expect(result.fix).toContain(
      '--verification-cert file://verification.pem --set-as-active --allow-auto-registration',
    );
    expect(result.fix).toContain('fleetgate certificates register <ca.pem> --kind ca');
  });

  it('with CAs registered but none auto-registering, switches one on (naming it when there is one)', async () => {
    cas([{ id: 'a'.repeat(64), status: 'INACTIVE', auto: 'DISABLE' }]);
    const one = await checkJitr(iot, expected);
    expect(one.fix).toContain(
      `aws iot update-ca-certificate --certificate-id ${'a'.repeat(64)} --new-status ACTIVE`,
    );
    expect(one.fix).not.toContain('register-ca-certificate');
    cas([
      { id: 'a'.repeat(64), status: 'INACTIVE', auto: 'DISABLE' },
      { id: 'b'.repeat(64), status: 'ACTIVE', auto: 'DISABLE' },
    ]);
    const two = await checkJitr(iot, expected);
    expect(two.fix).toContain('update-ca-certificate --certificate-id <id>');
    expect(two.fix).toContain('aws iot list-ca-certificates');
  });

  it('fails when a TRUSTED_CA_IDS entry is not registered or not ACTIVE', async () => {
    cas([
      { id: 'a'.repeat(64), status: 'ACTIVE', auto: 'ENABLE' },
      { id: 'b'.repeat(64), status: 'INACTIVE', auto: 'ENABLE' },
    ]);
    const result = await checkJitr(iot, { ...local, trustedCaIds: ['b'.repeat(64), 'c'.repeat(64)] });
    expect(result.ok).toBe(false);
    expect(result.detail).toContain(`trusted CA ${'b'.repeat(64)} is INACTIVE`);
    expect(result.detail).toContain(`trusted CA ${'c'.repeat(64)} is not registered`);
  });
});

describe('checkDevicePolicy', () => {
  it('is ok when the shared device policy exists', async () => {
    iotMock
      .on(GetPolicyCommand, { policyName: 'fleetgate-dev-device' })
      .resolves({ policyName: 'fleetgate-dev-device' });
    expect(await checkDevicePolicy(iot, expected)).toMatchObject({ ok: true });
  });

  it('fails on aws and locally when it is missing: the local stack creates it from serverless.yml', async () => {
    iotMock.on(GetPolicyCommand).rejects(notFound('no policy'));
    expect(await checkDevicePolicy(iot, expected)).toMatchObject({
      ok: false,
      fix: expect.stringContaining('deploy'),
    });
    const result = await checkDevicePolicy(iot, local);
    expect(result).toMatchObject({ ok: false, fix: expect.stringContaining('fleetgate local up') });
    expect(result.warn).toBeUndefined();
  });
});

describe('checkQuarantine', () => {
  const groupArn = 'arn:aws:iot:us-east-1:123456789012:thinggroup/fleetgate-dev-quarantine';

  it('is ok when the group exists with the quarantine policy attached', async () => {
    iotMock
      .on(DescribeThingGroupCommand)
      .resolves({ thingGroupName: 'fleetgate-dev-quarantine', thingGroupArn: groupArn });
    iotMock
      .on(ListAttachedPoliciesCommand, { target: groupArn })
      .resolves({ policies: [{ policyName: 'fleetgate-dev-quarantine' }] });
    expect(await checkQuarantine(iot, expected.quarantine)).toMatchObject({ ok: true });
  });

  it('fails when the policy is not attached, or the group is missing', async () => {
    iotMock.on(DescribeThingGroupCommand).resolves({ thingGroupArn: groupArn });
    iotMock.on(ListAttachedPoliciesCommand).resolves({ policies: [] });
    expect(await checkQuarantine(iot, expected.quarantine)).toMatchObject({
      ok: false,
      detail: expect.stringContaining('is not attached'),
    });
    iotMock.on(DescribeThingGroupCommand).rejects(notFound('no group'));
    expect(await checkQuarantine(iot, expected.quarantine)).toMatchObject({
      ok: false,
      detail: expect.stringContaining('does not exist'),
      fix: expect.stringContaining('quarantine prepare'),
    });
  });
});

describe('checkProvisioningTemplate', () => {
  const hookArn = (fn: string) => `arn:aws:lambda:us-east-1:123456789012:function:${fn}`;

  it('is ok when the template’s hook is the preProvisionHook function', async () => {
    iotMock.on(DescribeProvisioningTemplateCommand).resolves({
      templateName: 'fleetgate-dev-fleet',
      preProvisioningHook: { targetArn: hookArn('fleetgate-dev-preProvisionHook') },
    });
    expect(await checkProvisioningTemplate(iot, expected)).toMatchObject({
      name: 'fleet-provisioning',
      ok: true,
    });
  });

  it('fails when the hook targets another function, locally too', async () => {
    iotMock.on(DescribeProvisioningTemplateCommand).resolves({
      templateName: 'fleetgate-dev-fleet',
      preProvisioningHook: { targetArn: hookArn('something-else') },
    });
    expect(await checkProvisioningTemplate(iot, local)).toMatchObject({
      ok: false,
      detail: expect.stringContaining('something-else'),
    });
  });

  it('fails on aws and locally when the template is missing: the local stack creates it from serverless.yml', async () => {
    iotMock.on(DescribeProvisioningTemplateCommand).rejects(notFound('no template'));
    expect(await checkProvisioningTemplate(iot, expected)).toMatchObject({ ok: false });
    const result = await checkProvisioningTemplate(iot, local);
    expect(result).toMatchObject({ ok: false, fix: expect.stringContaining('fleetgate local up') });
    expect(result.warn).toBeUndefined();
  });
});
