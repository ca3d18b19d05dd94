/**
 * The local stack's view of serverless.yml: queues, topic rules, functions and their event sources,
 * with Serverless variables (`${self:…}`, `${sls:stage}`, `${opt:…}`, `${param:…}`, `${aws:…}`,
 * `${env:…}`, and `${file(…):…}` in {@link declaredIotResources}) and CloudFormation intrinsics
 * (`Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Join`) resolved to local values. The deployed file is the
 * routing table: nothing here is configured twice.
 */

import { createRequire } from 'node:module';
import { resolve as resolvePath } from 'node:path';
import type { QueueDeclaration } from '../shared/dlq/dead-letters';
import { managedPolicyDocument } from './iam/managed-policies';
import type { NamedPolicy, PolicyDocument, PolicyStatement } from './iam/policy';
import { type IotSqlStatement, parseIotSql } from './iot-sql';
import type { CfnResource, ServerlessConfig, ServerlessFunction } from './serverless-config';

export const LOCAL_ACCOUNT_ID = '123456789012';

export interface ModelOptions {
  stage?: string;
  region?: string;
  accountId?: string;
  /** `${param:x}` values. */
  params?: Record<string, string>;
  /** Overrides the provisioning table's name. */
  tableName?: string;
  /** Local SQS endpoint: `!Ref Queue` becomes `<endpoint>/<accountId>/<name>`. */
  sqsEndpoint?: string;
}

export interface QueueSpec {
  logicalId: string;
  name: string;
  arn: string;
  visibilityTimeoutSeconds: number;
  /** CreateQueue attributes (VisibilityTimeout, RedrivePolicy, …) as strings. */
  attributes: Record<string, string>;
  redrive?: { deadLetterQueue: string; maxReceiveCount: number };
}

export type ActionSpec =
  | {
      type: 'sqs';
      queue: string;
      useBase64: boolean /** The role the rule sends with (RoleArn). */;
      role?: string;
    }
  | { type: 'lambda'; functionName: string }
  | { type: 'unsupported'; actionType: string };

export interface RuleSpec {
  logicalId: string;
  ruleName: string;
  statement: IotSqlStatement;
  disabled: boolean;
  actions: ActionSpec[];
  errorAction?: ActionSpec;
}

export interface SqsMapping {
  queue: string;
  batchSize: number;
  reportBatchItemFailures: boolean;
  maximumConcurrency: number;
  enabled: boolean;
}

export interface ScheduleSpec {
  expression: string;
  enabled: boolean;
  input?: unknown;
  ruleName: string;
}

export interface FunctionSpec {
  name: string;
  /** `functions/x/handler.handler` as written in serverless.yml. */
  handler: string;
  /** The deployed function name (`<service>-<stage>-<name>` unless `name:` is set). */
  deployedName: string;
  arn: string;
  timeoutSeconds: number;
  memorySize: number;
  /** provider.environment + function environment, resolved. */
  environment: Record<string, string>;
  sqs: SqsMapping[];
  schedules: ScheduleSpec[];
  /** `httpApi` events: the routes of the HTTP API that invoke this function. */
  httpApi: HttpRouteSpec[];
  /** The execution role, with its policies resolved as `serverless package` renders them. */
  role: RoleSpec;
}

/** One `httpApi` event of a function (payload format 2.0). */
export interface HttpRouteSpec {
  method: string;
  path: string;
  /** `provider.httpApi.authorizers` name. */
  authorizer?: string;
}

/** A JWT authorizer of `provider.httpApi.authorizers`, with its intrinsics resolved. */
export interface JwtAuthorizerSpec {
  name: string;
  issuer: string;
  audience: string[];
  identitySource: string;
}

/** An IAM role of the template, with intrinsics resolved to local values. */
export interface RoleSpec {
  /** The role's logical id (`IamRoleLambdaExecution` for the Framework's default role). */
  logicalId: string;
  roleName: string;
  arn: string;
  /** Inline policies (by PolicyName) and managed policies (by ARN), evaluated together. */
  policies: NamedPolicy[];
}

export interface StackModel {
  service: string;
  stage: string;
  region: string;
  accountId: string;
  tableName: string;
  queues: QueueSpec[];
  rules: RuleSpec[];
  functions: FunctionSpec[];
  /** `Custom::FleetgateAccount` resources: what the deploy prepares in the account (quarantine group, events). */
  accountPreparations: AccountPreparationSpec[];
  /** `custom.devicePolicyName`: the one shared device policy JITR and fleet provisioning attach. */
  devicePolicyName?: string;
  /** `custom.claimPolicyName`: the policy claim certificates carry (fleet provisioning by claim). */
  claimPolicyName?: string;
  /** `AWS::IoT::ProvisioningTemplate` resources (fleet provisioning by claim). */
  provisioningTemplates: ProvisioningTemplateSpec[];
  /** `AWS::S3::Bucket` names (the local S3 creates them). */
  buckets: string[];
  /** The logical ids of `buckets`, in the same order. */
  bucketLogicalIds: string[];
  /** `AWS::Lambda::Permission` resources: who may invoke which function (resource-based policy). */
  lambdaPermissions: LambdaPermissionSpec[];
  /** Every `AWS::IAM::Role` of the file, by logical id (service roles: topic rules, provisioning). */
  roles: Record<string, RoleSpec>;
  /** `provider.httpApi.authorizers` of type jwt, by name. */
  httpApiAuthorizers: Record<string, JwtAuthorizerSpec>;
}

export interface LambdaPermissionSpec {
  logicalId: string;
  /** The function's serverless.yml name (or the ARN/name as written when it is not one of this file's). */
  functionName: string;
  action: string;
  principal: string;
  sourceArn?: string;
  sourceAccount?: string;
}

export interface ProvisioningTemplateSpec {
  logicalId: string;
  templateName: string;
  /** `FLEET_PROVISIONING` (the default) or `JITP`. */
  templateType: string;
  /** The pre-provisioning hook's function (serverless.yml name), when it is one of this file's. */
  preProvisioningHookFunction?: string;
}

export interface AccountPreparationSpec {
  logicalId: string;
  thingGroupName: string;
  policyName: string;
  eventTypes: string[];
}

/** Thrown when serverless.yml uses a construct the local stack cannot resolve. */
export class StackModelError extends Error {
  override name = 'StackModelError';
}

/**
 * Every resource type the local stack knows, and what it does with it. A type that is not here
 * fails the model (and so `fleetgate local up`) with the resource's logical id and type: nothing
 * serverless.yml declares is skipped without saying so.
 */
