/**
 * `fleetgate dlq list | replay | discard` — the dead letters of every DLQ declared in
 * serverless.yml and of the IoT rule-errors queue. Nothing leaves a DLQ except by a successful
 * re-delivery or an explicit discard (which is written to `.fleetgate/discarded/` first).
 */
import { join } from 'node:path';
import { projectRoot } from '../../local/paths';
import { DeadLetterError, type DeadLetterListing } from '../../shared/dlq/dead-letters';
import { CommandFailure, type Output, UsageError } from '../io';
import type { CommandRegistry } from '../main';
import { formatTable } from '../table';
import { jsonAndTarget } from '../target';
import { type QueueTarget, resolveQueueTarget } from '../target-queue';

interface QueueOptions {
  json?: boolean;
  target?: string;
  stage?: string;
}

/** Where `discard` writes: `.fleetgate/discarded/<queue>-<time>.jsonl` (FLEETGATE_DISCARD_DIR overrides the folder). */
function discardFile(queue: string, now: string): string {
  const dir = process.env.FLEETGATE_DISCARD_DIR ?? join(projectRoot(), '.fleetgate', 'discarded');
  return join(dir, `${queue}-${now.replaceAll(':', '-')}.jsonl`);
}

function rethrow(error: unknown): never {
  if (error instanceof DeadLetterError) {
    if (error.code === 'UNKNOWN_QUEUE') throw new UsageError(error.message);
    throw new CommandFailure(error.message);
  }
  throw error;
}

/** Runs `body` on the queue target and closes it. */
async function withQueues<T>(options: QueueOptions, body: (target: QueueTarget) => Promise<T>): Promise<T> {
  const target = await resolveQueueTarget(options);
  try {
    return await body(target);
  } finally {
    target.close();
  }
}

/** `dlq list` for people: one row per dead-letter queue under a header, then the messages asked for. */
export function deadLetterTable(queues: readonly DeadLetterListing[]): string[] {
  const lines = formatTable(
    [
      { header: 'QUEUE', value: (q) => q.queue },
      { header: 'MESSAGES', value: (q) => q.count, right: true },
      { header: 'IN FLIGHT', value: (q) => q.inFlight, right: true },
      { header: 'SOURCE', value: (q) => q.source ?? 'IoT rule errorAction' },
    ],
    queues,
  );
  for (const queue of queues) {
    for (const message of queue.messages ?? []) {
      // Why it is there: the consumer's reason, or SQS's redrive after maxReceiveCount receives.
      const why = `reason: ${message.reason ?? '(none attached: redriven by SQS after maxReceiveCount receives)'}`;
      lines.push(`  ${queue.queue}  ${message.messageId}  ${why}  ${message.body}`);
    }
  }
  return lines;
}

async function runList(options: QueueOptions & { messages?: boolean }, output: Output): Promise<unknown> {
  return withQueues(options, async (target) => {
    const queues = await target.deadLetters.list({ messages: Boolean(options.messages) });
    for (const line of deadLetterTable(queues)) output.say(line);
    const total = queues.reduce((sum, queue) => sum + queue.count, 0);
    output.say(`${total} dead letter(s) in ${queues.length} queue(s)`);
    return { target: target.kind, stage: target.stage, queues, total };
  });
}

function maxOption(value: string | undefined): number | undefined {
  const max = value === undefined ? undefined : Number(value);
  if (max !== undefined && (!Number.isInteger(max) || max < 1)) {
    throw new UsageError('--max must be a positive integer');
  }
  return max;
}

async function runReplay(queue: string, options: QueueOptions & { max?: string }, output: Output) {
  const max = maxOption(options.max);
  return withQueues(options, async (target) => {
    const result = await target.deadLetters
      .replay(queue, {
        ...(max !== undefined ? { max } : {}),
        ...(target.republish ? { republish: target.republish } : {}),
      })
      .catch(rethrow);
    output.say(
      `${result.replayed.length} replayed to ${result.target}, ${result.failed.length} failed (left in ${result.queue})`,
    );
    for (const failure of result.failed) output.say(`  ${failure.messageId}: ${failure.error}`);
    if (result.failed.length > 0) {
      throw new CommandFailure(
        `${result.failed.length} message(s) could not be replayed; they stay in ${result.queue}`,
        result,
      );
    }
    return result;
  });
}

function dlqName(target: QueueTarget, queue: string): string {
  try {
    return target.deadLetters.find(queue).name;
  } catch (error) {
    return rethrow(error);
  }
}

async function runDiscard(
  queue: string,
  options: QueueOptions & { reason: string; messageId?: string },
  output: Output,
) {
  return withQueues(options, async (target) => {
    const now = new Date().toISOString();
    const result = await target.deadLetters
      .discard(queue, {
        reason: options.reason,
        file: discardFile(dlqName(target, queue), now),
        now,
        ...(options.messageId ? { messageId: options.messageId } : {}),
      })
      .catch(rethrow);
    if (result.notFound) {
      throw new CommandFailure(`message ${result.notFound} is not in ${result.queue}`, result);
    }
    output.say(`${result.discarded.length} discarded from ${result.queue}; kept in ${result.file}`);
    return result;
  });
}

/** `fleetgate dlq …` */
export function registerDlqCommands({ program, run }: CommandRegistry): void {
  const dlq = program
    .command('dlq')
    .description('Dead letters: list, replay to their source queue, or discard');
  const withTarget = (command: ReturnType<typeof dlq.command>) =>
    jsonAndTarget(command).option(
      '--stage <stage>',
      'stage of the queue names (default: local; dev with --target aws)',
    );

  withTarget(
    dlq
      .command('list')
      .description('Every DLQ with its count and source queue')
      .option('--messages', 'also show message ids and the first 200 characters of each body'),
  ).action((options: QueueOptions & { messages?: boolean }) =>
    run(options.json, (output) => runList(options, output)),
  );

  withTarget(
    dlq
      .command('replay')
      .description(
        'Move messages back to their source queue (rule errors: re-publish through the local rules engine)',
      )
      .argument('<queue>', 'DLQ name, logical id (QuarantineDLQ) or short name (quarantine-dlq)')
      .option('--max <n>', 'at most this many messages (default: all there are now)'),
  ).action((queue: string, options: QueueOptions & { max?: string }) =>
    run(options.json, (output) => runReplay(queue, options, output)),
  );

  withTarget(
    dlq
      .command('discard')
      .description(
        'Remove messages on purpose; each is written with the reason to .fleetgate/discarded/ first',
      )
      .argument('<queue>', 'DLQ name, logical id or short name')
      .requiredOption('--reason <text>', 'why (written next to each discarded message)')
      .option('--message-id <id>', 'only this message (default: every message in the queue)'),
  ).action((queue: string, options: QueueOptions & { reason: string; messageId?: string }) =>
    run(options.json, (output) => runDiscard(queue, options, output)),
  );
}
