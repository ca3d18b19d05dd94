/**
 * Resource types and properties against the CloudFormation registry schemas, as
 * `@aws-cdk/aws-service-spec` ships them (every resource type, its properties, property types,
 * required properties, primitive types, enum values and attributes):
 * - unknown resource type, unknown property (at every nesting level), missing required property;
 * - a literal value of the wrong primitive type, or outside the allowed values;
 * - resource attributes (DeletionPolicy, DependsOn, …) and references (`Ref`, `Fn::GetAtt`,
 *   `Fn::Sub` variables, conditions) that point at nothing.
 * Intrinsic functions are accepted in place of any value; `Fn::If` branches are checked as values.
 * @see https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/resource-type-schemas.html
 */
import { loadAwsServiceSpecSync } from '@aws-cdk/aws-service-spec';
import type {
  Property,
  PropertyType,
  Resource,
  SpecDatabase,
  TypeDefinition,
} from '@aws-cdk/service-spec-types';
import {
  type CfnTemplate,
  type Finding,
  getAttTarget,
  intrinsicName,
  isObject,
  PSEUDO_PARAMETERS,
  refTarget,
  walk,
} from './template';

export const SCHEMA_RULE = 'cfn-schema';
export const REFERENCE_RULE = 'cfn-references';

const TEMPLATE_DOC = 'https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/template-anatomy.html';
const RESOURCE_ATTRIBUTES_DOC =
  'https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-product-attribute-reference.html';
const DELETION_POLICY_DOC =
  'https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-attribute-deletionpolicy.html';
const UPDATE_REPLACE_POLICY_DOC =
  'https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-attribute-updatereplacepolicy.html';
const REF_DOC =
  'https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/intrinsic-function-reference-ref.html';
const GETATT_DOC =
  'https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/intrinsic-function-reference-getatt.html';
const SUB_DOC =
  'https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/intrinsic-function-reference-sub.html';
const CONDITIONS_DOC =
  'https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/conditions-section-structure.html';
const CUSTOM_RESOURCE_DOC =
  'https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-cloudformation-customresource.html';

/** @see https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/template-anatomy.html */
const TEMPLATE_SECTIONS = new Set([
  'AWSTemplateFormatVersion',
  'Description',
  'Metadata',
  'Parameters',
  'Rules',
  'Mappings',
  'Conditions',
  'Transform',
  'Resources',
  'Outputs',
]);

/** @see https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-product-attribute-reference.html */
const RESOURCE_ATTRIBUTES = new Set([
  'Type',
  'Properties',
  'DependsOn',
  'Condition',
  'Metadata',
  'DeletionPolicy',
  'UpdateReplacePolicy',
  'CreationPolicy',
  'UpdatePolicy',
]);
const DELETION_POLICIES = ['Delete', 'Retain', 'RetainExceptOnCreate', 'Snapshot'];
const UPDATE_REPLACE_POLICIES = ['Delete', 'Retain', 'Snapshot'];

let database: SpecDatabase | undefined;

/** The registry schemas (about 1.5 s to load; loaded once per process). */
export function specDatabase(): SpecDatabase {
  database ??= loadAwsServiceSpecSync();
  return database;
}

export function isCustomResourceType(type: string): boolean {
  return type.startsWith('Custom::') || type === 'AWS::CloudFormation::CustomResource';
}

/** The registry entry of a resource type, undefined when the registry does not know it. */
export function resourceSpec(type: string): Resource | undefined {
  const lookupType = isCustomResourceType(type) ? 'AWS::CloudFormation::CustomResource' : type;
  const found = specDatabase().lookup('resource', 'cloudFormationType', 'equals', lookupType);
  return found.length === 1 ? found[0] : undefined;
}

/** `AWS::SQS::Queue` → the resource's page in the CloudFormation Template Reference. */
export function resourceDoc(type: string): string {
  if (isCustomResourceType(type)) return CUSTOM_RESOURCE_DOC;
  const [, service = '', name = ''] = type.toLowerCase().split('::');
  return `https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-${service}-${name}.html`;
}

function propertyTypeDoc(type: string, definition: string): string {
  const [, service = '', name = ''] = type.toLowerCase().split('::');
  return `https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-${service}-${name}-${definition.toLowerCase()}.html`;
}

