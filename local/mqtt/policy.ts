/**
 * AWS IoT Core policy evaluation for the MQTT actions (iot:Connect, iot:Publish, iot:Subscribe,
 * iot:Receive): every policy attached to the certificate, and to the thing groups of the thing the
 * connection is attached to, is read; an explicit Deny wins, then an Allow, and anything else is denied.
 *
 * Supported: `Action` / `NotAction` and `Resource` / `NotResource` (string or list) with the `*` and `?`
 * wildcards, the policy variables `${iot:ClientId}`, `${iot:Connection.Thing.ThingName}` and
 * `${iot:Connection.Thing.IsAttached}`, and the condition operators Bool, StringEquals,
 * StringNotEquals and StringLike on those keys. A statement whose resource names a variable that
 * cannot be resolved (no thing attached) matches nothing; a condition this evaluator does not know
 * makes an Allow not apply and a Deny apply (fail closed).
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/iot-policies.html
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/thing-policy-variables.html
 */

/** The MQTT policy actions. */
export type MqttAction =
  | 'iot:Connect'
  | 'iot:Publish'
  | 'iot:RetainPublish'
  | 'iot:Subscribe'
  | 'iot:Receive';

/** What policy variables resolve to for one connection. */
export interface PolicyConnection {
  clientId: string;
  /** The thing named like the client id, when it is attached to the connection's certificate. */
  thingName?: string;
}

/** The outcome of an evaluation. */
export type PolicyVerdict = 'ALLOW' | 'EXPLICIT_DENY' | 'IMPLICIT_DENY';

interface Statement {
  effect: 'Allow' | 'Deny';
  actions?: string[];
  notActions?: string[];
  resources?: string[];
  notResources?: string[];
  condition?: Record<string, Record<string, unknown>>;
}

/** Thrown when a policy document cannot be read. */
export class PolicyDocumentError extends Error {
  override name = 'PolicyDocumentError';
}

const parsedDocuments = new Map<string, Statement[]>();

function list(value: unknown): string[] | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string') return [value];
  if (Array.isArray(value) && value.every((item) => typeof item === 'string')) return value;
  throw new PolicyDocumentError('Action and Resource must be a string or a list of strings');
}

/** Parses (and caches) a policy document's statements. */
export function parsePolicyDocument(document: string): Statement[] {
  const cached = parsedDocuments.get(document);
  if (cached) return cached;
  let parsed: unknown;
  try {
    parsed = JSON.parse(document);
  } catch (cause) {
    throw new PolicyDocumentError('the policy document is not JSON', { cause });
  }
  const raw = (parsed as { Statement?: unknown }).Statement;
  const statements = (Array.isArray(raw) ? raw : [raw]).map((item): Statement => {
    const statement = item as Record<string, unknown>;
    if (statement.Effect !== 'Allow' && statement.Effect !== 'Deny')
      throw new PolicyDocumentError('a statement needs Effect Allow or Deny');
    const actions = list(statement.Action);
    const notActions = list(statement.NotAction);
    const resources = list(statement.Resource);
    const notResources = list(statement.NotResource);
    return {
      effect: statement.Effect,
      ...(actions ? { actions } : {}),
      ...(notActions ? { notActions } : {}),
      ...(resources ? { resources } : {}),
      ...(notResources ? { notResources } : {}),
      ...(statement.Condition ? { condition: statement.Condition as Statement['condition'] } : {}),
    };
  });
  if (parsedDocuments.size > 1000) parsedDocuments.clear();
  parsedDocuments.set(document, statements);
  return statements;
}

/** IAM-style wildcard match: `*` any run of characters, `?` one character. */
export function wildcardMatch(pattern: string, value: string, ignoreCase = false): boolean {
  return new RegExp(`^${globSource(pattern)}$`, ignoreCase ? 'si' : 's').test(value);
}