export const LOCAL_RESOURCE_TYPES: Readonly<Record<string, string>> = {
  'AWS::DynamoDB::Table': 'created in DynamoDB Local from its definition',
  'AWS::SQS::Queue': 'created in local SQS with its attributes and redrive policy',
  'AWS::SQS::QueuePolicy': 'not enforced locally (local SQS has no resource policies)',
  'AWS::IoT::TopicRule': 'run by the local rules engine',
  'AWS::IoT::Policy': 'created in the IoT emulator (CreatePolicy)',
  'AWS::IoT::ProvisioningTemplate': 'created in the IoT emulator (CreateProvisioningTemplate)',
  'AWS::IoT::ThingGroup': 'created in the IoT emulator (CreateThingGroup)',
  'AWS::IoT::CACertificate': 'registered in the IoT emulator (RegisterCACertificate)',
  'Custom::FleetgateAccount':
    'prepared in the IoT emulator (quarantine group and policy, event configurations)',
  'AWS::IAM::Role': 'the role of a function or of IoT; no local IAM service',
  'AWS::IAM::Policy': 'part of a role; no local IAM service',
  'AWS::IAM::ManagedPolicy': 'part of a role; no local IAM service',
  'AWS::Lambda::Permission': 'not needed locally (functions are invoked in-process)',
  'AWS::Lambda::EventInvokeConfig': 'not emulated (asynchronous invocations run once)',
  'AWS::S3::Bucket': 'a folder (REPORT_DESTINATION is file://.fleetgate/reports)',
  'AWS::S3::BucketPolicy': 'not enforced locally (no local S3)',
  'AWS::CloudWatch::Alarm': 'not emulated (no local CloudWatch)',
  'AWS::SNS::Topic': 'not emulated (no local SNS; alarm actions only)',
  'AWS::SNS::TopicPolicy': 'not emulated (no local SNS)',
  'AWS::Logs::LogGroup': 'not emulated (handler logs go to the local stack output)',
  'AWS::Cognito::UserPool':
    "played by the local HTTP API's token issuer (`fleetgate installer token`): it signs as the JWT authorizer's issuer",
  'AWS::Cognito::UserPoolClient': "its id is the JWT authorizer's audience the local token issuer signs for",
};

/** The IoT resources serverless.yml declares, resolved, as the local stack creates them. */
export type IotResourceSpec =
  | {
      type: 'AWS::IoT::Policy';
      logicalId: string;
      policyName: string;
      /** The JSON document as CloudFormation sends it to CreatePolicy. */
      policyDocument: string;
    }
  | {
      type: 'AWS::IoT::ProvisioningTemplate';
      logicalId: string;
      templateName: string;
      templateBody: string;
      provisioningRoleArn: string;
      enabled: boolean;
      templateType: string;
      description?: string;
      preProvisioningHook?: { targetArn: string; payloadVersion: string };
    }
  | {
      type: 'AWS::IoT::ThingGroup';
      logicalId: string;
      thingGroupName: string;
      parentGroupName?: string;
      description?: string;
      attributes?: Record<string, string>;
    }
  | {
      type: 'AWS::IoT::CACertificate';
      logicalId: string;
      caCertificatePem: string;
      verificationCertificatePem?: string;
      status: 'ACTIVE' | 'INACTIVE';
      autoRegistration: boolean;
      certificateMode?: string;
      registrationConfig?: { templateBody?: string; roleArn?: string; templateName?: string };
      /** `Tags` (e.g. fleetgate:trusted=true, which JITR trusts), as RegisterCACertificate takes them. */
      tags?: Array<{ Key: string; Value: string }>;
    };

/**
 * Resolves CloudFormation intrinsics (`Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Join`) in `value` with
 * the local values of a serverless.yml — e.g. a resource of a packaged template, to compare what
 * `serverless package` renders with what the local stack creates.
 */
export function resolveCloudFormation(
  config: ServerlessConfig,
  options: ModelOptions,
  value: unknown,
): unknown {
  return new Resolver(config, options).resolve(value);
}

/** The names a device-side tool needs (`fleetgate device`, the simulator), from serverless.yml. */
export interface DeclaredIotNames {
  devicePolicyName?: string;
  claimPolicyName?: string;
  /** The `FLEET_PROVISIONING` template of provisioning by claim (with the pre-provisioning hook). */
  fleetTemplateName?: string;
  /** The template of provisioning by trusted user (`INSTALLER_TEMPLATE_NAME`), when declared. */
  installerTemplateName?: string;
}

/**
 * What the dead-letter tools are built from: the queues as they declare them (each with the DLQ its
 * RedrivePolicy names), and the queues IoT rules send their errors to.
 */
export function deadLetterDeclarations(model: Pick<StackModel, 'queues' | 'rules'>): {
  declarations: QueueDeclaration[];
  ruleErrors: string[];
} {
  return {
    declarations: model.queues.map((queue) => ({
      logicalId: queue.logicalId,
      name: queue.name,
      ...(queue.redrive ? { deadLetterQueue: queue.redrive.deadLetterQueue } : {}),
    })),
    ruleErrors: model.rules.flatMap((rule) =>
      rule.errorAction?.type === 'sqs' ? [rule.errorAction.queue] : [],
    ),
  };
}

export function declaredIotNames(model: StackModel): DeclaredIotNames {
  // The claim template is the FLEET_PROVISIONING template no function issues temporary claims for.
  const installer = model.functions
    .map((fn) => fn.environment.INSTALLER_TEMPLATE_NAME)
    .find((name): name is string => typeof name === 'string' && name !== '');
  const fleet = model.provisioningTemplates.find(
    (template) => template.templateType === 'FLEET_PROVISIONING' && template.templateName !== installer,
  );
  return {
    ...(model.devicePolicyName !== undefined ? { devicePolicyName: model.devicePolicyName } : {}),
    ...(model.claimPolicyName !== undefined ? { claimPolicyName: model.claimPolicyName } : {}),
    ...(fleet ? { fleetTemplateName: fleet.templateName } : {}),
    ...(installer ? { installerTemplateName: installer } : {}),
  };
}

/** Every resource the local stack creates in the IoT emulator, in creation order. */
export const IOT_RESOURCE_TYPES = [
  'AWS::IoT::ThingGroup',
  'AWS::IoT::Policy',
  'AWS::IoT::ProvisioningTemplate',
  'AWS::IoT::CACertificate',
] as const;

/**
 * The IoT resources of a parsed serverless.yml, resolved as a deploy would: `${file(…):…}` through
 * the same module `serverless package` calls (iot/render.cjs), then CloudFormation's intrinsics.
 * @param options.baseDir the folder `${file(…)}` paths are relative to (serverless.yml's)
 * @throws StackModelError naming the resource when a property cannot be resolved or is unsupported.
 */
