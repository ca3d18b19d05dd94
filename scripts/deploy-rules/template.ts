/**
 * The CloudFormation template `serverless package` writes, as the deploy-rule checker reads it:
 * its shape, intrinsic functions, and how one resource refers to another.
 */

export interface CfnResource {
  Type: string;
  Properties?: Record<string, unknown>;
  DependsOn?: string | string[];
  DeletionPolicy?: unknown;
  UpdateReplacePolicy?: unknown;
  Condition?: unknown;
  [attribute: string]: unknown;
}

export interface CfnOutput {
  Value?: unknown;
  Description?: unknown;
  Export?: { Name?: unknown };
  Condition?: unknown;
  [key: string]: unknown;
}

export interface CfnTemplate {
  AWSTemplateFormatVersion?: string;
  Description?: unknown;
  Resources: Record<string, CfnResource>;
  Outputs?: Record<string, CfnOutput>;
  Conditions?: Record<string, unknown>;
  Parameters?: Record<string, unknown>;
  Mappings?: Record<string, unknown>;
  [section: string]: unknown;
}

/** One broken deploy rule: where (logical id + property path), which rule, why, and AWS's page for it. */
export interface Finding {
  rule: string;
  /** A resource's logical id, `Outputs.<name>`, or `template`. */
  resource: string;
  /** Property path inside the resource, e.g. `Properties.RedrivePolicy.maxReceiveCount`. */
  path: string;
  message: string;
  /** The AWS documentation page the rule comes from. */
  doc: string;
}

/** `RegistrationQueue Properties.VisibilityTimeout: … [rule] (doc)` — one line per finding. */
export function formatFinding(finding: Finding): string {
  const where = finding.path ? `${finding.resource} ${finding.path}` : finding.resource;
  return `${where}: ${finding.message} [${finding.rule}] (${finding.doc})`;
}

/**
 * Pseudo parameters `Ref` accepts without a declaration.
 * @see https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/pseudo-parameter-reference.html
 */
export const PSEUDO_PARAMETERS = new Set([
  'AWS::AccountId',
  'AWS::NotificationARNs',
  'AWS::NoValue',
  'AWS::Partition',
  'AWS::Region',
  'AWS::StackId',
  'AWS::StackName',
  'AWS::URLSuffix',
]);

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The name of the intrinsic function `value` is (`Ref`, `Fn::GetAtt`, …), if it is one: an object
 * with exactly one key, `Ref`, `Condition` or `Fn::*`.
 * @see https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/intrinsic-function-reference.html
 */
export function intrinsicName(value: unknown): string | undefined {
  if (!isObject(value)) return undefined;
  const keys = Object.keys(value);
  if (keys.length !== 1) return undefined;
  const [key = ''] = keys;
  return key === 'Ref' || key.startsWith('Fn::') ? key : undefined;
}

/** The logical id a `Ref` names, if `value` is one. */
export function refTarget(value: unknown): string | undefined {
  if (intrinsicName(value) !== 'Ref') return undefined;
  const target = (value as { Ref: unknown }).Ref;
  return typeof target === 'string' ? target : undefined;
}

/** `[logicalId, attribute]` of an `Fn::GetAtt` (list or dotted-string form). */
export function getAttTarget(value: unknown): [string, string] | undefined {
  if (intrinsicName(value) !== 'Fn::GetAtt') return undefined;
  const args = (value as { 'Fn::GetAtt': unknown })['Fn::GetAtt'];
  if (Array.isArray(args) && typeof args[0] === 'string' && typeof args[1] === 'string') {
    return [args[0], args[1]];
  }
  if (typeof args === 'string' && args.includes('.')) {
    const dot = args.indexOf('.');
    return [args.slice(0, dot), args.slice(dot + 1)];
  }
  return undefined;
}

/** The logical id `value` points at through `Ref` or `Fn::GetAtt`, if it does. */
export function referencedResource(value: unknown): string | undefined {
  return refTarget(value) ?? getAttTarget(value)?.[0];
}

/**
 * Text a value renders to where that can be told without deploying: literals, `Fn::Sub` with
 * pseudo parameters, `Fn::Join` of those. `${AWS::Partition}` stays a placeholder.
 */
export function staticText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  const name = intrinsicName(value);
  if (name === 'Fn::Sub') {
    const args = (value as Record<string, unknown>)['Fn::Sub'];
    return typeof args === 'string'
      ? args
      : Array.isArray(args) && typeof args[0] === 'string'
        ? args[0]
        : undefined;
  }
  if (name === 'Fn::Join') {
    const args = (value as Record<string, unknown>)['Fn::Join'];
    if (!Array.isArray(args) || typeof args[0] !== 'string' || !Array.isArray(args[1])) return undefined;
    const parts = args[1].map(staticText);
    return parts.every((part) => part !== undefined) ? parts.join(args[0]) : undefined;
  }
  return undefined;
}

/** `value` as a number if it is a literal one (CloudFormation also takes numeric strings). */
export function literalNumber(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value === 'string' && /^-?\d+(\.\d+)?$/.test(value)) return Number(value);
  return undefined;
}

/** Every node under `value` with its path, depth first (objects and arrays included). */
export function* walk(value: unknown, path: string): Generator<[unknown, string]> {
  yield [value, path];
  if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) yield* walk(item, `${path}[${index}]`);
  } else if (isObject(value)) {
    for (const [key, item] of Object.entries(value)) yield* walk(item, path ? `${path}.${key}` : key);
  }
}

export function resourcesOfType(template: CfnTemplate, type: string): Array<[string, CfnResource]> {
  return Object.entries(template.Resources ?? {}).filter(([, resource]) => resource.Type === type);
}
