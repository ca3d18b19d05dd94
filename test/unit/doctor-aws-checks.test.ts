/**
 * `fleetgate doctor --target aws` checks, against mocked AWS clients: each deployed role is asked with
 * IAM's SimulatePrincipalPolicy about the calls the local IAM recorded for its function; the hook's
 * timeout and invoke permission; topic rules enabled; SQS event source mappings enabled.
 */
import { CloudFormationClient, DescribeStackResourcesCommand } from '@aws-sdk/client-cloudformation';
import { IAMClient, SimulatePrincipalPolicyCommand } from '@aws-sdk/client-iam';
import { GetTopicRuleCommand, IoTClient } from '@aws-sdk/client-iot';
import {
  GetFunctionConfigurationCommand,
  GetPolicyCommand,
  LambdaClient,
  ListEventSourceMappingsCommand,
} from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { awsDoctorExpectations } from '../../cli/commands/doctor';
import { readManifest } from '../../local/iam/call-manifest';
import { loadServerlessConfig } from '../../local/serverless-config';
import { buildStackModel } from '../../local/stack-model';
import { concreteResource, runAwsDoctorChecks } from '../../shared/doctor/aws-checks';

/** The call list's placeholder syntax, `${name}`. */
const ph = (name: string) => `\${${name}}`;
const iam = mockClient(IAMClient);
const lambda = mockClient(LambdaClient);
const cloudformation = mockClient(CloudFormationClient);
const iot = mockClient(IoTClient);
const clients = {
  iam: new IAMClient({ region: 'eu-west-1' }),
  lambda: new LambdaClient({ region: 'eu-west-1' }),
  cloudformation: new CloudFormationClient({ region: 'eu-west-1' }),
  iot: new IoTClient({ region: 'eu-west-1' }),
};
const model = buildStackModel(loadServerlessConfig(), { stage: 'prod', region: 'eu-west-1' });
const expected = awsDoctorExpectations(model, 'fleetgate-prod-provisioning');

function healthy(): void {
  iam.reset();
  lambda.reset();
  cloudformation.reset();
  iot.reset();
  cloudformation.on(DescribeStackResourcesCommand).resolves({
    StackResources: [
      {
        LogicalResourceId: 'ExpiryReportsBucket',
        PhysicalResourceId: 'fleetgate-prod-expiryreportsbucket-1abc',
        ResourceType: 'AWS::S3::Bucket',
        ResourceStatus: 'CREATE_COMPLETE',
        Timestamp: new Date(),
      },
      {
        LogicalResourceId: 'PresenceRule',
        PhysicalResourceId: 'PresenceRule_x1',
        ResourceType: 'AWS::IoT::TopicRule',
        ResourceStatus: 'CREATE_COMPLETE',
        Timestamp: new Date(),
      },
    ],
  });
  lambda.on(GetFunctionConfigurationCommand).callsFake((input: { FunctionName: string }) => ({
    Role: `arn:aws:iam::210987654321:role/${input.FunctionName}-role`,
    Timeout: input.FunctionName.endsWith('preProvisionHook') ? 5 : 30,
  }));
  lambda.on(GetPolicyCommand).resolves({
    Policy: JSON.stringify({
      Statement: [
        {
          Effect: 'Allow',
          Principal: { Service: 'iot.amazonaws.com' },
          Action: 'lambda:InvokeFunction',
          Condition: {
            ArnLike: {
              'AWS:SourceArn': 'arn:aws:iot:eu-west-1:210987654321:provisioningtemplate/fleetgate-prod-fleet',
            },
          },
        },
      ],
    }),
  });
  lambda.on(ListEventSourceMappingsCommand).callsFake((input: { FunctionName: string }) => ({
    EventSourceMappings: model.functions
      .find((fn) => fn.deployedName === input.FunctionName)
      ?.sqs.map((mapping) => ({
        EventSourceArn: `arn:aws:sqs:eu-west-1:210987654321:${model.queues.find((q) => q.logicalId === mapping.queue)?.name}`,
        State: 'Enabled',
      })),
  }));
  iot.on(GetTopicRuleCommand).resolves({ rule: { ruleDisabled: false } });
  iam
    .on(SimulatePrincipalPolicyCommand)
    .resolves({ EvaluationResults: [{ EvalActionName: 'x', EvalDecision: 'allowed' }] });
}

