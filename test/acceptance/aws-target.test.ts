/**
 * The acceptance suite's AWS target, resolved against mocked AWS APIs (no account here): names from
 * the stack's Outputs and serverless.yml's naming, the ATS endpoint, the deployed functions'
 * settings, and a clear refusal for each way the deployment can be missing or unusable. Part of
 * `npm test`; the flows themselves run with `npm run test:acceptance`.
 */
import {
  CloudFormationClient,
  DescribeStacksCommand,
  type DescribeStacksCommandOutput,
} from '@aws-sdk/client-cloudformation';
import {
  DescribeEndpointCommand,
  DescribeProvisioningTemplateCommand,
  IoTClient,
  ResourceNotFoundException as IotNotFound,
} from '@aws-sdk/client-iot';
import {
  GetFunctionConfigurationCommand,
  InvokeCommand,
  LambdaClient,
  ResourceNotFoundException as LambdaNotFound,
} from '@aws-sdk/client-lambda';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type AwsClients, resolveAwsTarget, TargetUnavailableError } from './aws-target';
import { deployedNames, serviceName } from './names';
import { cliArgs, invokeSweep, readS3, type TargetDescriptor } from './target';

const REGION = 'eu-west-1';
const cfn = mockClient(CloudFormationClient);
const iot = mockClient(IoTClient);
const lambda = mockClient(LambdaClient);
const s3 = mockClient(S3Client);

