/**
 * Configuration of every fleetgate function (docs/architecture.md §6). Per-stage parameters in serverless.yml
 * become environment variables; `loadConfig` validates them once, at cold start, into a frozen typed
 * object and reports every problem at once. Nothing below a handler reads `process.env`.
 *
 * The variables, their defaults and meanings: `shared/config-variables.ts` (also the README's table).
 */
import { EC_CURVES, type KeyPolicy } from './domain/certificate-rules';
import { REPROVISIONING_POLICIES, type ReprovisioningPolicy } from './domain/provisioning-rules';
import { SERIAL_SOURCES, type SerialSource } from './domain/registration-rules';
import { ConfigError } from './errors';

export const DEFAULT_SERIAL_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_-]{2,63}$';

/** Everything any fleetgate function is configured with. Frozen; build one with `loadConfig`. */
export interface Config {
  readonly tableName: string;
  readonly thingNamePrefix: string;
  readonly serialPattern: RegExp;
  readonly serialParameter: string;
  readonly claimRateLimitPerMinute: number;
  readonly claimGroups: Readonly<Record<string, readonly string[]>>;
  readonly defaultAllowedClaim?: string;
  readonly reprovisioningPolicy: ReprovisioningPolicy;
  readonly provisioningWindowSeconds: number;
  readonly hookTimeBudgetMs: number;
  readonly hookSafetyMarginMs: number;
  readonly clockSkewSeconds: number;
  readonly keyPolicy: Readonly<KeyPolicy>;
  readonly maxCertificatePemBytes: number;
  readonly devicePolicyName: string;
  readonly quarantineGroupName: string;
  readonly trustedCaIds: readonly string[];
  readonly serialSource: SerialSource;
  readonly serialCnPattern: RegExp;
  readonly deviceThingGroup?: string;
  readonly quarantineQueueUrl?: string;
  readonly caCacheTtlSeconds: number;
  readonly registrationLeaseSeconds: number;
  readonly duplicateClientIdThreshold: number;
  readonly duplicateClientIdWindowSeconds: number;
  readonly sessionTtlSeconds: number;
  readonly suspicionTtlSeconds: number;
  readonly expiryWindowsDays: readonly number[];
  readonly maxCertificateAgeDays: number;
  readonly expiryLookbackDays: number;
  readonly rotationWindowDays: number;
  readonly sweepSafetyMarginMs: number;
  readonly sweepPageSize: number;
  readonly rotationGraceSeconds: number;
  readonly rotationDeadlineSeconds: number;
  readonly rotationLeaseSeconds: number;
  readonly rotationNoticesPerRun: number;
  readonly reconcileMaxTps: number;
  readonly reconcilePageSize: number;
  readonly factoryNeverConnectedDays: number;
  readonly reconcileSafetyMarginMs: number;
  readonly reconcileQueueUrl?: string;
  /** The DLQ of the queue an SQS consumer reads: where a message that can never succeed goes at once. */
  readonly deadLetterQueueUrl?: string;
  readonly reportDestination: string;
  /**
   * The provisioning template of provisioning by trusted user: a request through it must come with a
   * temporary claim the installer API issued for that serial (unset: no such template).
   */
  readonly installerTemplateName?: string;
  readonly installerClaimsPerMinute: number;
  /** The JWT claim that names the installer (the authorizer's `jwt.claims`). */
  readonly installerIdClaim: string;
}

/** Thing names are `[a-zA-Z0-9:_-]{1,128}`; the prefix leaves room for a 64-character serial. */
const THING_NAME_PREFIX = /^[a-zA-Z0-9:_-]{0,64}$/;
const CLAIM_ID = /^[0-9a-fA-F]{64}$/;
const GROUP_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const POLICY_NAME = /^[\w+=,.@-]{1,128}$/;
const THING_GROUP_NAME = /^[a-zA-Z0-9:_-]{1,128}$/;

/**
 * The rules of every variable, as a table of small readers rather than a zod schema. This schema is
 * built and run in every function's cold start, and zod's version of it (≈130 schema instances
 * plus zod's first-run compilation of its parsers) was ~30 ms of the pre-provisioning hook's
 * ~130 ms cold load, on AWS IoT's 5 s budget (`npm run bench -- handlers`; measured by building the
 * hook with this module stubbed out). Environment variables are flat strings with a handful of rule
 * kinds — a whole number in a range, a pattern, one of a list, a comma-separated list, JSON, a URL,
 * a regular expression — so each is a function here; zod stays for events and stored items. The
 * problems keep zod's wording and paths (`NAME: rule`, `NAME.1: rule` for a list item).
 */
