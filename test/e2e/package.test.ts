import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DescribeTableCommand, DescribeTimeToLiveCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadServerlessConfig } from '../../local/serverless-config';
import { declaredIotResources, resolveCloudFormation } from '../../local/stack-model';
import { createTestTable, type TestTable } from '../support/dynamo';

const root = fileURLToPath(new URL('../..', import.meta.url));

interface Template {
  Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
}

let out: string;
let template: Template;
let table: TestTable;

beforeAll(async () => {
  out = await mkdtemp(join(tmpdir(), 'fleetgate-package-'));
  const result = spawnSync(process.execPath, [join(root, 'scripts', 'package.mjs'), '--package', out], {
    cwd: root,
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (result.status !== 0) throw new Error(`serverless package failed:\n${result.stdout}\n${result.stderr}`);
  template = JSON.parse(
    await readFile(join(out, 'cloudformation-template-update-stack.json'), 'utf8'),
  ) as Template;
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
});
