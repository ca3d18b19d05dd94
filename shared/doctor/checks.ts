/**
 * `fleetgate doctor` checks (docs/doctor.md): does an account (or the local stack) have what
 * serverless.yml says fleetgate needs? Each check takes the clients and the names expected from
 * the serverless.yml model, makes read-only calls, and answers with a {@link CheckResult}; a check
 * never throws (an unexpected error, e.g. AccessDenied, is that check's failure) and no check
 * depends on another.
 *
 * Severity: what serverless.yml declares — the device policy, the provisioning template — is
 * created by a deploy and by the local stack alike, so its absence fails on both targets. A JITR CA
 * is the operator's (serverless.yml declares none): `strict` (the `aws` target) makes its absence a
 * failure; on the local stack it is a warning.
 */
import {
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  type DynamoDBClient,
  type KeySchemaElement,
  type TableDescription,
} from '@aws-sdk/client-dynamodb';
import {
  DescribeCACertificateCommand,
  DescribeEventConfigurationsCommand,
  DescribeProvisioningTemplateCommand,
  DescribeThingGroupCommand,
  GetPolicyCommand,
  type IoTClient,
  ListAttachedPoliciesCommand,
  ListCACertificatesCommand,
} from '@aws-sdk/client-iot';
import { GetQueueAttributesCommand, GetQueueUrlCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { type RegisteredCa, trustedCaIdsOf } from './ca-trust';
import { HOW_TO_TRUST, noAutoRegisteringCaFix } from './jitr-fixes';

/** One check's answer. `warn` is set on an ok check that still deserves a look. */
export interface CheckResult {
  name: string;
  ok: boolean;
  warn?: boolean;
  detail: string;
  fix?: string;
}

export interface DoctorClients {
  dynamodb: DynamoDBClient;
  sqs: SQSClient;
  iot: IoTClient;
}

/** What serverless.yml declares, as the checks need it (built from local/stack-model.ts). */
export interface DoctorExpectations {
  /** A missing JITR CA fails (aws) instead of warning (local stack). */
  strict: boolean;
  table: {
    name: string;
    keySchema: KeySchemaElement[];
    indexes: Array<{ indexName: string; keySchema: KeySchemaElement[] }>;
    ttlAttribute?: string;
  };
  queues: Array<{ name: string; deadLetterQueue?: string }>;
  /** Names of the queues that collect dead letters (RedrivePolicy and errorAction targets). */
  deadLetterQueues: string[];
  eventTypes: string[];
  /** TRUSTED_CA_IDS; JITR also trusts CAs recorded in the store or tagged (never: any registered CA). */
  trustedCaIds: string[];
  devicePolicyName?: string;
  quarantine?: { thingGroupName: string; policyName: string };
  provisioningTemplate?: { templateName: string; hookFunctionName?: string };
}

/** Event types fleetgate cannot work without: JITP follow-up / registry drift, quarantine audit. */
export const REQUIRED_EVENT_TYPES = ['THING', 'THING_GROUP_MEMBERSHIP'] as const;

function errorName(error: unknown): string {
  const name = (error as { name?: unknown } | undefined)?.name;
  return name === undefined ? String(error) : String(name);
}

function notFound(error: unknown): boolean {
  const name = errorName(error);
  return (
    name === 'ResourceNotFoundException' ||
    name === 'QueueDoesNotExist' ||
    name === 'AWS.SimpleQueueService.NonExistentQueue'
  );
}

function keys(schema: readonly KeySchemaElement[] | undefined): string {
  return (schema ?? []).map((key) => `${key.AttributeName}:${key.KeyType}`).join(',');
}

/** Runs a check; an unexpected error becomes that check's failure. */
async function guarded(name: string, check: () => Promise<CheckResult>): Promise<CheckResult> {
  try {
    return await check();
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    return { name, ok: false, detail: `${errorName(error)}: ${message}` };
  }
}

/** The provisioning table: ACTIVE, key schema and GSIs as in serverless.yml, TTL on `ttl`. */
export function checkTable(dynamodb: DynamoDBClient, expected: DoctorExpectations['table']) {
  const name = 'table';
  return guarded(name, async () => {
    const fix = 'deploy the stack (`osls deploy`) or start the local stack (`fleetgate local up`)';
    let description: TableDescription;
    try {
      const out = await dynamodb.send(new DescribeTableCommand({ TableName: expected.name }));
      description = out.Table ?? {};
    } catch (error) {
      if (notFound(error)) return { name, ok: false, detail: `table ${expected.name} does not exist`, fix };
      throw error;
    }
    const problems: string[] = [];
    if (description.TableStatus !== 'ACTIVE') problems.push(`status ${description.TableStatus}`);
    if (keys(description.KeySchema) !== keys(expected.keySchema)) {
      problems.push(`key schema ${keys(description.KeySchema)} (expected ${keys(expected.keySchema)})`);
    }
    const indexes = new Map(
      (description.GlobalSecondaryIndexes ?? []).map((index) => [index.IndexName, keys(index.KeySchema)]),
    );
    for (const index of expected.indexes) {
      const actual = indexes.get(index.indexName);
      if (actual === undefined) problems.push(`GSI ${index.indexName} missing`);
      else if (actual !== keys(index.keySchema)) {
        problems.push(`GSI ${index.indexName} key schema ${actual} (expected ${keys(index.keySchema)})`);
      }
    }
    if (expected.ttlAttribute) {
      const ttl = await dynamodb.send(new DescribeTimeToLiveCommand({ TableName: expected.name }));
      const status = ttl.TimeToLiveDescription?.TimeToLiveStatus;
      const attribute = ttl.TimeToLiveDescription?.AttributeName;
      if ((status !== 'ENABLED' && status !== 'ENABLING') || attribute !== expected.ttlAttribute) {
        problems.push(
          `TTL ${status ?? 'DISABLED'}${attribute ? ` on ${attribute}` : ''} (expected on ${expected.ttlAttribute})`,
        );
      }
    }
    if (problems.length > 0) {
      return {
        name,
        ok: false,
        detail: `${expected.name}: ${problems.join('; ')}`,
        fix: 'the table differs from serverless.yml’s ProvisioningTable: redeploy, or recreate the local table',
      };
    }
    return {
      name,
      ok: true,
      detail: `${expected.name} ACTIVE, keys and ${expected.indexes.length} GSIs as declared${expected.ttlAttribute ? `, TTL on ${expected.ttlAttribute}` : ''}`,
    };
  });
}

/** Every queue of serverless.yml exists, source queues redrive to their DLQ; non-empty DLQs warn. */
export function checkQueues(
  sqs: SQSClient,
  expected: Pick<DoctorExpectations, 'queues' | 'deadLetterQueues'>,
) {
  const name = 'queues';
  return guarded(name, async () => {
    const urls = new Map<string, string>();
    const missing: string[] = [];
    for (const queue of expected.queues) {
      try {
        const out = await sqs.send(new GetQueueUrlCommand({ QueueName: queue.name }));
        urls.set(queue.name, out.QueueUrl ?? '');
      } catch (error) {
        if (!notFound(error)) throw error;
        missing.push(queue.name);
      }
    }
    const problems = missing.map((queue) => `${queue} missing`);
    for (const queue of expected.queues) {
      const url = urls.get(queue.name);
      if (!queue.deadLetterQueue || !url) continue;
      const out = await sqs.send(
        new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['RedrivePolicy'] }),
      );
      const target = redriveTarget(out.Attributes?.RedrivePolicy);
      if (target !== queue.deadLetterQueue) {
        problems.push(`${queue.name} redrives to ${target ?? 'nothing'} (expected ${queue.deadLetterQueue})`);
      }
    }
    const waiting: string[] = [];
    for (const dlq of expected.deadLetterQueues) {
      const url = urls.get(dlq);
      if (!url) continue;
      const out = await sqs.send(
        new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['ApproximateNumberOfMessages'] }),
      );
      const count = Number(out.Attributes?.ApproximateNumberOfMessages ?? 0);
      if (count > 0) waiting.push(`${dlq}=${count}`);
    }
    if (problems.length > 0) {
      return {
        name,
        ok: false,
        detail: problems.join('; '),
        fix: 'deploy the stack so the queues match serverless.yml (or restart the local stack)',
      };
    }
    if (waiting.length > 0) {
      return {
        name,
        ok: true,
        warn: true,
        detail: `${expected.queues.length} queues present; dead letters waiting: ${waiting.join(', ')}`,
        fix: 'look at them with `fleetgate dlq list --messages`, then `fleetgate dlq replay` or `dlq discard`',
      };
    }
    return {
      name,
      ok: true,
      detail: `${expected.queues.length} queues present, redrive policies as declared, DLQs empty`,
    };
  });
}