type Report = (message: string, path?: readonly (string | number)[]) => void;
/** Reads one variable (undefined: unset); reports every problem and returns INVALID after any. */
type Reader<T> = (value: string | undefined, report: Report) => T | typeof INVALID;
const INVALID: unique symbol = Symbol('invalid');

/** zod's name for a JSON value's type in "expected …, received …". */
function received(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

const oneOfMessage = (values: readonly string[]) =>
  `Invalid option: expected one of ${values.map((value) => JSON.stringify(value)).join('|')}`;

/** A string matching `pattern`; `fallback` when unset. */
const text =
  (fallback: string, pattern: RegExp, message: string): Reader<string> =>
  (value = fallback, report) => {
    if (pattern.test(value)) return value;
    report(message);
    return INVALID;
  };

/** A string matching `pattern`, or unset. */
const optionalText =
  (pattern: RegExp, message: string): Reader<string | undefined> =>
  (value, report) => {
    if (value === undefined || pattern.test(value)) return value;
    report(message);
    return INVALID;
  };

/** One of `values`; `fallback` when unset. */
const oneOf =
  <T extends string>(values: readonly T[], fallback: T): Reader<T> =>
  (value = fallback, report) => {
    if ((values as readonly string[]).includes(value)) return value as T;
    report(oneOfMessage(values));
    return INVALID;
  };

/**
 * A whole number in [min, max], `fallback` when unset (surrounding spaces ignored). The messages are
 * the ones a zod chain string → number → int → min → max gave, in that order.
 */
const integer =
  (fallback: number, min: number, max: number): Reader<number> =>
  (raw, report) => {
    const value = raw === undefined ? String(fallback) : raw.trim();
    if (!/^\d+$/.test(value)) {
      report(`must be a whole number between ${min} and ${max}`);
      return INVALID;
    }
    const number = Number(value);
    const problems = [
      ...(Number.isSafeInteger(number) ? [] : [`Too big: expected int to be <=${Number.MAX_SAFE_INTEGER}`]),
      ...(number < min ? [`Too small: expected number to be >=${min}`] : []),
      ...(number > max ? [`Too big: expected number to be <=${max}`] : []),
    ];
    for (const problem of problems) report(problem);
    return problems.length ? INVALID : number;
  };

/** A comma-separated list (items trimmed, empty items dropped), each item read by `item`. */
const list =
  <T>(
    fallback: string,
    item: (value: string, report: Report) => T | typeof INVALID,
    atLeastOne?: string,
  ): Reader<T[]> =>
  (value = fallback, report) => {
    const items = value
      .split(',')
      .map((entry) => entry.trim())
      .filter((entry) => entry !== '');
    if (atLeastOne && items.length === 0) {
      report(atLeastOne);
      return INVALID;
    }
    const read = items.map((entry, index) => item(entry, (message) => report(message, [index])));
    return read.some((entry) => entry === INVALID) ? INVALID : (read as T[]);
  };

/** An item matching `pattern`. */
const matching =
  (pattern: RegExp, message: string) =>
  (value: string, report: Report): string | typeof INVALID => {
    if (pattern.test(value)) return value;
    report(message);
    return INVALID;
  };

/** An absolute URL (what `new URL` accepts), or unset; surrounding spaces dropped. */
const sqsQueueUrl: Reader<string | undefined> = (value, report) => {
  if (value === undefined) return undefined;
  try {
    new URL(value.trim());
    return value.trim();
  } catch {
    report('must be an SQS queue URL');
    return INVALID;
  }
};

/** A regular expression, compiled; `check` may add a rule of its own. */
const pattern =
  (fallback: string, check: (source: string) => string | undefined): Reader<RegExp> =>
  (value = fallback, report) => {
    const problem = check(value);
    if (problem) {
      report(problem);
      return INVALID;
    }
    try {
      return new RegExp(value);
    } catch {
      report('is not a valid regular expression');
      return INVALID;
    }
  };

/** `{ "<group>": ["<64-hex claim id>", …] }`, as JSON; `{}` when unset. */
const claimGroups: Reader<Record<string, string[]>> = (value = '{}', report) => {
  let groups: unknown;
  try {
    groups = JSON.parse(value);
  } catch {
    report('must be JSON');
    return INVALID;
  }
  if (typeof groups !== 'object' || groups === null || Array.isArray(groups)) {
    report(`Invalid input: expected record, received ${received(groups)}`);
    return INVALID;
  }
  let valid = true;
  const fail = (message: string, path: (string | number)[]) => {
    report(message, path);
    valid = false;
  };
  for (const [name, ids] of Object.entries(groups)) {
    if (!GROUP_NAME.test(name)) fail('group names must match [A-Za-z0-9_.-]{1,64}', [name]);
    if (!Array.isArray(ids)) {
      fail(`Invalid input: expected array, received ${received(ids)}`, [name]);
      continue;
    }
    ids.forEach((id: unknown, index) => {
      if (typeof id !== 'string')
        fail(`Invalid input: expected string, received ${received(id)}`, [name, index]);
      else if (!CLAIM_ID.test(id)) fail('claim ids must be 64 hex characters', [name, index]);
    });
  }
  return valid ? (groups as Record<string, string[]>) : INVALID;
};

/** `*`, a claim certificate id or `group:<name>` (spaces around dropped), or unset. */
const claimReference: Reader<string | undefined> = (value, report) => {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (trimmed === '*' || CLAIM_ID.test(trimmed) || /^group:[A-Za-z0-9_.-]{1,64}$/.test(trimmed))
    return trimmed;
  report('must be *, a 64-hex claim certificate id or group:<name>');
  return INVALID;
};

const required: Reader<string> = (value, report) => {
  const trimmed = value?.trim() ?? '';
  if (trimmed !== '') return trimmed;
  report('is required');
  return INVALID;
};

/** A window length in whole days, 1–3650. */
const windowDays = (value: string, report: Report): number | typeof INVALID => {
  if (!/^\d+$/.test(value)) {
    report('windows are whole numbers of days');
    return INVALID;
  }
  return integer(0, 1, 3650)(value, report);
};

/** The variables, in the order their problems are listed. */
const VARIABLES = {
  TABLE_NAME: required,
  THING_NAME_PREFIX: text('', THING_NAME_PREFIX, 'must match [a-zA-Z0-9:_-]{0,64}'),
  SERIAL_PATTERN: pattern(DEFAULT_SERIAL_PATTERN, (source) =>
    source.startsWith('^') && source.endsWith('$') ? undefined : 'must be anchored with ^ and $',
  ),
  SERIAL_PARAMETER: text('SerialNumber', /^[A-Za-z0-9_]{1,64}$/, 'must be a template parameter name'),
  CLAIM_RATE_LIMIT_PER_MINUTE: integer(60, 1, 100_000),
  CLAIM_GROUPS: claimGroups,
  DEFAULT_ALLOWED_CLAIM: claimReference,
  REPROVISIONING_POLICY: oneOf(REPROVISIONING_POLICIES, 'never'),
  PROVISIONING_WINDOW_SECONDS: integer(3600, 60, 7 * 86_400),
  HOOK_TIME_BUDGET_MS: integer(3000, 100, 4_500),
  HOOK_SAFETY_MARGIN_MS: integer(250, 0, 2_000),
  CLOCK_SKEW_SECONDS: integer(300, 0, 86_400),
  ALLOWED_EC_CURVES: list(
    'P-256,P-384',
    (value, report) => oneOf(EC_CURVES, 'P-256')(value, report),
    'must name at least one curve',
  ),
  MIN_RSA_BITS: integer(2048, 2048, 16_384),
  MAX_CERTIFICATE_PEM_BYTES: integer(16_384, 1_024, 1_048_576),
  DEVICE_POLICY_NAME: text('fleetgate-device', POLICY_NAME, 'must be an IoT policy name'),
  QUARANTINE_GROUP_NAME: text('fleetgate-quarantine', THING_GROUP_NAME, 'must be a thing group name'),
  TRUSTED_CA_IDS: list('', matching(CLAIM_ID, 'CA certificate ids are 64 hex characters')),
  SERIAL_SOURCE: oneOf(SERIAL_SOURCES, 'cn'),
  // A pattern with a capture group matches '' through the alternative and reports the groups.
  SERIAL_CN_PATTERN: pattern('^(.+)$', (source) => {
    try {
      return (new RegExp(`${source}|`).exec('')?.length ?? 1) - 1 < 1
        ? 'must have a capture group for the serial'
        : undefined;
    } catch {
      return 'is not a valid regular expression';
    }
  }),
  DEVICE_THING_GROUP: optionalText(THING_GROUP_NAME, 'must be a thing group name'),
  QUARANTINE_QUEUE_URL: sqsQueueUrl,
  CA_CACHE_TTL_SECONDS: integer(300, 0, 86_400),
  REGISTRATION_LEASE_SECONDS: integer(120, 1, 3_600),
  DUPLICATE_CLIENTID_THRESHOLD: integer(3, 1, 1_000),
  DUPLICATE_CLIENTID_WINDOW_SECONDS: integer(300, 1, 86_400),
  SESSION_TTL_SECONDS: integer(604_800, 60, 90 * 86_400),
  SUSPICION_TTL_SECONDS: integer(604_800, 60, 90 * 86_400),
  EXPIRY_WINDOWS_DAYS: list('7,30', windowDays, 'must name at least one window'),
  MAX_CERTIFICATE_AGE_DAYS: integer(825, 1, 36_500),
  EXPIRY_LOOKBACK_DAYS: integer(90, 0, 3650),
  ROTATION_WINDOW_DAYS: integer(30, 0, 3650),
  SWEEP_SAFETY_MARGIN_MS: integer(20_000, 0, 600_000),
  SWEEP_PAGE_SIZE: integer(500, 1, 1000),
  ROTATION_GRACE_SECONDS: integer(86_400, 0, 90 * 86_400),
  ROTATION_DEADLINE_SECONDS: integer(86_400, 60, 30 * 86_400),
  ROTATION_LEASE_SECONDS: integer(120, 1, 3_600),
  ROTATION_NOTICES_PER_RUN: integer(100, 0, 100_000),
  RECONCILE_MAX_TPS: integer(5, 1, 100),
  RECONCILE_PAGE_SIZE: integer(250, 1, 250),
  FACTORY_NEVER_CONNECTED_DAYS: integer(30, 1, 3650),
  RECONCILE_SAFETY_MARGIN_MS: integer(60_000, 0, 600_000),
  RECONCILE_QUEUE_URL: sqsQueueUrl,
  DEAD_LETTER_QUEUE_URL: sqsQueueUrl,
  REPORT_DESTINATION: text(
    'file://.fleetgate/reports',
    /^(s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?|file:\/\/.+)$/,
    'must be s3://bucket/prefix or file://dir',
  ),
  INSTALLER_TEMPLATE_NAME: optionalText(
    /^[0-9A-Za-z_-]{1,36}$/,
    'must be a provisioning template name ([0-9A-Za-z_-]{1,36})',
  ),
  INSTALLER_CLAIMS_PER_MINUTE: integer(10, 1, 10_000),
  INSTALLER_ID_CLAIM: text('sub', /^[A-Za-z0-9_:.-]{1,64}$/, 'must be a JWT claim name'),
} satisfies Record<string, Reader<unknown>>;

type Variables = typeof VARIABLES;
type Values = { [K in keyof Variables]: Exclude<ReturnType<Variables[K]>, typeof INVALID> };

/** Every variable read; the problems (`NAME: rule`), all of them, when any. */
function readVariables(env: Readonly<Record<string, string | undefined>>): Values | string[] {
  const problems: string[] = [];
  const values: Record<string, unknown> = {};
  for (const [name, read] of Object.entries(VARIABLES) as [string, Reader<unknown>][]) {
    const raw = env[name];
    values[name] = read(raw === '' ? undefined : raw, (message, path = []) =>
      problems.push(`${[name, ...path].join('.')}: ${message}`),
    );
  }
  return problems.length ? problems : (values as Values);
}

/**
 * Validates `env` into a frozen `Config`. Empty strings count as unset, so a stage parameter left
 * blank falls back to its default.
 * @throws ConfigError listing every problem (`NAME: rule`), never just the first.
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env): Config {
  const e = readVariables(env);
  if (Array.isArray(e)) throw new ConfigError(e);
  const problems: string[] = [];
  if (e.DEFAULT_ALLOWED_CLAIM?.startsWith('group:')) {
    const group = e.DEFAULT_ALLOWED_CLAIM.slice('group:'.length);
    if (!(group in e.CLAIM_GROUPS))
      problems.push(`DEFAULT_ALLOWED_CLAIM: group ${group} is not in CLAIM_GROUPS`);
  }
  if (problems.length) throw new ConfigError(problems);
  const config: Config = {
    tableName: e.TABLE_NAME,
    thingNamePrefix: e.THING_NAME_PREFIX,
    serialPattern: e.SERIAL_PATTERN,
    serialParameter: e.SERIAL_PARAMETER,
    claimRateLimitPerMinute: e.CLAIM_RATE_LIMIT_PER_MINUTE,
    claimGroups: Object.fromEntries(
      Object.entries(e.CLAIM_GROUPS).map(([name, ids]) => [name, ids.map((id) => id.toLowerCase())]),
    ),
    ...(e.DEFAULT_ALLOWED_CLAIM !== undefined ? { defaultAllowedClaim: e.DEFAULT_ALLOWED_CLAIM } : {}),
    reprovisioningPolicy: e.REPROVISIONING_POLICY,
    provisioningWindowSeconds: e.PROVISIONING_WINDOW_SECONDS,
    hookTimeBudgetMs: e.HOOK_TIME_BUDGET_MS,
    hookSafetyMarginMs: e.HOOK_SAFETY_MARGIN_MS,
    clockSkewSeconds: e.CLOCK_SKEW_SECONDS,
    keyPolicy: { ecCurves: e.ALLOWED_EC_CURVES, minRsaBits: e.MIN_RSA_BITS },
    maxCertificatePemBytes: e.MAX_CERTIFICATE_PEM_BYTES,
    devicePolicyName: e.DEVICE_POLICY_NAME,
    quarantineGroupName: e.QUARANTINE_GROUP_NAME,
    trustedCaIds: e.TRUSTED_CA_IDS.map((id) => id.toLowerCase()),
    serialSource: e.SERIAL_SOURCE,
    serialCnPattern: e.SERIAL_CN_PATTERN,
    ...(e.DEVICE_THING_GROUP !== undefined ? { deviceThingGroup: e.DEVICE_THING_GROUP } : {}),
    ...(e.QUARANTINE_QUEUE_URL !== undefined ? { quarantineQueueUrl: e.QUARANTINE_QUEUE_URL } : {}),
    caCacheTtlSeconds: e.CA_CACHE_TTL_SECONDS,
    registrationLeaseSeconds: e.REGISTRATION_LEASE_SECONDS,
    duplicateClientIdThreshold: e.DUPLICATE_CLIENTID_THRESHOLD,
    duplicateClientIdWindowSeconds: e.DUPLICATE_CLIENTID_WINDOW_SECONDS,
    sessionTtlSeconds: e.SESSION_TTL_SECONDS,
    suspicionTtlSeconds: e.SUSPICION_TTL_SECONDS,
    expiryWindowsDays: [...new Set(e.EXPIRY_WINDOWS_DAYS)].sort((a, b) => a - b),
    maxCertificateAgeDays: e.MAX_CERTIFICATE_AGE_DAYS,
    expiryLookbackDays: e.EXPIRY_LOOKBACK_DAYS,
    rotationWindowDays: e.ROTATION_WINDOW_DAYS,
    sweepSafetyMarginMs: e.SWEEP_SAFETY_MARGIN_MS,
    sweepPageSize: e.SWEEP_PAGE_SIZE,
    rotationGraceSeconds: e.ROTATION_GRACE_SECONDS,
    rotationDeadlineSeconds: e.ROTATION_DEADLINE_SECONDS,
    rotationLeaseSeconds: e.ROTATION_LEASE_SECONDS,
    rotationNoticesPerRun: e.ROTATION_NOTICES_PER_RUN,
    reconcileMaxTps: e.RECONCILE_MAX_TPS,
    reconcilePageSize: e.RECONCILE_PAGE_SIZE,
    factoryNeverConnectedDays: e.FACTORY_NEVER_CONNECTED_DAYS,
    reconcileSafetyMarginMs: e.RECONCILE_SAFETY_MARGIN_MS,
    ...(e.RECONCILE_QUEUE_URL !== undefined ? { reconcileQueueUrl: e.RECONCILE_QUEUE_URL } : {}),
    ...(e.DEAD_LETTER_QUEUE_URL !== undefined ? { deadLetterQueueUrl: e.DEAD_LETTER_QUEUE_URL } : {}),
    reportDestination: e.REPORT_DESTINATION,
    ...(e.INSTALLER_TEMPLATE_NAME !== undefined ? { installerTemplateName: e.INSTALLER_TEMPLATE_NAME } : {}),
    installerClaimsPerMinute: e.INSTALLER_CLAIMS_PER_MINUTE,
    installerIdClaim: e.INSTALLER_ID_CLAIM,
  };
  return deepFreeze(config);
}

/** A valid config for tests and tools: defaults plus `overrides` (environment variable names). */
export function configFor(overrides: Record<string, string | undefined> = {}): Config {
  return loadConfig({ TABLE_NAME: 'fleetgate-test', ...overrides });
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !(value instanceof RegExp) && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/** The environment variable names `loadConfig` reads (tests keep `CONFIG_VARIABLES` equal to them). */
export const CONFIG_ENV_NAMES: readonly string[] = Object.keys(VARIABLES);