/** Checks the template's sections, every resource against its registry schema, and its references. */
export function checkSchema(template: CfnTemplate): Finding[] {
  const findings: Finding[] = [];
  for (const section of Object.keys(template)) {
    if (!TEMPLATE_SECTIONS.has(section)) {
      findings.push({
        rule: SCHEMA_RULE,
        resource: 'template',
        path: section,
        message: `unknown template section ${section}`,
        doc: TEMPLATE_DOC,
      });
    }
  }
  for (const [logicalId, resource] of Object.entries(template.Resources ?? {})) {
    findings.push(...checkResource(logicalId, resource));
  }
  findings.push(...checkReferences(template));
  return findings;
}

function checkResource(logicalId: string, resource: CfnTemplate['Resources'][string]): Finding[] {
  const findings: Finding[] = [];
  const type = resource.Type;
  const add = (path: string, message: string, doc = resourceDoc(type)) =>
    findings.push({ rule: SCHEMA_RULE, resource: logicalId, path, message, doc });
  if (typeof type !== 'string') {
    add('Type', 'a resource needs a Type', RESOURCE_ATTRIBUTES_DOC);
    return findings;
  }
  for (const attribute of Object.keys(resource)) {
    if (!RESOURCE_ATTRIBUTES.has(attribute)) {
      add(attribute, `unknown resource attribute ${attribute}`, RESOURCE_ATTRIBUTES_DOC);
    }
  }
  checkPolicyAttribute(
    resource.DeletionPolicy,
    DELETION_POLICIES,
    'DeletionPolicy',
    DELETION_POLICY_DOC,
    add,
  );
  checkPolicyAttribute(
    resource.UpdateReplacePolicy,
    UPDATE_REPLACE_POLICIES,
    'UpdateReplacePolicy',
    UPDATE_REPLACE_POLICY_DOC,
    add,
  );
  const spec = resourceSpec(type);
  if (!spec) {
    add(
      'Type',
      `unknown resource type ${type} (not in the CloudFormation registry)`,
      RESOURCE_ATTRIBUTES_DOC,
    );
    return findings;
  }
  const properties = resource.Properties ?? {};
  if (!isObject(properties)) {
    add('Properties', 'Properties must be an object');
    return findings;
  }
  const validator = new Validator(type, add);
  validator.object(properties, spec.properties, 'Properties', isCustomResourceType(type));
  return findings;
}

function checkPolicyAttribute(
  value: unknown,
  allowed: string[],
  name: string,
  doc: string,
  add: (path: string, message: string, doc?: string) => void,
): void {
  if (value === undefined || intrinsicName(value)) return;
  if (typeof value !== 'string' || !allowed.includes(value)) {
    add(name, `${JSON.stringify(value)} is not one of ${allowed.join(', ')}`, doc);
  }
}

class Validator {
  constructor(
    private readonly type: string,
    private readonly add: (path: string, message: string, doc?: string) => void,
  ) {}

  /** An object of declared properties; `open` objects (custom resources) take any other key too. */
  object(
    value: Record<string, unknown>,
    properties: Record<string, Property>,
    path: string,
    open = false,
    doc = resourceDoc(this.type),
  ): void {
    for (const [name, property] of Object.entries(properties)) {
      if (property.required && value[name] === undefined) {
        this.add(`${path}.${name}`, `required property ${name} is missing`, doc);
      }
    }
    for (const [name, item] of Object.entries(value)) {
      const property = properties[name];
      if (!property) {
        if (!open) this.add(`${path}.${name}`, `unknown property ${name}`, doc);
        continue;
      }
      this.value(item, property.type, `${path}.${name}`, doc);
    }
  }

  /** Reports the problems of `value` against `type`. */
  value(value: unknown, type: PropertyType, path: string, doc: string): void {
    for (const problem of this.problems(value, type, path, doc))
      this.add(problem.path, problem.message, problem.doc);
  }

