/**
 * `fleetgate doctor --target aws`: what only AWS can tell about a deployment.
 * - `iam-roles`: each deployed function's role, asked with IAM's own SimulatePrincipalPolicy about
 *   every call that function makes — the list the local IAM enforces (local/iam/function-calls.json).
 * - `hook`: the pre-provisioning hook's timeout is within AWS IoT's 5 s limit, and IoT may invoke it.
 * - `topic-rules`: every topic rule of the stack exists and is enabled.
 * - `event-source-mappings`: every SQS event source of every function exists and is Enabled.
 * Read-only calls; like the other checks, one never throws and an error fails only its own check.
 */
import { type CloudFormationClient, DescribeStackResourcesCommand } from '@aws-sdk/client-cloudformation';
import { type IAMClient, SimulatePrincipalPolicyCommand } from '@aws-sdk/client-iam';
import { GetTopicRuleCommand, type IoTClient } from '@aws-sdk/client-iot';
import {
  GetFunctionConfigurationCommand,
  GetPolicyCommand,
  type LambdaClient,
  ListEventSourceMappingsCommand,
} from '@aws-sdk/client-lambda';
import type { CheckResult } from './checks';

export interface AwsDoctorClients {
  iam: IAMClient;
  lambda: LambdaClient;
  cloudformation: CloudFormationClient;
  iot: IoTClient;
}

/** One call a function makes (see local/iam/call-manifest.ts for the placeholders). */
export interface ExpectedCall {
  function: string;
  action: string;
  resource: string;
  leadingKeys?: string[];
}

export interface AwsDoctorExpectations {
  stackName: string;
  region: string;
  service: string;
  stage: string;
  tableName: string;
  functions: Array<{ name: string; deployedName: string; queueNames: string[] }>;
  hook?: { deployedName: string; templateName: string };
  calls: ExpectedCall[];
}

/** AWS IoT waits 5 s for a pre-provisioning hook (https://docs.aws.amazon.com/iot/latest/developerguide/pre-provisioning-hook.html). */
export const HOOK_TIME_LIMIT_SECONDS = 5;

async function guarded(name: string, check: () => Promise<CheckResult>): Promise<CheckResult> {
  try {
    return await check();
  } catch (error) {
    const failure = error as { name?: string; message?: string };
    return {
      name,
      ok: false,
      detail: `${failure.name ?? 'Error'}: ${String(failure.message ?? error).split('\n')[0]}`,
    };
  }
}

/** Physical ids of the stack's resources, by logical id (and by type). */
async function stackResources(
  cloudformation: CloudFormationClient,
  stackName: string,
): Promise<Array<{ logicalId: string; physicalId: string; type: string }>> {
  const out = await cloudformation.send(new DescribeStackResourcesCommand({ StackName: stackName }));
  return (out.StackResources ?? []).map((resource) => ({
    logicalId: resource.LogicalResourceId ?? '',
    physicalId: resource.PhysicalResourceId ?? '',
    type: resource.ResourceType ?? '',
  }));
}

/** A call's resource ARN on this deployment. */
export function concreteResource(
  template: string,
  values: {
    region: string;
    account: string;
    service: string;
    stage: string;
    tableName: string;
    physical: Map<string, string>;
  },
): string {
  return template.replace(/\$\{([^}]+)\}/g, (whole, name: string) => {
    if (name === 'Partition') return 'aws';
    if (name === 'Region') return values.region;
    if (name === 'Account') return values.account;
    if (name === 'Service') return values.service;
    if (name === 'Stage') return values.stage;
    if (name === 'TableName') return values.tableName;
    if (name.startsWith('Resource:')) return values.physical.get(name.slice('Resource:'.length)) ?? whole;
    return whole;
  });
}

/** A deployed function's execution role and the account it is in. */
async function roleOf(
  clients: AwsDoctorClients,
  deployedName: string,
): Promise<{ roleArn: string; account: string }> {
  const config = await clients.lambda.send(
    new GetFunctionConfigurationCommand({ FunctionName: deployedName }),
  );
  const roleArn = config.Role ?? '';
  return { roleArn, account: roleArn.split(':')[4] ?? '' };
}