function redriveTarget(policy: string | undefined): string | undefined {
  if (!policy) return undefined;
  try {
    const parsed = JSON.parse(policy) as { deadLetterTargetArn?: unknown };
    return typeof parsed.deadLetterTargetArn === 'string'
      ? parsed.deadLetterTargetArn.split(':').pop()
      : undefined;
  } catch {
    return undefined;
  }
}

/** The registry event configurations fleetgate consumes are enabled. */
export function checkEventConfigurations(iot: IoTClient, eventTypes: readonly string[]) {
  const name = 'events';
  return guarded(name, async () => {
    const wanted = [...new Set([...REQUIRED_EVENT_TYPES, ...eventTypes])];
    const out = await iot.send(new DescribeEventConfigurationsCommand({}));
    const configurations = (out.eventConfigurations ?? {}) as Record<string, { Enabled?: boolean }>;
    const disabled = wanted.filter((type) => configurations[type]?.Enabled !== true);
    if (disabled.length > 0) {
      return {
        name,
        ok: false,
        detail: `disabled: ${disabled.join(', ')}`,
        fix: `aws iot update-event-configurations --event-configurations '${JSON.stringify(Object.fromEntries(disabled.map((type) => [type, { Enabled: true }])))}' (or \`fleetgate quarantine prepare\`)`,
      };
    }
    return { name, ok: true, detail: `enabled: ${wanted.join(', ')}` };
  });
}

