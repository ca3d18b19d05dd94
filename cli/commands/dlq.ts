/**
 * `fleetgate dlq list | replay | discard` — the dead letters of every DLQ declared in
 * serverless.yml and of the IoT rule-errors queue. Nothing leaves a DLQ except by a successful
 * re-delivery or an explicit discard (which is written to `.fleetgate/discarded/` first).
 */
import { join } from 'node:path';
import { projectRoot } from '../../local/paths';
import { DeadLetterError } from '../../shared/dlq/dead-letters';
import { CommandFailure, UsageError } from '../io';
import { type CommandRegistry, contract } from '../main';
import { resolveQueueTarget } from '../target-queue';

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

/** `fleetgate dlq …` */
export function registerDlqCommands({ program, setExitCode }: CommandRegistry): void {
  const dlq = program
    .command('dlq')
    .description('Dead letters: list, replay to their source queue, or discard');
  const withTarget = (command: ReturnType<typeof dlq.command>) =>
    command
      .option('--json', 'print one JSON document')
      .option('--target <target>', 'local (default) or aws')
      .option('--stage <stage>', 'stage of the queue names (default: local; dev with --target aws)');

  withTarget(
    dlq
      .command('list')
      .description('Every DLQ with its count and source queue')
      .option('--messages', 'also show message ids and the first 200 characters of each body'),
  ).action(async (options: QueueOptions & { messages?: boolean }) => {
    setExitCode(
      await contract(Boolean(options.json), async (output) => {
        const target = await resolveQueueTarget(options);
        try {
          const queues = await target.deadLetters.list({ messages: Boolean(options.messages) });
          for (const queue of queues) {
            output.say(
              `${queue.queue}  ${queue.count} message(s)  ← ${queue.source ?? 'IoT rule errorAction'}${queue.inFlight ? `  (${queue.inFlight} in flight)` : ''}`,
            );
            for (const message of queue.messages ?? []) output.say(`  ${message.messageId}  ${message.body}`);
          }
          return {
            target: target.kind,
            stage: target.stage,
            queues,
            total: queues.reduce((sum, queue) => sum + queue.count, 0),
          };
        } finally {
          target.close();
        }
      }),
    );
  });

  withTarget(
    dlq
      .command('replay')
      .description(
        'Move messages back to their source queue (rule errors: re-publish through the local rules engine)',
      )
      .argument('<queue>', 'DLQ name, logical id (QuarantineDLQ) or short name (quarantine-dlq)')
      .option('--max <n>', 'at most this many messages (default: all there are now)'),
  ).action(async (queue: string, options: QueueOptions & { max?: string }) => {
    setExitCode(
      await contract(Boolean(options.json), async (output) => {
        const max = options.max === undefined ? undefined : Number(options.max);
        if (max !== undefined && (!Number.isInteger(max) || max < 1)) {
          throw new UsageError('--max must be a positive integer');
        }
        const target = await resolveQueueTarget(options);
        try {
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
        } finally {
          target.close();
        }
      }),
    );
  });

  withTarget(
    dlq
      .command('discard')
      .description(
        'Remove messages on purpose; each is written with the reason to .fleetgate/discarded/ first',
      )
      .argument('<queue>', 'DLQ name, logical id or short name')
      .requiredOption('--reason <text>', 'why (written next to each discarded message)')
      .option('--message-id <id>', 'only this message (default: every message in the queue)'),
  ).action(async (queue: string, options: QueueOptions & { reason: string; messageId?: string }) => {
    setExitCode(
      await contract(Boolean(options.json), async (output) => {
        const target = await resolveQueueTarget(options);
        try {
          const dlqName = (() => {
            try {
              return target.deadLetters.find(queue).name;
            } catch (error) {
              return rethrow(error);
            }
          })();
          const now = new Date().toISOString();
          const result = await target.deadLetters
            .discard(queue, {
              reason: options.reason,
              file: discardFile(dlqName, now),
              now,
              ...(options.messageId ? { messageId: options.messageId } : {}),
            })
            .catch(rethrow);
          if (result.notFound) {
            throw new CommandFailure(`message ${result.notFound} is not in ${result.queue}`, result);
          }
          output.say(`${result.discarded.length} discarded from ${result.queue}; kept in ${result.file}`);
          return result;
        } finally {
          target.close();
        }
      }),
    );
  });
}
