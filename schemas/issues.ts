import type { z } from 'zod';

/** One broken rule, named by the dotted path of the field (`parameters.SerialNumber`). */
export interface FieldIssue {
  field: string;
  rule: string;
}

/** zod issues as `field: rule` pairs; the root is called `event`. */
export function fieldIssues(error: z.ZodError): FieldIssue[] {
  return error.issues.map((issue) => ({
    field: issue.path.length ? issue.path.map(String).join('.') : 'event',
    rule: issue.message,
  }));
}

/** `field: rule; field: rule` — the one-line form used in logs and denials. */
export function formatIssues(issues: readonly FieldIssue[]): string {
  return issues.map((issue) => `${issue.field}: ${issue.rule}`).join('; ');
}
