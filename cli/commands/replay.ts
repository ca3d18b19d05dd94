import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { MessageTrace } from '../../local/queue-poller';
import type { ActionOutcome, RuleOutcome } from '../../local/rules-engine';
import { seededRandom } from '../../local/seeded-random';
import { CommandFailure, UsageError } from '../io';
import { type CommandRegistry, contract } from '../main';
import { resolveStackTarget } from '../target';

/** One recorded IoT message, ready to publish. */
export interface RecordedEvent {
  source: string;
  topic: string;
  payload: unknown;
  principal?: string;
  clientId?: string;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
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
  if (
    (payload.eventType === 'connected' || payload.eventType === 'disconnected') &&
    typeof payload.clientId === 'string'
  ) {
    return `$aws/events/presence/${payload.eventType}/${payload.clientId}`;
  }
  if (
    payload.eventType === 'THING_EVENT' &&
    typeof payload.thingName === 'string' &&
    typeof payload.operation === 'string'
  ) {
    return `$aws/events/thing/${payload.thingName}/${payload.operation.toLowerCase()}`;
  }
  if (
    payload.eventType === 'THING_GROUP_MEMBERSHIP_EVENT' &&
    typeof payload.groupName === 'string' &&
    typeof payload.thingName === 'string' &&
    typeof payload.operation === 'string'
  ) {
    return `$aws/events/thingGroupMembership/thingGroup/${payload.groupName}/thing/${payload.thingName}/${payload.operation.toLowerCase()}`;
  }
  return undefined;
}

/**
 * Reads a recorded event: an envelope `{topic, payload, principal?, clientId?}` or a bare payload
 * (topic from `topicOverride`, else inferred). A file may also hold an array of them.
 * @throws UsageError when a file is not JSON or an event's topic cannot be known.
 */
export function readRecordedEvents(path: string, topicOverride?: string): RecordedEvent[] {
  if (!existsSync(path)) throw new UsageError(`${path}: no such file or directory`);
  const files = statSync(path).isDirectory()
    ? readdirSync(path, { recursive: true, encoding: 'utf8' })
        .filter((name) => name.endsWith('.json'))
        .sort()
        .map((name) => join(path, name))
    : [path];
  if (files.length === 0) throw new UsageError(`${path}: no .json files`);
  const events: RecordedEvent[] = [];
  for (const file of files) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch (error) {
      throw new UsageError(`${file}: not JSON (${error instanceof Error ? error.message : String(error)})`);
    }
    const items = Array.isArray(parsed) ? parsed : [parsed];
    items.forEach((item, index) => {
      const source =
        items.length > 1 ? `${relative(process.cwd(), file)}#${index}` : relative(process.cwd(), file);
      const envelope = isObject(item) && typeof item.topic === 'string' && 'payload' in item;
      const payload = envelope ? item.payload : item;
      const topic = topicOverride ?? (envelope ? String(item.topic) : inferTopic(payload));
      if (!topic) {
        throw new UsageError(
          `${source}: cannot tell the topic; pass --topic or use an envelope {"topic": …, "payload": …}`,
        );
      }
      events.push({
        source,
        topic,
        payload,
        ...(envelope && typeof item.principal === 'string' ? { principal: item.principal } : {}),
        ...(envelope && typeof item.clientId === 'string' ? { clientId: item.clientId } : {}),
      });
    });
  }
  return events;
}

/** The deliveries of a replay: each event `times` times, shuffled (Fisher–Yates) when asked. */
export function deliveries<T>(events: readonly T[], times: number, shuffle: boolean, seed: number): T[] {
  const list = events.flatMap((event) => Array.from({ length: times }, () => event));
  if (shuffle) {
    const random = seededRandom(seed);
    for (let i = list.length - 1; i > 0; i -= 1) {
      const j = Math.floor(random() * (i + 1));
      [list[i], list[j]] = [list[j] as T, list[i] as T];
    }
  }
  return list;
}

type ActionReport = ActionOutcome & {
  function?: string;
  status?: MessageTrace['status'];
  receives?: number;
  deadLetterQueue?: string;
  lastError?: string;
};

