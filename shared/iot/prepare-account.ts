/**
 * Account preparation (docs/architecture.md §4): the quarantine thing group with its explicit-deny policy
 * attached (CloudFormation cannot attach a policy to a thing group), and the registry event
 * configurations fleetgate consumes. Used by the `Custom::FleetgateAccount` custom resource at
 * deploy time and by local tooling (`prepareAccount(iot, …)` against the IoT emulator).
 *
 * Every step looks before it creates and reports what it created, so the custom resource can undo
 * exactly that on Delete and nothing an operator made by hand. Event configurations are the
 * exception: they are account-wide and stay on after Delete (see `unprepareAccount`).
 */
import {
  AttachPolicyCommand,
  CreatePolicyCommand,
  CreatePolicyVersionCommand,
  CreateThingGroupCommand,
  DeletePolicyCommand,
  DeletePolicyVersionCommand,
  DeleteThingGroupCommand,
  DescribeEventConfigurationsCommand,
  DescribeThingGroupCommand,
  DetachPolicyCommand,
  type EventType,
  GetPolicyCommand,
  type IoTClient,
  ListAttachedPoliciesCommand,
  ListPolicyVersionsCommand,
  UpdateEventConfigurationsCommand,
} from '@aws-sdk/client-iot';
import quarantinePolicyTemplate from '../../iot/quarantine-policy.json';

/**
 * Registry events fleetgate consumes: THING (JITP, registry drift), THING_GROUP_MEMBERSHIP
 * (quarantine audit), CERTIFICATE and CA_CERTIFICATE (certificate lifecycle, CA registration).
 * Presence and JITR `certificates/registered` events need no configuration.
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/registry-events.html
 */
export const FLEETGATE_EVENT_TYPES: readonly EventType[] = [
  'THING',
  'THING_GROUP_MEMBERSHIP',
  'CERTIFICATE',
  'CA_CERTIFICATE',
];

export interface AccountPreparation {
  thingGroupName: string;
  policyName: string;
  /** The rendered policy document (JSON text). */
  policyDocument: string;
  eventTypes?: readonly EventType[];
}

/** What one preparation did; the custom resource keeps it to undo only its own work. */
export interface PreparationRecord {
  thingGroupName: string;
  policyName: string;
  createdGroup: boolean;
  createdPolicy: boolean;
  attachedPolicy: boolean;
  /** A new default version was written because the stored document differed. */
  updatedPolicy: boolean;
  enabledEvents: EventType[];
  thingGroupArn: string;
}

/**
 * Renders an iot/*.json template the way CloudFormation's Fn::Sub does for serverless.yml:
 * `${AWS::Partition|Region|AccountId}` substituted, `${!x}` left as the IoT policy variable `${x}`.
 */
export function renderPolicyTemplate(
  template: unknown,
  context: { partition?: string; region: string; accountId: string },
): string {
  const values: Record<string, string> = {
    'AWS::Partition': context.partition ?? 'aws',
    'AWS::Region': context.region,
    'AWS::AccountId': context.accountId,
  };
  const text = JSON.stringify(template).replace(/\$\{(!?)([^}]+)\}/g, (whole, bang: string, name: string) => {
    if (bang === '!') return `\${${name}}`;
    return values[name] ?? whole;
  });
  return text;
}

/** The quarantine policy (iot/quarantine-policy.json) rendered for an account and region. */
export function quarantinePolicyDocument(context: {
  partition?: string;
  region: string;
  accountId: string;
}): string {
  return renderPolicyTemplate(quarantinePolicyTemplate, context);
}

/** Makes the account ready; safe to run again (it then creates nothing). */
export async function prepareAccount(
  iot: IoTClient,
  preparation: AccountPreparation,
): Promise<PreparationRecord> {
  const group = await ensureThingGroup(iot, preparation.thingGroupName);
  const policy = await ensurePolicy(iot, preparation.policyName, preparation.policyDocument);
  const attachedPolicy = await ensureAttached(iot, preparation.policyName, group.arn);
  const enabledEvents = await ensureEvents(iot, preparation.eventTypes ?? FLEETGATE_EVENT_TYPES);
  return {
    thingGroupName: preparation.thingGroupName,
    policyName: preparation.policyName,
    createdGroup: group.created,
    createdPolicy: policy.created,
    attachedPolicy,
    updatedPolicy: policy.updated,
    enabledEvents,
    thingGroupArn: group.arn,
  };
}

/**
 * Undoes what `record` says a preparation created (group, policy, attachment), and nothing else;
 * event configurations stay on. Safe to run again.
 */
