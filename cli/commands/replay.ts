import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { MessageTrace } from '../../local/queue-poller';
import type { ActionOutcome, RuleOutcome } from '../../local/rules-engine';
import { seededRandom } from '../../local/seeded-random';
import type { StackHandle } from '../../local/stack-control';
import {
  type EventKind,
  eventKind,
  type FunctionTriggers,
  functionFor,
  type RecordedEvent,
  toRecordedEvent,
  whatToRun,
} from '../events';
import { CommandFailure, type Output, UsageError } from '../io';
import type { CommandRegistry } from '../main';
import { plural } from '../plural';
import { resolveStackTarget } from '../target';
import { readEventFile } from './invoke';

export { inferTopic, type RecordedEvent } from '../events';

/** A file that holds an event which is not an IoT message: it is invoked, not published. */
export class NotAnIotMessageError extends UsageError {
  constructor(
    readonly file: string,
    readonly eventKind: EventKind,
  ) {
    super(whatToRun(file, eventKind, undefined));
  }
}

function jsonFiles(path: string): string[] {
  if (!existsSync(path)) throw new UsageError(`${path}: no such file or directory`);
  const files = statSync(path).isDirectory()
    ? readdirSync(path, { recursive: true, encoding: 'utf8' })
        .filter((name) => name.endsWith('.json'))
        .sort()
        .map((name) => join(path, name))
    : [path];
  if (files.length === 0) throw new UsageError(`${path}: no .json files`);
  return files;
}

/**
 * Reads a recorded event: an envelope `{topic, payload, principal?, clientId?}` or a bare payload
 * (topic from `topicOverride`, else inferred). A file may also hold an array of them.
 * @throws UsageError when a file is not JSON; NotAnIotMessageError when an event's topic cannot be
 *   known (it says what to run instead for a hook input, an SQS event, a schedule).
 */
export function readRecordedEvents(path: string, topicOverride?: string): RecordedEvent[] {
  const events: RecordedEvent[] = [];
  for (const file of jsonFiles(path)) {
    const parsed = readEventFile(file);
    const items = Array.isArray(parsed) ? parsed : [parsed];
    items.forEach((item, index) => {
      const source =
        items.length > 1 ? `${relative(process.cwd(), file)}#${index}` : relative(process.cwd(), file);
      const event = toRecordedEvent(item, source, topicOverride);
      if (!event) throw new NotAnIotMessageError(file, eventKind(item));
      events.push(event);
    });
  }
  return events;
}