export async function declaredIotResources(
  config: ServerlessConfig,
  options: ModelOptions & { baseDir: string },
): Promise<IotResourceSpec[]> {
  return new Resolver(config, options).iotResources(options.baseDir);
}

/** The Serverless Framework's logical id of a function's AWS::Lambda::Function resource. */
export function functionLogicalId(name: string): string {
  const normalized = name.replaceAll('-', 'Dash').replaceAll('_', 'Underscore');
  return `${normalized.charAt(0).toUpperCase()}${normalized.slice(1)}LambdaFunction`;
}

/** Builds the local model of a parsed serverless.yml. */
export function buildStackModel(config: ServerlessConfig, options: ModelOptions = {}): StackModel {
  const resolver = new Resolver(config, options);
  return resolver.build();
}

class Resolver {
  private readonly resources: Record<string, CfnResource>;
  readonly stage: string;
  readonly region: string;
  readonly accountId: string;
  private queueNames = new Map<string, string>();
  private functionNames = new Map<string, string>();
  private tableName = '';
  private configuredTableName = '';

  private readonly service: string;

  constructor(
    private readonly config: ServerlessConfig,
    private readonly options: ModelOptions,
  ) {
    this.resources = config.resources?.Resources ?? {};
    this.stage = options.stage ?? 'local';
    this.region = options.region ?? 'us-east-1';
    this.accountId = options.accountId ?? LOCAL_ACCOUNT_ID;
    const service = String(this.variables(this.config.service));
    this.service = service;
    const table = this.resources.ProvisioningTable?.Properties?.TableName;
    this.configuredTableName = table ? String(this.variables(table)) : `${service}-${this.stage}`;
    this.tableName = this.options.tableName ?? this.configuredTableName;
    for (const [logicalId, resource] of Object.entries(this.resources)) {
      if (resource.Type !== 'AWS::SQS::Queue') continue;
      const name = resource.Properties?.QueueName;
      this.queueNames.set(logicalId, name ? String(this.variables(name)) : logicalId);
    }
    for (const [name, fn] of Object.entries(this.config.functions ?? {})) {
      const deployed = fn.name ? String(this.variables(fn.name)) : `${service}-${this.stage}-${name}`;
      this.functionNames.set(functionLogicalId(name), name);
      this.functionNames.set(`fn:${name}`, deployed);
    }
  }

  build(): StackModel {
    const service = this.service;
    for (const [logicalId, resource] of Object.entries(this.resources)) {
      if (!(resource.Type in LOCAL_RESOURCE_TYPES)) {
        throw new StackModelError(
          `resources.Resources.${logicalId}: ${resource.Type} is not a resource type the local stack knows; ` +
            'add it to LOCAL_RESOURCE_TYPES (local/stack-model.ts) with what the local stack does with it',
        );
      }
    }
    const functions = Object.entries(this.config.functions ?? {});
    const queues = [...this.queueNames].map(([logicalId, name]) => this.queue(logicalId, name));
    const rules = Object.entries(this.resources)
      .filter(([, resource]) => resource.Type === 'AWS::IoT::TopicRule')
      .map(([logicalId, resource]) => this.rule(logicalId, resource));
    return {
      service,
      stage: this.stage,
      region: this.region,
      accountId: this.accountId,
      tableName: this.tableName,
      queues,
      rules,
      functions: functions.map(([name, fn]) => this.function(name, fn)),
      accountPreparations: Object.entries(this.resources)
        .filter(([, resource]) => resource.Type === 'Custom::FleetgateAccount')
        .map(([logicalId, resource]) => {
          const properties = resource.Properties ?? {};
          return {
            logicalId,
            thingGroupName: String(this.variables(properties.ThingGroupName)),
            policyName: String(this.variables(properties.PolicyName)),
            eventTypes: Array.isArray(properties.EventTypes) ? properties.EventTypes.map(String) : [],
          };
        }),
      ...(this.config.custom?.devicePolicyName !== undefined
        ? { devicePolicyName: String(this.variables(this.config.custom.devicePolicyName)) }
        : {}),
      ...(this.config.custom?.claimPolicyName !== undefined
        ? { claimPolicyName: String(this.variables(this.config.custom.claimPolicyName)) }
        : {}),
      provisioningTemplates: Object.entries(this.resources)
        .filter(([, resource]) => resource.Type === 'AWS::IoT::ProvisioningTemplate')
        .map(([logicalId, resource]) => this.provisioningTemplate(logicalId, resource)),
      buckets: Object.entries(this.resources)
        .filter(([, resource]) => resource.Type === 'AWS::S3::Bucket')
        .map(([logicalId]) => this.bucketName(logicalId)),
      roles: Object.fromEntries(
        Object.entries(this.resources)
          .filter(([, resource]) => resource.Type === 'AWS::IAM::Role')
          .map(([logicalId]) => [logicalId, this.roleResource(logicalId)]),
      ),
      lambdaPermissions: Object.entries(this.resources)
        .filter(([, resource]) => resource.Type === 'AWS::Lambda::Permission')
        .map(([logicalId, resource]) => this.lambdaPermission(logicalId, resource)),
      bucketLogicalIds: Object.entries(this.resources)
        .filter(([, resource]) => resource.Type === 'AWS::S3::Bucket')
        .map(([logicalId]) => logicalId),
      httpApiAuthorizers: this.httpApiAuthorizers(),
    };
  }

  private httpApiAuthorizers(): Record<string, JwtAuthorizerSpec> {
    const httpApi = this.config.provider.httpApi as { authorizers?: Record<string, unknown> } | undefined;
    const result: Record<string, JwtAuthorizerSpec> = {};
    for (const [name, raw] of Object.entries(httpApi?.authorizers ?? {})) {
      const spec = raw as Record<string, unknown>;
      if (spec.type !== 'jwt') {
        throw new StackModelError(
          `provider.httpApi.authorizers.${name}: only JWT authorizers are emulated (type ${String(spec.type)})`,
        );
      }
      const audience = this.resolve(spec.audience);
      result[name] = {
        name,
        issuer: String(this.resolve(spec.issuerUrl)),
        audience: (Array.isArray(audience) ? audience : [audience]).map(String).filter((a) => a !== ''),
        identitySource: String(this.resolve(spec.identitySource ?? '$request.header.Authorization')),
      };
    }
    return result;
  }

  private lambdaPermission(logicalId: string, resource: CfnResource): LambdaPermissionSpec {
    const properties = resource.Properties ?? {};
    const target = properties.FunctionName;
    const byLogical = isGetAtt(target) ? this.functionNames.get(String(target['Fn::GetAtt'][0])) : undefined;
    const written = String(this.resolve(target));
    const functionName = byLogical ?? this.functionByDeployedName(written.split(':').pop()) ?? written;
    return {
      logicalId,
      functionName,
      action: String(this.resolve(properties.Action)),
      principal: String(this.resolve(properties.Principal)),
      ...(properties.SourceArn !== undefined
        ? { sourceArn: String(this.resolve(properties.SourceArn)) }
        : {}),
      ...(properties.SourceAccount !== undefined
        ? { sourceAccount: String(this.resolve(properties.SourceAccount)) }
        : {}),
    };
  }

