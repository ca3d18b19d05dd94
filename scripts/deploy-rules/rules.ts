/**
 * fleetgate's deploy rules: what AWS refuses (or documents as the way to run) that the registry
 * schemas alone do not catch. Each rule names the AWS page it comes from.
 */
import {
  type CfnResource,
  type CfnTemplate,
  type Finding,
  getAttTarget,
  isObject,
  literalNumber,
  referencedResource,
  refTarget,
  resourcesOfType,
  staticText,
} from './template';

export const RULES = {
  sqsVisibility: 'sqs-visibility-timeout',
  reservedConcurrency: 'reserved-concurrency',
  tracing: 'tracing-xray-permissions',
  outputs: 'required-outputs',
  functionAlarms: 'function-alarms',
  asyncFailure: 'async-on-failure-destination',
  iotPolicyRetain: 'iot-policy-retain',
} as const;

const DOCS = {
  sqsConfigure: 'https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html',
  concurrency: 'https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html',
  xray: 'https://docs.aws.amazon.com/lambda/latest/dg/services-xray.html',
  outputs: 'https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/outputs-section-structure.html',
  lambdaMetrics: 'https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html',
  asyncDestinations: 'https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html',
  iotDeletePolicy: 'https://docs.aws.amazon.com/iot/latest/apireference/API_DeletePolicy.html',
} as const;

/** Lambda's default function timeout and SQS's default visibility timeout, in seconds. */
const DEFAULT_FUNCTION_TIMEOUT = 3;
const DEFAULT_VISIBILITY_TIMEOUT = 30;

export function checkRules(template: CfnTemplate): Finding[] {
  return [
    ...sqsVisibilityTimeout(template),
    ...reservedConcurrency(template),
    ...tracingPermissions(template),
    ...requiredOutputs(template),
    ...functionAlarms(template),
    ...asyncOnFailure(template),
    ...iotPolicyRetained(template),
  ];
}

function functionOf(template: CfnTemplate, reference: unknown): [string, CfnResource] | undefined {
  const id = referencedResource(reference);
  const resource = id ? template.Resources[id] : undefined;
  return id && resource?.Type === 'AWS::Lambda::Function' ? [id, resource] : undefined;
}

/**
 * A queue that feeds a Lambda event source mapping:
 * - AWS refuses the mapping when the queue's visibility timeout is below the function's timeout
 *   ("Your function's timeout must be less than or equal to the queue's visibility timeout. Lambda
 *   validates this requirement when you create or update an event source mapping");
 * - AWS recommends at least six times the function timeout, plus the batching window, so a
 *   throttled batch can be retried before the messages become visible again.
 * @see https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html
 */
function sqsVisibilityTimeout(template: CfnTemplate): Finding[] {
  const findings: Finding[] = [];
  for (const [mappingId, mapping] of resourcesOfType(template, 'AWS::Lambda::EventSourceMapping')) {
    const properties = mapping.Properties ?? {};
    const queueId = getAttTarget(properties.EventSourceArn)?.[0];
    const queue = queueId ? template.Resources[queueId] : undefined;
    if (!queueId || queue?.Type !== 'AWS::SQS::Queue') continue;
    const fn = functionOf(template, properties.FunctionName);
    if (!fn) {
      findings.push({
        rule: RULES.sqsVisibility,
        resource: mappingId,
        path: 'Properties.FunctionName',
        message: `the function consuming ${queueId} must be a function of this template, so its timeout can be checked`,
        doc: DOCS.sqsConfigure,
      });
      continue;
    }
    const [functionId, functionResource] = fn;
    const timeout = literalNumber(functionResource.Properties?.Timeout ?? DEFAULT_FUNCTION_TIMEOUT);
    const visibility = literalNumber(queue.Properties?.VisibilityTimeout ?? DEFAULT_VISIBILITY_TIMEOUT);
    const window = literalNumber(properties.MaximumBatchingWindowInSeconds ?? 0);
    if (timeout === undefined || visibility === undefined || window === undefined) {
      findings.push({
        rule: RULES.sqsVisibility,
        resource: queueId,
        path: 'Properties.VisibilityTimeout',
        message: `the visibility timeout, ${functionId}'s Timeout and ${mappingId}'s batching window must be literal numbers to be checked`,
        doc: DOCS.sqsConfigure,
      });
      continue;
    }
    const recommended = 6 * timeout + window;
    if (visibility < timeout) {
      findings.push({
        rule: RULES.sqsVisibility,
        resource: queueId,
        path: 'Properties.VisibilityTimeout',
        message: `${visibility} s is below ${functionId}'s timeout of ${timeout} s: Lambda refuses the event source mapping ${mappingId} (InvalidParameterValueException); at least ${recommended} s (6 × ${timeout} s + ${window} s batching window) is recommended`,
        doc: DOCS.sqsConfigure,
      });
    } else if (visibility < recommended) {
      findings.push({
        rule: RULES.sqsVisibility,
        resource: queueId,
        path: 'Properties.VisibilityTimeout',
        message: `${visibility} s is below 6 × ${functionId}'s timeout of ${timeout} s + ${window} s batching window = ${recommended} s, AWS's recommendation for a queue feeding ${mappingId} (Lambda accepts it, but a throttled batch becomes visible again while it is still retried)`,
        doc: DOCS.sqsConfigure,
      });
    }
  }
  return findings;
}

