/**
 * `fleetgate doctor [--target local|aws] [--stage S] [--json]` — preflight: does the account (or
 * the local stack) have what serverless.yml says fleetgate needs? The checks live in
 * shared/doctor/checks.ts; this file finds the target and the names to expect.
 */
import { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IAMClient } from '@aws-sdk/client-iam';
import { IoTClient } from '@aws-sdk/client-iot';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { SQSClient } from '@aws-sdk/client-sqs';
import { readManifest } from '../../local/iam/call-manifest';
import { loadServerlessConfig, type ServerlessConfig, tableDefinition } from '../../local/serverless-config';
import { startLocalStack } from '../../local/stack';
import { readStackFile } from '../../local/stack-file';
import { buildStackModel, deadLetterDeclarations, type StackModel } from '../../local/stack-model';
import { deadLetterQueues } from '../../shared/dlq/dead-letters';
import { type AwsDoctorExpectations, runAwsDoctorChecks } from '../../shared/doctor/aws-checks';
import { type CheckResult, type DoctorExpectations, runDoctorChecks } from '../../shared/doctor/checks';
import { EXIT_FAILURE, EXIT_OK, type Output, UsageError } from '../io';
import { type CommandRegistry, contract } from '../main';
import { localStackOptions } from '../target';

const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };

interface DoctorOptions {
  json?: boolean;
  target?: string;
  stage?: string;
}

/** The `--json` document. */
export interface DoctorReport {
  ok: boolean;
  /** `local`, or `aws`. */
  target: 'local' | 'aws';
  /** Where the local checks ran: the running stack, AWS_ENDPOINT_URL_* or an ephemeral stack. */
  via: 'stack' | 'env' | 'ephemeral' | 'aws';
  stage: string;
  checks: CheckResult[];
}

interface DoctorTarget {
  via: DoctorReport['via'];
  stage: string;
  region: string;
  tableName?: string;
  /** The local endpoints the checks ran against (a running stack or AWS_ENDPOINT_URL_*). */
  endpoints?: LocalEndpoints;
  dynamodb: DynamoDBClient;
  sqs: SQSClient;
  iot: IoTClient;
  close(): Promise<void>;
}

interface LocalEndpoints {
  dynamodb?: string;
  sqs?: string;
  iot?: string;
}

function clients(endpoints: LocalEndpoints, region: string) {
  const local = (endpoint: string | undefined) =>
    endpoint ? { endpoint, region, credentials: LOCAL_CREDENTIALS } : { region };
  return {
    dynamodb: new DynamoDBClient(local(endpoints.dynamodb)),
    sqs: new SQSClient(local(endpoints.sqs)),
    iot: new IoTClient(local(endpoints.iot)),
  };
}

function destroyer(target: Pick<DoctorTarget, 'dynamodb' | 'sqs' | 'iot'>) {
  return () => {
    target.dynamodb.destroy();
    target.sqs.destroy();
    target.iot.destroy();
  };
}

/**
 * AWS (`--target aws`), the running local stack, the three AWS_ENDPOINT_URL_* variables
 * (DYNAMODB, SQS, IOT), or an ephemeral local stack started for this command.
 */
async function resolveDoctorTarget(options: DoctorOptions, output: Output): Promise<DoctorTarget> {
  const target = options.target ?? 'local';
  if (target !== 'local' && target !== 'aws')
    throw new UsageError(`--target must be local or aws (got "${target}")`);
  if (target === 'aws') {
    const region = process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1';
    const made = clients({}, region);
    return {
      via: 'aws',
      stage: options.stage ?? 'dev',
      region,
      ...made,
      close: async () => destroyer(made)(),
    };
  }
  const stack = readStackFile();
  if (stack?.endpoints.dynamodb && stack.endpoints.sqs && stack.endpoints.iot) {
    const made = clients(stack.endpoints, stack.region);
    return {
      via: 'stack',
      stage: options.stage ?? 'local',
      region: stack.region,
      endpoints: { dynamodb: stack.endpoints.dynamodb, sqs: stack.endpoints.sqs, iot: stack.endpoints.iot },
      // The stack's table follows its stage; another --stage names another table.
      ...(options.stage ? {} : { tableName: stack.tableName }),
      ...made,
      close: async () => destroyer(made)(),
    };
  }
  const env = {
    dynamodb: process.env.AWS_ENDPOINT_URL_DYNAMODB,
    sqs: process.env.AWS_ENDPOINT_URL_SQS,
    iot: process.env.AWS_ENDPOINT_URL_IOT,
  };
  if (env.dynamodb && env.sqs && env.iot) {
    const region = process.env.AWS_REGION ?? 'us-east-1';
    const made = clients(env, region);
    return {
      via: 'env',
      stage: options.stage ?? 'local',
      region,
      endpoints: env,
      ...(process.env.TABLE_NAME ? { tableName: process.env.TABLE_NAME } : {}),
      ...made,
      close: async () => destroyer(made)(),
    };
  }
  output.warn(
    'fleetgate: no local stack is running (start one with `fleetgate local up`); using an ephemeral one for this command',
  );
  const local = await startLocalStack(localStackOptions());
  const made = clients(local.endpoints, local.region);
  return {
    via: 'ephemeral',
    stage: 'local',
    region: local.region,
    tableName: local.tableName,
    ...made,
    close: async () => {
      destroyer(made)();
      await local.stop();
    },
  };
}