  private problems(
    value: unknown,
    type: PropertyType,
    path: string,
    doc: string,
  ): Array<{ path: string; message: string; doc: string }> {
    const intrinsic = intrinsicName(value);
    if (intrinsic === 'Fn::If') {
      const args = (value as Record<string, unknown>)['Fn::If'];
      if (!Array.isArray(args) || args.length !== 3) {
        return [{ path, message: 'Fn::If takes [condition, value if true, value if false]', doc }];
      }
      return [1, 2].flatMap((branch) =>
        refTarget(args[branch]) === 'AWS::NoValue'
          ? []
          : this.problems(args[branch], type, `${path}.Fn::If[${branch}]`, doc),
      );
    }
    if (intrinsic) return [];
    const problem = (message: string) => [{ path, message, doc }];
    switch (type.type) {
      case 'string':
      case 'date-time':
        if (typeof value !== 'string') return problem(`expected a string, got ${describe(value)}`);
        if (type.type === 'string' && type.allowedValues && !type.allowedValues.includes(value)) {
          return problem(`${JSON.stringify(value)} is not one of ${type.allowedValues.join(', ')}`);
        }
        return [];
      case 'integer': {
        const number = typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value;
        if (typeof number !== 'number' || !Number.isInteger(number)) {
          return problem(`expected an integer, got ${describe(value)}`);
        }
        if (type.allowedValues && !type.allowedValues.includes(number)) {
          return problem(`${number} is not one of ${type.allowedValues.join(', ')}`);
        }
        return [];
      }
      case 'number': {
        const number = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
        if (typeof number !== 'number' || !Number.isFinite(number)) {
          return problem(`expected a number, got ${describe(value)}`);
        }
        return [];
      }
      case 'boolean':
        if (typeof value === 'boolean' || value === 'true' || value === 'false') return [];
        return problem(`expected a boolean, got ${describe(value)}`);
      case 'json':
        if (isObject(value) || typeof value === 'string' || Array.isArray(value)) return [];
        return problem(`expected a JSON object, got ${describe(value)}`);
      case 'null':
        return value === null ? [] : problem(`expected null, got ${describe(value)}`);
      case 'tag': {
        if (!isObject(value)) return problem(`expected a tag {Key, Value}, got ${describe(value)}`);
        const tag = {
          Key: { type: { type: 'string' as const }, required: true },
          Value: { type: { type: 'string' as const }, required: true },
        };
        return this.collect((validator) => validator.object(value, tag, path, false, doc));
      }
      case 'array':
        if (!Array.isArray(value)) return problem(`expected a list, got ${describe(value)}`);
        return value.flatMap((item, index) => this.problems(item, type.element, `${path}[${index}]`, doc));
      case 'map':
        if (!isObject(value)) return problem(`expected a map, got ${describe(value)}`);
        return Object.entries(value).flatMap(([key, item]) =>
          this.problems(item, type.element, `${path}.${key}`, doc),
        );
      case 'ref': {
        const definition = specDatabase().get('typeDefinition', type.reference) as TypeDefinition;
        const definitionDoc = propertyTypeDoc(this.type, definition.name);
        if (!isObject(value))
          return [
            {
              path,
              message: `expected ${definition.name} (an object), got ${describe(value)}`,
              doc: definitionDoc,
            },
          ];
        return this.collect((validator) =>
          validator.object(value, definition.properties, path, false, definitionDoc),
        );
      }
      case 'union': {
        const attempts = type.types.map((member) => this.problems(value, member, path, doc));
        if (attempts.some((attempt) => attempt.length === 0)) return [];
        // Report against the member the value comes closest to (fewest problems).
        return attempts.sort((a, b) => a.length - b.length)[0] ?? [];
      }
      default:
        return [];
    }
  }

