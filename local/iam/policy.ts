/**
 * IAM identity-based policy evaluation, as AWS documents it:
 * https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
 *
 * An explicit Deny in any statement wins; otherwise a matching Allow allows; otherwise the request is
 * implicitly denied. A statement matches when its Action (or NotAction), Resource (or NotResource) and
 * every Condition match. Condition operators follow
 * https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
 * including `…IfExists`, `ForAllValues:` / `ForAnyValue:` and `Null`. An operator this module does not
 * know makes its statement unusable: an Allow never matches on it and a Deny always does, so an
 * unknown construct can only make the local answer stricter than AWS's, never more permissive.
 *
 * Only identity-based policies are evaluated: the local stack has no SCPs, permission boundaries or
 * session policies, and no resource policy grants a function anything the role does not (the queue
 * policy in serverless.yml grants `iot.amazonaws.com` only).
 */

export type Effect = 'Allow' | 'Deny';

export interface PolicyStatement {
  Sid?: string;
  Effect: Effect;
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: string | string[];
  NotResource?: string | string[];
  Condition?: Record<string, Record<string, unknown>>;
}

export interface PolicyDocument {
  Version?: string;
  Statement: PolicyStatement | PolicyStatement[];
}

/** A named policy of a role (inline policy name or managed policy ARN). */
export interface NamedPolicy {
  name: string;
  document: PolicyDocument;
}

/** Request context keys: a string for single-valued keys, an array for multivalued ones. */
export type RequestContext = Record<string, string | string[] | undefined>;

/** One authorization question: may the principal perform `action` on `resource` in this context? */
export interface AuthorizationRequest {
  /** `service:Action`, e.g. `dynamodb:PutItem`. */
  action: string;
  /** The resource ARN, or `*` for actions that support no resource-level permissions. */
  resource: string;
  context: RequestContext;
}

export type Decision = 'Allowed' | 'ExplicitlyDenied' | 'ImplicitlyDenied';

export interface EvaluationResult {
  decision: Decision;
  /** The statements that decided (the Deny, or the Allows), as `policy name#Sid or index`. */
  statements: string[];
  /** Condition operators this module could not evaluate, seen while evaluating. */
  unsupported: string[];
}

const asArray = <T>(value: T | T[] | undefined): T[] =>
  value === undefined ? [] : Array.isArray(value) ? value : [value];

/** Evaluates a request against identity-based policies. */
export function evaluate(policies: readonly NamedPolicy[], request: AuthorizationRequest): EvaluationResult {
  const allows: string[] = [];
  const denies: string[] = [];
  const unsupported: string[] = [];
  for (const policy of policies) {
    asArray(policy.document.Statement).forEach((statement, index) => {
      const id = `${policy.name}#${statement.Sid ?? index}`;
      const outcome = statementApplies(statement, request, unsupported);
      if (outcome === 'no') return;
      // A Deny whose condition cannot be evaluated is taken as applying, an Allow as not (stricter).
      if (statement.Effect === 'Deny') denies.push(id);
      else if (outcome === 'yes') allows.push(id);
    });
  }
  if (denies.length > 0) return { decision: 'ExplicitlyDenied', statements: denies, unsupported };
  if (allows.length > 0) return { decision: 'Allowed', statements: allows, unsupported };
  return { decision: 'ImplicitlyDenied', statements: [], unsupported };
}

type Applies = 'yes' | 'no' | 'unknown';

function statementApplies(
  statement: PolicyStatement,
  request: AuthorizationRequest,
  unsupported: string[],
): Applies {
  if (statement.Action !== undefined) {
    if (!asArray(statement.Action).some((pattern) => actionMatches(pattern, request.action))) return 'no';
  } else if (statement.NotAction !== undefined) {
    if (asArray(statement.NotAction).some((pattern) => actionMatches(pattern, request.action))) return 'no';
  } else {
    return 'no';
  }
  if (statement.Resource !== undefined) {
    const patterns = asArray(statement.Resource).map((pattern) => substitute(pattern, request.context));
    if (!patterns.some((pattern) => pattern !== undefined && resourceMatches(pattern, request.resource)))
      return 'no';
  } else if (statement.NotResource !== undefined) {
    const patterns = asArray(statement.NotResource).map((pattern) => substitute(pattern, request.context));
    if (patterns.some((pattern) => pattern !== undefined && resourceMatches(pattern, request.resource)))
      return 'no';
  } else {
    return 'no';
  }
  let result: Applies = 'yes';
  for (const [operator, block] of Object.entries(statement.Condition ?? {})) {
    for (const [key, values] of Object.entries(block)) {
      const outcome = conditionMatches(operator, key, asArray(values).map(String), request.context);
      if (outcome === 'unknown') {
        unsupported.push(operator);
        result = 'unknown';
      } else if (!outcome) {
        return 'no';
      }
    }
  }
  return result;
}

