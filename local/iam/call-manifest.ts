/**
 * The calls each function makes, as the local IAM saw them across the test suite: action, resource
 * ARN (as a template over the names a stage gives) and, for DynamoDB, an example leading key. It is
 * what `fleetgate doctor --target aws` asks IAM's SimulatePrincipalPolicy about for each deployed role,
 * so the check on AWS and the enforcement here use the same list.
 *
 * Placeholders: `${Partition}`, `${Region}`, `${Account}`, `${Service}`, `${Stage}`, `${TableName}`
 * (the provisioning table) and `${Resource:<LogicalId>}` (a physical name CloudFormation generates).
 * Ids that differ per device (certificate ids, thing names, report keys) stay as observed examples:
 * any value matches the same grants.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../paths';
import type { StackModel } from '../stack-model';
import type { CallRecord } from './authorizer';

export interface ManifestCall {
  function: string;
  action: string;
  resource: string;
  /** Example `dynamodb:LeadingKeys` values (one request's). */
  leadingKeys?: string[];
}

export const MANIFEST_FILE = join(projectRoot(), 'local', 'iam', 'function-calls.json');

/** The committed manifest (empty when there is none). */
export function readManifest(file = MANIFEST_FILE): ManifestCall[] {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as ManifestCall[];
  } catch {
    return [];
  }
}

/** `${name}`, the manifest's placeholder syntax. */
const ph = (name: string) => `\${${name}}`;

/** A record as a manifest entry, or undefined for functions serverless.yml does not declare. */
export function manifestCall(record: CallRecord, model: StackModel): ManifestCall | undefined {
  if (!model.functions.some((fn) => fn.name === record.functionName)) return undefined;
  const bucketIds = new Map<string, string>();
  for (const [index, bucket] of model.buckets.entries())
    bucketIds.set(bucket, model.bucketLogicalIds[index] ?? bucket);
  let resource = record.resource;
  if (resource !== '*') {
    const parts = resource.split(':');
    if (parts.length >= 6) {
      parts[1] = ph('Partition');
      if (parts[3]) parts[3] = ph('Region');
      if (parts[4]) parts[4] = ph('Account');
      let rest = parts.slice(5).join(':');
      if (parts[2] === 'dynamodb') rest = rest.replace(/^table\/[^/]+/, `table/${ph('TableName')}`);
      if (parts[2] === 's3') {
        const [bucket = '', ...key] = rest.split('/');
        const logicalId = bucketIds.get(bucket);
        rest = [logicalId ? `\${Resource:${logicalId}}` : bucket, ...key].join('/');
      }
      rest = rest.replaceAll(`${model.service}-${model.stage}-`, `${ph('Service')}-${ph('Stage')}-`);
      resource = [...parts.slice(0, 5), rest].join(':');
    }
  }
  return {
    function: record.functionName,
    action: record.action,
    resource,
    ...(record.leadingKeys ? { leadingKeys: record.leadingKeys } : {}),
  };
}

/** What makes two calls the same for the manifest: ids and keys reduced to their shape. */
export function callShape(call: ManifestCall): string {
  const resource = call.resource
    .replace(/:(cert|cacert|thing)\/[^/]+$/, ':$1/*')
    .replace(/:topic\/fleetgate\/[^/]+\//, ':topic/fleetgate/*/')
    .replace(/^(arn:[^:]*:s3:::[^/]+\/[^/]+\/).*$/, '$1*');
  const keys = (call.leadingKeys ?? []).map((key) => /^[A-Za-z]+#([a-z-]+:)?/.exec(key)?.[0] ?? key);
  return `${call.function} ${call.action} ${resource} ${[...new Set(keys)].sort().join(',')}`;
}

/** `current` plus the calls of `records` whose shape it lacks, sorted; and how many were added. */
export function mergeManifest(
  current: ManifestCall[],
  records: CallRecord[],
  model: StackModel,
): { manifest: ManifestCall[]; added: ManifestCall[] } {
  const shapes = new Set(current.map(callShape));
  const added: ManifestCall[] = [];
  for (const record of records) {
    if (record.decision !== 'Allowed' || record.altered) continue;
    const call = manifestCall(record, model);
    if (!call) continue;
    const shape = callShape(call);
    if (shapes.has(shape)) continue;
    shapes.add(shape);
    added.push(call);
  }
  const manifest = [...current, ...added].sort((a, b) => callShape(a).localeCompare(callShape(b)));
  return { manifest, added };
}
