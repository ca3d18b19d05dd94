/**
 * A faithful subset of AWS IoT provisioning templates (used by JITP and fleet provisioning):
 * `Parameters` (with `Default`), `Mappings`, `Conditions`, `Resources` of type `AWS::IoT::Thing`,
 * `AWS::IoT::Certificate` and `AWS::IoT::Policy`, `DeviceConfiguration`, and the intrinsic functions
 * `Ref`, `Fn::Join`, `Fn::Sub`, `Fn::Select`, `Fn::Split`, `Fn::FindInMap`, `Fn::If`, `Fn::Equals`,
 * `Fn::Not`, `Fn::And`, `Fn::Or`.
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/provision-template.html
 */

/** Thrown when a template is malformed or a parameter it needs is missing. */
export class TemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TemplateError';
  }
}

/** How an existing thing's property is treated when provisioning finds the thing already there. */
export type OverrideSetting = 'MERGE' | 'REPLACE' | 'DO_NOTHING' | 'FAIL';

/** The resolved thing resource. */
export interface ThingResource {
  thingName: string;
  attributes: Record<string, string>;
  thingTypeName?: string;
  thingGroups: string[];
  overrideSettings: Partial<Record<'AttributePayload' | 'ThingTypeName' | 'ThingGroups', OverrideSetting>>;
}

/** The resolved certificate resource. */
export interface CertificateResource {
  certificateId?: string;
  /** Normalised to ACTIVE / INACTIVE. */
  status?: 'ACTIVE' | 'INACTIVE';
}

/** The resolved policy resource: an existing named policy or an inline document. */
export type PolicyResource = { policyName: string } | { policyDocument: string };

/** Everything a template resolves to for one device. */
export interface ResolvedTemplate {
  thing?: ThingResource;
  certificate?: CertificateResource;
  policies: PolicyResource[];
  deviceConfiguration: Record<string, string>;
  /** The parameters after defaults were applied. */
  parameters: Record<string, string>;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isObject(value: unknown): value is Record<string, Json> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Parses a template body; throws TemplateError when it is not a JSON object with `Resources`. */
export function parseTemplateBody(templateBody: string): Record<string, Json> {
  let body: unknown;
  try {
    body = JSON.parse(templateBody);
  } catch {
    throw new TemplateError('templateBody is not valid JSON');
  }
  if (!isObject(body) || !isObject(body.Resources)) throw new TemplateError('templateBody has no Resources');
  return body;
}

/** Resolves a template against the given parameter values. */
export function resolveTemplate(templateBody: string, provided: Record<string, string>): ResolvedTemplate {
  const body = parseTemplateBody(templateBody);
  const declared = isObject(body.Parameters) ? body.Parameters : {};
  const parameters: Record<string, string> = {};
  for (const [name, spec] of Object.entries(declared)) {
    const value =
      provided[name] ?? (isObject(spec) && spec.Default !== undefined ? String(spec.Default) : undefined);
    if (value === undefined) throw new TemplateError(`Missing value for parameter ${name}`);
    parameters[name] = value;
  }
  const mappings = isObject(body.Mappings) ? body.Mappings : {};
  const conditionDefs = isObject(body.Conditions) ? body.Conditions : {};
  const conditions = new Map<string, boolean>();

  const evaluate = (node: Json): Json => {
    if (Array.isArray(node)) return node.map(evaluate);
    if (!isObject(node)) return node;
    const keys = Object.keys(node);
    if (keys.length === 1) {
      const [fn] = keys as [string];
      const arg = node[fn] as Json;
      switch (fn) {
        case 'Ref': {
          if (typeof arg !== 'string') throw new TemplateError('Ref needs a parameter name');
          const value = parameters[arg] ?? provided[arg];
          if (value === undefined) throw new TemplateError(`Ref to unknown parameter ${arg}`);
          return value;
        }
        case 'Fn::Join': {
          const [delimiter, list] = evaluate(arg) as [string, Json[]];
          return list.map(String).join(delimiter);
        }
        case 'Fn::Sub': {
          const [text, vars]: [Json, Record<string, string>] = Array.isArray(arg)
            ? (evaluate(arg) as [string, Record<string, string>])
            : [arg, {}];
          return String(text).replace(/\$\{([^}]+)\}/g, (_, name: string) => {
            const value = vars[name] ?? parameters[name] ?? provided[name];
            if (value === undefined) throw new TemplateError(`Fn::Sub references unknown ${name}`);
            return value;
          });
        }
        case 'Fn::Select': {
          const [index, list] = evaluate(arg) as [number | string, Json[]];
          const item = list[Number(index)];
          if (item === undefined) throw new TemplateError('Fn::Select index out of range');
          return item;
        }
        case 'Fn::Split': {
          const [delimiter, text] = evaluate(arg) as [string, string];
          return String(text).split(delimiter);
        }
        case 'Fn::FindInMap': {
          const [map, first, second] = evaluate(arg) as [string, string, string];
          const value = (mappings[map] as Record<string, Record<string, Json>> | undefined)?.[first]?.[
            second
          ];
          if (value === undefined)
            throw new TemplateError(`Fn::FindInMap found nothing for ${map}.${first}.${second}`);
          return value;
        }
        case 'Fn::If': {
          const [name, whenTrue, whenFalse] = arg as [string, Json, Json];
          return condition(name) ? evaluate(whenTrue) : evaluate(whenFalse);
        }
        case 'Fn::Equals': {
          const [a, b] = evaluate(arg) as [Json, Json];
          return String(a) === String(b);
        }
        case 'Fn::Not': {
          const [value] = evaluate(arg) as [Json];
          return !truthy(value);
        }
        case 'Fn::And':
          return (evaluate(arg) as Json[]).every(truthy);
        case 'Fn::Or':
          return (evaluate(arg) as Json[]).some(truthy);
        case 'Condition':
          return condition(String(arg));
      }
    }
    const out: Record<string, Json> = {};
    for (const [key, value] of Object.entries(node)) out[key] = evaluate(value);
    return out;
  };
  const truthy = (value: Json): boolean => value === true || value === 'true';
  const condition = (name: string): boolean => {
    const cached = conditions.get(name);
    if (cached !== undefined) return cached;
    const def = conditionDefs[name];
    if (def === undefined) throw new TemplateError(`Unknown condition ${name}`);
    const value = truthy(evaluate(def));
    conditions.set(name, value);
    return value;
  };

