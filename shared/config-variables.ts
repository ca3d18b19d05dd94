/**
 * Every environment variable a fleetgate function reads, with its default and meaning: the one
 * source of the README's configuration table (`npm run docs:config` writes it; a test keeps the
 * README, this list and `shared/config.ts`'s schema equal).
 */
export interface ConfigVariable {
  name: string;
  /** As the README shows it (Markdown). */
  default: string;
  /** As the README shows it (Markdown). */
  meaning: string;
  /** Read by Powertools for AWS Lambda itself, not by `loadConfig`. */
  readByPowertools?: boolean;
}

export const CONFIG_VARIABLES: readonly ConfigVariable[] = [
  { name: 'TABLE_NAME', default: '(required)', meaning: 'the provisioning table' },
  { name: 'THING_NAME_PREFIX', default: "`''`", meaning: 'thing name = prefix + serial' },
  {
    name: 'SERIAL_PATTERN',
    default: '`^[A-Za-z0-9][A-Za-z0-9_-]{2,63}$`',
    meaning: 'what a serial must look like',
  },
  { name: 'SERIAL_PARAMETER', default: '`SerialNumber`', meaning: 'template parameter carrying the serial' },
  {
    name: 'CLAIM_RATE_LIMIT_PER_MINUTE',
    default: '`60`',
    meaning: 'bindings per claim certificate per minute',
  },
  { name: 'CLAIM_GROUPS', default: '`{}`', meaning: 'JSON `{"group":["claimId",\u2026]}`' },
  { name: 'DEFAULT_ALLOWED_CLAIM', default: '(none: deny)', meaning: 'claim id, `group:<name>` or `*`' },
  { name: 'REPROVISIONING_POLICY', default: '`never`', meaning: 'never / same-key / replace' },
  {
    name: 'PROVISIONING_WINDOW_SECONDS',
    default: '`3600`',
    meaning: 'PROVISIONING \u2192 ALLOWLISTED after this',
  },
  { name: 'HOOK_TIME_BUDGET_MS', default: '`3000`', meaning: 'the hook denies when its work runs longer' },
  { name: 'HOOK_SAFETY_MARGIN_MS', default: '`250`', meaning: 'kept free before the Lambda timeout' },
  { name: 'CLOCK_SKEW_SECONDS', default: '`300`', meaning: 'tolerance on a future `notBefore`' },
  {
    name: 'ALLOWED_EC_CURVES',
    default: '`P-256,P-384`',
    meaning: 'EC curves accepted on device certificates',
  },
  { name: 'MIN_RSA_BITS', default: '`2048`', meaning: 'shortest RSA modulus accepted' },
  {
    name: 'MAX_CERTIFICATE_PEM_BYTES',
    default: '`16384`',
    meaning: 'PEMs longer than this are refused unread',
  },
  { name: 'DEVICE_POLICY_NAME', default: '`fleetgate-device`', meaning: 'the shared device policy' },
  {
    name: 'QUARANTINE_GROUP_NAME',
    default: '`fleetgate-quarantine`',
    meaning: 'thing group of quarantined devices',
  },
  {
    name: 'TRUSTED_CA_IDS',
    default: "`''`",
    meaning:
      'comma list of CA ids JITR trusts, beside CAs the store records or tagged `fleetgate:trusted=true` (empty: only those)',
  },
  { name: 'SERIAL_SOURCE', default: '`cn`', meaning: 'JITR serial from `cn` or `serialNumber`' },
  { name: 'SERIAL_CN_PATTERN', default: '`^(.+)$`', meaning: 'CN regex; capture group 1 is the serial' },
  { name: 'DEVICE_THING_GROUP', default: '(none)', meaning: 'thing group JITR adds new things to' },
  {
    name: 'QUARANTINE_QUEUE_URL',
    default: '(none; required by senders)',
    meaning: 'where quarantine requests go',
  },
  { name: 'CA_CACHE_TTL_SECONDS', default: '`300`', meaning: 'CA certificates cached per container' },
  {
    name: 'REGISTRATION_LEASE_SECONDS',
    default: '`120`',
    meaning: 'JITR work owned by one delivery this long',
  },
  {
    name: 'DUPLICATE_CLIENTID_THRESHOLD',
    default: '`3`',
    meaning: 'DUPLICATE_CLIENTID disconnects that \u2026',
  },
  {
    name: 'DUPLICATE_CLIENTID_WINDOW_SECONDS',
    default: '`300`',
    meaning: '\u2026 within this window mean a clone',
  },
  { name: 'SESSION_TTL_SECONDS', default: '`604800`', meaning: 'presence session items live this long' },
  { name: 'SUSPICION_TTL_SECONDS', default: '`604800`', meaning: 'one quarantine request per suspicion' },
  { name: 'EXPIRY_WINDOWS_DAYS', default: '`7,30`', meaning: 'expiry report windows' },
  { name: 'MAX_CERTIFICATE_AGE_DAYS', default: '`825`', meaning: 'older certificates are reported' },
  {
    name: 'EXPIRY_LOOKBACK_DAYS',
    default: '`90`',
    meaning: 'sweep looks this far back for expired / too-old certificates (bounds its cost)',
  },
  { name: 'ROTATION_WINDOW_DAYS', default: '`30`', meaning: 'devices expiring sooner should rotate' },
  { name: 'SWEEP_SAFETY_MARGIN_MS', default: '`20000`', meaning: 'sweep checkpoints when less time remains' },
  { name: 'SWEEP_PAGE_SIZE', default: '`500`', meaning: 'index items per sweep Query page' },
  {
    name: 'ROTATION_GRACE_SECONDS',
    default: '`86400`',
    meaning: "old certificate deleted this long after a rotation's commit (`0`: at the commit)",
  },
  {
    name: 'ROTATION_DEADLINE_SECONDS',
    default: '`86400`',
    meaning: 'connect with the new certificate within this, or the rotation is aborted',
  },
  {
    name: 'ROTATION_LEASE_SECONDS',
    default: '`120`',
    meaning: 'one delivery owns a rotation request this long',
  },
  {
    name: 'ROTATION_NOTICES_PER_RUN',
    default: '`100`',
    meaning: '`rotate/required` notices per expiry-sweep run',
  },
  {
    name: 'RECONCILE_MAX_TPS',
    default: '`5`',
    meaning:
      "reconciliation's requests per second per IoT API (AWS default quota: 10 each; `param:reconcileMaxTps`)",
  },
  {
    name: 'RECONCILE_PAGE_SIZE',
    default: '`250`',
    meaning: 'items per ListCertificates / ListThings / StateIndex page',
  },
  {
    name: 'FACTORY_NEVER_CONNECTED_DAYS',
    default: '`30`',
    meaning:
      'reconciliation reports factory-imported devices still waiting for their first connection this many days after the import (`param:factoryNeverConnectedDays`)',
  },
  {
    name: 'RECONCILE_SAFETY_MARGIN_MS',
    default: '`60000`',
    meaning: 'reconciliation checkpoints and continues through `ReconcileQueue` when less time remains',
  },
  {
    name: 'DEAD_LETTER_QUEUE_URL',
    default: '(none; required by SQS consumers)',
    meaning:
      'the DLQ of the queue the function reads: a message that can never succeed is sent there at once (`!Ref <Queue>DLQ`)',
  },
  {
    name: 'RECONCILE_QUEUE_URL',
    default: '(none; required by `reconcileInventory`)',
    meaning: "where a run's continuation is sent",
  },
  {
    name: 'REPORT_DESTINATION',
    default: '`file://.fleetgate/reports`',
    meaning: '`s3://bucket/prefix` or `file://dir`',
  },
  {
    name: 'INSTALLER_TEMPLATE_NAME',
    default: '(none)',
    meaning:
      'the provisioning-by-trusted-user template: the hook admits a request through it only with a temporary claim the installer API issued for that serial',
  },
  {
    name: 'INSTALLER_CLAIMS_PER_MINUTE',
    default: '`10`',
    meaning: 'temporary claims one installer may get per minute (`param:installerClaimsPerMinute`)',
  },
  {
    name: 'INSTALLER_ID_CLAIM',
    default: '`sub`',
    meaning: 'the JWT claim that names the installer (`param:installerIdClaim`)',
  },
  {
    name: 'POWERTOOLS_LOG_LEVEL',
    default: '`INFO`',
    meaning: 'log level (`param:logLevel`)',
    readByPowertools: true,
  },
];

/** The README's Markdown table of {@link CONFIG_VARIABLES}. */
export function configTable(): string {
  const rows = CONFIG_VARIABLES.map(
    (variable) => `| \`${variable.name}\` | ${variable.default} | ${variable.meaning} |`,
  );
  return ['| Variable | Default | Meaning |', '|---|---|---|', ...rows].join('\n');
}
