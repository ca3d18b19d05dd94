/**
 * Deploy rules, checked on the CloudFormation template `serverless package` writes
 * (`.serverless/cloudformation-template-update-stack.json`): what CloudFormation, Lambda, SQS and
 * IoT would refuse at deploy or delete time, found before a deploy. `npm run check:deploy` runs it;
 * test/e2e/deploy-rules.test.ts runs it on every `npm test`.
 */
import { readFile } from 'node:fs/promises';
import { checkRules, RULES } from './rules';
import { checkSchema, REFERENCE_RULE, SCHEMA_RULE } from './schema';
import type { CfnTemplate, Finding } from './template';

export type { CfnTemplate, Finding } from './template';
export { formatFinding } from './template';

/** Every rule id the checker reports under. */
export const RULE_IDS = [SCHEMA_RULE, REFERENCE_RULE, ...Object.values(RULES)] as const;

export interface CheckOptions {
  /** Rules a stage breaks on purpose (e.g. `reserved-concurrency` where the account's quota allows it). */
  allow?: readonly string[];
}

/** All findings for a template; an empty list means it passes. */
export function checkTemplate(template: CfnTemplate, options: CheckOptions = {}): Finding[] {
  if (typeof template !== 'object' || template === null || typeof template.Resources !== 'object') {
    return [
      {
        rule: SCHEMA_RULE,
        resource: 'template',
        path: 'Resources',
        message: 'a template needs a Resources section',
        doc: 'https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/resources-section-structure.html',
      },
    ];
  }
  const order = (finding: Finding) => RULE_IDS.indexOf(finding.rule as (typeof RULE_IDS)[number]);
  // Sorted by rule, then resource, then path, so runs on the same template print the same lines.
  const allowed = new Set(options.allow ?? []);
  return [...checkSchema(template), ...checkRules(template)]
    .filter((finding) => !allowed.has(finding.rule))
    .sort(
      (a, b) => order(a) - order(b) || a.resource.localeCompare(b.resource) || a.path.localeCompare(b.path),
    );
}

export async function readTemplate(file: string): Promise<CfnTemplate> {
  return JSON.parse(await readFile(file, 'utf8')) as CfnTemplate;
}
