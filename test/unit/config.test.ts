import { describe, expect, it } from 'vitest';
import { configFor, loadConfig } from '../../shared/config';
import { ConfigError } from '../../shared/errors';

function problemsOf(env: Record<string, string>): readonly string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('loadConfig', () => {
  it('fills every default from just a table name', () => {
    const config = loadConfig({ TABLE_NAME: 'fleetgate-dev-provisioning' });
    expect(config).toMatchObject({
      tableName: 'fleetgate-dev-provisioning',
      thingNamePrefix: '',
      serialParameter: 'SerialNumber',
      claimRateLimitPerMinute: 60,
      claimGroups: {},
      reprovisioningPolicy: 'never',
      provisioningWindowSeconds: 3600,
      hookTimeBudgetMs: 3000,
      keyPolicy: { ecCurves: ['P-256', 'P-384'], minRsaBits: 2048 },
      maxCertificatePemBytes: 16_384,
      trustedCaIds: [],
      expiryWindowsDays: [7, 30],
      reportDestination: 'file://.fleetgate/reports',
    });
    expect(config.serialPattern.source).toBe('^[A-Za-z0-9][A-Za-z0-9_-]{2,63}$');
    expect(config.defaultAllowedClaim).toBeUndefined();
  });

  it('returns a frozen object', () => {
    const config = configFor();
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.keyPolicy)).toBe(true);
    expect(Object.isFrozen(config.keyPolicy.ecCurves)).toBe(true);
  });

  it('reads every variable', () => {
    const claim = 'AB'.repeat(32);
    const config = loadConfig({
      TABLE_NAME: 't',
      THING_NAME_PREFIX: 'acme-',
      SERIAL_PATTERN: '^[0-9]{6}$',
      SERIAL_PARAMETER: 'DeviceSerial',
      CLAIM_RATE_LIMIT_PER_MINUTE: '5',
      CLAIM_GROUPS: JSON.stringify({ 'factory-a': [claim] }),
      DEFAULT_ALLOWED_CLAIM: 'group:factory-a',
      REPROVISIONING_POLICY: 'same-key',
      PROVISIONING_WINDOW_SECONDS: '600',
      HOOK_TIME_BUDGET_MS: '1500',
      ALLOWED_EC_CURVES: 'P-256, P-521',
      MIN_RSA_BITS: '3072',
      MAX_CERTIFICATE_PEM_BYTES: '4096',
      TRUSTED_CA_IDS: `${'f'.repeat(64)},${'e'.repeat(64)}`,
      EXPIRY_WINDOWS_DAYS: '30,7,90',
      REPORT_DESTINATION: 's3://reports-bucket/fleetgate',
    });
    expect(config).toMatchObject({
      thingNamePrefix: 'acme-',
      serialParameter: 'DeviceSerial',
      claimRateLimitPerMinute: 5,
      claimGroups: { 'factory-a': [claim.toLowerCase()] },
      defaultAllowedClaim: 'group:factory-a',
      reprovisioningPolicy: 'same-key',
      provisioningWindowSeconds: 600,
      hookTimeBudgetMs: 1500,
      keyPolicy: { ecCurves: ['P-256', 'P-521'], minRsaBits: 3072 },
      maxCertificatePemBytes: 4096,
      expiryWindowsDays: [7, 30, 90],
      reportDestination: 's3://reports-bucket/fleetgate',
    });
    expect(config.trustedCaIds).toHaveLength(2);
    expect(config.serialPattern.test('123456')).toBe(true);
  });

  it('ignores spaces around numbers, URLs and claim references, as the table says', () => {
    expect(
      loadConfig({
        TABLE_NAME: ' t ',
        CLAIM_RATE_LIMIT_PER_MINUTE: '  7 ',
        QUARANTINE_QUEUE_URL: ' https://sqs.us-east-1.amazonaws.com/123456789012/q ',
        DEFAULT_ALLOWED_CLAIM: ' * ',
        EXPIRY_WINDOWS_DAYS: ' 30 , ,7,7 ',
      }),
    ).toMatchObject({
      tableName: 't',
      claimRateLimitPerMinute: 7,
      quarantineQueueUrl: 'https://sqs.us-east-1.amazonaws.com/123456789012/q',
      defaultAllowedClaim: '*',
      expiryWindowsDays: [7, 30],
    });
  });

  it('treats empty strings as unset', () => {
    expect(loadConfig({ TABLE_NAME: 't', REPROVISIONING_POLICY: '', HOOK_TIME_BUDGET_MS: '' })).toMatchObject(
      {
        reprovisioningPolicy: 'never',
        hookTimeBudgetMs: 3000,
      },
    );
  });

  it('lists every problem at once', () => {
    const problems = problemsOf({
      REPROVISIONING_POLICY: 'sometimes',
      CLAIM_RATE_LIMIT_PER_MINUTE: '-3',
      SERIAL_PATTERN: '^[unclosed$',
      CLAIM_GROUPS: '{not json',
      ALLOWED_EC_CURVES: 'P-256,secp256k1',
      MIN_RSA_BITS: '1024',
      REPORT_DESTINATION: 'ftp://x',
      HOOK_TIME_BUDGET_MS: '9000',
    });
    const fields = problems.map((problem) => problem.split(':')[0]);
    expect(fields).toEqual(
      expect.arrayContaining([
        'TABLE_NAME',
        'REPROVISIONING_POLICY',
        'CLAIM_RATE_LIMIT_PER_MINUTE',
        'SERIAL_PATTERN',
        'CLAIM_GROUPS',
        'ALLOWED_EC_CURVES.1',
        'MIN_RSA_BITS',
        'REPORT_DESTINATION',
        'HOOK_TIME_BUDGET_MS',
      ]),
    );
  });

  it.each([
    [{ SERIAL_PATTERN: '[A-Z]+' }, 'SERIAL_PATTERN: must be anchored with ^ and $'],
    [{ THING_NAME_PREFIX: 'bad prefix' }, 'THING_NAME_PREFIX: must match [a-zA-Z0-9:_-]{0,64}'],
    [
      { DEFAULT_ALLOWED_CLAIM: 'group:nowhere' },
      'DEFAULT_ALLOWED_CLAIM: group nowhere is not in CLAIM_GROUPS',
    ],
    [
      { DEFAULT_ALLOWED_CLAIM: 'someone' },
      'DEFAULT_ALLOWED_CLAIM: must be *, a 64-hex claim certificate id or group:<name>',
    ],
    [{ CLAIM_GROUPS: '{"g":["short"]}' }, 'CLAIM_GROUPS.g.0: claim ids must be 64 hex characters'],
    [{ TRUSTED_CA_IDS: 'abc' }, 'TRUSTED_CA_IDS.0: CA certificate ids are 64 hex characters'],
    [
      { PROVISIONING_WINDOW_SECONDS: 'soon' },
      'PROVISIONING_WINDOW_SECONDS: must be a whole number between 60 and 604800',
    ],
    [
      { CLAIM_GROUPS: '{"bad name":[]}' },
      'CLAIM_GROUPS.bad name: group names must match [A-Za-z0-9_.-]{1,64}',
    ],
    [{ CLAIM_GROUPS: '[1]' }, 'CLAIM_GROUPS: Invalid input: expected record, received array'],
    [{ CLAIM_GROUPS: '{"g":"x"}' }, 'CLAIM_GROUPS.g: Invalid input: expected array, received string'],
    [{ CLAIM_GROUPS: '{"g":[1]}' }, 'CLAIM_GROUPS.g.0: Invalid input: expected string, received number'],
    [{ CLAIM_GROUPS: '{not json' }, 'CLAIM_GROUPS: must be JSON'],
    [
      { REPROVISIONING_POLICY: 'sometimes' },
      'REPROVISIONING_POLICY: Invalid option: expected one of "never"|"same-key"|"replace"',
    ],
    [
      { ALLOWED_EC_CURVES: 'P-256,secp256k1' },
      'ALLOWED_EC_CURVES.1: Invalid option: expected one of "P-256"|"P-384"|"P-521"',
    ],
    [{ ALLOWED_EC_CURVES: ' , ' }, 'ALLOWED_EC_CURVES: must name at least one curve'],
    [{ EXPIRY_WINDOWS_DAYS: '7,x' }, 'EXPIRY_WINDOWS_DAYS.1: windows are whole numbers of days'],
    [{ EXPIRY_WINDOWS_DAYS: '0' }, 'EXPIRY_WINDOWS_DAYS.0: Too small: expected number to be >=1'],
    [{ EXPIRY_WINDOWS_DAYS: '3651' }, 'EXPIRY_WINDOWS_DAYS.0: Too big: expected number to be <=3650'],
    [
      { CLAIM_RATE_LIMIT_PER_MINUTE: '99999999999999999999' },
      `CLAIM_RATE_LIMIT_PER_MINUTE: Too big: expected int to be <=${Number.MAX_SAFE_INTEGER}`,
    ],
    [{ MIN_RSA_BITS: '1024' }, 'MIN_RSA_BITS: Too small: expected number to be >=2048'],
    [{ QUARANTINE_QUEUE_URL: 'not a url' }, 'QUARANTINE_QUEUE_URL: must be an SQS queue URL'],
    [{ SERIAL_CN_PATTERN: '^x$' }, 'SERIAL_CN_PATTERN: must have a capture group for the serial'],
    [{ SERIAL_CN_PATTERN: '(unclosed' }, 'SERIAL_CN_PATTERN: is not a valid regular expression'],
    [{ SERIAL_PATTERN: '^[unclosed$' }, 'SERIAL_PATTERN: is not a valid regular expression'],
    [{ DEVICE_THING_GROUP: 'x y' }, 'DEVICE_THING_GROUP: must be a thing group name'],
    [{ TABLE_NAME: '   ' }, 'TABLE_NAME: is required'],
  ])('rejects %j', (env, problem) => {
    expect(problemsOf({ TABLE_NAME: 't', ...env })).toContain(problem);
  });

  it('throws a ConfigError with a stable code', () => {
    expect(() => loadConfig({})).toThrow(ConfigError);
    expect(() => loadConfig({})).toThrow(/TABLE_NAME: is required/);
  });
});
