/**
 * Configuration of every fleetgate function (docs/architecture.md §6). Per-stage parameters in serverless.yml
 * become environment variables; `loadConfig` validates them once, at cold start, into a frozen typed
 * object and reports every problem at once. Nothing below a handler reads `process.env`.
 *
 * The variables, their defaults and meanings: `shared/config-variables.ts` (also the README's table).
 */
import * as z from 'zod';
import { EC_CURVES, type EcCurve, type KeyPolicy } from './domain/certificate-rules';
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
 * Every zod schema instance costs at cold start (~40 µs each: zod binds its methods to every
 * instance), and this schema is built in every function's cold start. Schemas are immutable, so the
 * variables share the parts that are the same: the trimmed string of every integer, the unset check
 * of the three SQS queue URLs.
 */
const optionalTrimmedString = z.string().trim().optional();
const sqsQueueUrl = z.string().url('must be an SQS queue URL').optional();

/**
 * A whole number in [min, max], `fallback` when unset. One transform instead of a chain of zod
 * schemas (string → regex → number → int → min → max), on the shared trimmed string (two instances
 * per variable instead of five; this helper makes 27 variables). Unset is the fallback, exactly as
 * `.default(String(fallback))` was (a default is not trimmed either). The issues are zod's own
 * messages for the same checks (`Too small: expected number to be >=min`, …), in the order the
 * chain reported them.
 */
const integer = (fallback: number, min: number, max: number) =>
  optionalTrimmedString.transform((value = String(fallback), context) => {
    if (!/^\d+$/.test(value)) {
      context.addIssue({ code: 'custom', message: `must be a whole number between ${min} and ${max}` });
      return z.NEVER;
    }
    const number = Number(value);
    let valid = true;
    const issue = (message: string) => {
      context.addIssue({ code: 'custom', message });
      valid = false;
    };
    if (!Number.isSafeInteger(number)) issue(`Too big: expected int to be <=${Number.MAX_SAFE_INTEGER}`);
    if (number < min) issue(`Too small: expected number to be >=${min}`);
    if (number > max) issue(`Too big: expected number to be <=${max}`);
    return valid ? number : z.NEVER;
  });

const list = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((value) =>
      value
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item !== ''),
    );

const claimReference = z
  .string()
  .trim()
  .refine((value) => value === '*' || CLAIM_ID.test(value) || /^group:[A-Za-z0-9_.-]{1,64}$/.test(value), {
    message: 'must be *, a 64-hex claim certificate id or group:<name>',
  });

