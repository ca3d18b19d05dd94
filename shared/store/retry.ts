/**
 * The one place that tells a failed DynamoDB condition from any other error, reads a cancelled
 * transaction's reasons, and waits between retries. Every store uses these; none keeps its own copy.
 */
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';

/** Retries of a transaction that lost to a concurrent writer, or of a batch's unprocessed part. */
export const RETRIES = 8;

/** One entry of `TransactionCanceledException.CancellationReasons` (one per transaction item). */
export interface CancellationReason {
  Code?: string;
  Item?: Record<string, AttributeValue>;
}

/** What a transaction whose conditions failed reports per item: the old image (`{}` without one), or undefined where the item's condition held. */
export type FailedConditions = Array<Record<string, unknown> | undefined>;

/** True when a single-item write failed its condition (`ConditionalCheckFailedException`). */
export function isConditionFailure(error: unknown): boolean {
  return (error as { name?: string } | null)?.name === 'ConditionalCheckFailedException';
}

/**
 * The old image carried by a failed single-item condition (`{}` without one: ask for it with
 * `ReturnValuesOnConditionCheckFailure: 'ALL_OLD'`), or undefined for any other error. The
 * document client does not unmarshall the item carried by the error; this does.
 */
export function conditionFailureItem(error: unknown): Record<string, unknown> | undefined {
  if (!isConditionFailure(error)) return undefined;
  const item = (error as { Item?: Record<string, AttributeValue> }).Item;
  return item ? unmarshall(item) : {};
}

/** The per-item reasons of a cancelled transaction, or undefined when `error` is anything else. */
export function cancellationReasons(error: unknown): CancellationReason[] | undefined {
  const candidate = error as { name?: string; CancellationReasons?: CancellationReason[] } | null;
  return candidate?.name === 'TransactionCanceledException'
    ? (candidate.CancellationReasons ?? [])
    : undefined;
}

/**
 * The failed conditions among a cancelled transaction's reasons, or undefined when no condition
 * failed (the transaction lost to a concurrent writer, or was throttled: worth retrying).
 */
export function failedConditions(reasons: readonly CancellationReason[]): FailedConditions | undefined {
  if (!reasons.some((reason) => reason.Code === 'ConditionalCheckFailed')) return undefined;
  return reasons.map((reason) =>
    reason.Code === 'ConditionalCheckFailed' ? (reason.Item ? unmarshall(reason.Item) : {}) : undefined,
  );
}

/** Waits before retry `attempt` (1, 2, …): full jitter under an exponential cap, so concurrent retriers spread apart. */
export async function backoff(attempt: number): Promise<void> {
  const cap = Math.min(1000, 20 * 2 ** attempt);
  await new Promise((resolve) => setTimeout(resolve, Math.random() * cap));
}

/** Runs one conditional write: true when it was applied, false when its condition failed. */
export async function conditionally(write: Promise<unknown>): Promise<boolean> {
  try {
    await write;
    return true;
  } catch (error) {
    if (isConditionFailure(error)) return false;
    throw error;
  }
}