/** The names and shapes serverless.yml declares for this stage, as the checks expect them. */
export function doctorExpectations(
  config: ServerlessConfig,
  model: StackModel,
  options: { strict: boolean; tableName?: string; trustedCaIds?: string },
): DoctorExpectations {
  const tableName = options.tableName ?? model.tableName;
  const { create, ttlAttribute } = tableDefinition(tableName, config);
  const nameOf = new Map(model.queues.map((queue) => [queue.logicalId, queue.name]));
  const { declarations, ruleErrors } = deadLetterDeclarations(model);
  const trusted =
    options.trustedCaIds ??
    model.functions.find((fn) => fn.environment.TRUSTED_CA_IDS !== undefined)?.environment.TRUSTED_CA_IDS ??
    '';
  const preparation = model.accountPreparations[0];
  const template = model.provisioningTemplates[0];
  const hook = model.functions.find((fn) => fn.name === template?.preProvisioningHookFunction);
  return {
    strict: options.strict,
    table: {
      name: tableName,
      keySchema: create.KeySchema ?? [],
      indexes: (create.GlobalSecondaryIndexes ?? []).map((index) => ({
        indexName: index.IndexName ?? '',
        keySchema: index.KeySchema ?? [],
      })),
      ...(ttlAttribute ? { ttlAttribute } : {}),
    },
    queues: model.queues.map((queue) => ({
      name: queue.name,
      ...(queue.redrive ? { deadLetterQueue: nameOf.get(queue.redrive.deadLetterQueue) ?? '' } : {}),
    })),
    deadLetterQueues: deadLetterQueues(declarations, ruleErrors).map((queue) => queue.name),
    eventTypes: model.accountPreparations.flatMap((spec) => spec.eventTypes),
    trustedCaIds: trusted
      .split(',')
      .map((id) => id.trim())
      .filter(Boolean),
    ...(model.devicePolicyName ? { devicePolicyName: model.devicePolicyName } : {}),
    ...(preparation
      ? { quarantine: { thingGroupName: preparation.thingGroupName, policyName: preparation.policyName } }
      : {}),
    ...(template
      ? {
          provisioningTemplate: {
            templateName: template.templateName,
            ...(hook ? { hookFunctionName: hook.deployedName } : {}),
          },
        }
      : {}),
  };
}

/** What serverless.yml and the local IAM's call list say a deployment of this stage must allow. */
export function awsDoctorExpectations(model: StackModel, tableName: string): AwsDoctorExpectations {
  const queueName = new Map(model.queues.map((queue) => [queue.logicalId, queue.name]));
  const template = model.provisioningTemplates[0];
  const hook = model.functions.find((fn) => fn.name === template?.preProvisioningHookFunction);
  return {
    stackName: `${model.service}-${model.stage}`,
    region: model.region,
    service: model.service,
    stage: model.stage,
    tableName,
    functions: model.functions.map((fn) => ({
      name: fn.name,
      deployedName: fn.deployedName,
      queueNames: fn.sqs
        .filter((mapping) => mapping.enabled)
        .map((mapping) => queueName.get(mapping.queue) ?? ''),
    })),
    ...(template && hook
      ? { hook: { deployedName: hook.deployedName, templateName: template.templateName } }
      : {}),
    calls: readManifest(),
  };
}