/**
 * No function reserves concurrency by default: Lambda keeps 100 executions unreserved, so an account
 * at a low concurrency quota (new accounts start at 10) refuses any reservation and the stack rolls
 * back. A stage that wants one sets the function's parameter (README, "Deploying").
 * @see https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html
 */
function reservedConcurrency(template: CfnTemplate): Finding[] {
  return resourcesOfType(template, 'AWS::Lambda::Function')
    .filter(([, resource]) => resource.Properties?.ReservedConcurrentExecutions !== undefined)
    .map(([id, resource]) => ({
      rule: RULES.reservedConcurrency,
      resource: id,
      path: 'Properties.ReservedConcurrentExecutions',
      message: `reserves ${JSON.stringify(resource.Properties?.ReservedConcurrentExecutions)} executions: Lambda requires 100 to stay unreserved, so an account at the default quota of 10 refuses the function (make it a stage parameter, off by default)`,
      doc: DOCS.concurrency,
    }));
}

const XRAY_ACTIONS = ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'];
/** AWS managed policies that allow both X-Ray write actions on `*`. */
const XRAY_MANAGED_POLICIES = ['AWSXRayDaemonWriteAccess', 'AWSXrayWriteOnlyAccess'];

interface Statement {
  Effect?: unknown;
  Action?: unknown;
  NotAction?: unknown;
  Resource?: unknown;
  NotResource?: unknown;
  Condition?: unknown;
}

/** Inline statements of a role: its Policies, and AWS::IAM::Policy / RolePolicy resources attached to it. */
function roleStatements(template: CfnTemplate, roleId: string): Statement[] {
  const role = template.Resources[roleId];
  const statements: Statement[] = [];
  const fromDocument = (document: unknown) => {
    if (!isObject(document)) return;
    const list = document.Statement;
    for (const statement of Array.isArray(list) ? list : [list])
      if (isObject(statement)) statements.push(statement);
  };
  for (const policy of (role?.Properties?.Policies as unknown[] | undefined) ?? []) {
    if (isObject(policy)) fromDocument(policy.PolicyDocument);
  }
  for (const [, resource] of Object.entries(template.Resources)) {
    const properties = resource.Properties ?? {};
    const attachedTo =
      resource.Type === 'AWS::IAM::Policy' || resource.Type === 'AWS::IAM::ManagedPolicy'
        ? ((properties.Roles as unknown[] | undefined) ?? [])
        : resource.Type === 'AWS::IAM::RolePolicy'
          ? [properties.RoleName]
          : [];
    if (attachedTo.some((reference) => refTarget(reference) === roleId))
      fromDocument(properties.PolicyDocument);
  }
  return statements;
}