/** `iot:Attach*` against `iot:AttachPolicy`: case-insensitive, `*` and `?` wildcards. */
export function actionMatches(pattern: string, action: string): boolean {
  if (pattern === '*') return true;
  return globToRegExp(pattern, true).test(action);
}

/**
 * Resource ARN matching: `*` alone matches everything; otherwise the pattern and the ARN are compared
 * segment by segment for partition, service, region and account, and the resource part as a whole —
 * wildcards never cross the `:` between the first five segments. Case-sensitive.
 * https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html
 */
export function resourceMatches(pattern: string, resource: string): boolean {
  if (pattern === '*') return true;
  const patternParts = splitArn(pattern);
  const resourceParts = splitArn(resource);
  // An ARN pattern with fewer than six segments matches no ARN (wildcards do not make up segments).
  if (pattern.startsWith('arn:') && !patternParts) return false;
  if (!patternParts || !resourceParts) return globToRegExp(pattern, false).test(resource);
  return patternParts.every((part, index) => globToRegExp(part, false).test(resourceParts[index] ?? ''));
}

function splitArn(arn: string): string[] | undefined {
  const parts = arn.split(':');
  if (parts.length < 6 || parts[0] !== 'arn') return undefined;
  return [...parts.slice(0, 5), parts.slice(5).join(':')];
}

const globCache = new Map<string, RegExp>();

function globToRegExp(glob: string, ignoreCase: boolean): RegExp {
  const cacheKey = `${ignoreCase ? 'i' : 's'}${glob}`;
  let regexp = globCache.get(cacheKey);
  if (!regexp) {
    const body = [...glob]
      .map((ch) =>
        ch === '*'
          ? '.*'
          : ch === '?'
            ? '.'
            : ch === LITERAL_STAR
              ? '\\*'
              : ch === LITERAL_QMARK
                ? '\\?'
                : ch.replace(/[.+^${}()|[\]\\]/g, '\\$&'),
      )
      .join('');
    regexp = new RegExp(`^${body}$`, ignoreCase ? 'is' : 's');
    globCache.set(cacheKey, regexp);
  }
  return regexp;
}

/**
 * Policy variables (`${aws:username}`, `${*}`, `${?}`, `${$}`, `${key, 'default'}`) in a Resource
 * or a condition value. A variable with no value in the context and no default makes the element
 * match nothing (AWS: "the policy statement does not match").
 * https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html
 */
function substitute(value: string, context: RequestContext): string | undefined {
  if (!value.includes('${')) return value;
  let missing = false;
  const replaced = value.replace(/\$\{([^}]*)\}/g, (_whole, inner: string) => {
    if (inner === '*') return LITERAL_STAR;
    if (inner === '?') return LITERAL_QMARK;
    if (inner === '$') return '$';
    const [rawKey, rawDefault] = inner.split(',', 2);
    const key = (rawKey ?? '').trim();
    const found = lookup(context, key);
    const single = Array.isArray(found) ? (found.length === 1 ? found[0] : undefined) : found;
    if (single !== undefined) return single.replaceAll('*', LITERAL_STAR).replaceAll('?', LITERAL_QMARK);
    const fallback = rawDefault?.trim().match(/^'(.*)'$/)?.[1];
    if (fallback !== undefined) return fallback;
    missing = true;
    return '';
  });
  return missing ? undefined : replaced;
}

/** `${*}`, `${?}` and wildcard characters inside substituted values match themselves, not anything. */
const LITERAL_STAR = '\uE000';
const LITERAL_QMARK = '\uE001';

/** Condition keys are case-insensitive. */
function lookup(context: RequestContext, key: string): string | string[] | undefined {
  if (key in context) return context[key];
  const lower = key.toLowerCase();
  for (const [name, value] of Object.entries(context)) {
    if (name.toLowerCase() === lower) return value;
  }
  return undefined;
}

type Comparator = (requestValue: string, policyValue: string) => boolean | 'unknown';

const stringLike: Comparator = (value, pattern) => globToRegExp(pattern, false).test(value);
const arnLike: Comparator = (value, pattern) => {
  const patternParts = splitArn(pattern);
  const valueParts = splitArn(value);
  if (!patternParts || !valueParts) return false;
  return patternParts.every((part, index) => globToRegExp(part, false).test(valueParts[index] ?? ''));
};
const numeric =
  (compare: (a: number, b: number) => boolean): Comparator =>
  (value, policy) => {
    const a = Number(value);
    const b = Number(policy);
    if (!Number.isFinite(a) || !Number.isFinite(b)) return false;
    return compare(a, b);
  };
