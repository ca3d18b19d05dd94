/**
 * Deploy rules on the template `serverless package` writes: the real one passes with 0 findings, and
 * a copy broken on purpose (changed in memory) fails each rule with its logical id, property path,
 * rule and AWS page.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type CfnTemplate,
  checkTemplate,
  type Finding,
  formatFinding,
} from '../../scripts/deploy-rules/index';
import { packagedTemplate } from '../support/packaged-template';

const root = fileURLToPath(new URL('../..', import.meta.url));
let packaged: CfnTemplate;

beforeAll(async () => {
  packaged = (await packagedTemplate()).template;
}, 300_000);

/** Findings of a copy of the packaged template changed by `edit`. */
function brokenBy(edit: (template: CfnTemplate) => void): Finding[] {
  const copy = structuredClone(packaged);
  edit(copy);
  return checkTemplate(copy);
}

function properties(template: CfnTemplate, logicalId: string): Record<string, unknown> {
  const resource = template.Resources[logicalId];
  if (!resource?.Properties) throw new Error(`${logicalId} is not in the packaged template`);
  return resource.Properties;
}

describe('deploy rules on the packaged template', () => {
  it('passes the real packaged template with 0 findings', () => {
    // Act
    const findings = checkTemplate(packaged);
    // Assess
    expect(findings.map(formatFinding)).toEqual([]);
    expect(Object.keys(packaged.Resources).length).toBeGreaterThan(80);
  });

  describe('cfn-schema: CloudFormation registry schemas (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/resource-type-schemas.html)', () => {
    it('fails an unknown property, at the resource and at a nested property type', () => {
      const findings = brokenBy((template) => {
        properties(template, 'RegistrationQueue').VisibilityTimeOut = 361;
        const table = properties(template, 'ProvisioningTable') as {
          GlobalSecondaryIndexes: Array<{ Projection: Record<string, unknown> }>;
        };
        (table.GlobalSecondaryIndexes[0] as { Projection: Record<string, unknown> }).Projection.Attributes =
          [];
      });
      expect(findings).toEqual([
        {
          rule: 'cfn-schema',
          resource: 'ProvisioningTable',
          path: 'Properties.GlobalSecondaryIndexes[0].Projection.Attributes',
          message: 'unknown property Attributes',
          doc: 'https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-dynamodb-table-projection.html',
        },
        {
          rule: 'cfn-schema',
          resource: 'RegistrationQueue',
          path: 'Properties.VisibilityTimeOut',
          message: 'unknown property VisibilityTimeOut',
          doc: 'https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-sqs-queue.html',
        },
      ]);
    });

    it('fails a missing required property, top level and nested', () => {
      const findings = brokenBy((template) => {
        delete properties(template, 'IotProvisioningRole').AssumeRolePolicyDocument;
        const payload = properties(template, 'PresenceRule').TopicRulePayload as Record<string, unknown>;
        delete payload.Sql;
      });
      expect(findings.map(({ rule, resource, path }) => ({ rule, resource, path }))).toEqual([
        { rule: 'cfn-schema', resource: 'IotProvisioningRole', path: 'Properties.AssumeRolePolicyDocument' },
        { rule: 'cfn-schema', resource: 'PresenceRule', path: 'Properties.TopicRulePayload.Sql' },
      ]);
      expect(findings[1]?.message).toBe('required property Sql is missing');
    });

    it('fails a literal outside the enum and a literal of the wrong primitive type; intrinsics pass', () => {
      const findings = brokenBy((template) => {
        properties(template, 'ExpirySweepLambdaFunction').TracingConfig = { Mode: 'Enabled' };
        properties(template, 'QuarantineDeviceLambdaFunction').MemorySize = 'large';
        properties(template, 'FleetProvisioningTemplate').Enabled = 'yes';
        // An intrinsic where a number goes is not judged (its value is known only at deploy time).
        properties(template, 'RotationDLQ').MessageRetentionPeriod = { Ref: 'AWS::NoValue' };
      });
      expect(
        findings.map(({ rule, resource, path, message }) => ({ rule, resource, path, message })),
      ).toEqual([
        {
          rule: 'cfn-schema',
          resource: 'ExpirySweepLambdaFunction',
          path: 'Properties.TracingConfig.Mode',
          message: '"Enabled" is not one of Active, PassThrough',
        },
        {
          rule: 'cfn-schema',
          resource: 'FleetProvisioningTemplate',
          path: 'Properties.Enabled',
          message: 'expected a boolean, got string "yes"',
        },
        {
          rule: 'cfn-schema',
          resource: 'QuarantineDeviceLambdaFunction',
          path: 'Properties.MemorySize',
          message: 'expected an integer, got string "large"',
        },
      ]);
      expect(findings[0]?.doc).toBe(
        'https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-lambda-function-tracingconfig.html',
      );
    });

    it('fails an unknown resource type and an unknown DeletionPolicy', () => {
      const findings = brokenBy((template) => {
        template.Resources.ExtraQueue = { Type: 'AWS::SQS::Queues', Properties: {} };
        (template.Resources.ProvisioningTable as Record<string, unknown>).DeletionPolicy = 'Keep';
      });
      expect(findings.map(({ rule, resource, path }) => ({ rule, resource, path }))).toEqual([
        { rule: 'cfn-schema', resource: 'ExtraQueue', path: 'Type' },
        { rule: 'cfn-schema', resource: 'ProvisioningTable', path: 'DeletionPolicy' },
      ]);
      expect(findings[0]?.message).toBe(
        'unknown resource type AWS::SQS::Queues (not in the CloudFormation registry)',
      );
    });
  });

  it('cfn-references: fails a GetAtt of an attribute the type does not have and a Ref to nothing', () => {
    const findings = brokenBy((template) => {
      const alarm = properties(template, 'RegistrationDLQAlarm');
      alarm.Dimensions = [{ Name: 'QueueName', Value: { 'Fn::GetAtt': ['RegistrationDLQ', 'Name'] } }];
      template.Outputs = { ...template.Outputs, Gone: { Value: { Ref: 'NoSuchQueue' } } };
    });
    expect(findings.map(({ rule, resource, path, message }) => ({ rule, resource, path, message }))).toEqual([
      {
        rule: 'cfn-references',
        resource: 'Outputs.Gone',
        path: 'Value',
        message: 'NoSuchQueue is not a resource, parameter or pseudo parameter of this template',
      },
      {
        rule: 'cfn-references',
        resource: 'RegistrationDLQAlarm',
        path: 'Properties.Dimensions[0].Value',
        message: 'AWS::SQS::Queue has no attribute Name (it has Arn, QueueName, QueueUrl)',
      },
    ]);
  });

  describe('sqs-visibility-timeout (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html)', () => {
    it('fails a queue below 6 × the consuming function timeout + batching window (AWS recommendation)', () => {
      const findings = brokenBy((template) => {
        properties(template, 'RegistrationQueue').VisibilityTimeout = 180;
      });
      expect(findings).toEqual([
        expect.objectContaining({
          rule: 'sqs-visibility-timeout',
          resource: 'RegistrationQueue',
          path: 'Properties.VisibilityTimeout',
          doc: 'https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html',
        }),
      ]);
      expect(findings[0]?.message).toContain(
        "180 s is below 6 × RegisterCertificateLambdaFunction's timeout of 60 s + 1 s batching window = 361 s",
      );
    });

    it('says Lambda refuses the mapping when the visibility timeout is below the function timeout', () => {
      const findings = brokenBy((template) => {
        delete properties(template, 'ReconcileQueue').VisibilityTimeout;
      });
      expect(findings).toHaveLength(1);
      expect(findings[0]).toMatchObject({ rule: 'sqs-visibility-timeout', resource: 'ReconcileQueue' });
      expect(findings[0]?.message).toContain(
        "30 s is below ReconcileInventoryLambdaFunction's timeout of 900 s: Lambda refuses the event source mapping",
      );
    });
  });

  it('reserved-concurrency: fails a function that reserves concurrency (https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html)', () => {
    const findings = brokenBy((template) => {
      properties(template, 'RegisterCertificateLambdaFunction').ReservedConcurrentExecutions = 2;
    });
    expect(findings).toEqual([
      expect.objectContaining({
        rule: 'reserved-concurrency',
        resource: 'RegisterCertificateLambdaFunction',
        path: 'Properties.ReservedConcurrentExecutions',
        doc: 'https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html',
      }),
    ]);
  });

  describe('tracing-xray-permissions (https://docs.aws.amazon.com/lambda/latest/dg/services-xray.html)', () => {
    it('fails a traced function whose role cannot write to X-Ray', () => {
      const findings = brokenBy((template) => {
        delete properties(template, 'PrepareAccountRole').ManagedPolicyArns;
      });
      expect(findings).toEqual([
        expect.objectContaining({
          rule: 'tracing-xray-permissions',
          resource: 'PrepareAccountRole',
          doc: 'https://docs.aws.amazon.com/lambda/latest/dg/services-xray.html',
        }),
      ]);
      expect(findings[0]?.message).toContain(
        'PrepareAccountLambdaFunction is traced (TracingConfig.Mode Active) but its role does not allow xray:PutTraceSegments and xray:PutTelemetryRecords',
      );
    });

    it('accepts an inline statement instead of the managed policy, and not one scoped by a condition', () => {
      const inline = (condition?: unknown) =>
        brokenBy((template) => {
          const role = properties(template, 'PrepareAccountRole');
          delete role.ManagedPolicyArns;
          (role.Policies as unknown[]).push({
            PolicyName: 'xray',
            PolicyDocument: {
              Version: '2012-10-17',
              Statement: [
                {
                  Effect: 'Allow',
                  Action: ['xray:PutTrace*', 'xray:PutTelemetryRecords'],
                  Resource: '*',
                  ...(condition ? { Condition: condition } : {}),
                },
              ],
            },
          });
        });
      expect(inline()).toEqual([]);
      expect(inline({ StringEquals: { 'aws:RequestedRegion': 'us-east-1' } })).toHaveLength(1);
    });
  });

  it('required-outputs: fails when an output a user needs is missing (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/outputs-section-structure.html)', () => {
    const findings = brokenBy((template) => {
      delete template.Outputs?.IotProvisioningRoleArn;
      delete template.Outputs?.ReportsBucketName;
      delete template.Outputs?.FailedRunsQueueUrl;
    });
    expect(findings.map(({ rule, resource, path }) => ({ rule, resource, path }))).toEqual([
      { rule: 'required-outputs', resource: 'Outputs', path: 'ExpiryReportsBucket' },
      { rule: 'required-outputs', resource: 'Outputs', path: 'FailedRunsQueue' },
      { rule: 'required-outputs', resource: 'Outputs', path: 'IotProvisioningRole' },
    ]);
    expect(findings[2]?.message).toContain('the provisioning role ARN (JITP templates registered with a CA)');
  });

  it('function-alarms: fails a function without its Errors or Throttles alarm (https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html)', () => {
    const findings = brokenBy((template) => {
      delete template.Resources.PrepareAccountThrottlesAlarm;
      const fn = template.Resources.SweepRotationsLambdaFunction;
      if (fn) template.Resources.NewLambdaFunction = structuredClone(fn);
    });
    expect(findings.map(({ rule, resource, message }) => ({ rule, resource, message }))).toEqual([
      {
        rule: 'function-alarms',
        resource: 'NewLambdaFunction',
        message: 'no CloudWatch alarm on AWS/Lambda Errors with FunctionName = this function',
      },
      {
        rule: 'function-alarms',
        resource: 'NewLambdaFunction',
        message: 'no CloudWatch alarm on AWS/Lambda Throttles with FunctionName = this function',
      },
      {
        rule: 'function-alarms',
        resource: 'PrepareAccountLambdaFunction',
        message: 'no CloudWatch alarm on AWS/Lambda Throttles with FunctionName = this function',
      },
    ]);
  });

  describe('async-on-failure-destination (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html)', () => {
    it('fails a scheduled function whose failed runs go nowhere (DestinationConfig: {})', () => {
      const findings = brokenBy((template) => {
        properties(template, 'ExpirySweepLambdaEvConf').DestinationConfig = {};
      });
      expect(findings).toEqual([
        expect.objectContaining({
          rule: 'async-on-failure-destination',
          resource: 'ExpirySweepLambdaEvConf',
          path: 'Properties.DestinationConfig.OnFailure',
        }),
      ]);
    });

    it("fails a destination queue the function's execution role may not send to", () => {
      const findings = brokenBy((template) => {
        const role = properties(template, 'SweepRotationsRole');
        role.Policies = (role.Policies as Array<{ PolicyName: string }>).filter(
          (policy) => policy.PolicyName !== 'failed-runs',
        );
      });
      expect(findings).toEqual([
        expect.objectContaining({ rule: 'async-on-failure-destination', resource: 'SweepRotationsRole' }),
      ]);
      expect(findings[0]?.message).toContain(
        "SweepRotationsLambdaFunction's execution role does not allow sqs:SendMessage on its on-failure destination FailedRunsQueue",
      );
    });
  });

  it('iot-policy-retain: fails an IoT policy CloudFormation would try to delete (https://docs.aws.amazon.com/iot/latest/apireference/API_DeletePolicy.html)', () => {
    const findings = brokenBy((template) => {
      delete template.Resources.DevicePolicy?.DeletionPolicy;
    });
    expect(findings).toEqual([
      expect.objectContaining({
        rule: 'iot-policy-retain',
        resource: 'DevicePolicy',
        path: 'DeletionPolicy',
      }),
    ]);
  });

  it('npm run check:deploy exits 1 with one line per finding, 0 on the packaged template', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetgate-deploy-rules-'));
    const good = join(dir, 'good.json');
    const bad = join(dir, 'bad.json');
    const broken = structuredClone(packaged);
    properties(broken, 'RegistrationQueue').VisibilityTimeout = 60;
    await writeFile(good, JSON.stringify(packaged));
    await writeFile(bad, JSON.stringify(broken));
    const check = (file: string) =>
      spawnSync(process.execPath, ['--import', 'tsx', join(root, 'scripts', 'check-deploy.ts'), file], {
        cwd: root,
        encoding: 'utf8',
        timeout: 120_000,
      });
    const passed = check(good);
    const failed = check(bad);
    expect(passed.status, passed.stderr).toBe(0);
    expect(passed.stdout).toContain('0 finding(s)');
    expect(failed.status).toBe(1);
    expect(failed.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(
        /^RegistrationQueue Properties\.VisibilityTimeout: 60 s is below .* \[sqs-visibility-timeout\] \(https:\/\/docs\.aws\.amazon\.com\/lambda\/latest\/dg\/services-sqs-configure\.html\)$/,
      ),
    ]);
  });

  describe('operations, as osls renders them', () => {
    const alarms = () =>
      Object.entries(packaged.Resources).filter(([, resource]) => resource.Type === 'AWS::CloudWatch::Alarm');

    it('every function has an Errors and a Throttles alarm that notifies the alarm topic like the other alarms', () => {
      const functions = Object.entries(packaged.Resources)
        .filter(([, resource]) => resource.Type === 'AWS::Lambda::Function')
        .map(([id]) => id);
      const topicActions = properties(packaged, 'RegistrationDLQAlarm').AlarmActions;
      expect(topicActions).toEqual({ 'Fn::If': ['HasAlarmTopic', [''], { Ref: 'AWS::NoValue' }] });
      expect(functions).toHaveLength(10);
      for (const fn of functions) {
        for (const metric of ['Errors', 'Throttles']) {
          const matching = alarms().filter(([, alarm]) => {
            const props = alarm.Properties ?? {};
            return (
              props.Namespace === 'AWS/Lambda' &&
              props.MetricName === metric &&
              JSON.stringify(props.Dimensions) ===
                JSON.stringify([{ Name: 'FunctionName', Value: { Ref: fn } }])
            );
          });
          expect(matching, `${fn} ${metric}`).toHaveLength(1);
          expect(matching[0]?.[1].Properties).toMatchObject({
            Statistic: 'Sum',
            Threshold: 0,
            ComparisonOperator: 'GreaterThanThreshold',
            AlarmActions: topicActions,
          });
        }
      }
    });

    it('the scheduled functions send failed runs to FailedRunsQueue, which alarms', () => {
      const scheduled = Object.values(packaged.Resources)
        .filter((resource) => resource.Type === 'AWS::Events::Rule')
        .flatMap((rule) => (rule.Properties?.Targets as Array<{ Arn: { 'Fn::GetAtt': string[] } }>) ?? [])
        .map((target) => target.Arn['Fn::GetAtt'][0])
        .sort();
      expect(scheduled).toEqual([
        'ExpirySweepLambdaFunction',
        'ReconcileInventoryLambdaFunction',
        'SweepRotationsLambdaFunction',
      ]);
      for (const fn of scheduled) {
        const config = Object.values(packaged.Resources).find(
          (resource) =>
            resource.Type === 'AWS::Lambda::EventInvokeConfig' &&
            JSON.stringify(resource.Properties?.FunctionName) === JSON.stringify({ Ref: fn }),
        );
        expect(config?.Properties?.DestinationConfig, fn).toEqual({
          OnFailure: { Destination: { 'Fn::GetAtt': ['FailedRunsQueue', 'Arn'] } },
        });
      }
      expect(properties(packaged, 'FailedRunsQueueAlarm')).toMatchObject({
        Namespace: 'AWS/SQS',
        MetricName: 'ApproximateNumberOfMessagesVisible',
        Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': ['FailedRunsQueue', 'QueueName'] } }],
        Threshold: 0,
      });
    });

    it('alarms on hook denials for TIME_BUDGET_EXCEEDED and STORE_UNAVAILABLE', () => {
      const reasons = alarms()
        .map(([, alarm]) => alarm.Properties ?? {})
        .filter((props) => props.Namespace === 'fleetgate' && props.MetricName === 'ProvisioningDenied')
        .map(
          (props) =>
            (props.Dimensions as Array<{ Name: string; Value: string }>).find((d) => d.Name === 'reason')
              ?.Value,
        )
        .sort();
      expect(reasons).toEqual(['STORE_UNAVAILABLE', 'TIME_BUDGET_EXCEEDED']);
    });

    it('reserves no concurrency and retains the IoT policies by default', () => {
      expect(
        properties(packaged, 'RegisterCertificateLambdaFunction').ReservedConcurrentExecutions,
      ).toBeUndefined();
      for (const id of ['DevicePolicy', 'ClaimPolicy']) {
        expect(packaged.Resources[id]).toMatchObject({
          DeletionPolicy: 'Retain',
          UpdateReplacePolicy: 'Retain',
        });
      }
    });
  });
});