  // Only the name and the hook are resolved: TemplateBody is rendered at package time (${file(…)}).
  private provisioningTemplate(logicalId: string, resource: CfnResource): ProvisioningTemplateSpec {
    const properties = resource.Properties ?? {};
    const hook = (properties.PreProvisioningHook ?? {}) as { TargetArn?: unknown };
    const target = hook.TargetArn as { 'Fn::GetAtt'?: string[] } | string | undefined;
    const logical = typeof target === 'object' ? target?.['Fn::GetAtt']?.[0] : undefined;
    const byArn = typeof target === 'string' ? String(this.variables(target)).split(':').pop() : undefined;
    const fn = (logical ? this.functionNames.get(logical) : undefined) ?? this.functionByDeployedName(byArn);
    return {
      logicalId,
      templateName: this.templateName(logicalId, properties),
      templateType: properties.TemplateType
        ? String(this.variables(properties.TemplateType))
        : 'FLEET_PROVISIONING',
      ...(fn ? { preProvisioningHookFunction: fn } : {}),
    };
  }

  private templateName(logicalId: string, properties: Record<string, unknown>): string {
    return properties.TemplateName ? String(this.variables(properties.TemplateName)) : logicalId;
  }

  async iotResources(baseDir: string): Promise<IotResourceSpec[]> {
    const specs: IotResourceSpec[] = [];
    for (const type of IOT_RESOURCE_TYPES) {
      for (const [logicalId, resource] of Object.entries(this.resources)) {
        if (resource.Type !== type) continue;
        let properties: Record<string, unknown>;
        try {
          properties = this.resolve(await this.expandFiles(resource.Properties ?? {}, baseDir)) as Record<
            string,
            unknown
          >;
        } catch (error) {
          const reason = error instanceof Error ? error.message : String(error);
          throw new StackModelError(`resources.Resources.${logicalId} (${type}): ${reason}`);
        }
        specs.push(this.iotResource(type, logicalId, properties));
      }
    }
    return specs;
  }

  private iotResource(
    type: (typeof IOT_RESOURCE_TYPES)[number],
    logicalId: string,
    p: Record<string, unknown>,
  ): IotResourceSpec {
    const where = `resources.Resources.${logicalId} (${type})`;
    const text = (key: string, required = true): string | undefined => {
      const value = p[key];
      if (value === undefined || value === null) {
        if (required) throw new StackModelError(`${where}: ${key} is required`);
        return undefined;
      }
      if (typeof value !== 'string') throw new StackModelError(`${where}: ${key} must be a string`);
      return value;
    };
    const json = (key: string): string => {
      const value = p[key];
      if (typeof value === 'string') return value;
      if (typeof value === 'object' && value !== null) return JSON.stringify(value);
      throw new StackModelError(`${where}: ${key} is required`);
    };
    switch (type) {
      case 'AWS::IoT::Policy':
        return {
          type,
          logicalId,
          policyName: text('PolicyName', false) ?? this.generatedName(logicalId),
          policyDocument: json('PolicyDocument'),
        };
      case 'AWS::IoT::ProvisioningTemplate': {
        const hook = p.PreProvisioningHook as { TargetArn?: unknown; PayloadVersion?: unknown } | undefined;
        if (hook !== undefined && typeof hook.TargetArn !== 'string') {
          throw new StackModelError(`${where}: PreProvisioningHook.TargetArn must resolve to an ARN`);
        }
        const description = text('Description', false);
        return {
          type,
          logicalId,
          templateName: text('TemplateName', false) ?? logicalId,
          templateBody: json('TemplateBody'),
          provisioningRoleArn: text('ProvisioningRoleArn') as string,
          enabled: p.Enabled === true || p.Enabled === 'true',
          templateType: text('TemplateType', false) ?? 'FLEET_PROVISIONING',
          ...(description !== undefined ? { description } : {}),
          ...(hook
            ? {
                preProvisioningHook: {
                  targetArn: String(hook.TargetArn),
                  payloadVersion:
                    typeof hook.PayloadVersion === 'string' ? hook.PayloadVersion : '2020-04-01',
                },
              }
            : {}),
        };
      }
      case 'AWS::IoT::ThingGroup': {
        if (p.QueryString !== undefined) {
          throw new StackModelError(`${where}: dynamic thing groups (QueryString) are not emulated`);
        }
        const properties = (p.ThingGroupProperties ?? {}) as {
          ThingGroupDescription?: unknown;
          AttributePayload?: { Attributes?: Record<string, unknown> };
        };
        const attributes = properties.AttributePayload?.Attributes;
        const parentGroupName = text('ParentGroupName', false);
        return {
          type,
          logicalId,
          thingGroupName: text('ThingGroupName', false) ?? this.generatedName(logicalId),
          ...(parentGroupName !== undefined ? { parentGroupName } : {}),
          ...(typeof properties.ThingGroupDescription === 'string'
            ? { description: properties.ThingGroupDescription }
            : {}),
          ...(attributes
            ? { attributes: Object.fromEntries(Object.entries(attributes).map(([k, v]) => [k, String(v)])) }
            : {}),
        };
      }
      case 'AWS::IoT::CACertificate': {
        const status = text('Status');
        if (status !== 'ACTIVE' && status !== 'INACTIVE') {
          throw new StackModelError(`${where}: Status must be ACTIVE or INACTIVE`);
        }
        const config = p.RegistrationConfig as
          | { TemplateBody?: unknown; RoleArn?: unknown; TemplateName?: unknown }
          | undefined;
        const verification = text('VerificationCertificatePem', false);
        const mode = text('CertificateMode', false);
        const tags = p.Tags as Array<{ Key?: unknown; Value?: unknown }> | undefined;
        if (tags !== undefined && !Array.isArray(tags))
          throw new StackModelError(`${where}: Tags must be a list`);
        return {
          type,
          logicalId,
          caCertificatePem: text('CACertificatePem') as string,
          ...(verification !== undefined ? { verificationCertificatePem: verification } : {}),
          status,
          autoRegistration: p.AutoRegistrationStatus === 'ENABLE',
          ...(mode !== undefined ? { certificateMode: mode } : {}),
          ...(tags
            ? { tags: tags.map((tag) => ({ Key: String(tag.Key), Value: String(tag.Value ?? '') })) }
            : {}),
          ...(config
            ? {
                registrationConfig: {
                  ...(typeof config.TemplateBody === 'string' ? { templateBody: config.TemplateBody } : {}),
                  ...(typeof config.RoleArn === 'string' ? { roleArn: config.RoleArn } : {}),
                  ...(typeof config.TemplateName === 'string' ? { templateName: config.TemplateName } : {}),
                },
              }
            : {}),
        };
      }
    }
  }

