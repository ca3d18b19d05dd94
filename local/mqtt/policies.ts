/**
 * The project's IoT policy documents (iot/*.json) rendered as CloudFormation would deploy them:
 * `${AWS::Partition|Region|AccountId}` substituted, `${!iot:…}` turned into the policy variable
 * `${iot:…}`, and named parameters (`${ProvisioningTemplateName}`) filled in.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../paths';

/** Renders `iot/<file>` for a region and account. */
export function renderPolicyDocument(
  file: 'claim-policy.json' | 'device-policy.json' | 'quarantine-policy.json',
  options: { region: string; accountId: string; parameters?: Record<string, string> },
): string {
  const pseudo: Record<string, string> = {
    'AWS::Partition': 'aws',
    'AWS::Region': options.region,
    'AWS::AccountId': options.accountId,
    ...options.parameters,
  };
  return readFileSync(join(projectRoot(), 'iot', file), 'utf8')
    .replace(/\$\{(?!!)([^}]+)\}/g, (whole, name: string) => pseudo[name] ?? whole)
    .replace(/\$\{!/g, '$${');
}