function roleManagedPolicies(template: CfnTemplate, roleId: string): string[] {
  const arns = (template.Resources[roleId]?.Properties?.ManagedPolicyArns as unknown[] | undefined) ?? [];
  return arns.map(staticText).filter((arn): arn is string => arn !== undefined);
}

function list(value: unknown): unknown[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

/** IAM action and resource matching: `*` and `?` wildcards; actions case-insensitive. */
function wildcardMatch(pattern: string, value: string, caseInsensitive: boolean): boolean {
  const source = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${source}$`, caseInsensitive ? 'i' : '').test(value);
}

function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Whether unconditional `Allow` statements grant `action` on `resource` (a template value: `*`, a
 * literal ARN or an intrinsic) and no `Deny` statement takes it away. Statements with NotAction,
 * NotResource or a Condition do not count as granting (stricter than IAM).
 */
function allows(statements: Statement[], action: string, resource: unknown): boolean {
  const matchesAction = (statement: Statement) =>
    list(statement.Action).some(
      (pattern) => typeof pattern === 'string' && wildcardMatch(pattern, action, true),
    );
  const matchesResource = (statement: Statement) =>
    list(statement.Resource).some((pattern) => {
      if (pattern === '*' || sameValue(pattern, resource)) return true;
      const text = staticText(pattern);
      const wanted = staticText(resource);
      return text !== undefined && wanted !== undefined && wildcardMatch(text, wanted, false);
    });
  const denied = statements.some(
    (statement) => statement.Effect === 'Deny' && matchesAction(statement) && matchesResource(statement),
  );
  const allowed = statements.some(
    (statement) =>
      statement.Effect === 'Allow' &&
      statement.NotAction === undefined &&
      statement.NotResource === undefined &&
      statement.Condition === undefined &&
      matchesAction(statement) &&
      matchesResource(statement),
  );
  return allowed && !denied;
}

function executionRole(template: CfnTemplate, fn: CfnResource): string | undefined {
  const id = getAttTarget(fn.Properties?.Role)?.[0];
  return id && template.Resources[id]?.Type === 'AWS::IAM::Role' ? id : undefined;
}

/**
 * `provider.tracing.lambda: true` renders `TracingConfig: {Mode: Active}` on every function; Lambda's
 * CreateFunction then refuses a role that cannot call xray:PutTraceSegments and
 * xray:PutTelemetryRecords ("The provided execution role does not have permissions to call
 * PutTraceSegments on XRAY") and the stack rolls back.
 * @see https://docs.aws.amazon.com/lambda/latest/dg/services-xray.html
 */
function tracingPermissions(template: CfnTemplate): Finding[] {
  const findings: Finding[] = [];
  for (const [id, fn] of resourcesOfType(template, 'AWS::Lambda::Function')) {
    const tracing = fn.Properties?.TracingConfig;
    if (!isObject(tracing) || tracing.Mode !== 'Active') continue;
    const roleId = executionRole(template, fn);
    if (!roleId) {
      findings.push({
        rule: RULES.tracing,
        resource: id,
        path: 'Properties.Role',
        message:
          'traced (Active) with a role that is not an AWS::IAM::Role of this template, so its X-Ray permissions cannot be checked',
        doc: DOCS.xray,
      });
      continue;
    }
    const managed = roleManagedPolicies(template, roleId).some((arn) =>
      XRAY_MANAGED_POLICIES.some((name) => arn.endsWith(`:iam::aws:policy/${name}`)),
    );
    if (managed) continue;
    const statements = roleStatements(template, roleId);
    const missing = XRAY_ACTIONS.filter((action) => !allows(statements, action, '*'));
    if (missing.length > 0) {
      findings.push({
        rule: RULES.tracing,
        resource: roleId,
        path: 'Properties',
        message: `${id} is traced (TracingConfig.Mode Active) but its role does not allow ${missing.join(' and ')} on * (attach AWSXRayDaemonWriteAccess): Lambda refuses CreateFunction and the stack rolls back`,
        doc: DOCS.xray,
      });
    }
  }
  return findings;
}

/**
 * What a user needs after a deploy is in Outputs, each value referring to the resource itself:
 * tables, buckets, queues (URL), IoT policies and provisioning templates (name), and the role IoT
 * assumes for provisioning (ARN, for JITP templates). Export names must be unique.
 * @see https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/outputs-section-structure.html
 */
function requiredOutputs(template: CfnTemplate): Finding[] {
  const findings: Finding[] = [];
  const outputs = Object.entries(template.Outputs ?? {});
  const referenced = new Set(outputs.map(([, output]) => referencedResource(output.Value)).filter(Boolean));
  const wanted = new Map<string, string>();
  for (const [id, resource] of Object.entries(template.Resources)) {
    if (resource.Type === 'AWS::DynamoDB::Table') wanted.set(id, 'the table name');
    if (resource.Type === 'AWS::S3::Bucket') wanted.set(id, 'the bucket name');
    if (resource.Type === 'AWS::SQS::Queue') wanted.set(id, 'the queue URL');
    if (resource.Type === 'AWS::IoT::Policy')
      wanted.set(id, 'the policy name (device certificates, JITP templates)');
    if (resource.Type === 'AWS::IoT::ProvisioningTemplate') {
      wanted.set(id, 'the provisioning template name (claim certificates)');
      const role = referencedResource(resource.Properties?.ProvisioningRoleArn);
      if (role) wanted.set(role, 'the provisioning role ARN (JITP templates registered with a CA)');
    }
  }
  for (const [id, what] of wanted) {
    if (referenced.has(id)) continue;
    findings.push({
      rule: RULES.outputs,
      resource: 'Outputs',
      path: id,
      message: `no output gives ${what} of ${id} (an output whose Value is Ref / Fn::GetAtt of it)`,
      doc: DOCS.outputs,
    });
  }
  const exports = new Map<string, string>();
  for (const [name, output] of outputs) {
    const exportName = staticText(output.Export?.Name);
    if (exportName === undefined) continue;
    const previous = exports.get(exportName);
    if (previous) {
      findings.push({
        rule: RULES.outputs,
        resource: `Outputs.${name}`,
        path: 'Export.Name',
        message: `export name ${exportName} is already used by ${previous}; export names are unique per account and region`,
        doc: DOCS.outputs,
      });
    }
    exports.set(exportName, name);
  }
  return findings;
}

/** The function an alarm's `FunctionName` dimension names (Ref of the function or its literal name). */
function alarmFunction(template: CfnTemplate, alarm: CfnResource): string | undefined {
  const dimensions = (alarm.Properties?.Dimensions as unknown[] | undefined) ?? [];
  const dimension = dimensions.find((item) => isObject(item) && item.Name === 'FunctionName') as
    | { Value?: unknown }
    | undefined;
  if (!dimension) return undefined;
  const byRef = refTarget(dimension.Value);
  if (byRef) return byRef;
  return resourcesOfType(template, 'AWS::Lambda::Function').find(
    ([, fn]) =>
      fn.Properties?.FunctionName !== undefined && sameValue(fn.Properties.FunctionName, dimension.Value),
  )?.[0];
}

/**
 * Every function has a CloudWatch alarm on its AWS/Lambda `Errors` and on its `Throttles`
 * (`FunctionName` dimension), so a new function cannot ship unwatched.
 * @see https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html
 */
function functionAlarms(template: CfnTemplate): Finding[] {
  const covered = new Set<string>();
  for (const [, alarm] of resourcesOfType(template, 'AWS::CloudWatch::Alarm')) {
    const properties = alarm.Properties ?? {};
    if (properties.Namespace !== 'AWS/Lambda' || typeof properties.MetricName !== 'string') continue;
    const fn = alarmFunction(template, alarm);
    if (fn) covered.add(`${fn}/${properties.MetricName}`);
  }
  const findings: Finding[] = [];
  for (const [id] of resourcesOfType(template, 'AWS::Lambda::Function')) {
    for (const metric of ['Errors', 'Throttles']) {
      if (covered.has(`${id}/${metric}`)) continue;
      findings.push({
        rule: RULES.functionAlarms,
        resource: id,
        path: '',
        message: `no CloudWatch alarm on AWS/Lambda ${metric} with FunctionName = this function`,
        doc: DOCS.lambdaMetrics,
      });
    }
  }
  return findings;
}

/**
 * Asynchronous invocations (schedules, event buses) that fail after their retries are kept: every
 * function an EventBridge rule targets, and every EventInvokeConfig, has an on-failure destination,
 * and when that is an SQS queue the function's execution role may sqs:SendMessage to it (Lambda
 * sends destination records with the execution role).
 * @see https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html
 */
function asyncOnFailure(template: CfnTemplate): Finding[] {
  const findings: Finding[] = [];
  const configs = resourcesOfType(template, 'AWS::Lambda::EventInvokeConfig');
  const configured = new Map<string, [string, CfnResource]>();
  for (const [id, config] of configs) {
    const fn = referencedResource(config.Properties?.FunctionName);
    if (fn) configured.set(fn, [id, config]);
  }
  const asyncTargets = new Set<string>();
  for (const [, rule] of resourcesOfType(template, 'AWS::Events::Rule')) {
    for (const target of (rule.Properties?.Targets as unknown[] | undefined) ?? []) {
      const fn = isObject(target) ? functionOf(template, target.Arn) : undefined;
      if (fn) asyncTargets.add(fn[0]);
    }
  }
  for (const fn of asyncTargets) {
    if (!configured.has(fn)) {
      findings.push({
        rule: RULES.asyncFailure,
        resource: fn,
        path: '',
        message:
          'invoked asynchronously by an EventBridge rule but has no EventInvokeConfig with an on-failure destination: a run that fails after its retries is dropped',
        doc: DOCS.asyncDestinations,
      });
    }
  }
  for (const [id, config] of configs) {
    const destinationConfig = config.Properties?.DestinationConfig;
    const onFailure =
      isObject(destinationConfig) && isObject(destinationConfig.OnFailure)
        ? destinationConfig.OnFailure
        : undefined;
    if (!onFailure?.Destination) {
      findings.push({
        rule: RULES.asyncFailure,
        resource: id,
        path: 'Properties.DestinationConfig.OnFailure',
        message:
          'no on-failure destination: an asynchronous invocation that fails after its retries is dropped',
        doc: DOCS.asyncDestinations,
      });
      continue;
    }
    const queueId = getAttTarget(onFailure.Destination)?.[0];
    const fn = functionOf(template, config.Properties?.FunctionName);
    if (!queueId || template.Resources[queueId]?.Type !== 'AWS::SQS::Queue' || !fn) continue;
    const roleId = executionRole(template, fn[1]);
    if (!roleId || !allows(roleStatements(template, roleId), 'sqs:SendMessage', onFailure.Destination)) {
      findings.push({
        rule: RULES.asyncFailure,
        resource: roleId ?? fn[0],
        path: 'Properties.Policies',
        message: `${fn[0]}'s execution role does not allow sqs:SendMessage on its on-failure destination ${queueId}: Lambda refuses the EventInvokeConfig ${id}`,
        doc: DOCS.asyncDestinations,
      });
    }
  }
  return findings;
}

/**
 * CloudFormation cannot delete an IoT policy still attached to certificates (DeletePolicy:
 * DeleteConflictException), and device certificates stay attached to the device policy: every
 * AWS::IoT::Policy is retained on stack delete and on replacement.
 * @see https://docs.aws.amazon.com/iot/latest/apireference/API_DeletePolicy.html
 */
function iotPolicyRetained(template: CfnTemplate): Finding[] {
  const findings: Finding[] = [];
  for (const [id, policy] of resourcesOfType(template, 'AWS::IoT::Policy')) {
    for (const attribute of ['DeletionPolicy', 'UpdateReplacePolicy'] as const) {
      if (policy[attribute] === 'Retain') continue;
      findings.push({
        rule: RULES.iotPolicyRetain,
        resource: id,
        path: attribute,
        message: `${attribute} must be Retain: CloudFormation cannot delete an IoT policy still attached to certificates (DeleteConflictException), so the stack delete would fail`,
        doc: DOCS.iotDeletePolicy,
      });
    }
  }
  return findings;
}