/** `fleetgate replay <file|dir> [--topic T] [--times N] [--shuffle] [--seed S]` */
export function registerReplayCommand({ program, setExitCode }: CommandRegistry): void {
  program
    .command('replay')
    .description('Publish recorded IoT events through the local rules engine, as AWS would deliver them')
    .argument('<path>', 'event file or folder of .json files')
    .option('--topic <topic>', 'topic for bare payloads (default: inferred from the payload)')
    .option('--times <n>', 'deliver every event this many times (duplicates, as IoT may)', '1')
    .option('--shuffle', 'deliver in a random order (IoT events are unordered)')
    .option('--seed <n>', 'seed of --shuffle (default: random, printed)')
    .option('--settle-timeout <ms>', 'how long to wait for queues and handlers to finish', '60000')
    .option('--json', 'print one JSON document')
    .action(
      async (
        path: string,
        options: {
          topic?: string;
          times: string;
          shuffle?: boolean;
          seed?: string;
          settleTimeout: string;
          json?: boolean;
        },
      ) => {
        setExitCode(
          await contract(Boolean(options.json), async (output) => {
            const times = Number(options.times);
            if (!Number.isInteger(times) || times < 1 || times > 1000) {
              throw new UsageError('--times must be an integer from 1 to 1000');
            }
            const seed =
              options.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(options.seed);
            if (!Number.isInteger(seed)) throw new UsageError('--seed must be an integer');
            const settleTimeout = Number(options.settleTimeout);
            if (!Number.isFinite(settleTimeout) || settleTimeout <= 0) {
              throw new UsageError('--settle-timeout must be a positive number of milliseconds');
            }
            const events = readRecordedEvents(path, options.topic);
            const plan = deliveries(events, times, Boolean(options.shuffle), seed);
            const stack = await resolveStackTarget(output);
            try {
              const published: Array<{ event: RecordedEvent; rules: RuleOutcome[] }> = [];
              for (const event of plan) {
                const meta = {
                  ...(event.principal ? { principal: event.principal } : {}),
                  ...(event.clientId ? { clientId: event.clientId } : {}),
                };
                const result = await stack.handle.publish(event.topic, event.payload, meta);
                published.push({ event, rules: result.rules });
              }
              let settled = true;
              let settleError: string | undefined;
              try {
                await stack.handle.settle(settleTimeout);
              } catch (error) {
                settled = false;
                settleError = error instanceof Error ? error.message : String(error);
              }
              const messageIds = published.flatMap(({ rules }) =>
                rules.flatMap((rule) =>
                  rule.actions.flatMap((action) =>
                    action.ok && action.type === 'sqs' ? [action.messageId] : [],
                  ),
                ),
              );
              const traces = await stack.handle.traces(messageIds);
              const report = (action: ActionOutcome): ActionReport => {
                if (!(action.ok && action.type === 'sqs')) return action;
                const trace = traces[action.messageId];
                if (!trace) return { ...action, status: 'pending' };
                return {
                  ...action,
                  function: trace.functionName,
                  status: trace.status,
                  receives: trace.receives,
                  ...(trace.deadLetterQueue ? { deadLetterQueue: trace.deadLetterQueue } : {}),
                  ...(trace.lastError && trace.status !== 'succeeded' ? { lastError: trace.lastError } : {}),
                };
              };
              const outcomes = published.map(({ event, rules }, index) => ({
                index,
                source: event.source,
                topic: event.topic,
                matched: rules.length > 0,
                rules: rules.map((rule) => ({
                  rule: rule.rule,
                  actions: rule.actions.map(report),
                  ...(rule.errorAction ? { errorAction: rule.errorAction } : {}),
                })),
              }));
              const actions = outcomes.flatMap((outcome) => outcome.rules.flatMap((rule) => rule.actions));
              const summary = {
                deliveries: outcomes.length,
                unmatched: outcomes.filter((outcome) => !outcome.matched).length,
                succeeded: actions.filter(
                  (action) => action.status === 'succeeded' || (action.ok && action.type === 'lambda'),
                ).length,
                deadLettered: actions.filter((action) => action.status === 'dead-lettered').length,
                pending: actions.filter(
                  (action) => action.status === 'pending' || action.status === 'retrying',
                ).length,
                actionErrors: actions.filter((action) => !action.ok).length,
              };
              for (const outcome of outcomes) {
                const where = outcome.rules
                  .map((rule) =>
                    rule.actions
                      .map((action) =>
                        action.ok
                          ? action.type === 'sqs'
                            ? `${rule.rule} → ${action.queue} → ${action.function ?? '?'}: ${action.status}${action.deadLetterQueue ? ` (${action.deadLetterQueue})` : ''}`
                            : `${rule.rule} → λ ${action.function}`
                          : `${rule.rule} → ${action.type} ${action.target}: FAILED ${action.error}`,
                      )
                      .join('; '),
                  )
                  .join('; ');
                output.say(
                  `#${outcome.index} ${outcome.source}  ${outcome.topic}  ${where || 'no rule matched'}`,
                );
              }
              output.say(
                `${summary.deliveries} deliveries: ${summary.succeeded} succeeded, ${summary.deadLettered} dead-lettered, ${summary.pending} pending, ${summary.actionErrors} action errors, ${summary.unmatched} unmatched`,
              );
              const result = {
                events: events.length,
                times,
                shuffled: Boolean(options.shuffle),
                ...(options.shuffle ? { seed } : {}),
                settled,
                target: stack.kind,
                summary,
                outcomes,
              };
              if (!settled) throw new CommandFailure(settleError ?? 'the local stack did not settle', result);
              if (summary.deadLettered > 0 || summary.actionErrors > 0) {
                throw new CommandFailure(
                  `${summary.deadLettered} delivery(ies) dead-lettered, ${summary.actionErrors} action error(s)`,
                  result,
                );
              }
              return result;
            } finally {
              await stack.close();
            }
          }),
        );
      },
    );
}
