/**
 * Polling for what a test waits on (a queue drained, a record written, a state reached), every 100 ms,
 * and the depth of a queue, the usual thing to wait on.
 */
import { GetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';

/** Reads until `until` holds or `timeoutMs` passes; resolves with the last value read either way. */
export async function waitFor<T>(
  read: () => Promise<T>,
  until: (value: T) => boolean,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await read();
  while (!until(value) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    value = await read();
  }
  return value;
}

/** Resolves once `check` resolves true; throws when it has not within `timeoutMs`. */
export async function waitUntil(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Messages in the queue, visible or in flight. */
export async function queueDepth(client: SQSClient, url: string | undefined): Promise<number> {
  const out = await client.send(
    new GetQueueAttributesCommand({
      QueueUrl: url,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
    }),
  );
  return (
    Number(out.Attributes?.ApproximateNumberOfMessages ?? 0) +
    Number(out.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0)
  );
}