/**
 * JITR: an ACTIVE CA with auto-registration on that JITR trusts; every TRUSTED_CA_IDS entry
 * registered and ACTIVE. JITR fails closed: a CA is trusted only when it is on TRUSTED_CA_IDS,
 * recorded in the store as a CA or tagged fleetgate:trusted=true (`trustedElsewhere`); registered in
 * AWS IoT alone is not enough.
 */
export function checkJitr(
  iot: IoTClient,
  expected: Pick<DoctorExpectations, 'trustedCaIds' | 'strict'>,
  trustedElsewhere: (cas: RegisteredCa[]) => Promise<Set<string>> = async () => new Set(),
) {
  const name = 'jitr';
  return guarded(name, async () => {
    const ids: string[] = [];
    let marker: string | undefined;
    do {
      const page = await iot.send(new ListCACertificatesCommand({ ...(marker ? { marker } : {}) }));
      for (const ca of page.certificates ?? []) if (ca.certificateId) ids.push(ca.certificateId);
      marker = page.nextMarker;
    } while (marker);
    const cas = new Map<string, { status?: string; autoRegistrationStatus?: string; arn?: string }>();
    for (const id of ids) {
      const out = await iot.send(new DescribeCACertificateCommand({ certificateId: id }));
      const description = out.certificateDescription ?? {};
      cas.set(id, {
        status: description.status,
        autoRegistrationStatus: description.autoRegistrationStatus,
        arn: description.certificateArn,
      });
    }
    const problems: string[] = [];
    for (const id of expected.trustedCaIds) {
      const ca = cas.get(id);
      if (!ca) problems.push(`trusted CA ${id} is not registered`);
      else if (ca.status !== 'ACTIVE') problems.push(`trusted CA ${id} is ${ca.status}`);
    }
    if (problems.length > 0) {
      return {
        name,
        ok: false,
        detail: problems.join('; '),
        fix: 'register the CA (`aws iot register-ca-certificate … --set-as-active`) or correct TRUSTED_CA_IDS',
      };
    }
    const autoRegistering = [...cas].filter(
      ([, ca]) => ca.status === 'ACTIVE' && ca.autoRegistrationStatus === 'ENABLE',
    );
    const named = await trustedElsewhere(
      autoRegistering.map(([certificateId, ca]) => ({ certificateId, certificateArn: ca.arn })),
    );
    const trusted = (id: string) => expected.trustedCaIds.includes(id) || named.has(id);
    const ready = autoRegistering.filter(([id]) => trusted(id));
    const untrusted = autoRegistering.filter(([id]) => !trusted(id)).map(([id]) => id);
    const soft = { ok: !expected.strict, ...(expected.strict ? {} : { warn: true }) };
    const howToTrust = HOW_TO_TRUST;
    if (ready.length === 0 && untrusted.length > 0) {
      return {
        name,
        ...soft,
        detail: `${untrusted.length} ACTIVE CA(s) with auto-registration, none trusted (not on TRUSTED_CA_IDS${
          expected.trustedCaIds.length === 0 ? ', which is empty,' : ''
        }, not recorded as a CA in the store, not tagged fleetgate:trusted=true): JITR refuses their devices with UNTRUSTED_ISSUER — ${untrusted
          .map((id) => id.slice(0, 12))
          .join(', ')}`,
        fix: howToTrust,
      };
    }
    if (ready.length === 0) {
      return {
        name,
        ...soft,
        detail: `no ACTIVE CA with auto-registration (${ids.length} CA(s) registered): JITR devices cannot register`,
        fix: noAutoRegisteringCaFix(ids),
      };
    }
    return {
      name,
      ok: true,
      ...(untrusted.length > 0 ? { warn: true, fix: howToTrust } : {}),
      detail: `${ready.length} trusted ACTIVE CA(s) with auto-registration: ${ready
        .map(([id]) => id.slice(0, 12))
        .join(', ')}${
        untrusted.length > 0
          ? `; ${untrusted.length} more auto-register but are not trusted (UNTRUSTED_ISSUER): ${untrusted
              .map((id) => id.slice(0, 12))
              .join(', ')}`
          : ''
      }`,
    };
  });
}

