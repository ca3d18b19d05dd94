/**
 * The IoT resources serverless.yml declares (policies, provisioning templates, thing groups, CA
 * certificates), created in the local IoT emulator at stack start the way CloudFormation creates
 * them on a deploy: through the IoT API with the real `@aws-sdk/client-iot`, from the same
 * template (`declaredIotResources`, documents rendered by iot/render.cjs).
 *
 * Idempotent: a resource that already exists with the declared properties is left as it is, so a
 * restart on the same emulator state succeeds; one that exists with other properties fails with the
 * resource named (the emulator keeps one version of a policy or template, so it cannot update it in
 * place as CloudFormation would). Topic rules are run by the local rules engine, not created here
 * (the emulator serves no topic-rule API).
 */
import {
  CreatePolicyCommand,
  CreateProvisioningTemplateCommand,
  CreateThingGroupCommand,
  DescribeCACertificateCommand,
  DescribeProvisioningTemplateCommand,
  GetPolicyCommand,
  type IoTClient,
  RegisterCACertificateCommand,
  UpdateCACertificateCommand,
} from '@aws-sdk/client-iot';
import { IOT_RESOURCE_TYPES, type IotResourceSpec } from './stack-model';

/** What the local stack did with one declared resource. */
export interface MaterializedIotResource {
  logicalId: string;
  type: IotResourceSpec['type'];
  /** The resource's name (policy, template, thing group) or the CA certificate's id. */
  name: string;
  result: 'created' | 'unchanged' | 'updated';
}

/** Thrown when a declared resource cannot be created; names the resource, its type and why. */
export class IotResourceError extends Error {
  override name = 'IotResourceError';
  constructor(
    readonly logicalId: string,
    readonly type: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(`resources.Resources.${logicalId} (${type}): ${reason}`, options);
  }
}

/**
 * Creates every declared resource in the emulator: thing groups (parents first), policies,
 * provisioning templates, CA certificates — the order CloudFormation's references impose.
 * @throws IotResourceError for the first resource that cannot be created.
 */
export async function materializeIotResources(
  iot: IoTClient,
  specs: readonly IotResourceSpec[],
): Promise<MaterializedIotResource[]> {
  const done: MaterializedIotResource[] = [];
  for (const spec of creationOrder(specs)) {
    try {
      done.push(await materialize(iot, spec));
    } catch (error) {
      if (error instanceof IotResourceError) throw error;
      throw new IotResourceError(spec.logicalId, spec.type, describe(error), { cause: error });
    }
  }
  return done;
}

function creationOrder(specs: readonly IotResourceSpec[]): IotResourceSpec[] {
  const rank = (spec: IotResourceSpec) => IOT_RESOURCE_TYPES.indexOf(spec.type);
  const byType = [...specs].sort((a, b) => rank(a) - rank(b));
  // A thing group after the declared group it names as its parent.
  const groups = byType.filter((spec) => spec.type === 'AWS::IoT::ThingGroup');
  const ordered: IotResourceSpec[] = [];
  const placed = new Set<string>();
  while (ordered.length < groups.length) {
    const next = groups.find(
      (group) =>
        !placed.has(group.thingGroupName) &&
        (group.parentGroupName === undefined ||
          placed.has(group.parentGroupName) ||
          !groups.some((other) => other.thingGroupName === group.parentGroupName)),
    );
    if (!next) {
      const [cycle] = groups.filter((group) => !placed.has(group.thingGroupName));
      throw new IotResourceError(
        cycle?.logicalId ?? '?',
        'AWS::IoT::ThingGroup',
        'parent groups form a cycle',
      );
    }
    placed.add(next.thingGroupName);
    ordered.push(next);
  }
  return [...ordered, ...byType.filter((spec) => spec.type !== 'AWS::IoT::ThingGroup')];
}

