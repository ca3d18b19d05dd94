/**
 * Validation of allowlist CSV rows. A row becomes an `AllowlistEntry` or a list of precise
 * reasons (`column: rule`). Pure: no I/O.
 *
 * Columns: `serial` (required), optional `productLine`, `batch`, `allowedClaim`; every other
 * column is a device attribute that later becomes a thing attribute, so names and values follow
 * AWS IoT's thing-attribute rules.
 */

export interface AllowlistEntry {
  serial: string;
  productLine?: string;
  batch?: string;
  allowedClaim?: string;
  attributes: Record<string, string>;
}

export const KNOWN_COLUMNS = ['serial', 'productLine', 'batch', 'allowedClaim'] as const;
export const DEFAULT_SERIAL_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_-]{2,63}$';

/** AWS IoT thing attributes: name `[a-zA-Z0-9_.,@/:#-]+` ≤ 128, value `[a-zA-Z0-9_.,@/:#=\[\]-]*` ≤ 800. */
const ATTRIBUTE_NAME = /^[a-zA-Z0-9_.,@/:#-]{1,128}$/;
const ATTRIBUTE_VALUE = /^[a-zA-Z0-9_.,@/:#=[\]-]{0,800}$/;
const CLAIM_ID = /^[0-9a-f]{64}$/;
const CLAIM_GROUP = /^group:[A-Za-z0-9_.-]{1,64}$/;
/** Spreadsheet formula triggers (OWASP CSV injection). */
const FORMULA_START = /^[=+\-@\t\r]/;
export const MAX_ATTRIBUTES = 50;

export type HeaderCheck = { ok: true; columns: string[] } | { ok: false; reason: string };

/** Checks the header row: `serial` present, no duplicate or invalid column names. */
export function checkHeader(columns: readonly string[]): HeaderCheck {
  const trimmed = columns.map((column) => column.trim());
  if (!trimmed.includes('serial')) return { ok: false, reason: 'header: a "serial" column is required' };
  const seen = new Set<string>();
  for (const column of trimmed) {
    if (seen.has(column)) return { ok: false, reason: `header: column "${column}" appears twice` };
    seen.add(column);
    if (!(KNOWN_COLUMNS as readonly string[]).includes(column) && !ATTRIBUTE_NAME.test(column)) {
      return {
        ok: false,
        reason: `header: "${column}" is not a valid attribute name (${ATTRIBUTE_NAME.source})`,
      };
    }
  }
  const attributes = trimmed.filter((column) => !(KNOWN_COLUMNS as readonly string[]).includes(column));
  if (attributes.length > MAX_ATTRIBUTES) {
    return {
      ok: false,
      reason: `header: at most ${MAX_ATTRIBUTES} attribute columns, found ${attributes.length}`,
    };
  }
  return { ok: true, columns: trimmed };
}

export type RowResult = { ok: true; entry: AllowlistEntry } | { ok: false; reason: string };

/**
 * Validates one data row (already decoded; `undefined` marks a field that was not valid UTF-8).
 */
export function parseRow(
  columns: readonly string[],
  fields: ReadonlyArray<string | undefined>,
  serialPattern: RegExp,
): RowResult {
  if (fields.length !== columns.length) {
    return { ok: false, reason: `row: expected ${columns.length} columns, found ${fields.length}` };
  }
  const entry: AllowlistEntry = { serial: '', attributes: {} };
  const problems: string[] = [];
  columns.forEach((column, index) => {
    const raw = fields[index];
    if (raw === undefined) {
      problems.push(`${column}: not valid UTF-8`);
      return;
    }
    const value = raw.trim();
    const problem = fieldProblem(column, value, serialPattern);
    if (problem) problems.push(problem);
    else if (value !== '') setField(entry, column, value);
  });
  return problems.length ? { ok: false, reason: problems.join('; ') } : { ok: true, entry };
}

/** The rule a trimmed field breaks (`column: rule`), if any; an empty optional field breaks none. */
function fieldProblem(column: string, value: string, serialPattern: RegExp): string | undefined {
  if (column === 'serial') return serialProblem(value, serialPattern);
  if (value === '') return undefined;
  if (FORMULA_START.test(value)) {
    return `${column}: must not start with =, +, -, @ or a control character (CSV injection)`;
  }
  if (column === 'allowedClaim') {
    return CLAIM_ID.test(value) || CLAIM_GROUP.test(value)
      ? undefined
      : 'allowedClaim: must be a 64-hex claim certificate id or group:<name>';
  }
  // productLine and batch become thing attributes too (parameterOverrides, CreateThing), so AWS's
  // value rule applies to them, with a shorter limit.
  const maxLength = column === 'productLine' || column === 'batch' ? 128 : 800;
  if (value.length > maxLength) return `${column}: at most ${maxLength} characters (found ${value.length})`;
  return ATTRIBUTE_VALUE.test(value) ? undefined : `${column}: must match ${ATTRIBUTE_VALUE.source}`;
}

function serialProblem(value: string, serialPattern: RegExp): string | undefined {
  if (value === '') return 'serial: required';
  if (value.length > 64) return `serial: at most 64 characters (found ${value.length})`;
  return serialPattern.test(value) ? undefined : `serial: must match ${serialPattern.source}`;
}

function setField(entry: AllowlistEntry, column: string, value: string): void {
  if (column === 'serial' || column === 'productLine' || column === 'batch' || column === 'allowedClaim') {
    entry[column] = value;
  } else {
    entry.attributes[column] = value;
  }
}

/** True when the stored record already says what the row says (re-import is "unchanged"). */
export function sameEntry(
  stored: {
    productLine?: string;
    batch?: string;
    allowedClaim?: string;
    attributes?: Record<string, string>;
  },
  entry: AllowlistEntry,
): boolean {
  if (stored.productLine !== entry.productLine) return false;
  if (stored.batch !== entry.batch) return false;
  if (stored.allowedClaim !== entry.allowedClaim) return false;
  const a = stored.attributes ?? {};
  const b = entry.attributes;
  const keysA = Object.keys(a);
  return keysA.length === Object.keys(b).length && keysA.every((key) => a[key] === b[key]);
}