/** `*` and `?` become regex wildcards, except when preceded by LITERAL (a substituted variable's). */
function globSource(pattern: string): string {
  let out = '';
  for (let i = 0; i < pattern.length; i += 1) {
    const ch = pattern[i] as string;
    if (ch === LITERAL) {
      i += 1;
      out += `\\${pattern[i] ?? ''}`;
    } else if (ch === '*') out += '.*';
    else if (ch === '?') out += '.';
    else out += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return out;
}

const LITERAL = '\u0000';
const VARIABLE = /\$\{([^}]+)\}/g;

/** Substitutes policy variables; undefined when one cannot be resolved. */
function substitute(pattern: string, connection: PolicyConnection): string | undefined {
  let unresolved = false;
  const out = pattern.replace(VARIABLE, (whole, name: string) => {
    const value = variable(name, connection);
    if (value === undefined) {
      unresolved = true;
      return whole;
    }
    // A substituted value is literal: its own * and ? are not wildcards.
    return value.replace(/[*?]/g, (ch) => `${LITERAL}${ch}`);
  });
  return unresolved ? undefined : out;
}

function variable(name: string, connection: PolicyConnection): string | undefined {
  switch (name) {
    case 'iot:ClientId':
      return connection.clientId;
    case 'iot:Connection.Thing.ThingName':
      return connection.thingName;
    case 'iot:Connection.Thing.IsAttached':
      return connection.thingName === undefined ? 'false' : 'true';
    default:
      return undefined;
  }
}

function resourceMatches(pattern: string, resource: string, connection: PolicyConnection): boolean {
  const substituted = substitute(pattern, connection);
  return substituted !== undefined && wildcardMatch(substituted, resource);
}

/** true / false when the condition block holds or not; undefined when it uses something unknown. */
function conditionHolds(
  condition: Statement['condition'],
  connection: PolicyConnection,
): boolean | undefined {
  if (!condition) return true;
  for (const [operator, entries] of Object.entries(condition)) {
    for (const [key, expected] of Object.entries(entries ?? {})) {
      const actual = variable(key, connection);
      const values = (Array.isArray(expected) ? expected : [expected]).map(String);
      let holds: boolean;
      switch (operator) {
        case 'Bool':
          holds = actual !== undefined && values.some((value) => value.toLowerCase() === actual);
          break;
        case 'StringEquals':
          holds = actual !== undefined && values.includes(actual);
          break;
        case 'StringNotEquals':
          holds = actual !== undefined && !values.includes(actual);
          break;
        case 'StringLike':
          holds = actual !== undefined && values.some((value) => wildcardMatch(value, actual));
          break;
        default:
          return undefined;
      }
      if (!holds) return false;
    }
  }
  return true;
}

function statementApplies(
  statement: Statement,
  action: MqttAction,
  resource: string,
  connection: PolicyConnection,
): boolean {
  const actionMatch = statement.actions
    ? statement.actions.some((pattern) => wildcardMatch(pattern, action, true))
    : statement.notActions
      ? !statement.notActions.some((pattern) => wildcardMatch(pattern, action, true))
      : false;
  if (!actionMatch) return false;
  const resourceMatch = statement.resources
    ? statement.resources.some((pattern) => resourceMatches(pattern, resource, connection))
    : statement.notResources
      ? !statement.notResources.some((pattern) => resourceMatches(pattern, resource, connection))
      : false;
  if (!resourceMatch) return false;
  const holds = conditionHolds(statement.condition, connection);
  return holds === undefined ? statement.effect === 'Deny' : holds;
}

/**
 * Evaluates `action` on `resource` (a full ARN) against the policy documents. A document that cannot
 * be parsed counts as an explicit deny.
 */
export function evaluatePolicies(
  documents: readonly string[],
  action: MqttAction,
  resource: string,
  connection: PolicyConnection,
): PolicyVerdict {
  let allowed = false;
  for (const document of documents) {
    let statements: Statement[];
    try {
      statements = parsePolicyDocument(document);
    } catch {
      return 'EXPLICIT_DENY';
    }
    for (const statement of statements) {
      if (!statementApplies(statement, action, resource, connection)) continue;
      if (statement.effect === 'Deny') return 'EXPLICIT_DENY';
      allowed = true;
    }
  }
  return allowed ? 'ALLOW' : 'IMPLICIT_DENY';
}
