/**
 * Recorded events as `fleetgate replay` and `fleetgate invoke` read them: an IoT message (a bare
 * payload whose topic is inferred, or an envelope `{topic, payload, principal?, clientId?}`), and
 * what to run instead for an event that is not an IoT message (a hook input, an SQS event, a
 * schedule, a queue message).
 */
import { relative } from 'node:path';

/** One recorded IoT message, ready to publish. */
export interface RecordedEvent {
  source: string;
  topic: string;
  payload: unknown;
  principal?: string;
  clientId?: string;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isPresence(payload: Record<string, unknown>): boolean {
  return (
    (payload.eventType === 'connected' || payload.eventType === 'disconnected') &&
    typeof payload.clientId === 'string'
  );
}

function isThingEvent(payload: Record<string, unknown>): boolean {
  return (
    payload.eventType === 'THING_EVENT' &&
    typeof payload.thingName === 'string' &&
    typeof payload.operation === 'string'
  );
}

function isMembershipEvent(payload: Record<string, unknown>): boolean {
  return (
    payload.eventType === 'THING_GROUP_MEMBERSHIP_EVENT' &&
    typeof payload.groupName === 'string' &&
    typeof payload.thingName === 'string' &&
    typeof payload.operation === 'string'
  );
}

/**
 * The topic AWS IoT publishes a reserved event on, inferred from its payload.
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/life-cycle-events.html
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/registry-events.html
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/auto-register-device-cert.html
 */
export function inferTopic(payload: unknown): string | undefined {
  if (!isObject(payload)) return undefined;
  if (typeof payload.certificateId === 'string' && typeof payload.caCertificateId === 'string') {
    return `$aws/events/certificates/registered/${payload.caCertificateId}`;
  }
  if (isPresence(payload)) return `$aws/events/presence/${payload.eventType}/${payload.clientId}`;
  if (isThingEvent(payload)) {
    return `$aws/events/thing/${payload.thingName}/${String(payload.operation).toLowerCase()}`;
  }
  if (isMembershipEvent(payload)) {
    return `$aws/events/thingGroupMembership/thingGroup/${payload.groupName}/thing/${payload.thingName}/${String(payload.operation).toLowerCase()}`;
  }
  return undefined;
}

/** An envelope `{topic, payload, …}` or a bare payload as a recorded IoT message (no topic: undefined). */
export function toRecordedEvent(
  item: unknown,
  source: string,
  topicOverride?: string,
): RecordedEvent | undefined {
  const envelope = isObject(item) && typeof item.topic === 'string' && 'payload' in item;
  const payload = envelope ? item.payload : item;
  const topic = topicOverride ?? (envelope ? String(item.topic) : inferTopic(payload));
  if (!topic) return undefined;
  return {
    source,
    topic,
    payload,
    ...(envelope && typeof item.principal === 'string' ? { principal: item.principal } : {}),
    ...(envelope && typeof item.clientId === 'string' ? { clientId: item.clientId } : {}),
  };
}

/** What a file holds when it is not an IoT message, and the function that takes it. */
export type EventKind =
  | { kind: 'sqs'; queueName?: string }
  | { kind: 'hook' }
  | { kind: 'schedule'; ruleName?: string }
  | { kind: 'quarantine-request' }
  | { kind: 'unknown' };

function sqsKind(event: Record<string, unknown>): EventKind | undefined {
  const first = Array.isArray(event.Records) ? event.Records[0] : undefined;
  if (!isObject(first) || first.eventSource !== 'aws:sqs') return undefined;
  const queueName = String(first.eventSourceARN ?? '')
    .split(':')
    .pop();
  return queueName ? { kind: 'sqs', queueName } : { kind: 'sqs' };
}

function scheduleKind(event: Record<string, unknown>): EventKind | undefined {
  if (event.source !== 'aws.events' || event['detail-type'] !== 'Scheduled Event') return undefined;
  const [resource] = Array.isArray(event.resources) ? event.resources : [];
  const ruleName = typeof resource === 'string' ? resource.split('/').pop() : undefined;
  return ruleName ? { kind: 'schedule', ruleName } : { kind: 'schedule' };
}

function isHookInput(event: Record<string, unknown>): boolean {
  return isObject(event.parameters) && ('claimCertificateId' in event || 'certificatePem' in event);
}

function isQuarantineRequest(event: Record<string, unknown>): boolean {
  return typeof event.requestId === 'string' && typeof event.reason === 'string' && 'source' in event;
}

/** Recognises the events that are not IoT messages (they are invoked, not published). */
export function eventKind(event: unknown): EventKind {
  if (!isObject(event)) return { kind: 'unknown' };
  const known = sqsKind(event) ?? scheduleKind(event);
  if (known) return known;
  if (isHookInput(event)) return { kind: 'hook' };
  if (isQuarantineRequest(event)) return { kind: 'quarantine-request' };
  return { kind: 'unknown' };
}

/** What serverless.yml says about the functions, as far as the hint needs it. */
export interface FunctionTriggers {
  name: string;
  /** Names of the queues the function reads. */
  queues: string[];
  /** Names of its schedule rules. */
  schedules: string[];
}

/**
 * The function that takes an event of this kind: the consumer of the SQS event's queue (matched on
 * the name after `<service>-<stage>-`, so a sample recorded on another stage still finds it), the
 * scheduled function whose rule it names, the hook, or the quarantine worker.
 */
export function functionFor(kind: EventKind, functions: readonly FunctionTriggers[]): string | undefined {
  const tail = (name: string) => name.split('-').slice(2).join('-');
  switch (kind.kind) {
    case 'hook':
      return 'preProvisionHook';
    case 'quarantine-request':
      return 'quarantineDevice';
    case 'sqs': {
      const wanted = kind.queueName ? tail(kind.queueName) : undefined;
      return functions.find((fn) => fn.queues.some((queue) => wanted !== undefined && tail(queue) === wanted))
        ?.name;
    }
    case 'schedule': {
      const wanted = kind.ruleName?.toLowerCase() ?? '';
      return functions.find(
        (fn) =>
          fn.schedules.length > 0 &&
          (wanted.includes(`-${fn.name.toLowerCase()}`) ||
            fn.schedules.some((rule) => rule === kind.ruleName)),
      )?.name;
    }
    default:
      return undefined;
  }
}

/** The sentence that says what to run for a file that is not an IoT message. */
export function whatToRun(file: string, kind: EventKind, functionName: string | undefined): string {
  const shown = relative(process.cwd(), file) || file;
  const invoke = `fleetgate invoke ${functionName ?? '<function>'} --event ${shown}`;
  switch (kind.kind) {
    case 'hook':
      return `${shown} is a pre-provisioning hook input: AWS IoT calls the hook directly, not through a topic; run \`${invoke}\``;
    case 'sqs':
      return `${shown} is an SQS event (what ${kind.queueName ?? 'a queue'} hands its function), not an IoT message; run \`${invoke}\``;
    case 'schedule':
      return `${shown} is a scheduled event (EventBridge invokes the function), not an IoT message; run \`${invoke}\``;
    case 'quarantine-request':
      return `${shown} is a QuarantineQueue message, not an IoT message; run \`${invoke}\` (or \`fleetgate quarantine add\`)`;
    default:
      return `${shown}: cannot tell the topic; pass --topic or use an envelope {"topic": …, "payload": …}`;
  }
}
