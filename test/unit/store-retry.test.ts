import { marshall } from '@aws-sdk/util-dynamodb';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  backoff,
  cancellationReasons,
  conditionally,
  conditionFailureItem,
  failedConditions,
  isConditionFailure,
} from '../../shared/store/retry';

function awsError(name: string, fields: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(name), { name, ...fields });
}

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe('store retry and condition helpers', () => {
  it('tells a failed condition from any other error, and unmarshalls its old image', () => {
    const failed = awsError('ConditionalCheckFailedException', {
      Item: marshall({ PK: 'DEVICE#1', done: true }),
    });
    expect(isConditionFailure(failed)).toBe(true);
    expect(conditionFailureItem(failed)).toEqual({ PK: 'DEVICE#1', done: true });
    expect(conditionFailureItem(awsError('ConditionalCheckFailedException'))).toEqual({});
    expect(isConditionFailure(awsError('ThrottlingException'))).toBe(false);
    expect(conditionFailureItem(awsError('ThrottlingException'))).toBeUndefined();
    expect(isConditionFailure(null)).toBe(false);
  });

  it('reads a cancelled transaction: old images where conditions failed, nothing where a retry helps', () => {
    const cancelled = awsError('TransactionCanceledException', {
      CancellationReasons: [
        { Code: 'None' },
        { Code: 'ConditionalCheckFailed', Item: marshall({ PK: 'CERT#c', SK: 'CERT' }) },
        { Code: 'ConditionalCheckFailed' },
      ],
    });
    const reasons = cancellationReasons(cancelled);
    expect(reasons).toHaveLength(3);
    expect(failedConditions(reasons ?? [])).toEqual([undefined, { PK: 'CERT#c', SK: 'CERT' }, {}]);
    const conflict = awsError('TransactionCanceledException', {
      CancellationReasons: [{ Code: 'TransactionConflict' }, { Code: 'None' }],
    });
    expect(failedConditions(cancellationReasons(conflict) ?? [])).toBeUndefined();
    expect(cancellationReasons(awsError('ValidationException'))).toBeUndefined();
    expect(cancellationReasons(awsError('TransactionCanceledException'))).toEqual([]);
  });

  it('runs a conditional write: true when applied, false when its condition failed, other errors thrown', async () => {
    await expect(conditionally(Promise.resolve({}))).resolves.toBe(true);
    await expect(conditionally(Promise.reject(awsError('ConditionalCheckFailedException')))).resolves.toBe(
      false,
    );
    await expect(conditionally(Promise.reject(awsError('ThrottlingException')))).rejects.toThrow(
      'ThrottlingException',
    );
  });

  it('backs off with full jitter under an exponential cap of at most one second', async () => {
    vi.useFakeTimers();
    const delays: number[] = [];
    vi.spyOn(globalThis, 'setTimeout').mockImplementation(((resolve: () => void, ms?: number) => {
      delays.push(ms ?? 0);
      resolve();
      return 0 as unknown as NodeJS.Timeout;
    }) as typeof setTimeout);
    vi.spyOn(Math, 'random').mockReturnValue(0.999999);
    for (const attempt of [1, 2, 3, 5, 6, 12]) await backoff(attempt);
    expect(delays.map((ms) => Math.round(ms))).toEqual([40, 80, 160, 640, 1000, 1000]);
    vi.spyOn(Math, 'random').mockReturnValue(0);
    await backoff(4);
    expect(delays.at(-1)).toBe(0);
  });
});