/** The same error, naming the function serverless.yml says takes such an event. */
async function withFunctionName(error: NotAnIotMessageError): Promise<UsageError> {
  const [{ loadServerlessConfig }, { buildStackModel }] = await Promise.all([
    import('../../local/serverless-config'),
    import('../../local/stack-model'),
  ]);
  const model = buildStackModel(loadServerlessConfig(process.env.FLEETGATE_SERVERLESS_FILE));
  const queueName = (logicalId: string) => model.queues.find((q) => q.logicalId === logicalId)?.name ?? '';
  const functions: FunctionTriggers[] = model.functions.map((fn) => ({
    name: fn.name,
    queues: fn.sqs.map((mapping) => queueName(mapping.queue)),
    schedules: fn.schedules.map((schedule) => schedule.ruleName),
  }));
  return new UsageError(whatToRun(error.file, error.eventKind, functionFor(error.eventKind, functions)));
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

interface ReplayOptions {
  topic?: string;
  times: string;
  shuffle?: boolean;
  seed?: string;
  settleTimeout: string;
  json?: boolean;
}

interface ReplaySettings {
  times: number;
  seed: number;
  settleTimeout: number;
}

/** @throws UsageError for a bad --times, --seed or --settle-timeout. */
function replaySettings(options: ReplayOptions): ReplaySettings {
  const times = Number(options.times);
  if (!Number.isInteger(times) || times < 1 || times > 1000) {
    throw new UsageError('--times must be an integer from 1 to 1000');
  }
  const seed = options.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(options.seed);
  if (!Number.isInteger(seed)) throw new UsageError('--seed must be an integer');
  const settleTimeout = Number(options.settleTimeout);
  if (!Number.isFinite(settleTimeout) || settleTimeout <= 0) {
    throw new UsageError('--settle-timeout must be a positive number of milliseconds');
  }
  return { times, seed, settleTimeout };
}

async function readEvents(path: string, topic: string | undefined): Promise<RecordedEvent[]> {
  try {
    return readRecordedEvents(path, topic);
  } catch (error) {
    if (error instanceof NotAnIotMessageError) throw await withFunctionName(error);
    throw error;
  }
}

type Published = { event: RecordedEvent; rules: RuleOutcome[] };

async function publishAll(handle: StackHandle, plan: readonly RecordedEvent[]): Promise<Published[]> {
  const published: Published[] = [];
  for (const event of plan) {
    const meta = {
      ...(event.principal ? { principal: event.principal } : {}),
      ...(event.clientId ? { clientId: event.clientId } : {}),
    };
    const result = await handle.publish(event.topic, event.payload, meta);
    published.push({ event, rules: result.rules });
  }
  return published;
}

async function settle(handle: StackHandle, timeoutMs: number): Promise<{ settled: boolean; error?: string }> {
  try {
    await handle.settle(timeoutMs);
    return { settled: true };
  } catch (error) {
    return { settled: false, error: error instanceof Error ? error.message : String(error) };
  }
}

function sqsMessageIds(published: readonly Published[]): string[] {
  return published.flatMap(({ rules }) =>
    rules.flatMap((rule) =>
      rule.actions.flatMap((action) => (action.ok && action.type === 'sqs' ? [action.messageId] : [])),
    ),
  );
}

function reportAction(action: ActionOutcome, traces: Record<string, MessageTrace | undefined>): ActionReport {
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
}

interface Outcome {
  index: number;
  source: string;
  topic: string;
  matched: boolean;
  rules: Array<{ rule: string; actions: ActionReport[]; errorAction?: ActionOutcome }>;
}

function outcomesOf(
  published: readonly Published[],
  traces: Record<string, MessageTrace | undefined>,
): Outcome[] {
  return published.map(({ event, rules }, index) => ({
    index,
    source: event.source,
    topic: event.topic,
    matched: rules.length > 0,
    rules: rules.map((rule) => ({
      rule: rule.rule,
      actions: rule.actions.map((action) => reportAction(action, traces)),
      ...(rule.errorAction ? { errorAction: rule.errorAction } : {}),
    })),
  }));
}

function summarize(outcomes: readonly Outcome[]) {
  const actions = outcomes.flatMap((outcome) => outcome.rules.flatMap((rule) => rule.actions));
  return {
    deliveries: outcomes.length,
    unmatched: outcomes.filter((outcome) => !outcome.matched).length,
    succeeded: actions.filter(
      (action) => action.status === 'succeeded' || (action.ok && action.type === 'lambda'),
    ).length,
    deadLettered: actions.filter((action) => action.status === 'dead-lettered').length,
    pending: actions.filter((action) => action.status === 'pending' || action.status === 'retrying').length,
    actionErrors: actions.filter((action) => !action.ok).length,
  };
}

function describeAction(rule: string, action: ActionReport): string {
  if (!action.ok) return `${rule} → ${action.type} ${action.target}: FAILED ${action.error}`;
  if (action.type !== 'sqs') return `${rule} → λ ${action.function}`;
  const dlq = action.deadLetterQueue ? ` to ${action.deadLetterQueue}` : '';
  const why = action.status === 'dead-lettered' && action.lastError ? `: ${action.lastError}` : '';
  return `${rule} → ${action.queue} → ${action.function ?? '?'}: ${action.status}${dlq}${why}`;
}

function printOutcomes(output: Output, outcomes: readonly Outcome[], summary: ReturnType<typeof summarize>) {
  for (const outcome of outcomes) {
    const where = outcome.rules
      .flatMap((rule) => rule.actions.map((action) => describeAction(rule.rule, action)))
      .join('; ');
    output.say(`#${outcome.index} ${outcome.source}  ${outcome.topic}  ${where || 'no rule matched'}`);
  }
  output.say(
    `${plural(summary.deliveries, 'delivery', 'deliveries')}: ${summary.succeeded} succeeded, ${summary.deadLettered} dead-lettered, ${summary.pending} pending, ${plural(summary.actionErrors, 'action error')}, ${summary.unmatched} unmatched`,
  );
}

async function runReplay(path: string, options: ReplayOptions, output: Output): Promise<unknown> {
  const settings = replaySettings(options);
  const events = await readEvents(path, options.topic);
  const plan = deliveries(events, settings.times, Boolean(options.shuffle), settings.seed);
  const stack = await resolveStackTarget(output);
  try {
    const published = await publishAll(stack.handle, plan);
    const settled = await settle(stack.handle, settings.settleTimeout);
    const outcomes = outcomesOf(published, await stack.handle.traces(sqsMessageIds(published)));
    const summary = summarize(outcomes);
    printOutcomes(output, outcomes, summary);
    const result = {
      events: events.length,
      times: settings.times,
      shuffled: Boolean(options.shuffle),
      ...(options.shuffle ? { seed: settings.seed } : {}),
      settled: settled.settled,
      target: stack.kind,
      summary,
      outcomes,
    };
    if (!settled.settled) throw new CommandFailure(settled.error ?? 'the local stack did not settle', result);
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
}

/** `fleetgate replay <file|dir> [--topic T] [--times N] [--shuffle] [--seed S]` */
export function registerReplayCommand({ program, run }: CommandRegistry): void {
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
    .action(async (path: string, options: ReplayOptions) => {
      await run(options.json, (output) => runReplay(path, options, output));
    });
}
