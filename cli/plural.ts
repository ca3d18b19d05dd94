/** `1 row`, `2 rows`, `1 delivery`, `3 deliveries`: a count and its noun, for the CLI's human output. */
export function plural(count: number, singular: string, pluralForm = `${singular}s`): string {
  return `${count} ${count === 1 ? singular : pluralForm}`;
}