function clients(credentials?: () => Promise<never>): AwsClients {
  return {
    cloudformation: new CloudFormationClient({
      region: REGION,
      credentials: credentials ?? { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
    }),
    iot: new IoTClient({ region: REGION }),
    lambda: new LambdaClient({ region: REGION }),
  };
}

const resolve = (c = clients()) =>
  resolveAwsTarget({ service: 'fleetgate', stage: 'prod', region: REGION, runId: 'RUN1' }, c);

function stack(
  status: string,
  outputs: Record<string, string> = {},
): Pick<DescribeStacksCommandOutput, 'Stacks'> {
  return {
    Stacks: [
      {
        StackName: 'fleetgate-prod',
        StackStatus: status as never,
        CreationTime: new Date(),
        Outputs: Object.entries(outputs).map(([OutputKey, OutputValue]) => ({ OutputKey, OutputValue })),
      },
    ],
  };
}

/** A healthy deployment; each test breaks one thing. */
function deployment(
  outputs: Record<string, string> = {},
  environment: Record<string, Record<string, string>> = {},
) {
  cfn.on(DescribeStacksCommand, { StackName: 'fleetgate-prod' }).resolves(stack('UPDATE_COMPLETE', outputs));
  iot
    .on(DescribeEndpointCommand, { endpointType: 'iot:Data-ATS' })
    .resolves({ endpointAddress: 'a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com' });
  iot
    .on(DescribeProvisioningTemplateCommand)
    .resolves({ templateName: 'fleetgate-prod-fleet', enabled: true });
  lambda.on(GetFunctionConfigurationCommand).callsFake((input: { FunctionName: string }) => ({
    FunctionName: input.FunctionName,
    Environment: { Variables: environment[input.FunctionName] ?? {} },
  }));
}

beforeEach(() => {
  cfn.reset();
  iot.reset();
  lambda.reset();
  s3.reset();
});
afterEach(() => {
  cfn.reset();
});

describe('resolveAwsTarget', () => {
  it('names things as serverless.yml does, takes the endpoint from DescribeEndpoint iot:Data-ATS on 8883', async () => {
    // Prepare
    deployment();
    // Act
    const descriptor = await resolve();
    // Assess
    expect(descriptor).toEqual({
      kind: 'aws',
      runId: 'RUN1',
      region: REGION,
      stackName: 'fleetgate-prod',
      names: {
        service: 'fleetgate',
        stage: 'prod',
        stackName: 'fleetgate-prod',
        tableName: 'fleetgate-prod-provisioning',
        templateName: 'fleetgate-prod-fleet',
        claimPolicyName: 'fleetgate-prod-claim',
        devicePolicyName: 'fleetgate-prod-device',
        quarantineGroupName: 'fleetgate-prod-quarantine',
        functions: {
          expirySweep: 'fleetgate-prod-expirySweep',
          registerCertificate: 'fleetgate-prod-registerCertificate',
          deviceLifecycle: 'fleetgate-prod-deviceLifecycle',
        },
      },
      endpoint: { url: 'mqtts://a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com:8883' },
      settings: { thingNamePrefix: '', duplicateClientIdThreshold: 3 },
    });
    expect(iot.commandCalls(DescribeProvisioningTemplateCommand)[0]?.args[0].input).toEqual({
      templateName: 'fleetgate-prod-fleet',
    });
  });

  it("prefers the stack's Outputs, and reads the thing-name prefix and clone threshold from the functions", async () => {
    // Prepare
    deployment(
      {
        ProvisioningTableName: 'custom-table',
        FleetProvisioningTemplateName: 'custom-fleet',
        ClaimPolicyName: 'custom-claim',
        QuarantineThingGroupName: 'custom-quarantine',
        DevicePolicyName: 'custom-device',
      },
      {
        'fleetgate-prod-registerCertificate': { THING_NAME_PREFIX: 'fg-', TRUSTED_CA_IDS: '' },
        'fleetgate-prod-deviceLifecycle': { DUPLICATE_CLIENTID_THRESHOLD: '5' },
      },
    );
    // Act
    const descriptor = await resolve();
    // Assess
    expect(descriptor.names).toMatchObject({
      tableName: 'custom-table',
      templateName: 'custom-fleet',
      claimPolicyName: 'custom-claim',
      quarantineGroupName: 'custom-quarantine',
      devicePolicyName: 'custom-device',
    });
    expect(descriptor.settings).toEqual({ thingNamePrefix: 'fg-', duplicateClientIdThreshold: 5 });
    expect(iot.commandCalls(DescribeProvisioningTemplateCommand)[0]?.args[0].input).toEqual({
      templateName: 'custom-fleet',
    });
  });

  it('refuses without credentials, before calling AWS', async () => {
    // Prepare
    deployment();
    const none = () => Promise.reject(new Error('Could not load credentials from any providers'));
    // Act
    const failure = resolve(clients(none));
    // Assess
    await expect(failure).rejects.toThrow(TargetUnavailableError);
    await expect(failure).rejects.toThrow(/no AWS credentials .*AWS_PROFILE/);
    expect(cfn.calls()).toHaveLength(0);
  });

  it('refuses a stage that was never deployed, saying how to deploy it', async () => {
    // Prepare
    deployment();
    const missing = Object.assign(new Error('Stack with id fleetgate-prod does not exist'), {
      name: 'ValidationError',
    });
    cfn.on(DescribeStacksCommand).rejects(missing);
    // Act
    const failure = resolve();
    // Assess
    await expect(failure).rejects.toThrow(
      'no CloudFormation stack fleetgate-prod in eu-west-1: deploy it first: npx serverless deploy --stage prod --region eu-west-1',
    );
  });

  it.each(['ROLLBACK_COMPLETE', 'UPDATE_IN_PROGRESS', 'DELETE_COMPLETE'])(
    'refuses a stack in %s',
    async (status) => {
      // Prepare
      deployment();
      cfn.on(DescribeStacksCommand).resolves(stack(status));
      // Act / Assess
      await expect(resolve()).rejects.toThrow(`stack fleetgate-prod in eu-west-1 is ${status}`);
    },
  );

  it('refuses when the provisioning template is missing or disabled', async () => {
    // Prepare
    deployment();
    iot
      .on(DescribeProvisioningTemplateCommand)
      .rejectsOnce(new IotNotFound({ message: 'nope', $metadata: {} }));
    // Act / Assess
    await expect(resolve()).rejects.toThrow('no provisioning template fleetgate-prod-fleet in eu-west-1');
    iot.on(DescribeProvisioningTemplateCommand).resolves({ enabled: false });
    await expect(resolve()).rejects.toThrow('provisioning template fleetgate-prod-fleet is disabled');
  });

  it('accepts a deployment with TRUSTED_CA_IDS set: the flows record their own CAs in the store, which JITR trusts too', async () => {
    // Prepare
    deployment({}, { 'fleetgate-prod-registerCertificate': { TRUSTED_CA_IDS: 'abc' } });
    // Act / Assess
    await expect(resolve()).resolves.toBeDefined();
  });

  it('refuses when a function is missing, and names the permission problem on AccessDenied', async () => {
    // Prepare
    deployment();
    lambda
      .on(GetFunctionConfigurationCommand, { FunctionName: 'fleetgate-prod-expirySweep' })
      .rejects(new LambdaNotFound({ message: 'Function not found', $metadata: {} }));
    // Act / Assess
    await expect(resolve()).rejects.toThrow('no function fleetgate-prod-expirySweep');
    iot.on(DescribeEndpointCommand).rejects(
      Object.assign(new Error('User is not authorized to perform: iot:DescribeEndpoint'), {
        name: 'AccessDeniedException',
      }),
    );
    await expect(resolve()).rejects.toThrow(
      /DescribeEndpoint iot:Data-ATS failed: AccessDeniedException: .*the runner lacks a permission/,
    );
  });
});

describe('the AWS target at run time', () => {
  const descriptor: TargetDescriptor = {
    kind: 'aws',
    runId: 'RUN1',
    region: REGION,
    stackName: 'fleetgate-prod',
    names: deployedNames('fleetgate', 'prod', { ProvisioningTableName: 'prod-table' }),
    endpoint: { url: 'mqtts://x-ats.iot.eu-west-1.amazonaws.com:8883' },
    settings: { thingNamePrefix: '', duplicateClientIdThreshold: 3 },
  };

  it("gives the store commands the stack's table on AWS, and nothing more on the local stack", () => {
    // Act / Assess
    expect(cliArgs(descriptor, ['devices', 'get', 'SN-1'])).toEqual([
      'devices',
      'get',
      'SN-1',
      '--target',
      'aws',
      '--table',
      'prod-table',
      '--json',
    ]);
    expect(cliArgs(descriptor, ['allowlist', 'import', 'f.csv'])).toContain('--table');
    expect(cliArgs(descriptor, ['quarantine', 'list'])).toContain('aws');
    expect(
      cliArgs({ ...descriptor, kind: 'local' } as unknown as TargetDescriptor, ['devices', 'get', 'S']),
    ).toEqual(['devices', 'get', 'S', '--json']);
  });

  it('invokes the deployed sweep with the event and returns its answer; a function error throws', async () => {
    // Prepare
    const answer = { runId: 'r1', summary: { counts: {}, atRisk: 0 }, files: { json: 's3://b/k.json' } };
    lambda
      .on(InvokeCommand)
      .resolvesOnce({ Payload: Buffer.from(JSON.stringify(answer)) as never, StatusCode: 200 })
      .resolves({
        FunctionError: 'Unhandled',
        Payload: Buffer.from('{"errorType":"ConfigError"}') as never,
        StatusCode: 200,
      });
    const client = new LambdaClient({ region: REGION });
    // Act
    const result = await invokeSweep(client, 'fleetgate-prod-expirySweep', { runId: 'r1' });
    const failure = invokeSweep(client, 'fleetgate-prod-expirySweep', { runId: 'r2' });
    // Assess
    expect(result).toEqual(answer);
    const input = lambda.commandCalls(InvokeCommand)[0]?.args[0].input;
    expect(input?.FunctionName).toBe('fleetgate-prod-expirySweep');
    expect(JSON.parse(Buffer.from(input?.Payload as Uint8Array).toString())).toEqual({ runId: 'r1' });
    await expect(failure).rejects.toThrow(
      'fleetgate-prod-expirySweep failed (Unhandled): {"errorType":"ConfigError"}',
    );
  });

  it('reads a report from its s3:// location', async () => {
    // Prepare
    s3.on(GetObjectCommand, {
      Bucket: 'reports-bucket',
      Key: 'expiry/expiry-reports/r1/expiry-report.json',
    }).resolves({
      Body: { transformToString: async () => '{"runId":"r1"}' } as never,
    });
    const client = new S3Client({ region: REGION });
    // Act
    const body = await readS3(client, 's3://reports-bucket/expiry/expiry-reports/r1/expiry-report.json');
    // Assess
    expect(body).toBe('{"runId":"r1"}');
    await expect(readS3(client, '/tmp/report.json')).rejects.toThrow('not an s3:// location');
  });
});

describe('serviceName', () => {
  it("reads serverless.yml's service", () => {
    expect(serviceName()).toBe('fleetgate');
  });
});