/** IAM's decision on one call of a function by its role (SimulatePrincipalPolicy). */
async function simulateCall(
  clients: AwsDoctorClients,
  roleArn: string,
  call: { action: string; leadingKeys?: string[] },
  resource: string,
): Promise<string> {
  const out = await clients.iam.send(
    new SimulatePrincipalPolicyCommand({
      PolicySourceArn: roleArn,
      ActionNames: [call.action],
      ResourceArns: [resource],
      ...(call.leadingKeys
        ? {
            ContextEntries: [
              {
                ContextKeyName: 'dynamodb:LeadingKeys',
                ContextKeyValues: call.leadingKeys,
                ContextKeyType: 'stringList',
              },
            ],
          }
        : {}),
    }),
  );
  return out.EvaluationResults?.[0]?.EvalDecision ?? 'unknown';
}

/** Every deployed role allows every call its function makes, per IAM's SimulatePrincipalPolicy. */
export function checkRoles(
  clients: AwsDoctorClients,
  expected: AwsDoctorExpectations,
  physical: Map<string, string>,
) {
  const name = 'iam-roles';
  return guarded(name, async () => {
    const denied: string[] = [];
    let simulated = 0;
    for (const fn of expected.functions) {
      const calls = expected.calls.filter((call) => call.function === fn.name);
      if (calls.length === 0) continue;
      const { roleArn, account } = await roleOf(clients, fn.deployedName);
      for (const call of calls) {
        const resource = concreteResource(call.resource, {
          region: expected.region,
          account,
          service: expected.service,
          stage: expected.stage,
          tableName: expected.tableName,
          physical,
        });
        const decision = await simulateCall(clients, roleArn, call, resource);
        simulated += 1;
        if (decision !== 'allowed') denied.push(`${fn.name}: ${call.action} on ${resource} (${decision})`);
      }
    }
    if (denied.length > 0) {
      return {
        name,
        ok: false,
        detail: `${denied.length} of ${simulated} calls denied: ${denied.join('; ')}`,
        fix: 'the deployed roles differ from serverless.yml (or serverless.yml lacks a grant the local IAM did not catch): redeploy, and check the role in serverless.yml',
      };
    }
    return {
      name,
      ok: true,
      detail: `${simulated} calls of ${expected.functions.length} functions allowed by their roles (SimulatePrincipalPolicy)`,
    };
  });
}

/** The hook: within AWS IoT's 5 s, and invokable by AWS IoT for the template. */
export function checkHook(clients: AwsDoctorClients, expected: AwsDoctorExpectations) {
  const name = 'hook';
  return guarded(name, async () => {
    const hook = expected.hook;
    if (!hook) return { name, ok: true, detail: 'no pre-provisioning hook declared' };
    const problems: string[] = [];
    const config = await clients.lambda.send(
      new GetFunctionConfigurationCommand({ FunctionName: hook.deployedName }),
    );
    if ((config.Timeout ?? 3) > HOOK_TIME_LIMIT_SECONDS) {
      problems.push(`timeout ${config.Timeout} s is over AWS IoT's ${HOOK_TIME_LIMIT_SECONDS} s limit`);
    }
    const policy = await clients.lambda.send(new GetPolicyCommand({ FunctionName: hook.deployedName }));
    const statements = (
      JSON.parse(policy.Policy ?? '{"Statement":[]}') as { Statement: Array<Record<string, unknown>> }
    ).Statement;
    const invokable = statements.some((statement) => {
      const principal = statement.Principal as { Service?: string } | undefined;
      const condition = JSON.stringify(statement.Condition ?? {});
      return (
        statement.Effect === 'Allow' &&
        principal?.Service === 'iot.amazonaws.com' &&
        String(statement.Action).includes('lambda:InvokeFunction') &&
        (condition === '{}' || condition.includes(`provisioningtemplate/${hook.templateName}`))
      );
    });
    if (!invokable)
      problems.push(`no resource policy lets iot.amazonaws.com invoke it for template ${hook.templateName}`);
    if (problems.length > 0) {
      return {
        name,
        ok: false,
        detail: `${hook.deployedName}: ${problems.join('; ')}`,
        fix: 'redeploy the stack (PreProvisionHookInvokePermission, timeout)',
      };
    }
    return {
      name,
      ok: true,
      detail: `${hook.deployedName}: timeout ${config.Timeout} s, invokable by AWS IoT for ${hook.templateName}`,
    };
  });
}