  /**
   * Replaces every `${file(path):export}` value with what Serverless would put there: the export of
   * the module (a function is called with `{options, resolveVariable}` and awaited). The result is
   * left unresolved: CloudFormation's intrinsics in it are resolved afterwards, once.
   */
  private async expandFiles(value: unknown, baseDir: string): Promise<unknown> {
    if (typeof value === 'string') {
      const file = /^\$\{file\(([^)]+)\):([\w.]+)\}$/.exec(value.trim());
      if (file) return this.fileVariable(resolvePath(baseDir, String(file[1]).trim()), String(file[2]));
      if (value.includes('${file(')) {
        throw new StackModelError(`\${file(…)} must be the whole value locally (in ${value})`);
      }
      return value;
    }
    if (Array.isArray(value)) return Promise.all(value.map((item) => this.expandFiles(item, baseDir)));
    if (typeof value !== 'object' || value === null) return value;
    const entries = await Promise.all(
      Object.entries(value).map(async ([key, item]) => [key, await this.expandFiles(item, baseDir)] as const),
    );
    return Object.fromEntries(entries);
  }

  private async fileVariable(file: string, address: string): Promise<unknown> {
    const load = createRequire(import.meta.url);
    let current: unknown = load(file);
    for (const key of address.split('.')) {
      if (typeof current !== 'object' || current === null) current = undefined;
      else current = (current as Record<string, unknown>)[key];
      if (typeof current === 'function') {
        current = await (current as (context: unknown) => unknown)({
          options: { stage: this.stage, region: this.region, ...this.options.params },
          resolveVariable: async (expression: string) => this.variable(expression, 0),
        });
      }
    }
    if (current === undefined) throw new StackModelError(`\${file(${file}):${address}} is undefined`);
    return current;
  }

  private queueUrl(name: string): string {
    const endpoint = this.options.sqsEndpoint ?? `https://sqs.${this.region}.amazonaws.com`;
    return `${endpoint}/${this.accountId}/${name}`;
  }

  private queueArn(name: string): string {
    return `arn:aws:sqs:${this.region}:${this.accountId}:${name}`;
  }

  private queue(logicalId: string, name: string): QueueSpec {
    const props = this.resolve(this.resources[logicalId]?.Properties ?? {}) as Record<string, unknown>;
    const attributes: Record<string, string> = {};
    for (const key of ['VisibilityTimeout', 'MessageRetentionPeriod', 'DelaySeconds', 'MaximumMessageSize']) {
      if (props[key] !== undefined) attributes[key] = String(props[key]);
    }
    // local-aws-sqs takes at most 14 days of retention, like AWS; ReceiveMessageWaitTimeSeconds is
    // left out on purpose: the pollers short-poll.
    const spec: QueueSpec = {
      logicalId,
      name,
      arn: this.queueArn(name),
      visibilityTimeoutSeconds: Number(props.VisibilityTimeout ?? 30),
      attributes,
    };
    const redrive = props.RedrivePolicy as
      | { deadLetterTargetArn?: string; maxReceiveCount?: number }
      | undefined;
    if (redrive?.deadLetterTargetArn) {
      const dlqName = redrive.deadLetterTargetArn.split(':').pop() ?? '';
      const dlq = [...this.queueNames].find(([, queueName]) => queueName === dlqName)?.[0];
      if (!dlq)
        throw new StackModelError(`${logicalId}: RedrivePolicy points at an unknown queue ${dlqName}`);
      const maxReceiveCount = Number(redrive.maxReceiveCount ?? 10);
      spec.redrive = { deadLetterQueue: dlq, maxReceiveCount };
      attributes.RedrivePolicy = JSON.stringify({
        deadLetterTargetArn: redrive.deadLetterTargetArn,
        maxReceiveCount,
      });
    }
    return spec;
  }

  private rule(logicalId: string, resource: CfnResource): RuleSpec {
    const props = (resource.Properties ?? {}) as Record<string, unknown>;
    const payload = (props.TopicRulePayload ?? {}) as Record<string, unknown>;
    const sql = this.resolve(payload.Sql);
    if (typeof sql !== 'string')
      throw new StackModelError(`${logicalId}: TopicRulePayload.Sql must be a string`);
    const ruleName = props.RuleName ? String(this.resolve(props.RuleName)) : logicalId;
    const actions = ((payload.Actions ?? []) as Array<Record<string, unknown>>).map((action) =>
      this.action(logicalId, action),
    );
    const errorAction = payload.ErrorAction
      ? this.action(logicalId, payload.ErrorAction as Record<string, unknown>)
      : undefined;
    return {
      logicalId,
      ruleName,
      statement: parseIotSql(sql),
      disabled: payload.RuleDisabled === true,
      actions,
      ...(errorAction ? { errorAction } : {}),
    };
  }

  private action(ruleId: string, action: Record<string, unknown>): ActionSpec {
    const [type, raw] = Object.entries(action)[0] ?? ['', {}];
    const body = (raw ?? {}) as Record<string, unknown>;
    if (type === 'Sqs') {
      const queue = this.queueByReference(body.QueueUrl);
      if (!queue) throw new StackModelError(`${ruleId}: the Sqs action's QueueUrl must be !Ref of a queue`);
      const role = isGetAtt(body.RoleArn) ? String(body.RoleArn['Fn::GetAtt'][0]) : undefined;
      return { type: 'sqs', queue, useBase64: body.UseBase64 === true, ...(role ? { role } : {}) };
    }
    if (type === 'Lambda') {
      const arn = body.FunctionArn as { 'Fn::GetAtt'?: string[] } | string | undefined;
      const logical = typeof arn === 'object' ? arn['Fn::GetAtt']?.[0] : undefined;
      const name = logical ? this.functionNames.get(logical) : undefined;
      const byArn = typeof arn === 'string' ? arn.split(':').pop() : undefined;
      const functionName = name ?? this.functionByDeployedName(byArn) ?? logical ?? byArn ?? '';
      return { type: 'lambda', functionName };
    }
    return { type: 'unsupported', actionType: type };
  }

  private functionByDeployedName(deployed: string | undefined): string | undefined {
    for (const [key, value] of this.functionNames) {
      if (key.startsWith('fn:') && value === deployed) return key.slice(3);
    }
    return undefined;
  }

  private queueByReference(reference: unknown): string | undefined {
    if (typeof reference === 'object' && reference !== null && 'Ref' in reference) {
      const id = String((reference as { Ref: unknown }).Ref);
      return this.queueNames.has(id) ? id : undefined;
    }
    if (typeof reference === 'string') {
      const name = reference.split('/').pop();
      return [...this.queueNames].find(([, queueName]) => queueName === name)?.[0];
    }
    return undefined;
  }

  private function(name: string, fn: ServerlessFunction): FunctionSpec {
    const provider = this.config.provider;
    const environment: Record<string, string> = {};
    for (const [key, value] of Object.entries({
      ...(provider.environment ?? {}),
      ...(fn.environment ?? {}),
    })) {
      const resolved = this.resolve(value);
      // `${self:custom.tableName}` names the provisioning table: it follows a local table name override.
      environment[key] =
        resolved === this.configuredTableName
          ? this.tableName
          : typeof resolved === 'string'
            ? resolved
            : JSON.stringify(resolved);
    }
    const deployedName = this.functionNames.get(`fn:${name}`) ?? name;
    const sqs: SqsMapping[] = [];
    const schedules: ScheduleSpec[] = [];
    const httpApi: HttpRouteSpec[] = [];
    for (const event of fn.events ?? []) {
      if ('sqs' in event) sqs.push(this.sqsMapping(name, event.sqs));
      if ('httpApi' in event) httpApi.push(this.httpRoute(name, event.httpApi));
      if ('schedule' in event) {
        const raw = event.schedule;
        const spec =
          typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>) : { rate: raw };
        const rate = Array.isArray(spec.rate) ? spec.rate[0] : spec.rate;
        schedules.push({
          expression: String(this.resolve(rate)),
          enabled: spec.enabled !== false,
          ...(spec.input !== undefined ? { input: this.resolve(spec.input) } : {}),
          ruleName: `${deployedName}-rule-${schedules.length + 1}`,
        });
      }
    }
    return {
      name,
      handler: fn.handler,
      deployedName,
      arn: `arn:aws:lambda:${this.region}:${this.accountId}:function:${deployedName}`,
      timeoutSeconds: Number(this.resolve(fn.timeout ?? provider.timeout ?? 6)),
      memorySize: Number(this.resolve(fn.memorySize ?? provider.memorySize ?? 1024)),
      environment,
      sqs,
      schedules,
      httpApi,
      role: this.functionRole(name, fn),
    };
  }

  private httpRoute(name: string, raw: unknown): HttpRouteSpec {
    const spec = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
    const method = String(this.resolve(spec.method ?? '')).toUpperCase();
    const path = String(this.resolve(spec.path ?? ''));
    if (!method || !path.startsWith('/')) {
      throw new StackModelError(`functions.${name}.events.httpApi: method and path are required`);
    }
    const authorizer = spec.authorizer as { name?: unknown } | string | undefined;
    const authorizerName = typeof authorizer === 'string' ? authorizer : authorizer?.name;
    return { method, path, ...(authorizerName ? { authorizer: String(authorizerName) } : {}) };
  }

  /**
   * The function's execution role: `role:` on the function, else `provider.iam.role` when it names a
   * role, else the Framework's default role (`IamRoleLambdaExecution`), built as osls builds it.
   */
  private functionRole(name: string, fn: ServerlessFunction): RoleSpec {
    const providerRole = (this.config.provider.iam as { role?: unknown } | undefined)?.role;
    const declared =
      fn.role ?? (typeof providerRole === 'string' || isGetAtt(providerRole) ? providerRole : undefined);
    if (declared === undefined) return this.defaultRole();
    const logicalId = isGetAtt(declared)
      ? String(declared['Fn::GetAtt'][0])
      : typeof declared === 'string' && !declared.startsWith('arn:')
        ? declared
        : undefined;
    if (!logicalId) {
      throw new StackModelError(
        `functions.${name}.role: ${JSON.stringify(declared)} is not a role of this file; the local stack can only authorize roles it can read (a logical id or !GetAtt Role.Arn)`,
      );
    }
    return this.roleResource(logicalId, `functions.${name}.role`);
  }

  /** An `AWS::IAM::Role` resource of this file, resolved. */
  roleResource(logicalId: string, where = logicalId): RoleSpec {
    const resource = this.resources[logicalId];
    if (resource?.Type !== 'AWS::IAM::Role') {
      throw new StackModelError(`${where}: ${logicalId} is not an AWS::IAM::Role of this file`);
    }
    const properties = this.resolve(resource.Properties ?? {}) as {
      RoleName?: string;
      Policies?: Array<{ PolicyName: string; PolicyDocument: PolicyDocument }>;
      ManagedPolicyArns?: string[];
    };
    const roleName = properties.RoleName ?? this.generatedName(logicalId, 64);
    const policies: NamedPolicy[] = (properties.Policies ?? []).map((policy) => ({
      name: String(policy.PolicyName),
      document: policy.PolicyDocument,
    }));
    for (const arn of properties.ManagedPolicyArns ?? []) {
      policies.push({ name: String(arn), document: managedPolicyDocument(String(arn)) });
    }
    return { logicalId, roleName, arn: `arn:aws:iam::${this.accountId}:role/${roleName}`, policies };
  }

  /** The Framework's IamRoleLambdaExecution (osls lib/plugins/aws/package/lib/merge-iam-templates.js). */
  private defaultRole(): RoleSpec {
    const service = String(this.variables(this.config.service));
    const iam = (this.config.provider.iam ?? {}) as {
      role?: { name?: string; statements?: PolicyStatement[]; managedPolicies?: string[] };
    };
    const role = typeof iam.role === 'object' && !isGetAtt(iam.role) ? iam.role : {};
    const logGroups = `arn:aws:logs:${this.region}:${this.accountId}:log-group:/aws/lambda/${service}-${this.stage}*`;
    const statements: PolicyStatement[] = [
      {
        Effect: 'Allow',
        Action: ['logs:CreateLogStream', 'logs:CreateLogGroup', 'logs:TagResource'],
        Resource: [`${logGroups}:*`],
      },
      { Effect: 'Allow', Action: ['logs:PutLogEvents'], Resource: [`${logGroups}:*:*`] },
      ...((this.resolve(
        role.statements ?? (this.config.provider as { iamRoleStatements?: unknown }).iamRoleStatements ?? [],
      ) ?? []) as PolicyStatement[]),
    ];
    // compile/functions.js: tracing adds X-Ray to the default role.
    const tracing = (this.config.provider.tracing as { lambda?: unknown } | undefined)?.lambda;
    if (tracing) {
      statements.push({
        Effect: 'Allow',
        Action: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'],
        Resource: ['*'],
      });
    }
    // compile/events/sqs.js: every sqs event source's queue, on the default role.
    const queues: string[] = [];
    for (const fn of Object.values(this.config.functions ?? {})) {
      if (fn.role !== undefined) continue;
      for (const event of fn.events ?? []) {
        if (!('sqs' in event)) continue;
        const raw = event.sqs as Record<string, unknown> | string;
        const arn = typeof raw === 'object' && raw !== null && !isGetAtt(raw) ? raw.arn : raw;
        queues.push(String(this.resolve(arn)));
      }
    }
    if (queues.length > 0) {
      statements.push({
        Effect: 'Allow',
        Action: ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes'],
        Resource: queues,
      });
    }
    const policies: NamedPolicy[] = [
      { name: `${this.stage}-${service}-lambda`, document: { Version: '2012-10-17', Statement: statements } },
    ];
    for (const arn of (this.resolve(role.managedPolicies ?? []) ?? []) as string[]) {
      policies.push({ name: arn, document: managedPolicyDocument(arn) });
    }
    const roleName = role.name
      ? String(this.resolve(role.name))
      : `${service}-${this.stage}-${this.region}-lambdaRole`;
    return {
      logicalId: 'IamRoleLambdaExecution',
      roleName,
      arn: `arn:aws:iam::${this.accountId}:role/${roleName}`,
      policies,
    };
  }

  /**
   * A name CloudFormation would generate for a resource declared without one: `<stack>-<logicalId>-<suffix>`,
   * bounded (the suffix is random on AWS, `local` here).
   */
  private generatedName(logicalId: string, max = 128, lower = false): string {
    const stack = `${String(this.variables(this.config.service))}-${this.stage}`;
    const name = `${stack}-${logicalId}`.slice(0, max - 6);
    const generated = `${name}-local`;
    return lower ? generated.toLowerCase() : generated;
  }

  /** A bucket's name: BucketName, else a generated lower-case name. */
  bucketName(logicalId: string): string {
    const declared = this.resources[logicalId]?.Properties?.BucketName;
    return declared ? String(this.resolve(declared)) : this.generatedName(logicalId, 63, true);
  }

  private sqsMapping(functionName: string, raw: unknown): SqsMapping {
    const spec = (
      typeof raw === 'object' && raw !== null && !('Fn::GetAtt' in raw) ? raw : { arn: raw }
    ) as Record<string, unknown>;
    const arn = spec.arn as { 'Fn::GetAtt'?: string[] } | string | undefined;
    let queue: string | undefined;
    if (typeof arn === 'object' && arn?.['Fn::GetAtt']) queue = arn['Fn::GetAtt'][0];
    else if (typeof arn === 'string') {
      const name = String(this.variables(arn)).split(':').pop();
      queue = [...this.queueNames].find(([, queueName]) => queueName === name)?.[0];
    }
    if (!queue || !this.queueNames.has(queue)) {
      throw new StackModelError(`functions.${functionName}: sqs event must reference a queue of this file`);
    }
    return {
      queue,
      batchSize: Number(this.resolve(spec.batchSize ?? 10)),
      reportBatchItemFailures: spec.functionResponseType === 'ReportBatchItemFailures',
      maximumConcurrency: Number(this.resolve(spec.maximumConcurrency ?? 2)),
      enabled: spec.enabled !== false,
    };
  }

  /** Resolves Serverless variables and CloudFormation intrinsics in any value. */
  resolve(value: unknown): unknown {
    if (typeof value === 'string') return this.variables(value);
    if (Array.isArray(value)) return value.map((item) => this.resolve(item));
    if (typeof value !== 'object' || value === null) return value;
    const entries = Object.entries(value);
    const [key, arg] = entries[0] ?? [];
    if (entries.length === 1 && key !== undefined) {
      if (key === 'Ref') return this.ref(String(arg));
      if (key === 'Fn::GetAtt') {
        const [id, attribute] = Array.isArray(arg) ? arg : String(arg).split('.');
        return this.getAtt(String(id), String(attribute));
      }
      if (key === 'Fn::Join') {
        const [separator, parts] = arg as [string, unknown[]];
        return (parts.map((part) => this.resolve(part)) as string[]).join(separator);
      }
      if (key === 'Fn::Sub') {
        // `[template, {Name: value}]` or `template`; `${!Literal}` is the literal `${Literal}`.
        const [raw, named] = Array.isArray(arg) ? [arg[0], arg[1] ?? {}] : [arg, {}];
        const template = String(this.variables(raw));
        const values = this.resolve(named) as Record<string, unknown>;
        return template.replace(/\$\{([^}]+)\}/g, (_match, name: string) => {
          if (name.startsWith('!')) return `\${${name.slice(1)}}`;
          if (Object.hasOwn(values, name)) return String(values[name]);
          const [id, attribute] = name.split('.');
          return String(attribute ? this.getAtt(String(id), attribute) : this.ref(String(id)));
        });
      }
      if (key === 'Fn::If') {
        const [condition, whenTrue, whenFalse] = arg as [string, unknown, unknown];
        return this.resolve(this.condition(String(condition)) ? whenTrue : whenFalse);
      }
      if (key.startsWith('Fn::')) throw new StackModelError(`${key} is not supported by the local stack`);
    }
    return Object.fromEntries(entries.map(([k, v]) => [k, this.resolve(v)]));
  }

  /** A condition of `resources.Conditions` (`Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or`, `Condition`). */
  private condition(name: string): boolean {
    const conditions = (this.config.resources as { Conditions?: Record<string, unknown> } | undefined)
      ?.Conditions;
    const definition = conditions?.[name];
    if (definition === undefined) throw new StackModelError(`Condition ${name} is not defined`);
    return this.evaluate(definition);
  }

  private evaluate(expression: unknown): boolean {
    const [key, arg] = Object.entries(expression as Record<string, unknown>)[0] ?? [];
    const args = Array.isArray(arg) ? arg : [arg];
    switch (key) {
      case 'Fn::Equals':
        return String(this.resolve(args[0])) === String(this.resolve(args[1]));
      case 'Fn::Not':
        return !this.evaluate(args[0]);
      case 'Fn::And':
        return args.every((item) => this.evaluate(item));
      case 'Fn::Or':
        return args.some((item) => this.evaluate(item));
      case 'Condition':
        return this.condition(String(arg));
      default:
        throw new StackModelError(
          `condition ${JSON.stringify(expression)} is not supported by the local stack`,
        );
    }
  }

  private ref(id: string): string {
    if (id === 'AWS::Region') return this.region;
    if (id === 'AWS::AccountId') return this.accountId;
    if (id === 'AWS::StackName') return `${this.config.service}-${this.stage}`;
    if (id === 'AWS::Partition') return 'aws';
    if (id === 'AWS::URLSuffix') return 'amazonaws.com';
    const queue = this.queueNames.get(id);
    if (queue) return this.queueUrl(queue);
    if (id === 'ProvisioningTable') return this.tableName;
    const type = this.resources[id]?.Type;
    if (type === 'AWS::S3::Bucket') return this.bucketName(id);
    if (type === 'AWS::IAM::Role') {
      const declared = this.resources[id]?.Properties?.RoleName;
      return declared ? String(this.resolve(declared)) : this.generatedName(id, 64);
    }
    const fn = this.functionNames.get(id);
    if (fn) return this.functionNames.get(`fn:${fn}`) ?? fn;
    // Cognito answers Ref with ids: `<region>_<id>` for a pool, an opaque id for an app client.
    if (type === 'AWS::Cognito::UserPool') return `${this.region}_${id}`;
    if (type === 'AWS::Cognito::UserPoolClient') return `local${id}`;
    const resource = this.resources[id];
    const properties = resource?.Properties ?? {};
    const name =
      properties.RuleName ??
      properties.PolicyName ??
      properties.RoleName ??
      properties.TemplateName ??
      properties.ThingGroupName;
    return name ? String(this.resolve(name)) : id;
  }

  private getAtt(id: string, attribute: string): string {
    const queue = this.queueNames.get(id);
    if (queue) {
      if (attribute === 'Arn') return this.queueArn(queue);
      if (attribute === 'QueueName') return queue;
      if (attribute === 'QueueUrl') return this.queueUrl(queue);
    }
    const fn = this.functionNames.get(id);
    if (fn && attribute === 'Arn') {
      return `arn:aws:lambda:${this.region}:${this.accountId}:function:${this.functionNames.get(`fn:${fn}`)}`;
    }
    if (id === 'ProvisioningTable' && attribute === 'Arn') {
      return `arn:aws:dynamodb:${this.region}:${this.accountId}:table/${this.tableName}`;
    }
    const type = this.resources[id]?.Type;
    if (type === 'AWS::S3::Bucket') {
      if (attribute === 'Arn') return `arn:aws:s3:::${this.bucketName(id)}`;
      if (attribute === 'DomainName') return `${this.bucketName(id)}.s3.amazonaws.com`;
    }
    if (attribute === 'Arn' && type === 'AWS::IAM::Role') {
      const roleName = this.resources[id]?.Properties?.RoleName;
      return `arn:aws:iam::${this.accountId}:role/${roleName ? String(this.resolve(roleName)) : this.generatedName(id)}`;
    }
    if (attribute === 'Arn' && type === 'AWS::IoT::Policy') {
      return `arn:aws:iot:${this.region}:${this.accountId}:policy/${this.ref(id)}`;
    }
    if (attribute === 'Arn' && type === 'AWS::IoT::ThingGroup') {
      return `arn:aws:iot:${this.region}:${this.accountId}:thinggroup/${this.ref(id)}`;
    }
    return `arn:aws:local:${this.region}:${this.accountId}:${id}`;
  }

  /**
   * Expands `${…}` Serverless variables, innermost first. CloudFormation's own placeholders in
   * `Fn::Sub` strings (`${AWS::Region}`, `${Name}`, `${Logical.Attr}`, `${!Literal}`) are left for it.
   */
  variables(value: unknown, depth = 0): unknown {
    if (typeof value !== 'string' || !value.includes('${')) return value;
    if (depth > 20) throw new StackModelError(`variable nesting too deep in ${value}`);
    let text = value;
    let match = nextServerlessVariable(text);
    while (match) {
      const whole = match[0];
      const resolved = this.variable(String(match[1]).trim(), depth);
      // A variable that is the whole string keeps its type (objects from ${self:custom.x}).
      if (whole === text && typeof resolved !== 'string') return resolved;
      text = text.replace(whole, String(resolved));
      match = nextServerlessVariable(text);
    }
    return text;
  }

  private variable(expression: string, depth: number): unknown {
    const alternatives = splitTopLevel(expression);
    for (const alternative of alternatives) {
      const value = this.source(alternative.trim(), depth);
      if (value !== undefined && value !== null) return value;
    }
    throw new StackModelError(`cannot resolve \${${expression}} locally`);
  }

  private source(text: string, depth: number): unknown {
    const quoted = /^(['"])(.*)\1$/.exec(text);
    if (quoted) return quoted[2];
    if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text);
    const colon = text.indexOf(':');
    if (colon < 0) return undefined;
    const source = text.slice(0, colon);
    const address = text.slice(colon + 1);
    switch (source) {
      case 'self': {
        let current: unknown = this.config;
        for (const key of address.split('.')) {
          if (typeof current !== 'object' || current === null) return undefined;
          current = (current as Record<string, unknown>)[key];
        }
        if (address === 'provider.stage') return this.stage;
        if (address === 'provider.region') return this.region;
        return this.variables(current, depth + 1);
      }
      case 'sls':
        return address === 'stage' ? this.stage : address === 'instanceId' ? 'local' : undefined;
      case 'opt':
        return address === 'stage' ? this.stage : address === 'region' ? this.region : undefined;
      case 'param':
        return this.options.params?.[address];
      case 'aws':
        return address === 'accountId' ? this.accountId : address === 'region' ? this.region : undefined;
      case 'env':
        return process.env[address];
      default:
        return undefined;
    }
  }
}

