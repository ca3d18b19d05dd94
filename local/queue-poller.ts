/**
 * An SQS event source mapping, locally: receives from a queue and invokes the function with
 * AWS-shaped batches, deletes what succeeded, leaves what failed to reappear after the queue's
 * visibility timeout (and to be dead-lettered by local SQS after maxReceiveCount receives).
 *
 * Like Lambda: a thrown error fails the whole batch; with `ReportBatchItemFailures` only the ids in
 * `batchItemFailures` fail, and a malformed response fails the whole batch.
 * @see https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html
 * @see https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html
 */
import { setMaxListeners } from 'node:events';
import {
  DeleteMessageBatchCommand,
  type Message,
  type MessageAttributeValue,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { QueueSpec, SqsMapping } from './stack-model';

/** What happened to one message, for replay reports. */
export interface MessageTrace {
  messageId: string;
  queue: string;
  functionName: string;
  receives: number;
  status: 'pending' | 'succeeded' | 'retrying' | 'dead-lettered';
  deadLetterQueue?: string;
  lastError?: string;
}

/** Message traces by message id (shared by every poller of a stack). */
export class MessageLedger {
  private readonly traces = new Map<string, MessageTrace>();
  /** Messages their consumer sent to the DLQ itself (and then acknowledged), with the reason. */
  private readonly deadLetters = new Map<string, string>();

  /** Records that the consumer of `messageId` sent it to its queue's DLQ at once, for `reason`. */
  markDeadLettered(messageId: string, reason: string): void {
    this.deadLetters.set(messageId, reason);
    if (this.deadLetters.size > 10_000) {
      const oldest = this.deadLetters.keys().next().value;
      if (oldest !== undefined) this.deadLetters.delete(oldest);
    }
  }

  /** The reason a message was dead-lettered by its consumer, if it was. */
  deadLetterReason(messageId: string): string | undefined {
    return this.deadLetters.get(messageId);
  }

  get(messageId: string): MessageTrace | undefined {
    return this.traces.get(messageId);
  }

  update(messageId: string, change: Omit<MessageTrace, 'messageId'>): void {
    this.traces.set(messageId, { messageId, ...change });
    if (this.traces.size > 100_000) {
      const oldest = this.traces.keys().next().value;
      if (oldest !== undefined) this.traces.delete(oldest);
    }
  }
}

export interface SqsRecord {
  messageId: string;
  receiptHandle: string;
  body: string;
  attributes: Record<string, string>;
  messageAttributes: Record<
    string,
    {
      stringValue?: string;
      binaryValue?: string;
      stringListValues: string[];
      binaryListValues: string[];
      dataType: string;
    }
  >;
  md5OfBody: string;
  md5OfMessageAttributes?: string;
  eventSource: 'aws:sqs';
  eventSourceARN: string;
  awsRegion: string;
}

/** The Lambda SQS event record of a received message. */
export function toSqsRecord(message: Message, queueArn: string, region: string): SqsRecord {
  const messageAttributes: SqsRecord['messageAttributes'] = {};
  for (const [name, value] of Object.entries(message.MessageAttributes ?? {})) {
    messageAttributes[name] = toLambdaAttribute(value);
  }
  return {
    messageId: message.MessageId ?? '',
    receiptHandle: message.ReceiptHandle ?? '',
    body: message.Body ?? '',
    attributes: { ...(message.Attributes ?? {}) } as Record<string, string>,
    messageAttributes,
    md5OfBody: message.MD5OfBody ?? '',
    ...(message.MD5OfMessageAttributes ? { md5OfMessageAttributes: message.MD5OfMessageAttributes } : {}),
    eventSource: 'aws:sqs',
    eventSourceARN: queueArn,
    awsRegion: region,
  };
}

function toLambdaAttribute(value: MessageAttributeValue): SqsRecord['messageAttributes'][string] {
  return {
    ...(value.StringValue !== undefined ? { stringValue: value.StringValue } : {}),
    ...(value.BinaryValue !== undefined
      ? { binaryValue: Buffer.from(value.BinaryValue).toString('base64') }
      : {}),
    stringListValues: value.StringListValues ?? [],
    binaryListValues: (value.BinaryListValues ?? []).map((item) => Buffer.from(item).toString('base64')),
    dataType: value.DataType ?? 'String',
  };
}

export interface PollerOptions {
  client: SQSClient;
  queue: QueueSpec;
  queueUrl: string;
  mapping: SqsMapping;
  functionName: string;
  region: string;
  invoke(event: { Records: SqsRecord[] }): Promise<unknown>;
  ledger: MessageLedger;
  /** Called with errors of the poller itself (not of the handler). */
  onError?(error: unknown): void;
  /** Idle poll interval; local SQS long polling is not reliable, so the poller short-polls. */
  pollIntervalMs?: number;
}

export class QueuePoller {
  private running = false;
  private inFlight = 0;
  private loop: Promise<void> | undefined;
  private readonly abort = new AbortController();

  constructor(private readonly options: PollerOptions) {
    // Every in-flight ReceiveMessage listens on this one signal; more than ten is normal here.
    setMaxListeners(0, this.abort.signal);
  }

  /** Batches being handled right now. */
  get busy(): number {
    return this.inFlight;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.abort.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { mapping } = this.options;
    const interval = this.options.pollIntervalMs ?? 50;
    const pending = new Set<Promise<void>>();
    while (this.running) {
      if (this.inFlight >= Math.max(1, mapping.maximumConcurrency)) {
        await Promise.race(pending);
        continue;
      }
      let messages: Message[] = [];
      try {
        messages = await this.receive(mapping.batchSize);
      } catch (error) {
        if (!this.running) break;
        this.options.onError?.(error);
      }
      if (messages.length === 0) {
        await sleep(interval, this.abort.signal);
        continue;
      }
      this.inFlight += 1;
      const batch = this.handle(messages).finally(() => {
        this.inFlight -= 1;
        pending.delete(batch);
      });
      pending.add(batch);
    }
    await Promise.allSettled(pending);
  }

  private async receive(batchSize: number): Promise<Message[]> {
    const messages: Message[] = [];
    // ReceiveMessage returns at most 10; a larger batchSize gathers several receives.
    while (messages.length < batchSize) {
      const out = await this.options.client.send(
        new ReceiveMessageCommand({
          QueueUrl: this.options.queueUrl,
          MaxNumberOfMessages: Math.min(10, batchSize - messages.length),
          AttributeNames: ['All'],
          MessageAttributeNames: ['All'],
        }),
        { abortSignal: this.abort.signal },
      );
      const received = out.Messages ?? [];
      messages.push(...received);
      if (received.length === 0) break;
    }
    return messages;
  }

  private async handle(messages: Message[]): Promise<void> {
    const { queue, functionName, mapping, ledger, region } = this.options;
    const records = messages.map((message) => toSqsRecord(message, queue.arn, region));
    let failed = new Set<string>();
    let lastError: string | undefined;
    try {
      const result = await this.options.invoke({ Records: records });
      if (mapping.reportBatchItemFailures) failed = batchItemFailures(result, records);
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error);
      failed = new Set(records.map((record) => record.messageId));
    }
    const succeeded = records.filter((record) => !failed.has(record.messageId));
    for (const record of records) {
      const receives = Number(record.attributes.ApproximateReceiveCount ?? 1);
      const ok = !failed.has(record.messageId);
      // local SQS moves a message that has been received maxReceiveCount times to the DLQ when its
      // visibility timeout ends, as SQS does; the trace says so now.
      const redriven = !ok && queue.redrive !== undefined && receives >= queue.redrive.maxReceiveCount;
      // A consumer that found the message can never be processed sent it to the DLQ itself and
      // acknowledged it: dead-lettered too, with its reason.
      const sentAway = ok ? ledger.deadLetterReason(record.messageId) : undefined;
      if (sentAway !== undefined) {
        ledger.update(record.messageId, {
          queue: queue.logicalId,
          functionName,
          receives,
          status: 'dead-lettered',
          ...(queue.redrive ? { deadLetterQueue: queue.redrive.deadLetterQueue } : {}),
          lastError: sentAway || 'sent to the dead-letter queue by its consumer',
        });
        continue;
      }
      const deadLettered = redriven;
      ledger.update(record.messageId, {
        queue: queue.logicalId,
        functionName,
        receives,
        status: ok ? 'succeeded' : deadLettered ? 'dead-lettered' : 'retrying',
        ...(deadLettered && queue.redrive ? { deadLetterQueue: queue.redrive.deadLetterQueue } : {}),
        ...(!ok ? { lastError: lastError ?? 'reported in batchItemFailures' } : {}),
      });
    }
    for (let i = 0; i < succeeded.length; i += 10) {
      const chunk = succeeded.slice(i, i + 10);
      try {
        await this.options.client.send(
          new DeleteMessageBatchCommand({
            QueueUrl: this.options.queueUrl,
            Entries: chunk.map((record, index) => ({
              Id: String(index),
              ReceiptHandle: record.receiptHandle,
            })),
          }),
        );
      } catch (error) {
        this.options.onError?.(error);
      }
    }
  }
}

/** The failed ids of a `ReportBatchItemFailures` response; a malformed response fails the whole batch. */
export function batchItemFailures(result: unknown, records: readonly SqsRecord[]): Set<string> {
  const all = new Set(records.map((record) => record.messageId));
  if (result === undefined || result === null) return new Set();
  if (typeof result !== 'object') return all;
  const failures = (result as { batchItemFailures?: unknown }).batchItemFailures;
  if (failures === undefined || failures === null) return new Set();
  if (!Array.isArray(failures)) return all;
  const failed = new Set<string>();
  for (const failure of failures) {
    const id = (failure as { itemIdentifier?: unknown } | null)?.itemIdentifier;
    // An empty, unknown or missing identifier makes Lambda treat the whole batch as failed.
    if (typeof id !== 'string' || !all.has(id)) return all;
    failed.add(id);
  }
  return failed;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}