const date =
  (compare: (a: number, b: number) => boolean): Comparator =>
  (value, policy) => {
    const a = toEpoch(value);
    const b = toEpoch(policy);
    if (a === undefined || b === undefined) return false;
    return compare(a, b);
  };

function toEpoch(value: string): number | undefined {
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const parsed = Date.parse(value);
  return Number.isNaN(parsed) ? undefined : parsed;
}

/** Base operator → [comparator, negated]. */
const OPERATORS: Record<string, [Comparator, boolean]> = {
  StringEquals: [(a, b) => a === b, false],
  StringNotEquals: [(a, b) => a === b, true],
  StringEqualsIgnoreCase: [(a, b) => a.toLowerCase() === b.toLowerCase(), false],
  StringNotEqualsIgnoreCase: [(a, b) => a.toLowerCase() === b.toLowerCase(), true],
  StringLike: [stringLike, false],
  StringNotLike: [stringLike, true],
  NumericEquals: [numeric((a, b) => a === b), false],
  NumericNotEquals: [numeric((a, b) => a === b), true],
  NumericLessThan: [numeric((a, b) => a < b), false],
  NumericLessThanEquals: [numeric((a, b) => a <= b), false],
  NumericGreaterThan: [numeric((a, b) => a > b), false],
  NumericGreaterThanEquals: [numeric((a, b) => a >= b), false],
  DateEquals: [date((a, b) => a === b), false],
  DateNotEquals: [date((a, b) => a === b), true],
  DateLessThan: [date((a, b) => a < b), false],
  DateLessThanEquals: [date((a, b) => a <= b), false],
  DateGreaterThan: [date((a, b) => a > b), false],
  DateGreaterThanEquals: [date((a, b) => a >= b), false],
  Bool: [(a, b) => a.toLowerCase() === b.toLowerCase(), false],
  ArnEquals: [arnLike, false],
  ArnLike: [arnLike, false],
  ArnNotEquals: [arnLike, true],
  ArnNotLike: [arnLike, true],
};

/**
 * Evaluates one condition key. Semantics (AWS "Condition operators"): for a single-valued key the
 * request value must match any policy value (negated operators: match none). A key absent from the
 * context fails a non-negated operator and satisfies a negated one; `…IfExists` makes an absent key
 * satisfy either. `ForAllValues:` is true when every request value matches (vacuously true for an
 * absent or empty key); `ForAnyValue:` when at least one does (false when absent).
 */
export function conditionMatches(
  operator: string,
  key: string,
  policyValues: string[],
  context: RequestContext,
): boolean | 'unknown' {
  let base = operator;
  let set: 'all' | 'any' | undefined;
  if (base.startsWith('ForAllValues:')) {
    set = 'all';
    base = base.slice('ForAllValues:'.length);
  } else if (base.startsWith('ForAnyValue:')) {
    set = 'any';
    base = base.slice('ForAnyValue:'.length);
  }
  const ifExists = base.endsWith('IfExists');
  if (ifExists) base = base.slice(0, -'IfExists'.length);
  const raw = lookup(context, key);
  if (base === 'Null') {
    if (set || ifExists) return 'unknown';
    const absent = raw === undefined || (Array.isArray(raw) && raw.length === 0);
    return policyValues.some((value) => (value.toLowerCase() === 'true') === absent);
  }
  const entry = OPERATORS[base];
  if (!entry) return 'unknown';
  const [compare, negated] = entry;
  const substituted = policyValues.map((value) => substitute(value, context));
  const matchOne = (requestValue: string): boolean | 'unknown' => {
    let anyUnknown = false;
    for (const policyValue of substituted) {
      if (policyValue === undefined) continue;
      const result = compare(requestValue, policyValue);
      if (result === 'unknown') anyUnknown = true;
      else if (result) return true;
    }
    return anyUnknown ? 'unknown' : false;
  };
  const values = raw === undefined ? undefined : asArray(raw);
  if (set === 'all') {
    if (!values || values.length === 0) return true;
    for (const value of values) {
      const matched = matchOne(value);
      if (matched === 'unknown') return 'unknown';
      if (negated ? matched : !matched) return false;
    }
    return true;
  }
  if (set === 'any') {
    if (!values || values.length === 0) return false;
    for (const value of values) {
      const matched = matchOne(value);
      if (matched === 'unknown') return 'unknown';
      if (negated ? !matched : matched) return true;
    }
    return false;
  }
  if (values === undefined) return ifExists || negated;
  // A single-valued operator on a multivalued key (an array, e.g. dynamodb:LeadingKeys) never matches:
  // AWS asks for ForAllValues / ForAnyValue there.
  if (Array.isArray(raw)) return false;
  const matched = matchOne(values[0] ?? '');
  if (matched === 'unknown') return 'unknown';
  return negated ? !matched : matched;
}
