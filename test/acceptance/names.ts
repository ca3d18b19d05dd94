/**
 * The names a deployment gives its resources, as serverless.yml spells them
 * (`${self:service}-${sls:stage}-…`), overridden by the CloudFormation stack's Outputs where the
 * stack publishes one. The local stack is stage `local` of the same file.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface DeployedNames {
  service: string;
  stage: string;
  /** CloudFormation stack: `<service>-<stage>` (the Serverless Framework's default). */
  stackName: string;
  tableName: string;
  templateName: string;
  claimPolicyName: string;
  devicePolicyName: string;
  quarantineGroupName: string;
  /** Deployed function names (`<service>-<stage>-<function>`). */
  functions: { expirySweep: string; registerCertificate: string; deviceLifecycle: string };
}

/** Output keys read when the stack has them (serverless.yml `resources.Outputs`). */
export const OUTPUT_KEYS = {
  tableName: 'ProvisioningTableName',
  templateName: 'FleetProvisioningTemplateName',
  claimPolicyName: 'ClaimPolicyName',
  devicePolicyName: 'DevicePolicyName',
  quarantineGroupName: 'QuarantineThingGroupName',
} as const;

/** `service:` of serverless.yml (a plain read: the file uses CloudFormation tags a YAML parser rejects). */
export function serviceName(serverlessFile = join(PROJECT_ROOT, 'serverless.yml')): string {
  const match = /^service:\s*([A-Za-z0-9-]+)\s*$/m.exec(readFileSync(serverlessFile, 'utf8'));
  if (!match?.[1]) throw new Error(`${serverlessFile}: no "service:" line`);
  return match[1];
}

export function deployedNames(
  service: string,
  stage: string,
  outputs: Record<string, string | undefined> = {},
): DeployedNames {
  const prefix = `${service}-${stage}`;
  const pick = (key: keyof typeof OUTPUT_KEYS, fallback: string) => outputs[OUTPUT_KEYS[key]] || fallback;
  return {
    service,
    stage,
    stackName: prefix,
    tableName: pick('tableName', `${prefix}-provisioning`),
    templateName: pick('templateName', `${prefix}-fleet`),
    claimPolicyName: pick('claimPolicyName', `${prefix}-claim`),
    devicePolicyName: pick('devicePolicyName', `${prefix}-device`),
    quarantineGroupName: pick('quarantineGroupName', `${prefix}-quarantine`),
    functions: {
      expirySweep: `${prefix}-expirySweep`,
      registerCertificate: `${prefix}-registerCertificate`,
      deviceLifecycle: `${prefix}-deviceLifecycle`,
    },
  };
}
