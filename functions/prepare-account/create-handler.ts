/**
 * `Custom::FleetgateAccount`: prepares the account at deploy time (quarantine thing group with its
 * deny policy attached, registry event configurations). Create and Update run the idempotent
 * `prepareAccount`; Delete undoes only what this resource created, read back from its physical
 * resource id (`fleetgate-account|<group>|<policy>|<flags>|<events>`), and leaves the registry
 * event configurations on: they are account-wide (another stage may use them), and event types the
 * operator had enabled before were never this resource's. The events it turned on are logged.
 *
 * An Update that keeps the group and policy names keeps the physical id: a new id would make
 * CloudFormation delete the "old" resource — the very group and policy still in use.
 * The handler always answers CloudFormation (also on errors and before the Lambda times out),
 * because an unanswered custom resource blocks the stack for an hour.
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import type { EventType, IoTClient } from '@aws-sdk/client-iot';
import type { Context } from 'aws-lambda';
import {
  FLEETGATE_EVENT_TYPES,
  type PreparationRecord,
  prepareAccount,
  quarantinePolicyDocument,
  unprepareAccount,
} from '../../shared/iot/prepare-account';
import { type CustomResourceEvent, type CustomResourceResponse, sendCfnResponse } from './cfn-response';

export interface PrepareAccountDeps {
  iot: IoTClient;
  logger: Logger;
  /** Replaced in tests. */
  respond?: typeof sendCfnResponse;
}

const ID_PREFIX = 'fleetgate-account';

/** Encodes what a preparation created into a physical resource id (well under CloudFormation's 1 KB). */
export function toPhysicalId(record: PreparationRecord): string {
  const flags = [
    record.createdGroup ? 'g' : '',
    record.createdPolicy ? 'p' : '',
    record.attachedPolicy ? 'a' : '',
  ].join('');
  return [
    ID_PREFIX,
    record.thingGroupName,
    record.policyName,
    flags || '-',
    record.enabledEvents.join(',') || '-',
  ].join('|');
}

/** Reads a physical id back; undefined for ids this resource did not issue (e.g. a failed Create). */
export function fromPhysicalId(id: string | undefined): PreparationRecord | undefined {
  const parts = id?.split('|') ?? [];
  if (parts.length !== 5 || parts[0] !== ID_PREFIX) return undefined;
  const [, thingGroupName = '', policyName = '', flags = '', events = ''] = parts;
  return {
    thingGroupName,
    policyName,
    createdGroup: flags.includes('g'),
    createdPolicy: flags.includes('p'),
    attachedPolicy: flags.includes('a'),
    updatedPolicy: false,
    enabledEvents: events === '-' ? [] : (events.split(',') as EventType[]),
    thingGroupArn: '',
  };
}

/** Builds the custom-resource handler around its IoT client (tests pass the emulator's). */
export function createHandler(deps: PrepareAccountDeps) {
  const respond = deps.respond ?? sendCfnResponse;
  return async (event: CustomResourceEvent, context: Context): Promise<CustomResourceResponse> => {
    const response = await withDeadline(run(event, deps), context, event);
    if (response.Status === 'FAILED')
      deps.logger.error('account preparation failed', { reason: response.Reason });
    else
      deps.logger.info('account preparation done', {
        requestType: event.RequestType,
        id: response.PhysicalResourceId,
      });
    await respond(event, response);
    return response;
  };
}

async function run(event: CustomResourceEvent, deps: PrepareAccountDeps): Promise<CustomResourceResponse> {
  try {
    if (event.RequestType === 'Delete') {
      const record = fromPhysicalId(event.PhysicalResourceId);
      if (record) await unprepareAccount(deps.iot, record);
      if (record && record.enabledEvents.length > 0) {
        deps.logger.info(
          'registry event configurations left on (account-wide; turn them off by hand if unused)',
          {
            turnedOnAtCreate: record.enabledEvents,
          },
        );
      }
      return { Status: 'SUCCESS', PhysicalResourceId: event.PhysicalResourceId ?? `${ID_PREFIX}-none` };
    }
    const properties = readProperties(event);
    const record = await prepareAccount(deps.iot, properties);
    const previous = event.RequestType === 'Update' ? fromPhysicalId(event.PhysicalResourceId) : undefined;
    const keepId =
      previous !== undefined &&
      previous.thingGroupName === record.thingGroupName &&
      previous.policyName === record.policyName;
    return {
      Status: 'SUCCESS',
      PhysicalResourceId:
        keepId && event.PhysicalResourceId ? event.PhysicalResourceId : toPhysicalId(record),
      Data: {
        ThingGroupName: record.thingGroupName,
        ThingGroupArn: record.thingGroupArn,
        PolicyName: record.policyName,
      },
    };
  } catch (error) {
    const name = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    return {
      Status: 'FAILED',
      Reason: `fleetgate account preparation failed: ${name}`,
      // A failed Create must still name a resource; Delete then finds nothing to undo.
      PhysicalResourceId: event.PhysicalResourceId ?? `${ID_PREFIX}-failed-${event.RequestId}`,
    };
  }
}

function readProperties(event: CustomResourceEvent) {
  const props = event.ResourceProperties;
  const thingGroupName = stringProperty(props, 'ThingGroupName');
  const policyName = stringProperty(props, 'PolicyName');
  const document = props.PolicyDocument;
  const [, , , region = 'us-east-1', accountId = ''] = event.StackId.split(':');
  const partition = event.StackId.split(':')[1] ?? 'aws';
  const policyDocument =
    typeof document === 'string'
      ? document
      : document && typeof document === 'object'
        ? JSON.stringify(document)
        : quarantinePolicyDocument({ partition, region, accountId });
  const eventTypes = Array.isArray(props.EventTypes)
    ? (props.EventTypes.map(String) as EventType[])
    : FLEETGATE_EVENT_TYPES;
  return { thingGroupName, policyName, policyDocument, eventTypes };
}

function stringProperty(props: Record<string, unknown>, name: string): string {
  const value = props[name];
  if (typeof value !== 'string' || value === '') throw new Error(`ResourceProperties.${name} is required`);
  return value;
}

/** Answers FAILED a little before the Lambda would time out, rather than never. */
async function withDeadline(
  work: Promise<CustomResourceResponse>,
  context: Context,
  event: CustomResourceEvent,
): Promise<CustomResourceResponse> {
  const budget = Math.max(1000, context.getRemainingTimeInMillis() - 3000);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<CustomResourceResponse>((resolve) => {
    timer = setTimeout(
      () =>
        resolve({
          Status: 'FAILED',
          Reason: `fleetgate account preparation did not finish within ${budget} ms`,
          PhysicalResourceId: event.PhysicalResourceId ?? `${ID_PREFIX}-failed-${event.RequestId}`,
        }),
      budget,
    );
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}