const EnvSchema = z.object({
  TABLE_NAME: z.string({ error: 'is required' }).trim().min(1, 'is required'),
  THING_NAME_PREFIX: z
    .string()
    .default('')
    .pipe(z.string().regex(THING_NAME_PREFIX, 'must match [a-zA-Z0-9:_-]{0,64}')),
  SERIAL_PATTERN: z
    .string()
    .default(DEFAULT_SERIAL_PATTERN)
    .transform((source, context) => {
      if (!source.startsWith('^') || !source.endsWith('$')) {
        context.addIssue({ code: 'custom', message: 'must be anchored with ^ and $' });
        return z.NEVER;
      }
      try {
        return new RegExp(source);
      } catch {
        context.addIssue({ code: 'custom', message: 'is not a valid regular expression' });
        return z.NEVER;
      }
    }),
  SERIAL_PARAMETER: z
    .string()
    .default('SerialNumber')
    .pipe(z.string().regex(/^[A-Za-z0-9_]{1,64}$/, 'must be a template parameter name')),
  CLAIM_RATE_LIMIT_PER_MINUTE: integer(60, 1, 100_000),
  CLAIM_GROUPS: z
    .string()
    .default('{}')
    .transform((value, context) => {
      try {
        return JSON.parse(value) as unknown;
      } catch {
        context.addIssue({ code: 'custom', message: 'must be JSON' });
        return z.NEVER;
      }
    })
    .pipe(
      z.record(
        z.string().regex(GROUP_NAME, 'group names must match [A-Za-z0-9_.-]{1,64}'),
        z.array(z.string().regex(CLAIM_ID, 'claim ids must be 64 hex characters')),
      ),
    ),
  DEFAULT_ALLOWED_CLAIM: claimReference.optional(),
  REPROVISIONING_POLICY: z.enum(REPROVISIONING_POLICIES).default('never'),
  PROVISIONING_WINDOW_SECONDS: integer(3600, 60, 7 * 86_400),
  HOOK_TIME_BUDGET_MS: integer(3000, 100, 4_500),
  HOOK_SAFETY_MARGIN_MS: integer(250, 0, 2_000),
  CLOCK_SKEW_SECONDS: integer(300, 0, 86_400),
  ALLOWED_EC_CURVES: list('P-256,P-384').pipe(
    z.array(z.enum(EC_CURVES as readonly [EcCurve, ...EcCurve[]])).min(1, 'must name at least one curve'),
  ),
  MIN_RSA_BITS: integer(2048, 2048, 16_384),
  MAX_CERTIFICATE_PEM_BYTES: integer(16_384, 1_024, 1_048_576),
  DEVICE_POLICY_NAME: z
    .string()
    .default('fleetgate-device')
    .pipe(z.string().regex(POLICY_NAME, 'must be an IoT policy name')),
  QUARANTINE_GROUP_NAME: z
    .string()
    .default('fleetgate-quarantine')
    .pipe(z.string().regex(THING_GROUP_NAME, 'must be a thing group name')),
  TRUSTED_CA_IDS: list('').pipe(
    z.array(z.string().regex(CLAIM_ID, 'CA certificate ids are 64 hex characters')),
  ),
  SERIAL_SOURCE: z.enum(SERIAL_SOURCES).default('cn'),
  SERIAL_CN_PATTERN: z
    .string()
    .default('^(.+)$')
    .transform((source, context) => {
      try {
        const pattern = new RegExp(source);
        // A pattern with a capture group matches '' through the alternative and reports the groups.
        const groups = (new RegExp(`${source}|`).exec('')?.length ?? 1) - 1;
        if (groups < 1) {
          context.addIssue({ code: 'custom', message: 'must have a capture group for the serial' });
          return z.NEVER;
        }
        return pattern;
      } catch {
        context.addIssue({ code: 'custom', message: 'is not a valid regular expression' });
        return z.NEVER;
      }
    }),
  DEVICE_THING_GROUP: z.string().regex(THING_GROUP_NAME, 'must be a thing group name').optional(),
  QUARANTINE_QUEUE_URL: sqsQueueUrl,
  CA_CACHE_TTL_SECONDS: integer(300, 0, 86_400),
  REGISTRATION_LEASE_SECONDS: integer(120, 1, 3_600),
  DUPLICATE_CLIENTID_THRESHOLD: integer(3, 1, 1_000),
  DUPLICATE_CLIENTID_WINDOW_SECONDS: integer(300, 1, 86_400),
  SESSION_TTL_SECONDS: integer(604_800, 60, 90 * 86_400),
  SUSPICION_TTL_SECONDS: integer(604_800, 60, 90 * 86_400),
  EXPIRY_WINDOWS_DAYS: list('7,30').pipe(
    z
      .array(
        z
          .string()
          .regex(/^\d+$/, 'windows are whole numbers of days')
          .transform(Number)
          .pipe(z.number().int().min(1).max(3650)),
      )
      .min(1, 'must name at least one window'),
  ),
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
  REPORT_DESTINATION: z
    .string()
    .default('file://.fleetgate/reports')
    .pipe(
      z
        .string()
        .regex(
          /^(s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?|file:\/\/.+)$/,
          'must be s3://bucket/prefix or file://dir',
        ),
    ),
  INSTALLER_TEMPLATE_NAME: z
    .string()
    .regex(/^[0-9A-Za-z_-]{1,36}$/, 'must be a provisioning template name ([0-9A-Za-z_-]{1,36})')
    .optional(),
  INSTALLER_CLAIMS_PER_MINUTE: integer(10, 1, 10_000),
  INSTALLER_ID_CLAIM: z
    .string()
    .default('sub')
    .pipe(z.string().regex(/^[A-Za-z0-9_:.-]{1,64}$/, 'must be a JWT claim name')),
});

/**
 * Validates `env` into a frozen `Config`. Empty strings count as unset, so a stage parameter left
 * blank falls back to its default.
 * @throws ConfigError listing every problem (`NAME: rule`), never just the first.
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env): Config {
  const input: Record<string, string> = {};
  for (const key of Object.keys(EnvSchema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== '') input[key] = value;
  }
  const parsed = EnvSchema.safeParse(input);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => `${issue.path.map(String).join('.') || 'env'}: ${issue.message}`),
    );
  }
  const e = parsed.data;
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
export const CONFIG_ENV_NAMES: readonly string[] = Object.keys(EnvSchema.shape);
