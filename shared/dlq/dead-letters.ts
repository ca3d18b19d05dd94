/**
 * Dead letters: every DLQ declared in serverless.yml (and the IoT rule-errors queue), listed,
 * replayed to the queue they came from, or discarded on purpose — never lost.
 *
 * Rules that keep every message accounted for:
 * - replay: ReceiveMessage from the DLQ → SendMessage to the source queue with the body and message
 *   attributes as they were → DeleteMessage from the DLQ only after the send succeeded. A message
 *   whose send failed is made visible again at once.
 * - discard: the message is written (with the reason) to a JSONL file and the file is flushed
 *   before DeleteMessage; only the messages asked for are touched.
 * - The rule-errors queue has no source queue (IoT's errorAction writes to it); its messages carry
 *   the rule's topic and the original payload, so locally they are replayed by publishing them
 *   through the rules engine again. On AWS they are listed only.
 */
import { appendFile, mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import * as z from '../../schemas/zod';
import { DEAD_LETTER_REASON } from './dead-letter-sender';

/** A queue of serverless.yml as the dead-letter tools need it (see local/stack-model.ts). */
export interface QueueDeclaration {
  logicalId: string;
  name: string;
  /** Logical id of the DLQ its RedrivePolicy names. */
  deadLetterQueue?: string;
}

export interface DeadLetterQueue {
  logicalId: string;
  name: string;
  /** `dlq`: a RedrivePolicy target; `rule-errors`: an IoT topic rule errorAction target. */
  kind: 'dlq' | 'rule-errors';
  /** Source queue names declared in serverless.yml (RedrivePolicy of those queues). */
  declaredSources: string[];
}

/** The dead-letter queues of a serverless.yml: RedrivePolicy targets and errorAction targets. */
export function deadLetterQueues(
  queues: readonly QueueDeclaration[],
  ruleErrorQueues: readonly string[],
): DeadLetterQueue[] {
  const byId = new Map(queues.map((queue) => [queue.logicalId, queue]));
  const result: DeadLetterQueue[] = [];
  for (const queue of queues) {
    const sources = queues.filter((candidate) => candidate.deadLetterQueue === queue.logicalId);
    const isRuleErrors = ruleErrorQueues.includes(queue.logicalId);
    if (sources.length === 0 && !isRuleErrors) continue;
    result.push({
      logicalId: queue.logicalId,
      name: queue.name,
      kind: sources.length > 0 ? 'dlq' : 'rule-errors',
      declaredSources: sources.map((source) => byId.get(source.logicalId)?.name ?? source.name),
    });
  }
  return result;
}

export interface DeadLetterListing {
  queue: string;
  logicalId: string;
  kind: DeadLetterQueue['kind'];
  /** The queue it belongs to, from the live RedrivePolicy of the source queue; null for rule errors. */
  source: string | null;
  /** ApproximateNumberOfMessages (visible). */
  count: number;
  /** ApproximateNumberOfMessagesNotVisible (being received right now). */
  inFlight: number;
  /**
   * `reason`: why the consumer sent it to the DLQ at once (its `fleetgate-dead-letter-reason`
   * attribute); absent on a message SQS redrove after maxReceiveCount failed receives.
   */
  messages?: Array<{
    messageId: string;
    body: string;
    receiveCount: number;
    sentAt?: string;
    reason?: string;
  }>;
}

export interface ReplayResult {
  queue: string;
  target: string;
  mode: 'send-to-source' | 'republish';
  replayed: Array<{ messageId: string; newMessageId?: string; topic?: string }>;
  failed: Array<{ messageId: string; error: string }>;
}

export interface DiscardResult {
  queue: string;
  reason: string;
  file: string;
  discarded: Array<{ messageId: string }>;
  /** When one message id was asked for and is not in the queue. */
  notFound?: string;
}

/** Thrown when an operation does not apply to a queue (e.g. replaying rule errors on AWS). */
export class DeadLetterError extends Error {
  override name = 'DeadLetterError';
  constructor(
    message: string,
    readonly code: 'UNKNOWN_QUEUE' | 'NO_SOURCE' | 'REPLAY_UNSUPPORTED',
  ) {
    super(message);
  }
}

/** Publishes a message through the (local) rules engine, as IoT Core would. */
export type Republish = (topic: string, payload: Buffer) => Promise<void>;

/** The body IoT's errorAction writes to the rule-errors queue (only the fields replay needs). */
const RuleErrorMessage = z.object({
  topic: z.string().check(z.minLength(1)),
  base64OriginalPayload: z.string(),
  ruleName: z.optional(z.string()),
});

const BODY_PREVIEW = 200;

export class DeadLetters {
  constructor(
    private readonly sqs: SQSClient,
    readonly queues: readonly QueueDeclaration[],
    readonly deadLetterQueues: readonly DeadLetterQueue[],
    private readonly urlOf: (queueName: string) => Promise<string>,
  ) {}

  /** A DLQ by name, logical id, or name without the `<service>-<stage>-` prefix. */
  find(reference: string): DeadLetterQueue {
    const match = this.deadLetterQueues.find(
      (queue) =>
        queue.name === reference || queue.logicalId === reference || queue.name.endsWith(`-${reference}`),
    );
    if (!match) {
      const known = this.deadLetterQueues.map((queue) => queue.name).join(', ');
      throw new DeadLetterError(
        `${reference} is not a dead-letter queue of serverless.yml (${known})`,
        'UNKNOWN_QUEUE',
      );
    }
    return match;
  }

  /** Every dead-letter queue with its count and source; `messages` peeks at up to `peek` of each. */
  async list(options: { messages?: boolean; peek?: number } = {}): Promise<DeadLetterListing[]> {
    const sources = await this.liveSources();
    const listings: DeadLetterListing[] = [];
    for (const queue of this.deadLetterQueues) {
      const url = await this.urlOf(queue.name);
      const out = await this.sqs.send(
        new GetQueueAttributesCommand({
          QueueUrl: url,
          AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
        }),
      );
      const listing: DeadLetterListing = {
        queue: queue.name,
        logicalId: queue.logicalId,
        kind: queue.kind,
        source:
          queue.kind === 'rule-errors' ? null : (sources.get(queue.name) ?? queue.declaredSources[0] ?? null),
        count: Number(out.Attributes?.ApproximateNumberOfMessages ?? 0),
        inFlight: Number(out.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0),
      };
      if (options.messages) listing.messages = await this.peek(url, options.peek ?? 100);
      listings.push(listing);
    }
    return listings;
  }

  /**
   * Moves up to `max` messages (default: as many as the DLQ holds now) back where they came from.
   * @throws DeadLetterError when the queue has no source and no `republish` is available.
   */
  async replay(
    reference: string,
    options: { max?: number; republish?: Republish } = {},
  ): Promise<ReplayResult> {
    const queue = this.find(reference);
    const url = await this.urlOf(queue.name);
    if (queue.kind === 'rule-errors' && !options.republish) throw replayUnsupported(queue.name);
    const sourceName = queue.kind === 'dlq' ? await this.sourceOf(queue) : undefined;
    const sourceUrl = sourceName ? await this.urlOf(sourceName) : undefined;
    const max = options.max ?? (await this.visibleCount(url));
    const result: ReplayResult = {
      queue: queue.name,
      target: sourceName ?? 'rules engine',
      mode: sourceName ? 'send-to-source' : 'republish',
      replayed: [],
      failed: [],
    };
    const seen = new Set<string>();
    while (result.replayed.length + result.failed.length < max) {
      const messages = await this.receive(
        url,
        Math.min(10, max - result.replayed.length - result.failed.length),
        60,
      );
      const fresh = messages.filter((message) => !seen.has(message.MessageId ?? ''));
      if (fresh.length === 0) {
        await this.release(url, messages);
        break;
      }
      for (const message of fresh) {
        seen.add(message.MessageId ?? '');
        await this.replayRecorded(message, url, { sourceUrl, republish: options.republish }, result);
      }
    }
    return result;
  }

  /** Replays one message, recorded in `result` as replayed or (released again) as failed. */
  private async replayRecorded(
    message: Message,
    url: string,
    to: { sourceUrl: string | undefined; republish: Republish | undefined },
    result: ReplayResult,
  ): Promise<void> {
    const messageId = message.MessageId ?? '';
    try {
      const replayed = await this.replayOne(message, url, to);
      if (replayed) result.replayed.push({ messageId, ...replayed });
    } catch (error) {
      await this.release(url, [message]);
      result.failed.push({ messageId, error: error instanceof Error ? error.message : String(error) });
    }
  }

  /**
   * One message sent back to its source queue, or its rule error's payload re-published, then
   * deleted from the DLQ; nothing done where there is neither.
   */
  private async replayOne(
    message: Message,
    url: string,
    to: { sourceUrl: string | undefined; republish: Republish | undefined },
  ): Promise<{ newMessageId?: string; topic?: string } | undefined> {
    if (to.sourceUrl) {
      const attributes = message.MessageAttributes;
      const sent = await this.sqs.send(
        new SendMessageCommand({
          QueueUrl: to.sourceUrl,
          MessageBody: message.Body ?? '',
          ...(attributes && Object.keys(attributes).length > 0 ? { MessageAttributes: attributes } : {}),
        }),
      );
      await this.delete(url, message);
      return sent.MessageId ? { newMessageId: sent.MessageId } : {};
    }
    if (!to.republish) return undefined;
    const parsed = RuleErrorMessage.safeParse(safeJson(message.Body ?? ''));
    if (!parsed.success) throw new Error('not an IoT rule error message (topic, base64OriginalPayload)');
    await to.republish(parsed.data.topic, Buffer.from(parsed.data.base64OriginalPayload, 'base64'));
    await this.delete(url, message);
    return { topic: parsed.data.topic };
  }

  /**
   * Removes messages on purpose: all of them, or the one `messageId` names. Each is appended to
   * `file` (JSONL, with the reason) and the file is flushed before the message is deleted.
   */
  async discard(
    reference: string,
    options: { reason: string; messageId?: string; file: string; now: string },
  ): Promise<DiscardResult> {
    const queue = this.find(reference);
    const url = await this.urlOf(queue.name);
    const result: DiscardResult = {
      queue: queue.name,
      reason: options.reason,
      file: options.file,
      discarded: [],
    };
    const seen = new Set<string>();
    const untouched: Message[] = [];
    for (;;) {
      const messages = await this.receive(url, 10, 60);
      const fresh = messages.filter((message) => !seen.has(message.MessageId ?? ''));
      if (fresh.length === 0) {
        untouched.push(...messages);
        break;
      }
      for (const message of fresh) {
        const messageId = message.MessageId ?? '';
        seen.add(messageId);
        if (options.messageId && messageId !== options.messageId) {
          untouched.push(message);
          continue;
        }
        await writeDurably(options.file, discardLine(queue.name, message, options));
        await this.delete(url, message);
        result.discarded.push({ messageId });
      }
      if (options.messageId && result.discarded.length > 0) break;
    }
    await this.release(url, untouched);
    if (options.messageId && result.discarded.length === 0) result.notFound = options.messageId;
    return result;
  }

  /** DLQ name → source queue name, read from the RedrivePolicy of every other declared queue. */
  private async liveSources(): Promise<Map<string, string>> {
    const dlqNames = new Set(this.deadLetterQueues.map((queue) => queue.name));
    const sources = new Map<string, string>();
    for (const queue of this.queues) {
      if (dlqNames.has(queue.name)) continue;
      const out = await this.sqs.send(
        new GetQueueAttributesCommand({
          QueueUrl: await this.urlOf(queue.name),
          AttributeNames: ['RedrivePolicy'],
        }),
      );
      const policy = safeJson(out.Attributes?.RedrivePolicy ?? '') as
        | { deadLetterTargetArn?: unknown }
        | undefined;
      const target =
        typeof policy?.deadLetterTargetArn === 'string'
          ? policy.deadLetterTargetArn.split(':').pop()
          : undefined;
      if (target) sources.set(target, queue.name);
    }
    return sources;
  }

  private async sourceOf(queue: DeadLetterQueue): Promise<string> {
    const source = (await this.liveSources()).get(queue.name) ?? queue.declaredSources[0];
    if (!source) throw new DeadLetterError(`${queue.name} is no queue's dead-letter queue`, 'NO_SOURCE');
    return source;
  }

  private async visibleCount(url: string): Promise<number> {
    const out = await this.sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['ApproximateNumberOfMessages'] }),
    );
    return Number(out.Attributes?.ApproximateNumberOfMessages ?? 0);
  }

  /** Reads up to `limit` messages without consuming them (made visible again right after). */
  private async peek(url: string, limit: number): Promise<NonNullable<DeadLetterListing['messages']>> {
    const peeked: Message[] = [];
    const seen = new Set<string>();
    while (peeked.length < limit) {
      const messages = await this.receive(url, Math.min(10, limit - peeked.length), 30);
      const fresh = messages.filter((message) => !seen.has(message.MessageId ?? ''));
      for (const message of fresh) seen.add(message.MessageId ?? '');
      peeked.push(...fresh);
      if (fresh.length === 0) {
        await this.release(url, messages);
        break;
      }
    }
    await this.release(url, peeked);
    return peeked.map((message) => ({
      messageId: message.MessageId ?? '',
      body: (message.Body ?? '').slice(0, BODY_PREVIEW),
      receiveCount: Number(message.Attributes?.ApproximateReceiveCount ?? 0),
      ...(message.MessageAttributes?.[DEAD_LETTER_REASON]?.StringValue
        ? { reason: message.MessageAttributes[DEAD_LETTER_REASON].StringValue }
        : {}),
      ...(message.Attributes?.SentTimestamp
        ? { sentAt: new Date(Number(message.Attributes.SentTimestamp)).toISOString() }
        : {}),
    }));
  }

  private async receive(url: string, max: number, visibilityTimeout: number): Promise<Message[]> {
    const out = await this.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: url,
        MaxNumberOfMessages: Math.max(1, Math.min(10, max)),
        VisibilityTimeout: visibilityTimeout,
        WaitTimeSeconds: 0,
        AttributeNames: ['All'],
        MessageAttributeNames: ['All'],
      }),
    );
    return out.Messages ?? [];
  }

  private async delete(url: string, message: Message): Promise<void> {
    await this.sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: message.ReceiptHandle }));
  }

  /** Makes received messages visible again now (they stay in the queue, untouched). */
  private async release(url: string, messages: readonly Message[]): Promise<void> {
    for (const message of messages) {
      await this.sqs
        .send(
          new ChangeMessageVisibilityCommand({
            QueueUrl: url,
            ReceiptHandle: message.ReceiptHandle,
            VisibilityTimeout: 0,
          }),
        )
        .catch(() => undefined); // The message then reappears when its visibility timeout ends.
    }
  }
}

async function writeDurably(file: string, line: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await appendFile(file, line);
  const handle = await open(file, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function replayUnsupported(queue: string): DeadLetterError {
  return new DeadLetterError(
    `${queue} holds IoT rule errors (no source queue); they replay through the local rules engine only — on AWS list them and re-publish the payload yourself`,
    'REPLAY_UNSUPPORTED',
  );
}

/** The JSONL line a discarded message leaves in the discard file. */
function discardLine(queue: string, message: Message, options: { reason: string; now: string }): string {
  return `${JSON.stringify({
    queue,
    messageId: message.MessageId ?? '',
    reason: options.reason,
    discardedAt: options.now,
    body: message.Body ?? '',
    attributes: message.Attributes ?? {},
    messageAttributes: message.MessageAttributes ?? {},
  })}\n`;
}
