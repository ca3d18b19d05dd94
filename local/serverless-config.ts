/**
 * Reads `serverless.yml` — the deployed file is the local source of truth for the table
 * definition, queues, topic rules and functions, so local and deployed cannot drift.
 * CloudFormation short-form tags (`!Ref`, `!GetAtt`, `!Sub`, …) become their long forms.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import { parse, type Tags } from 'yaml';
import { projectRoot } from './paths';

const INTRINSICS = [
  'Ref',
  'GetAtt',
  'Sub',
  'Join',
  'Select',
  'Split',
  'If',
  'Equals',
  'Not',
  'And',
  'Or',
  'ImportValue',
  'FindInMap',
  'Base64',
  'GetAZs',
  'Condition',
];

const customTags: Tags = INTRINSICS.flatMap((name) => {
  const key = name === 'Ref' || name === 'Condition' ? name : `Fn::${name}`;
  const resolve = (value: unknown) => ({
    [key]: name === 'GetAtt' && typeof value === 'string' ? value.split('.') : value,
  });
  return [
    { tag: `!${name}`, resolve: (value: string) => resolve(value) },
    {
      tag: `!${name}`,
      collection: 'seq' as const,
      resolve: (value: { toJSON(): unknown }) => resolve(value.toJSON()),
    },
    {
      tag: `!${name}`,
      collection: 'map' as const,
      resolve: (value: { toJSON(): unknown }) => resolve(value.toJSON()),
    },
  ];
}) as Tags;

export interface ServerlessConfig {
  service: string;
  provider: { environment?: Record<string, unknown>; [key: string]: unknown };
  custom?: Record<string, unknown>;
  functions?: Record<string, ServerlessFunction>;
  resources?: { Resources?: Record<string, CfnResource>; Outputs?: Record<string, unknown> };
  [key: string]: unknown;
}

export interface ServerlessFunction {
  handler: string;
  environment?: Record<string, unknown>;
  events?: Array<Record<string, unknown>>;
  [key: string]: unknown;
}

export interface CfnResource {
  Type: string;
  Properties?: Record<string, unknown>;
  [key: string]: unknown;
}

/** Parses a serverless.yml (the project's own by default). */
export function loadServerlessConfig(file = join(projectRoot(), 'serverless.yml')): ServerlessConfig {
  const parsed = parse(readFileSync(file, 'utf8'), { customTags }) as unknown;
  if (typeof parsed !== 'object' || parsed === null || !('service' in parsed)) {
    throw new Error(`${file}: not a Serverless Framework configuration`);
  }
  return parsed as ServerlessConfig;
}

/** The logical id of the provisioning table in serverless.yml. */
export const TABLE_RESOURCE = 'ProvisioningTable';

/**
 * The CreateTable input for the provisioning table, taken from the `AWS::DynamoDB::Table`
 * resource in serverless.yml; only the name is local. Properties DynamoDB Local does not take at
 * creation (TTL, PITR, SSE) are returned separately so they can be applied where supported.
 */
export function tableDefinition(
  tableName: string,
  config = loadServerlessConfig(),
): {
  create: CreateTableCommandInput;
  ttlAttribute?: string;
} {
  const resource = config.resources?.Resources?.[TABLE_RESOURCE];
  if (resource?.Type !== 'AWS::DynamoDB::Table' || !resource.Properties) {
    throw new Error(`serverless.yml: resources.Resources.${TABLE_RESOURCE} must be an AWS::DynamoDB::Table`);
  }
  const p = resource.Properties as Record<string, unknown> & {
    TimeToLiveSpecification?: { AttributeName?: string; Enabled?: boolean };
  };
  const create = {
    TableName: tableName,
    BillingMode: p.BillingMode,
    AttributeDefinitions: p.AttributeDefinitions,
    KeySchema: p.KeySchema,
    GlobalSecondaryIndexes: p.GlobalSecondaryIndexes,
    LocalSecondaryIndexes: p.LocalSecondaryIndexes,
  } as CreateTableCommandInput;
  for (const key of Object.keys(create) as Array<keyof CreateTableCommandInput>) {
    if (create[key] === undefined) delete create[key];
  }
  const ttl = p.TimeToLiveSpecification;
  return ttl?.Enabled && ttl.AttributeName ? { create, ttlAttribute: ttl.AttributeName } : { create };
}