/** How a local stack gets what serverless.yml declares back: it creates it at start. */
const RESTART_LOCAL =
  'the local stack creates it from serverless.yml when it starts: restart it (`fleetgate local down && fleetgate local up`)';

/** The shared device policy (`custom.devicePolicyName`) exists. */
export function checkDevicePolicy(
  iot: IoTClient,
  expected: Pick<DoctorExpectations, 'devicePolicyName' | 'strict'>,
) {
  const name = 'device-policy';
  return guarded(name, async () => {
    const policyName = expected.devicePolicyName;
    if (!policyName) return { name, ok: false, detail: 'serverless.yml has no custom.devicePolicyName' };
    try {
      await iot.send(new GetPolicyCommand({ policyName }));
      return { name, ok: true, detail: `${policyName} exists` };
    } catch (error) {
      if (!notFound(error)) throw error;
      return {
        name,
        ok: false,
        detail: `${policyName} does not exist: JITR and fleet provisioning cannot attach it`,
        fix: expected.strict ? 'deploy the stack (DevicePolicy in serverless.yml)' : RESTART_LOCAL,
      };
    }
  });
}

/** The quarantine thing group exists and has the quarantine (deny) policy attached. */
export function checkQuarantine(iot: IoTClient, expected: DoctorExpectations['quarantine']) {
  const name = 'quarantine';
  return guarded(name, async () => {
    if (!expected) return { name, ok: false, detail: 'serverless.yml has no Custom::FleetgateAccount' };
    const fix = 'deploy the stack (Custom::FleetgateAccount) or run `fleetgate quarantine prepare`';
    let groupArn: string | undefined;
    try {
      const out = await iot.send(new DescribeThingGroupCommand({ thingGroupName: expected.thingGroupName }));
      groupArn = out.thingGroupArn;
    } catch (error) {
      if (!notFound(error)) throw error;
      return { name, ok: false, detail: `thing group ${expected.thingGroupName} does not exist`, fix };
    }
    const attached: string[] = [];
    let marker: string | undefined;
    do {
      const page = await iot.send(
        new ListAttachedPoliciesCommand({
          target: groupArn ?? expected.thingGroupName,
          ...(marker ? { marker } : {}),
        }),
      );
      for (const policy of page.policies ?? []) if (policy.policyName) attached.push(policy.policyName);
      marker = page.nextMarker;
    } while (marker);
    if (!attached.includes(expected.policyName)) {
      return {
        name,
        ok: false,
        detail: `${expected.thingGroupName} exists but ${expected.policyName} is not attached (attached: ${attached.join(', ') || 'none'})`,
        fix,
      };
    }
    return {
      name,
      ok: true,
      detail: `${expected.thingGroupName} exists with ${expected.policyName} attached`,
    };
  });
}

