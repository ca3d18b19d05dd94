import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DescribeTableCommand, DescribeTimeToLiveCommand } from '@aws-sdk/client-dynamodb';
import { strFromU8, unzipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadServerlessConfig } from '../../local/serverless-config';
import {
  buildStackModel,
  declaredIotResources,
  functionLogicalId,
  LOCAL_RESOURCE_TYPES,
  resolveCloudFormation,
} from '../../local/stack-model';
import { createTestTable, type TestTable } from '../support/dynamo';
import { packagedTemplate } from '../support/packaged-template';

const root = fileURLToPath(new URL('../..', import.meta.url));

interface Template {
  Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
}

let out: string;
let template: Template;
let table: TestTable;

beforeAll(async () => {
  const packaged = await packagedTemplate();
  out = packaged.dir;
  template = packaged.template as unknown as Template;
  table = await createTestTable('package');
}, 300_000);

afterAll(async () => {
  await table?.drop();
});

describe('npm run package (offline serverless package)', () => {
  it('deploys the provisioning table exactly as serverless.yml defines it', () => {
    const declared = loadServerlessConfig().resources?.Resources?.ProvisioningTable?.Properties as Record<
      string,
      unknown
    >;
    const packaged = template.Resources.ProvisioningTable;
    expect(packaged?.Type).toBe('AWS::DynamoDB::Table');
    const properties = packaged?.Properties ?? {};
    for (const key of ['KeySchema', 'AttributeDefinitions', 'GlobalSecondaryIndexes', 'BillingMode']) {
      expect(properties[key]).toEqual(declared[key]);
    }
    expect(properties.TimeToLiveSpecification).toEqual({ AttributeName: 'ttl', Enabled: true });
    expect(properties.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
    expect(properties.TableName).toBe('fleetgate-dev-provisioning');
  });

  it('creates the same table locally as it deploys', async () => {
    const properties = template.Resources.ProvisioningTable?.Properties ?? {};
    const described = await table.client.send(new DescribeTableCommand({ TableName: table.tableName }));
    const local = described.Table;
    expect(local?.KeySchema).toEqual(properties.KeySchema);
    const packagedIndexes = properties.GlobalSecondaryIndexes as Array<{
      IndexName: string;
      KeySchema: unknown;
      Projection: { ProjectionType: string; NonKeyAttributes?: string[] };
    }>;
    expect(local?.GlobalSecondaryIndexes?.map((index) => index.IndexName).sort()).toEqual(
      packagedIndexes.map((index) => index.IndexName).sort(),
    );
    for (const index of packagedIndexes) {
      const found = local?.GlobalSecondaryIndexes?.find(
        (candidate) => candidate.IndexName === index.IndexName,
      );
      expect(found?.KeySchema).toEqual(index.KeySchema);
      expect(found?.Projection?.ProjectionType).toBe(index.Projection.ProjectionType);
      expect([...(found?.Projection?.NonKeyAttributes ?? [])].sort()).toEqual(
        [...(index.Projection.NonKeyAttributes ?? [])].sort(),
      );
    }
    const ttl = await table.client.send(new DescribeTimeToLiveCommand({ TableName: table.tableName }));
    expect(ttl.TimeToLiveDescription?.AttributeName).toBe('ttl');
  });

  it('creates locally the IoT resources it packages: policy documents, template body and hook as rendered', async () => {
    // Prepare: the packaged resources, their intrinsics resolved for the stage the template was built for.
    const config = loadServerlessConfig();
    const packaged = (logicalId: string) =>
      resolveCloudFormation(
        config,
        { stage: 'dev' },
        template.Resources[logicalId]?.Properties ?? {},
      ) as Record<string, unknown>;
    // Act
    const local = await declaredIotResources(config, { stage: 'dev', baseDir: root });
    // Assess
    const iotTypes = Object.values(template.Resources)
      .map((resource) => resource.Type)
      .filter((type) => type.startsWith('AWS::IoT::') && type !== 'AWS::IoT::TopicRule');
    expect(local.map((spec) => spec.type).sort()).toEqual(iotTypes.sort());
    for (const spec of local) {
      const properties = packaged(spec.logicalId);
      if (spec.type === 'AWS::IoT::Policy') {
        expect(properties.PolicyName).toBe(spec.policyName);
        expect(properties.PolicyDocument).toEqual(JSON.parse(spec.policyDocument));
      }
      if (spec.type === 'AWS::IoT::ProvisioningTemplate') {
        expect(properties).toMatchObject({
          TemplateName: spec.templateName,
          TemplateBody: spec.templateBody,
          Enabled: spec.enabled,
          ProvisioningRoleArn: spec.provisioningRoleArn,
          PreProvisioningHook: {
            TargetArn: spec.preProvisioningHook?.targetArn,
            PayloadVersion: spec.preProvisioningHook?.payloadVersion,
          },
        });
      }
    }
  });

  it('builds one bundle per function on nodejs22.x arm64', async () => {
    const functions = Object.entries(template.Resources).filter(
      ([, resource]) => resource.Type === 'AWS::Lambda::Function',
    );
    expect(functions.length).toBeGreaterThan(0);
    for (const [, resource] of functions) {
      expect(resource.Properties.Runtime).toBe('nodejs22.x');
      expect(resource.Properties.Architectures).toEqual(['arm64']);
      const code = resource.Properties.Code as { S3Key: string };
      const artifact = join(out, code.S3Key.split('/').pop() ?? '');
      expect(existsSync(artifact)).toBe(true);
      expect((await stat(artifact)).size).toBeGreaterThan(0);
    }
  });

  it('zips every function with the chunks its handler reaches (splitting) and nothing else, and the handler loads from the zip', async () => {
    // Prepare: each function's zip, unpacked; the environment the local stack gives it.
    const model = buildStackModel(loadServerlessConfig(), {
      stage: 'local',
      region: 'us-east-1',
      sqsEndpoint: 'http://127.0.0.1:9',
    });
    const unpacked = await mkdtemp(join(tmpdir(), 'fleetgate-zips-'));
    try {
      for (const fn of model.functions) {
        const code = template.Resources[functionLogicalId(fn.name)]?.Properties.Code as { S3Key: string };
        const files = unzipSync(await readFile(join(out, code.S3Key.split('/').pop() ?? '')));
        const handler = `${fn.handler.slice(0, fn.handler.lastIndexOf('.'))}.mjs`;
        expect(Object.keys(files), fn.name).toContain(handler);
        // Assess: every relative import (static or import()) of a module in the zip is in the zip,
        // and every module in it is reached from the handler (no other function's chunks).
        const reached = new Set<string>();
        const visit = (path: string) => {
          if (reached.has(path)) return;
          reached.add(path);
          const bytes = files[path];
          expect(bytes, `${fn.name}: ${path}`).toBeDefined();
          for (const match of strFromU8(bytes ?? new Uint8Array()).matchAll(
            /(?:from|import)\s*\(?\s*["'](\.\/[^"']+)["']/g,
          )) {
            visit(posix.join(posix.dirname(path), match[1] ?? ''));
          }
        };
        visit(handler);
        expect(Object.keys(files).sort(), fn.name).toEqual([...reached].sort());
        // Act: import the unpacked handler in a fresh process, as the runtime would.
        const dir = join(unpacked, fn.name);
        for (const [path, bytes] of Object.entries(files)) {
          await mkdir(dirname(join(dir, path)), { recursive: true });
          await writeFile(join(dir, path), bytes);
        }
        const child = spawnSync(
          process.execPath,
          [
            '--input-type=module',
            '-e',
            `const m = await import(${JSON.stringify(pathToFileURL(join(dir, handler)).href)}); if (typeof m.handler !== 'function') process.exit(3);`,
          ],
          {
            encoding: 'utf8',
            env: {
              ...process.env,
              ...fn.environment,
              AWS_REGION: 'us-east-1',
              AWS_ACCESS_KEY_ID: 'local',
              AWS_SECRET_ACCESS_KEY: 'local',
              AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
              POWERTOOLS_LOG_LEVEL: 'SILENT',
              POWERTOOLS_METRICS_DISABLED: 'true',
              REPORT_DESTINATION: `file://${unpacked}/reports`,
              NODE_OPTIONS: '',
            },
          },
        );
        expect(child.status, `${fn.name}: ${child.stderr}`).toBe(0);
      }
    } finally {
      await rm(unpacked, { recursive: true, force: true });
    }
  });

  it('gives every function the role the local IAM enforces: the packaged roles, resolved, equal the local model', () => {
    const config = loadServerlessConfig();
    const options = { stage: 'dev', region: 'us-east-1' };
    const local = buildStackModel(config, options);
    // The same resolver over the template serverless package wrote (variables already resolved by osls).
    // The resource types the local stack models (what serverless package adds for functions, log
    // groups and versions is not among them); the roles and everything they reference are.
    const modelled = Object.fromEntries(
      Object.entries(template.Resources).filter(([, resource]) => resource.Type in LOCAL_RESOURCE_TYPES),
    );
    const packaged = buildStackModel(
      {
        ...config,
        resources: {
          Resources: modelled as never,
          ...((template as { Conditions?: unknown }).Conditions
            ? { Conditions: (template as { Conditions?: unknown }).Conditions }
            : {}),
        } as never,
      },
      options,
    );
    expect(local.functions.length).toBeGreaterThan(0);
    for (const fn of local.functions) {
      const resource = template.Resources[functionLogicalId(fn.name)];
      const role = resource?.Properties.Role as { 'Fn::GetAtt'?: string[] } | undefined;
      expect(role?.['Fn::GetAtt']?.[0], fn.name).toBe(fn.role.logicalId);
      const fromPackage = packaged.functions.find((candidate) => candidate.name === fn.name)?.role;
      expect(fromPackage?.policies, fn.name).toEqual(fn.role.policies);
      expect(fn.role.policies.length, fn.name).toBeGreaterThan(0);
    }
  });
});
