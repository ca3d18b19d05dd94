/**
 * Tables for people: a header row and columns padded to their widest cell (by code points, so
 * `…` and `∅` count as one), two spaces apart; the last column is not padded.
 */

export interface Column<T> {
  header: string;
  value: (row: T) => string | number | undefined;
  /** Right-align (counts). */
  right?: boolean;
}

function width(text: string): number {
  return [...text].length;
}

function pad(text: string, size: number, right: boolean): string {
  const fill = ' '.repeat(Math.max(0, size - width(text)));
  return right ? `${fill}${text}` : `${text}${fill}`;
}

/** The lines of a table: header first, then one line per row (`—` for an empty cell). */
export function formatTable<T>(columns: readonly Column<T>[], rows: readonly T[]): string[] {
  const cells = rows.map((row) =>
    columns.map((column) => {
      const value = column.value(row);
      return value === undefined || value === '' ? '—' : String(value);
    }),
  );
  const widths = columns.map((column, index) =>
    Math.max(width(column.header), ...cells.map((line) => width(line[index] ?? ''))),
  );
  const line = (values: readonly string[]) =>
    values
      .map((value, index) => {
        const last = index === values.length - 1;
        const right = columns[index]?.right ?? false;
        return last && !right ? value : pad(value, widths[index] ?? 0, right);
      })
      .join('  ');
  return [line(columns.map((column) => column.header)), ...cells.map(line)];
}

/** A certificate id cut to what people compare (the full id is in --json). */
export function shortId(id: string | undefined): string | undefined {
  return id && id.length > 16 ? `${id.slice(0, 12)}…` : id;
}