/** The fleet provisioning template exists and its pre-provisioning hook is the preProvisionHook function. */
export function checkProvisioningTemplate(
  iot: IoTClient,
  expected: Pick<DoctorExpectations, 'provisioningTemplate' | 'strict'>,
) {
  const name = 'fleet-provisioning';
  return guarded(name, async () => {
    const template = expected.provisioningTemplate;
    if (!template)
      return { name, ok: true, warn: true, detail: 'serverless.yml declares no provisioning template' };
    let hookArn: string | undefined;
    try {
      const out = await iot.send(
        new DescribeProvisioningTemplateCommand({ templateName: template.templateName }),
      );
      hookArn = out.preProvisioningHook?.targetArn;
    } catch (error) {
      if (!notFound(error)) throw error;
      return {
        name,
        ok: false,
        detail: `template ${template.templateName} does not exist`,
        fix: expected.strict
          ? 'deploy the stack (FleetProvisioningTemplate in serverless.yml)'
          : RESTART_LOCAL,
      };
    }
    if (template.hookFunctionName) {
      const hookFunction = hookArn?.split(':')[6] ?? hookArn;
      if (hookFunction !== template.hookFunctionName) {
        return {
          name,
          ok: false,
          detail: `${template.templateName}: pre-provisioning hook is ${hookArn ?? 'not set'} (expected function ${template.hookFunctionName})`,
          fix: 'redeploy: every RegisterThing must go through the hook',
        };
      }
    }
    return {
      name,
      ok: true,
      detail: `${template.templateName} exists${hookArn ? `, hook ${hookArn}` : ''}`,
    };
  });
}

/** Every check, independently and concurrently, in a stable order. */
export async function runDoctorChecks(
  clients: DoctorClients,
  expected: DoctorExpectations,
): Promise<CheckResult[]> {
  return Promise.all([
    checkTable(clients.dynamodb, expected.table),
    checkQueues(clients.sqs, expected),
    checkEventConfigurations(clients.iot, expected.eventTypes),
    checkJitr(clients.iot, expected, (cas) => trustedCaIdsOf(clients, expected.table.name, cas)),
    checkDevicePolicy(clients.iot, expected),
    checkQuarantine(clients.iot, expected.quarantine),
    checkProvisioningTemplate(clients.iot, expected),
  ]);
}
