/**
 * The IoT resources of serverless.yml as the local stack reads them: documents rendered through
 * iot/render.cjs and CloudFormation's intrinsics, the template wired to the hook, and resource
 * types the local stack does not know refused by name.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderPolicyDocument } from '../../local/mqtt/policies';
import { loadServerlessConfig, type ServerlessConfig } from '../../local/serverless-config';
import {
  buildStackModel,
  declaredIotNames,
  declaredIotResources,
  type IotResourceSpec,
  LOCAL_RESOURCE_TYPES,
  resolveCloudFormation,
  StackModelError,
} from '../../local/stack-model';
import { PROJECT_ROOT } from '../support/serverless-copy';

const ACCOUNT = '123456789012';
const config = () => loadServerlessConfig(join(PROJECT_ROOT, 'serverless.yml'));
const declared = (file: ServerlessConfig = config(), stage = 'local') =>
  declaredIotResources(file, { stage, baseDir: PROJECT_ROOT });
const byId = (specs: IotResourceSpec[], logicalId: string) =>
  specs.find((spec) => spec.logicalId === logicalId);

function withResources(extra: Record<string, unknown>): ServerlessConfig {
  const file = config();
  return {
    ...file,
    resources: { ...file.resources, Resources: { ...file.resources?.Resources, ...extra } },
  } as ServerlessConfig;
}

describe('declaredIotResources', () => {
  it('renders the device and claim policies through iot/render.cjs, as the documents of iot/ with local ARNs', async () => {
    // Act
    const specs = await declared();
    // Assess
    const device = byId(specs, 'DevicePolicy');
    const claim = byId(specs, 'ClaimPolicy');
    expect(device).toMatchObject({ type: 'AWS::IoT::Policy', policyName: 'fleetgate-local-device' });
    expect(claim).toMatchObject({ type: 'AWS::IoT::Policy', policyName: 'fleetgate-local-claim' });
    const account = { region: 'us-east-1', accountId: ACCOUNT };
    expect(JSON.parse(device?.type === 'AWS::IoT::Policy' ? device.policyDocument : '')).toEqual(
      JSON.parse(renderPolicyDocument('device-policy.json', account)),
    );
    expect(JSON.parse(claim?.type === 'AWS::IoT::Policy' ? claim.policyDocument : '')).toEqual(
      JSON.parse(
        renderPolicyDocument('claim-policy.json', {
          ...account,
          parameters: { ProvisioningTemplateName: 'fleetgate-local-fleet' },
        }),
      ),
    );
    // The policy variable survives CloudFormation's `${!…}` escape; no placeholder is left.
    expect(device?.type === 'AWS::IoT::Policy' && device.policyDocument).toContain(
      // biome-ignore lint/suspicious/noTemplateCurlyInString: an IoT policy variable
      'client/${iot:Connection.Thing.ThingName}',
    );
    expect(JSON.stringify(specs)).not.toMatch(/\$\{(AWS::|!|ProvisioningTemplateName)/);
  });

  it('wires the fleet-provisioning template to the preProvisionHook function and the device policy', async () => {
    // Act
    const template = byId(await declared(), 'FleetProvisioningTemplate');
    // Assess
    expect(template).toMatchObject({
      type: 'AWS::IoT::ProvisioningTemplate',
      templateName: 'fleetgate-local-fleet',
      templateType: 'FLEET_PROVISIONING',
      enabled: true,
      provisioningRoleArn: `arn:aws:iam::${ACCOUNT}:role/fleetgate-local-IotProvisioningRole-local`,
      preProvisioningHook: {
        targetArn: `arn:aws:lambda:us-east-1:${ACCOUNT}:function:fleetgate-local-preProvisionHook`,
        payloadVersion: '2020-04-01',
      },
    });
    const body = JSON.parse(readFileSync(join(PROJECT_ROOT, 'iot', 'provisioning-template.json'), 'utf8'));
    body.Resources.policy.Properties.PolicyName = 'fleetgate-local-device';
    expect(
      JSON.parse(template?.type === 'AWS::IoT::ProvisioningTemplate' ? template.templateBody : ''),
    ).toEqual(body);
  });

  it('follows the stage: names and ARNs of another stage', async () => {
    // Act
    const specs = await declared(config(), 'qa');
    // Assess
    expect(specs.map((spec) => ('policyName' in spec ? spec.policyName : spec.logicalId))).toEqual(
      expect.arrayContaining(['fleetgate-qa-device', 'fleetgate-qa-claim']),
    );
    expect(JSON.stringify(byId(specs, 'ClaimPolicy'))).toContain(
      'provisioning-templates/fleetgate-qa-fleet/',
    );
  });

  it('resolves thing groups and CA certificates (JITR / JITP settings) when serverless.yml declares them', async () => {
    // Prepare
    const file = withResources({
      DeviceGroup: {
        Type: 'AWS::IoT::ThingGroup',
        Properties: {
          // biome-ignore lint/suspicious/noTemplateCurlyInString: Serverless variables
          ThingGroupName: '${self:service}-${sls:stage}-devices',
          ThingGroupProperties: {
            ThingGroupDescription: 'every device',
            AttributePayload: { Attributes: { fleet: 'main' } },
          },
        },
      },
      DeviceCa: {
        Type: 'AWS::IoT::CACertificate',
        Properties: {
          CACertificatePem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
          Status: 'ACTIVE',
          AutoRegistrationStatus: 'ENABLE',
          CertificateMode: 'DEFAULT',
          RegistrationConfig: {
            TemplateName: { Ref: 'FleetProvisioningTemplate' },
            RoleArn: { 'Fn::GetAtt': ['IotProvisioningRole', 'Arn'] },
          },
        },
      },
    });
    // Act
    const specs = await declared(file);
    // Assess
    expect(byId(specs, 'DeviceGroup')).toEqual({
      type: 'AWS::IoT::ThingGroup',
      logicalId: 'DeviceGroup',
      thingGroupName: 'fleetgate-local-devices',
      description: 'every device',
      attributes: { fleet: 'main' },
    });
    expect(byId(specs, 'DeviceCa')).toMatchObject({
      type: 'AWS::IoT::CACertificate',
      status: 'ACTIVE',
      autoRegistration: true,
      certificateMode: 'DEFAULT',
      registrationConfig: {
        templateName: 'fleetgate-local-fleet',
        roleArn: `arn:aws:iam::${ACCOUNT}:role/fleetgate-local-IotProvisioningRole-local`,
      },
    });
    // Created in CloudFormation's order: groups, policies, templates, CAs.
    expect(specs.map((spec) => spec.type)).toEqual([
      'AWS::IoT::ThingGroup',
      'AWS::IoT::Policy',
      'AWS::IoT::Policy',
      'AWS::IoT::ProvisioningTemplate',
      'AWS::IoT::ProvisioningTemplate',
      'AWS::IoT::CACertificate',
    ]);
  });

  it('names the resource whose property is missing', async () => {
    // Prepare
    const file = withResources({
      BrokenCa: { Type: 'AWS::IoT::CACertificate', Properties: { Status: 'ACTIVE' } },
    });
    // Act / Assess
    await expect(declared(file)).rejects.toThrow(
      new StackModelError(
        'resources.Resources.BrokenCa (AWS::IoT::CACertificate): CACertificatePem is required',
      ),
    );
  });
});

describe('buildStackModel and resource types', () => {
  it('knows every resource type serverless.yml declares today', () => {
    // Act
    const types = Object.values(config().resources?.Resources ?? {}).map((resource) => resource.Type);
    // Assess
    expect(types.filter((type) => !(type in LOCAL_RESOURCE_TYPES))).toEqual([]);
    expect(() => buildStackModel(config())).not.toThrow();
  });

  it.each([
    ['DeviceThing', 'AWS::IoT::Thing'],
    ['Queue2', 'AWS::SQS::FifoQueueThatDoesNotExist'],
    ['Notify', 'AWS::Lambda::EventSourceMapping'],
  ])('refuses %s of type %s, naming both, instead of skipping it', (logicalId, type) => {
    // Prepare
    const file = withResources({ [logicalId]: { Type: type, Properties: {} } });
    // Act / Assess
    expect(() => buildStackModel(file)).toThrow(StackModelError);
    expect(() => buildStackModel(file)).toThrow(
      `resources.Resources.${logicalId}: ${type} is not a resource type`,
    );
  });

  it('names the declared device policy, claim policy, claim template and trusted-user template for device-side tools', () => {
    expect(declaredIotNames(buildStackModel(config()))).toEqual({
      devicePolicyName: 'fleetgate-local-device',
      claimPolicyName: 'fleetgate-local-claim',
      fleetTemplateName: 'fleetgate-local-fleet',
      installerTemplateName: 'fleetgate-local-installer',
    });
  });
});

describe('resolveCloudFormation', () => {
  it('substitutes Fn::Sub variables, pseudo parameters and attributes, and keeps the escaped literal', () => {
    // Act
    const value = resolveCloudFormation(
      config(),
      { stage: 'dev' },
      {
        'Fn::Sub': [
          // biome-ignore lint/suspicious/noTemplateCurlyInString: CloudFormation Fn::Sub syntax
          'arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:topic/${Name}/${!iot:ClientId}/${RegistrationQueue.QueueName}',
          { Name: { Ref: 'ClaimPolicy' } },
        ],
      },
    );
    // Assess
    expect(value).toBe(
      `arn:aws:iot:us-east-1:${ACCOUNT}:topic/fleetgate-dev-claim/\${iot:ClientId}/fleetgate-dev-registration`,
    );
  });
});