export async function unprepareAccount(iot: IoTClient, record: PreparationRecord): Promise<void> {
  const groupArn = record.thingGroupArn || (await describeGroupArn(iot, record.thingGroupName));
  if ((record.attachedPolicy || record.createdPolicy) && groupArn) {
    await ignoreMissing(() =>
      iot.send(new DetachPolicyCommand({ policyName: record.policyName, target: groupArn })),
    );
  }
  if (record.createdPolicy) {
    const versions = await ignoreMissing(() =>
      iot.send(new ListPolicyVersionsCommand({ policyName: record.policyName })),
    );
    for (const version of versions?.policyVersions ?? []) {
      if (version.isDefaultVersion || !version.versionId) continue;
      await ignoreMissing(() =>
        iot.send(
          new DeletePolicyVersionCommand({
            policyName: record.policyName,
            policyVersionId: version.versionId,
          }),
        ),
      );
    }
    await ignoreMissing(() => iot.send(new DeletePolicyCommand({ policyName: record.policyName })));
  }
  if (record.createdGroup) {
    await ignoreMissing(() =>
      iot.send(new DeleteThingGroupCommand({ thingGroupName: record.thingGroupName })),
    );
  }
  // Registry event configurations are left as they are, including those this preparation turned on
  // (record.enabledEvents): they are account- and region-wide, so another fleetgate stage, or
  // anything else the operator runs, may rely on them; switching them off here would silently stop
  // its registry events. The operator turns them off by hand if nothing uses them (README, "Deploying").
}

async function ensureThingGroup(
  iot: IoTClient,
  thingGroupName: string,
): Promise<{ arn: string; created: boolean }> {
  const existing = await describeGroupArn(iot, thingGroupName);
  if (existing) return { arn: existing, created: false };
  try {
    const out = await iot.send(
      new CreateThingGroupCommand({
        thingGroupName,
        thingGroupProperties: {
          thingGroupDescription:
            'fleetgate quarantine: an explicit-deny policy restricts its things to remediation',
        },
      }),
    );
    return { arn: out.thingGroupArn ?? '', created: true };
  } catch (error) {
    // Created concurrently (or with other properties): verify instead of failing.
    if (nameOf(error) !== 'ResourceAlreadyExistsException') throw error;
    const arn = await describeGroupArn(iot, thingGroupName);
    if (!arn) throw error;
    return { arn, created: false };
  }
}

async function describeGroupArn(iot: IoTClient, thingGroupName: string): Promise<string | undefined> {
  const out = await ignoreMissing(() => iot.send(new DescribeThingGroupCommand({ thingGroupName })));
  return out?.thingGroupArn;
}

async function ensurePolicy(
  iot: IoTClient,
  policyName: string,
  policyDocument: string,
): Promise<{ created: boolean; updated: boolean }> {
  const existing = await ignoreMissing(() => iot.send(new GetPolicyCommand({ policyName })));
  if (!existing) {
    try {
      await iot.send(new CreatePolicyCommand({ policyName, policyDocument }));
      return { created: true, updated: false };
    } catch (error) {
      if (nameOf(error) !== 'ResourceAlreadyExistsException') throw error;
      return { created: false, updated: false };
    }
  }
  if (sameDocument(existing.policyDocument, policyDocument)) return { created: false, updated: false };
  // A changed document becomes the new default version; IoT keeps at most five, so drop the oldest
  // non-default one first.
  const versions = await iot.send(new ListPolicyVersionsCommand({ policyName }));
  const old = (versions.policyVersions ?? []).filter((version) => !version.isDefaultVersion);
  if ((versions.policyVersions ?? []).length >= 5 && old.length > 0) {
    const oldest = old.sort((a, b) => (a.createDate?.getTime() ?? 0) - (b.createDate?.getTime() ?? 0))[0];
    await iot.send(new DeletePolicyVersionCommand({ policyName, policyVersionId: oldest?.versionId }));
  }
  await iot.send(new CreatePolicyVersionCommand({ policyName, policyDocument, setAsDefault: true }));
  return { created: false, updated: true };
}

async function ensureAttached(iot: IoTClient, policyName: string, target: string): Promise<boolean> {
  let marker: string | undefined;
  do {
    const out = await iot.send(new ListAttachedPoliciesCommand({ target, marker, pageSize: 100 }));
    if ((out.policies ?? []).some((policy) => policy.policyName === policyName)) return false;
    marker = out.nextMarker;
  } while (marker);
  await iot.send(new AttachPolicyCommand({ policyName, target }));
  return true;
}

async function ensureEvents(iot: IoTClient, wanted: readonly EventType[]): Promise<EventType[]> {
  const out = await iot.send(new DescribeEventConfigurationsCommand({}));
  const missing = wanted.filter((type) => out.eventConfigurations?.[type]?.Enabled !== true);
  if (missing.length > 0) {
    await iot.send(
      new UpdateEventConfigurationsCommand({
        eventConfigurations: Object.fromEntries(missing.map((type) => [type, { Enabled: true }])),
      }),
    );
  }
  return missing;
}

function sameDocument(a: string | undefined, b: string): boolean {
  if (a === undefined) return false;
  try {
    return JSON.stringify(JSON.parse(a)) === JSON.stringify(JSON.parse(b));
  } catch {
    return a === b;
  }
}

async function ignoreMissing<T>(call: () => Promise<T>): Promise<T | undefined> {
  try {
    return await call();
  } catch (error) {
    if (nameOf(error) === 'ResourceNotFoundException') return undefined;
    throw error;
  }
}

function nameOf(error: unknown): string | undefined {
  return (error as { name?: string } | null)?.name;
}