async function awsOnlyChecks(
  target: DoctorTarget,
  model: StackModel,
  tableName: string,
): Promise<CheckResult[]> {
  const region = target.region;
  const made = {
    iam: new IAMClient({ region }),
    lambda: new LambdaClient({ region }),
    cloudformation: new CloudFormationClient({ region }),
    iot: target.iot,
  };
  try {
    return await runAwsDoctorChecks(made, awsDoctorExpectations(model, tableName));
  } finally {
    made.iam.destroy();
    made.lambda.destroy();
    made.cloudformation.destroy();
  }
}

const MARK = { ok: '✔', warn: '!', fail: '✖' } as const;

const AWS_CLI_COMMAND = /\baws (iot|dynamodb|sqs) /g;

/**
 * The `aws …` commands of the fixes, pointed at the local endpoints the checks ran against (a bare
 * `aws iot …` would go to AWS). Without endpoints (AWS, or an ephemeral stack gone after this
 * command) the fixes are left as they are.
 */
export function pointFixesAt(checks: CheckResult[], endpoints: LocalEndpoints | undefined): CheckResult[] {
  if (!endpoints) return checks;
  return checks.map((check) => {
    if (!check.fix) return check;
    const fix = check.fix.replace(AWS_CLI_COMMAND, (command, service: keyof LocalEndpoints) => {
      const endpoint = endpoints[service];
      return endpoint ? `aws --endpoint-url ${endpoint} ${service} ` : command;
    });
    return { ...check, fix };
  });
}

/** Printed once under the fixes when one of them runs the AWS CLI against the local stack. */
function awsCliNote(target: DoctorTarget, printed: CheckResult[]): string | undefined {
  if (target.via === 'aws' || !printed.some((check) => /\baws /.test(check.fix ?? ''))) return undefined;
  const how = `the aws commands need credentials and a region, any value: \`AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION=${target.region} aws …\``;
  return target.via === 'ephemeral'
    ? `note: this stack was started for this command only: run the aws commands against \`fleetgate local up\`'s endpoints (\`fleetgate local status\`, iot line); ${how} (README: The AWS CLI against the local stack)`
    : `note: ${how} (README: The AWS CLI against the local stack)`;
}

/** `fleetgate doctor` */
export function registerDoctorCommand({ program, setExitCode }: CommandRegistry): void {
  program
    .command('doctor')
    .description(
      'Preflight: table, queues, event configurations, CA auto-registration, device policy, quarantine group, hook wiring',
    )
    .option('--json', 'print one JSON document')
    .option('--target <target>', 'local (default) or aws')
    .option('--stage <stage>', 'stage of the names in serverless.yml (default: local; dev with --target aws)')
    .action(async (options: DoctorOptions) => {
      let failed: CheckResult[] = [];
      const code = await contract(Boolean(options.json), async (output): Promise<DoctorReport> => {
        const target = await resolveDoctorTarget(options, output);
        try {
          const serverlessFile = process.env.FLEETGATE_SERVERLESS_FILE;
          const config = loadServerlessConfig(...(serverlessFile ? [serverlessFile] : []));
          const model = buildStackModel(config, { stage: target.stage, region: target.region });
          const strict = target.via === 'aws';
          const expected = doctorExpectations(config, model, {
            strict,
            ...(target.tableName ? { tableName: target.tableName } : {}),
            ...(process.env.TRUSTED_CA_IDS !== undefined ? { trustedCaIds: process.env.TRUSTED_CA_IDS } : {}),
          });
          const checks = pointFixesAt(await runDoctorChecks(target, expected), target.endpoints);
          if (strict) checks.push(...(await awsOnlyChecks(target, model, expected.table.name)));
          const printed: CheckResult[] = [];
          for (const check of checks) {
            const mark = !check.ok ? MARK.fail : check.warn ? MARK.warn : MARK.ok;
            output.say(`${mark} ${check.name}: ${check.detail}`);
            if (check.fix && (!check.ok || check.warn)) {
              output.say(`    fix: ${check.fix}`);
              printed.push(check);
            }
          }
          const note = awsCliNote(target, printed);
          if (note) output.say(note);
          failed = checks.filter((check) => !check.ok);
          return {
            ok: failed.length === 0,
            target: strict ? 'aws' : 'local',
            via: target.via,
            stage: target.stage,
            checks,
          };
        } finally {
          await target.close();
        }
      });
      // The report is the JSON document whether or not every check passed; failed checks exit 1.
      if (code === EXIT_OK && failed.length > 0) {
        process.stderr.write(
          `fleetgate: ${failed.length} doctor check(s) failed: ${failed.map((check) => check.name).join(', ')}\n`,
        );
        setExitCode(EXIT_FAILURE);
        return;
      }
      setExitCode(code);
    });
}
