/**
 * `--target aws --stage S --region R`: finds the deployment the way an operator would, and refuses
 * to start — with what to do about it — when it cannot run there:
 *
 * 1. credentials from the SDK's default chain (AWS_PROFILE, environment, SSO, instance role);
 * 2. the CloudFormation stack `<service>-<stage>` in a usable state; its Outputs name the table,
 *    template, policies and quarantine group (serverless.yml's naming where an output is missing);
 * 3. the device endpoint: DescribeEndpoint `iot:Data-ATS`, port 8883, Amazon's CA (Node's roots);
 * 4. the fleet-provisioning template, enabled;
 * 5. the deployed functions' settings the flows depend on (thing-name prefix, trusted CAs,
 *    DUPLICATE_CLIENTID threshold), from their configuration.
 */
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { DescribeEndpointCommand, DescribeProvisioningTemplateCommand, IoTClient } from '@aws-sdk/client-iot';
import { GetFunctionConfigurationCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { type DeployedNames, deployedNames } from './names';
import type { AwsDescriptor } from './target';

/** The suite cannot run against this deployment; the message says why and what to do. */
export class TargetUnavailableError extends Error {
  override name = 'TargetUnavailableError';
}

export interface AwsClients {
  cloudformation: CloudFormationClient;
  iot: IoTClient;
  lambda: LambdaClient;
}

export function awsClients(region: string): AwsClients {
  return {
    cloudformation: new CloudFormationClient({ region }),
    iot: new IoTClient({ region }),
    lambda: new LambdaClient({ region }),
  };
}

const USABLE_STACK = new Set([
  'CREATE_COMPLETE',
  'UPDATE_COMPLETE',
  'UPDATE_ROLLBACK_COMPLETE',
  'IMPORT_COMPLETE',
]);
const errorName = (error: unknown) => (error as { name?: string }).name ?? 'Error';
const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

/**
 * Resolves everything the flows need on AWS.
 * @throws TargetUnavailableError when credentials, the stack, the endpoint, the template or the
 *   functions are missing or unusable.
 */
export async function resolveAwsTarget(
  options: { service: string; stage: string; region: string; runId: string },
  clients: AwsClients,
): Promise<AwsDescriptor> {
  const { service, stage, region } = options;
  const stackName = `${service}-${stage}`;
  const deploy = `deploy it first: npx serverless deploy --stage ${stage} --region ${region}`;

  try {
    await clients.cloudformation.config.credentials();
  } catch (error) {
    throw new TargetUnavailableError(
      `no AWS credentials (${message(error).split('\n')[0]}): set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run aws sso login`,
    );
  }

  let outputs: Record<string, string> = {};
  try {
    const out = await clients.cloudformation.send(new DescribeStacksCommand({ StackName: stackName }));
    const stack = out.Stacks?.[0];
    if (!stack)
      throw new TargetUnavailableError(`no CloudFormation stack ${stackName} in ${region}: ${deploy}`);
    if (!USABLE_STACK.has(String(stack.StackStatus))) {
      throw new TargetUnavailableError(
        `stack ${stackName} in ${region} is ${stack.StackStatus}; the suite needs one of ${[...USABLE_STACK].join(', ')}`,
      );
    }
    outputs = Object.fromEntries(
      (stack.Outputs ?? []).flatMap((o) =>
        o.OutputKey && o.OutputValue ? [[o.OutputKey, o.OutputValue]] : [],
      ),
    );
  } catch (error) {
    if (error instanceof TargetUnavailableError) throw error;
    // CloudFormation answers a missing stack with ValidationError "Stack with id … does not exist".
    if (errorName(error) === 'ValidationError' && /does not exist/.test(message(error)))
      throw new TargetUnavailableError(`no CloudFormation stack ${stackName} in ${region}: ${deploy}`);
    throw unavailable(`DescribeStacks ${stackName}`, error);
  }
  const names = deployedNames(service, stage, outputs);

  let endpointAddress: string | undefined;
  try {
    endpointAddress = (await clients.iot.send(new DescribeEndpointCommand({ endpointType: 'iot:Data-ATS' })))
      .endpointAddress;
  } catch (error) {
    throw unavailable('DescribeEndpoint iot:Data-ATS', error);
  }
  if (!endpointAddress) throw new TargetUnavailableError(`DescribeEndpoint returned no address in ${region}`);

  try {
    const template = await clients.iot.send(
      new DescribeProvisioningTemplateCommand({ templateName: names.templateName }),
    );
    if (template.enabled === false)
      throw new TargetUnavailableError(`provisioning template ${names.templateName} is disabled`);
  } catch (error) {
    if (error instanceof TargetUnavailableError) throw error;
    if (errorName(error) === 'ResourceNotFoundException')
      throw new TargetUnavailableError(
        `no provisioning template ${names.templateName} in ${region}: ${deploy}`,
      );
    throw unavailable(`DescribeProvisioningTemplate ${names.templateName}`, error);
  }

  const settings = await deployedSettings(clients.lambda, names);
  return {
    kind: 'aws',
    runId: options.runId,
    region,
    stackName,
    names,
    endpoint: { url: `mqtts://${endpointAddress}:8883` },
    settings,
  };
}

/** The environment of the deployed functions the flows depend on. */
async function deployedSettings(
  lambda: LambdaClient,
  names: DeployedNames,
): Promise<AwsDescriptor['settings']> {
  const environment = async (functionName: string) => {
    try {
      const out = await lambda.send(new GetFunctionConfigurationCommand({ FunctionName: functionName }));
      return out.Environment?.Variables ?? {};
    } catch (error) {
      if (errorName(error) === 'ResourceNotFoundException')
        throw new TargetUnavailableError(`no function ${functionName}: deploy the stack first`);
      throw unavailable(`GetFunctionConfiguration ${functionName}`, error);
    }
  };
  const registration = await environment(names.functions.registerCertificate);
  const lifecycle = await environment(names.functions.deviceLifecycle);
  await environment(names.functions.expirySweep);
  const threshold = Number(lifecycle.DUPLICATE_CLIENTID_THRESHOLD || '3');
  return {
    thingNamePrefix: registration.THING_NAME_PREFIX ?? '',
    duplicateClientIdThreshold: Number.isInteger(threshold) && threshold > 0 ? threshold : 3,
  };
}

/** Access denied and the like: say which call and which permission the runner lacks. */
function unavailable(call: string, error: unknown): TargetUnavailableError {
  const name = errorName(error);
  const hint = /AccessDenied|Unauthorized|Forbidden/.test(name)
    ? ' (the runner lacks a permission: see docs/acceptance.md, "Permissions")'
    : '';
  return new TargetUnavailableError(`${call} failed: ${name}: ${message(error).split('\n')[0]}${hint}`);
}
