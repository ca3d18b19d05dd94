/**
 * shared/on-first-use.ts: what the functions load by dynamic import() on first use (the SQS senders,
 * the S3 report sink) is loaded once however many first uses race, and a failed load is tried
 * again by the next use instead of failing every later send of the container.
 */
import { describe, expect, it } from 'vitest';
import { onFirstUse } from '../../shared/on-first-use';

describe('onFirstUse', () => {
  it('loads nothing until asked, then once for concurrent first uses', async () => {
    let loads = 0;
    const value = onFirstUse(async () => {
      loads += 1;
      await new Promise((resolve) => setTimeout(resolve, 5));
      return { id: loads };
    });
    expect(loads).toBe(0);
    const results = await Promise.all([value(), value(), value()]);
    expect(loads).toBe(1);
    expect(new Set(results).size).toBe(1);
    expect(await value()).toBe(results[0]);
    expect(loads).toBe(1);
  });

  it('tries again after a failed load, and keeps the first success', async () => {
    let loads = 0;
    const value = onFirstUse(async () => {
      loads += 1;
      if (loads === 1) throw new Error('chunk not found');
      return `loaded on attempt ${loads}`;
    });
    await expect(value()).rejects.toThrow('chunk not found');
    await expect(value()).resolves.toBe('loaded on attempt 2');
    await expect(value()).resolves.toBe('loaded on attempt 2');
    expect(loads).toBe(2);
  });
});
