import type * as z from './zod';

/** One broken rule, named by the dotted path of the field (`parameters.SerialNumber`). */
export interface FieldIssue {
  field: string;
  rule: string;
}

/** zod issues as `field: rule` pairs; the root is called `event`. */
export function fieldIssues(error: z.core.$ZodError): FieldIssue[] {
  return error.issues.map((issue) => ({
    field: issue.path.length ? issue.path.map(String).join('.') : 'event',
    rule: issue.message,
  }));
}

/** `field: rule; field: rule` — the one-line form used in logs and denials. */
export function formatIssues(issues: readonly FieldIssue[]): string {
  return issues.map((issue) => `${issue.field}: ${issue.rule}`).join('; ');
}

export type ParsedBody<T> = { success: true; data: T } | { success: false; issues: FieldIssue[] };

/** Parses an SQS message body (JSON text) with `schema`; bad JSON is an issue on `body`. */
export function parseBody<T>(schema: z.ZodMiniType<T>, body: string): ParsedBody<T> {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return { success: false, issues: [{ field: 'body', rule: 'must be JSON' }] };
  }
  const parsed = schema.safeParse(json);
  return parsed.success
    ? { success: true, data: parsed.data }
    : { success: false, issues: fieldIssues(parsed.error) };
}