  private collect(
    run: (validator: Validator) => void,
  ): Array<{ path: string; message: string; doc: string }> {
    const found: Array<{ path: string; message: string; doc: string }> = [];
    run(
      new Validator(this.type, (path, message, doc = resourceDoc(this.type)) =>
        found.push({ path, message, doc }),
      ),
    );
    return found;
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (isObject(value)) return 'an object';
  return `${typeof value} ${JSON.stringify(value)}`;
}

/**
 * `Ref`, `Fn::GetAtt`, `Fn::Sub` variables, `Fn::If` / `Condition` names and `DependsOn` must name
 * something the template declares (and a `GetAtt` attribute the resource type has).
 */
function checkReferences(template: CfnTemplate): Finding[] {
  const findings: Finding[] = [];
  const resources = template.Resources ?? {};
  const parameters = new Set(Object.keys(template.Parameters ?? {}));
  const conditions = new Set(Object.keys(template.Conditions ?? {}));
  const add = (resource: string, path: string, message: string, doc: string) =>
    findings.push({ rule: REFERENCE_RULE, resource, path, message, doc });
  const checkRef = (owner: string, path: string, target: string, doc = REF_DOC) => {
    if (!(target in resources) && !parameters.has(target) && !PSEUDO_PARAMETERS.has(target)) {
      add(owner, path, `${target} is not a resource, parameter or pseudo parameter of this template`, doc);
    }
  };
  const checkGetAtt = (owner: string, path: string, target: string, attribute: string, doc = GETATT_DOC) => {
    const resource = resources[target];
    if (!resource) {
      add(owner, path, `Fn::GetAtt names ${target}, which is not a resource of this template`, doc);
      return;
    }
    if (isCustomResourceType(resource.Type)) return;
    const spec = resourceSpec(resource.Type);
    if (spec && !(attribute in spec.attributes)) {
      add(
        owner,
        path,
        `${resource.Type} has no attribute ${attribute} (it has ${Object.keys(spec.attributes).join(', ') || 'none'})`,
        resourceDoc(resource.Type),
      );
    }
  };
  const scan = (owner: string, root: unknown, rootPath: string) => {
    for (const [node, path] of walk(root, rootPath)) {
      const name = intrinsicName(node);
      if (name === 'Ref') {
        const target = refTarget(node);
        if (target === undefined) add(owner, path, 'Ref takes a logical id', REF_DOC);
        else checkRef(owner, path, target);
      } else if (name === 'Fn::GetAtt') {
        const target = getAttTarget(node);
        if (!target) add(owner, path, 'Fn::GetAtt takes [logicalId, attribute]', GETATT_DOC);
        else checkGetAtt(owner, path, target[0], target[1]);
      } else if (name === 'Fn::Sub') {
        const args = (node as Record<string, unknown>)['Fn::Sub'];
        const text = typeof args === 'string' ? args : Array.isArray(args) ? args[0] : undefined;
        const own =
          Array.isArray(args) && isObject(args[1]) ? new Set(Object.keys(args[1])) : new Set<string>();
        if (typeof text !== 'string') continue;
        for (const match of text.matchAll(/\$\{([^}]+)\}/g)) {
          const variable = (match[1] ?? '').trim();
          if (variable.startsWith('!') || own.has(variable)) continue;
          const dot = variable.indexOf('.');
          if (dot > 0 && !variable.startsWith('AWS::')) {
            checkGetAtt(owner, path, variable.slice(0, dot), variable.slice(dot + 1), SUB_DOC);
          } else checkRef(owner, path, variable, SUB_DOC);
        }
      } else if (name === 'Fn::If') {
        const args = (node as Record<string, unknown>)['Fn::If'];
        const condition = Array.isArray(args) ? args[0] : undefined;
        if (typeof condition !== 'string' || !conditions.has(condition)) {
          add(
            owner,
            path,
            `Fn::If names condition ${String(condition)}, which Conditions does not declare`,
            CONDITIONS_DOC,
          );
        }
      }
    }
  };
  for (const [logicalId, resource] of Object.entries(resources)) {
    const dependsOn = resource.DependsOn === undefined ? [] : [resource.DependsOn].flat();
    for (const [index, target] of dependsOn.entries()) {
      if (typeof target !== 'string' || !(target in resources)) {
        add(
          logicalId,
          `DependsOn[${index}]`,
          `${String(target)} is not a resource of this template`,
          RESOURCE_ATTRIBUTES_DOC,
        );
      }
    }
    if (
      resource.Condition !== undefined &&
      (typeof resource.Condition !== 'string' || !conditions.has(resource.Condition))
    ) {
      add(logicalId, 'Condition', `condition ${String(resource.Condition)} is not declared`, CONDITIONS_DOC);
    }
    scan(logicalId, resource.Properties, 'Properties');
  }
  for (const [name, output] of Object.entries(template.Outputs ?? {})) scan(`Outputs.${name}`, output, '');
  for (const [name, condition] of Object.entries(template.Conditions ?? {}))
    scan(`Conditions.${name}`, condition, '');
  return findings;
}