/** Every AWS::IoT::TopicRule of the stack exists and is enabled. */
export function checkTopicRules(
  clients: AwsDoctorClients,
  resources: Array<{ logicalId: string; physicalId: string; type: string }>,
) {
  const name = 'topic-rules';
  return guarded(name, async () => {
    const rules = resources.filter((resource) => resource.type === 'AWS::IoT::TopicRule');
    const problems: string[] = [];
    for (const rule of rules) {
      try {
        const out = await clients.iot.send(new GetTopicRuleCommand({ ruleName: rule.physicalId }));
        if (out.rule?.ruleDisabled) problems.push(`${rule.logicalId} (${rule.physicalId}) is disabled`);
      } catch (error) {
        problems.push(`${rule.logicalId} (${rule.physicalId}): ${(error as Error).name}`);
      }
    }
    if (rules.length === 0) problems.push('the stack has no topic rules');
    if (problems.length > 0) {
      return {
        name,
        ok: false,
        detail: problems.join('; '),
        fix: 'enable the rule (aws iot enable-topic-rule) or redeploy',
      };
    }
    return { name, ok: true, detail: `${rules.length} topic rules enabled` };
  });
}

/** What is wrong with the mapping of `queue` among a function's mappings, if anything. */
function mappingProblem(
  mappings: ReadonlyArray<{ EventSourceArn?: string; State?: string }>,
  queue: string,
): string | undefined {
  const mapping = mappings.find((candidate) => candidate.EventSourceArn?.endsWith(`:${queue}`));
  if (!mapping) return `no event source mapping for queue ${queue}`;
  return mapping.State === 'Enabled' ? undefined : `mapping for queue ${queue} is ${mapping.State}`;
}

/** Every SQS event source of every function exists and is Enabled. */
export function checkEventSourceMappings(clients: AwsDoctorClients, expected: AwsDoctorExpectations) {
  const name = 'event-source-mappings';
  return guarded(name, async () => {
    const problems: string[] = [];
    let count = 0;
    for (const fn of expected.functions) {
      if (fn.queueNames.length === 0) continue;
      const out = await clients.lambda.send(
        new ListEventSourceMappingsCommand({ FunctionName: fn.deployedName }),
      );
      for (const queue of fn.queueNames) {
        count += 1;
        const problem = mappingProblem(out.EventSourceMappings ?? [], queue);
        if (problem) problems.push(`${fn.name}: ${problem}`);
      }
    }
    if (problems.length > 0) {
      return {
        name,
        ok: false,
        detail: problems.join('; '),
        fix: 'enable the mapping (aws lambda update-event-source-mapping --enabled) or redeploy',
      };
    }
    return { name, ok: true, detail: `${count} SQS event source mappings enabled` };
  });
}

/** Runs the AWS-only checks. */
export async function runAwsDoctorChecks(
  clients: AwsDoctorClients,
  expected: AwsDoctorExpectations,
): Promise<CheckResult[]> {
  let resources: Array<{ logicalId: string; physicalId: string; type: string }> = [];
  let stackError: CheckResult | undefined;
  try {
    resources = await stackResources(clients.cloudformation, expected.stackName);
  } catch (error) {
    stackError = {
      name: 'stack',
      ok: false,
      detail: `${(error as Error).name}: CloudFormation stack ${expected.stackName} (${(error as Error).message})`,
      fix: 'deploy with `npx serverless deploy --stage <stage>`, or pass the --stage you deployed',
    };
  }
  const physical = new Map(resources.map((resource) => [resource.logicalId, resource.physicalId]));
  return [
    ...(stackError ? [stackError] : []),
    await checkRoles(clients, expected, physical),
    await checkHook(clients, expected),
    await checkTopicRules(clients, resources),
    await checkEventSourceMappings(clients, expected),
  ];
}
