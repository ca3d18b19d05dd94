/**
 * One CSV cell (RFC 4180 quoting), with a leading `=`, `+`, `-`, `@`, tab or CR defused by a `'`
 * so that a spreadsheet does not run the cell as a formula. Shared by every report that writes CSV.
 */
export function csvCell(value: string | number): string {
  let text = typeof value === 'number' ? String(value) : value;
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}