  const resolved: ResolvedTemplate = { policies: [], deviceConfiguration: {}, parameters };
  for (const resource of Object.values(body.Resources as Record<string, Json>)) {
    if (!isObject(resource)) continue;
    if (typeof resource.Condition === 'string' && !condition(resource.Condition)) continue;
    const props = isObject(resource.Properties)
      ? (evaluate(resource.Properties) as Record<string, Json>)
      : {};
    switch (resource.Type) {
      case 'AWS::IoT::Thing': {
        if (typeof props.ThingName !== 'string') throw new TemplateError('AWS::IoT::Thing needs ThingName');
        const attributes: Record<string, string> = {};
        if (isObject(props.AttributePayload)) {
          for (const [k, v] of Object.entries(props.AttributePayload)) attributes[k] = String(v);
        }
        resolved.thing = {
          thingName: props.ThingName,
          attributes,
          thingTypeName: typeof props.ThingTypeName === 'string' ? props.ThingTypeName : undefined,
          thingGroups: Array.isArray(props.ThingGroups) ? props.ThingGroups.map(String) : [],
          overrideSettings: isObject(resource.OverrideSettings)
            ? (resource.OverrideSettings as ThingResource['overrideSettings'])
            : {},
        };
        break;
      }
      case 'AWS::IoT::Certificate': {
        const status = typeof props.Status === 'string' ? props.Status.toUpperCase() : undefined;
        if (status !== undefined && status !== 'ACTIVE' && status !== 'INACTIVE') {
          throw new TemplateError(`Unsupported certificate Status ${props.Status}`);
        }
        resolved.certificate = {
          certificateId: typeof props.CertificateId === 'string' ? props.CertificateId : undefined,
          status,
        };
        break;
      }
      case 'AWS::IoT::Policy': {
        if (typeof props.PolicyName === 'string') resolved.policies.push({ policyName: props.PolicyName });
        else if (props.PolicyDocument !== undefined) {
          const doc =
            typeof props.PolicyDocument === 'string'
              ? props.PolicyDocument
              : JSON.stringify(props.PolicyDocument);
          resolved.policies.push({ policyDocument: doc });
        } else throw new TemplateError('AWS::IoT::Policy needs PolicyName or PolicyDocument');
        break;
      }
      default:
        throw new TemplateError(`Unsupported resource type ${String(resource.Type)}`);
    }
  }
  if (isObject(body.DeviceConfiguration)) {
    for (const [k, v] of Object.entries(evaluate(body.DeviceConfiguration) as Record<string, Json>)) {
      resolved.deviceConfiguration[k] = String(v);
    }
  }
  return resolved;
}