function isGetAtt(value: unknown): value is { 'Fn::GetAtt': unknown[] } {
  return (
    typeof value === 'object' &&
    value !== null &&
    Array.isArray((value as { 'Fn::GetAtt'?: unknown })['Fn::GetAtt'])
  );
}

/**
 * The first innermost `${…}` that is a Serverless variable (`source:address`, `file(…)`, a quoted
 * or numeric literal, alternatives); CloudFormation's `Fn::Sub` placeholders are skipped.
 */
function nextServerlessVariable(text: string): RegExpExecArray | undefined {
  const innermost = /\$\{([^${}]+)\}/g;
  for (let match = innermost.exec(text); match; match = innermost.exec(text)) {
    const expression = String(match[1]).trim();
    const cloudFormation =
      expression.startsWith('!') ||
      /^[A-Za-z0-9]+::[A-Za-z0-9]+$/.test(expression) ||
      /^[\w]+(\.[\w.]+)?$/.test(expression);
    if (!cloudFormation) return match;
  }
  return undefined;
}

function splitTopLevel(expression: string): string[] {
  const parts: string[] = [];
  let quote = '';
  let current = '';
  for (const ch of expression) {
    if (quote) {
      if (ch === quote) quote = '';
      current += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      current += ch;
    } else if (ch === ',') {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  parts.push(current);
  return parts;
}