beforeEach(healthy);

describe('doctor --target aws', () => {
  it('the committed call list covers every function that calls AWS, in placeholders doctor can fill', () => {
    const calls = readManifest();
    expect(calls.length).toBeGreaterThan(20);
    for (const name of [
      'preProvisionHook',
      'registerCertificate',
      'deviceLifecycle',
      'quarantineDevice',
      'rotateCertificate',
    ]) {
      expect(
        calls.some((call) => call.function === name),
        name,
      ).toBe(true);
    }
    expect(calls.every((call) => !call.resource.includes('123456789012'))).toBe(true);
  });

  it('fills a call template with the deployment’s names', () => {
    expect(
      concreteResource(
        `arn:${ph('Partition')}:s3:::${ph('Resource:ExpiryReportsBucket')}/expiry/latest.json`,
        {
          region: 'eu-west-1',
          account: '210987654321',
          service: 'fleetgate',
          stage: 'prod',
          tableName: 't',
          physical: new Map([['ExpiryReportsBucket', 'b-1']]),
        },
      ),
    ).toBe('arn:aws:s3:::b-1/expiry/latest.json');
  });

  it('passes when every simulated call is allowed, and asks IAM about each one with the deployed role', async () => {
    const checks = await runAwsDoctorChecks(clients, expected);
    expect(checks.filter((check) => !check.ok)).toEqual([]);
    const calls = iam.commandCalls(SimulatePrincipalPolicyCommand);
    expect(calls.length).toBe(expected.calls.length);
    const attach = calls.find((call) => call.args[0].input.ActionNames?.[0] === 'iot:AttachThingPrincipal');
    expect(attach?.args[0].input.ResourceArns?.[0]).toMatch(/^arn:aws:iot:eu-west-1:210987654321:cert\//);
    expect(attach?.args[0].input.PolicySourceArn).toMatch(/^arn:aws:iam::210987654321:role\/fleetgate-prod-/);
    const sweep = calls.find((call) =>
      call.args[0].input.ResourceArns?.[0]?.includes('fleetgate-prod-expiryreportsbucket-1abc'),
    );
    expect(sweep).toBeDefined();
  });

  it('fails iam-roles naming the function, the action and the resource IAM denied', async () => {
    iam.on(SimulatePrincipalPolicyCommand, { ActionNames: ['iot:AttachThingPrincipal'] }).resolves({
      EvaluationResults: [{ EvalActionName: 'iot:AttachThingPrincipal', EvalDecision: 'implicitDeny' }],
    });
    const roles = (await runAwsDoctorChecks(clients, expected)).find((check) => check.name === 'iam-roles');
    expect(roles?.ok).toBe(false);
    expect(roles?.detail).toMatch(
      /registerCertificate: iot:AttachThingPrincipal on arn:aws:iot:eu-west-1:210987654321:cert\/\S+ \(implicitDeny\)/,
    );
  });

  it('fails the hook over 5 s or without an invoke permission for the template', async () => {
    lambda
      .on(GetFunctionConfigurationCommand, { FunctionName: 'fleetgate-prod-preProvisionHook' })
      .resolves({ Role: 'arn:aws:iam::210987654321:role/r', Timeout: 6 });
    lambda.on(GetPolicyCommand).resolves({ Policy: JSON.stringify({ Statement: [] }) });
    const hook = (await runAwsDoctorChecks(clients, expected)).find((check) => check.name === 'hook');
    expect(hook?.ok).toBe(false);
    expect(hook?.detail).toContain("timeout 6 s is over AWS IoT's 5 s limit");
    expect(hook?.detail).toContain('no resource policy lets iot.amazonaws.com invoke it');
  });

  it('fails a disabled topic rule and a disabled event source mapping', async () => {
    iot.on(GetTopicRuleCommand).resolves({ rule: { ruleDisabled: true } });
    lambda.on(ListEventSourceMappingsCommand).resolves({ EventSourceMappings: [] });
    const checks = await runAwsDoctorChecks(clients, expected);
    expect(checks.find((check) => check.name === 'topic-rules')?.detail).toContain(
      'PresenceRule (PresenceRule_x1) is disabled',
    );
    expect(checks.find((check) => check.name === 'event-source-mappings')?.detail).toContain(
      'registerCertificate: no event source mapping for queue fleetgate-prod-registration',
    );
  });
});