async function materialize(iot: IoTClient, spec: IotResourceSpec): Promise<MaterializedIotResource> {
  const done = (name: string, result: MaterializedIotResource['result']): MaterializedIotResource => ({
    logicalId: spec.logicalId,
    type: spec.type,
    name,
    result,
  });
  switch (spec.type) {
    case 'AWS::IoT::ThingGroup': {
      // CreateThingGroup answers with the existing group when its properties are the same.
      const attributes = spec.attributes ? { attributePayload: { attributes: spec.attributes } } : {};
      const properties =
        spec.description !== undefined || spec.attributes
          ? {
              thingGroupProperties: {
                ...(spec.description !== undefined ? { thingGroupDescription: spec.description } : {}),
                ...attributes,
              },
            }
          : {};
      await iot.send(
        new CreateThingGroupCommand({
          thingGroupName: spec.thingGroupName,
          ...(spec.parentGroupName !== undefined ? { parentGroupName: spec.parentGroupName } : {}),
          ...properties,
        }),
      );
      return done(spec.thingGroupName, 'created');
    }
    case 'AWS::IoT::Policy': {
      const created = await createdUnlessExisting(
        iot.send(
          new CreatePolicyCommand({ policyName: spec.policyName, policyDocument: spec.policyDocument }),
        ),
      );
      if (created) return done(spec.policyName, 'created');
      const existing = await iot.send(new GetPolicyCommand({ policyName: spec.policyName }));
      if (!sameJson(existing.policyDocument, spec.policyDocument)) {
        throw new IotResourceError(
          spec.logicalId,
          spec.type,
          `policy ${spec.policyName} already exists with another document (the emulator keeps one version per policy: restart the local stack)`,
        );
      }
      return done(spec.policyName, 'unchanged');
    }
    case 'AWS::IoT::ProvisioningTemplate': {
      const created = await createdUnlessExisting(
        iot.send(
          new CreateProvisioningTemplateCommand({
            templateName: spec.templateName,
            templateBody: spec.templateBody,
            provisioningRoleArn: spec.provisioningRoleArn,
            enabled: spec.enabled,
            type: spec.templateType as 'FLEET_PROVISIONING' | 'JITP',
            ...(spec.description !== undefined ? { description: spec.description } : {}),
            ...(spec.preProvisioningHook ? { preProvisioningHook: spec.preProvisioningHook } : {}),
          }),
        ),
      );
      if (created) return done(spec.templateName, 'created');
      const existing = await iot.send(
        new DescribeProvisioningTemplateCommand({ templateName: spec.templateName }),
      );
      const same =
        sameJson(existing.templateBody, spec.templateBody) &&
        existing.provisioningRoleArn === spec.provisioningRoleArn &&
        existing.enabled === spec.enabled &&
        (existing.type ?? 'FLEET_PROVISIONING') === spec.templateType &&
        existing.preProvisioningHook?.targetArn === spec.preProvisioningHook?.targetArn;
      if (!same) {
        throw new IotResourceError(
          spec.logicalId,
          spec.type,
          `provisioning template ${spec.templateName} already exists with other properties (restart the local stack)`,
        );
      }
      return done(spec.templateName, 'unchanged');
    }
    case 'AWS::IoT::CACertificate': {
      const registration = spec.registrationConfig
        ? {
            registrationConfig: {
              ...(spec.registrationConfig.templateBody !== undefined
                ? { templateBody: spec.registrationConfig.templateBody }
                : {}),
              ...(spec.registrationConfig.roleArn !== undefined
                ? { roleArn: spec.registrationConfig.roleArn }
                : {}),
              ...(spec.registrationConfig.templateName !== undefined
                ? { templateName: spec.registrationConfig.templateName }
                : {}),
            },
          }
        : {};
      try {
        const out = await iot.send(
          new RegisterCACertificateCommand({
            caCertificate: spec.caCertificatePem,
            ...(spec.verificationCertificatePem !== undefined
              ? { verificationCertificate: spec.verificationCertificatePem }
              : {}),
            setAsActive: spec.status === 'ACTIVE',
            allowAutoRegistration: spec.autoRegistration,
            ...(spec.certificateMode !== undefined
              ? { certificateMode: spec.certificateMode as 'DEFAULT' | 'SNI_ONLY' }
              : {}),
            ...registration,
            ...(spec.tags ? { tags: spec.tags } : {}),
          }),
        );
        return done(out.certificateId ?? '', 'created');
      } catch (error) {
        const certificateId = (error as { resourceId?: unknown }).resourceId;
        if (awsName(error) !== 'ResourceAlreadyExistsException' || typeof certificateId !== 'string')
          throw error;
        // Registered already: bring status and auto-registration to what is declared (a stack update).
        const existing = await iot.send(new DescribeCACertificateCommand({ certificateId }));
        const description = existing.certificateDescription;
        const autoRegistration = spec.autoRegistration ? 'ENABLE' : 'DISABLE';
        if (description?.status === spec.status && description.autoRegistrationStatus === autoRegistration) {
          return done(certificateId, 'unchanged');
        }
        await iot.send(
          new UpdateCACertificateCommand({
            certificateId,
            newStatus: spec.status,
            newAutoRegistrationStatus: autoRegistration,
            ...registration,
          }),
        );
        return done(certificateId, 'updated');
      }
    }
  }
}

/** True when the request created the resource; false when it existed already. */
async function createdUnlessExisting(request: Promise<unknown>): Promise<boolean> {
  try {
    await request;
    return true;
  } catch (error) {
    if (awsName(error) === 'ResourceAlreadyExistsException') return false;
    throw error;
  }
}

function sameJson(a: string | undefined, b: string): boolean {
  if (a === undefined) return false;
  try {
    return JSON.stringify(JSON.parse(a)) === JSON.stringify(JSON.parse(b));
  } catch {
    return a === b;
  }
}

function awsName(error: unknown): string {
  const name = (error as { name?: unknown } | null)?.name;
  return typeof name === 'string' ? name : 'Error';
}

function describe(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return `${awsName(error)}: ${message}`;
}
