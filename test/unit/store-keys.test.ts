import { describe, expect, it } from 'vitest';
import { daysBetween, keys, minuteBucket, SHARDS, shardOf } from '../../shared/store/keys';

describe('store keys', () => {
  it('spreads ids over every shard, stably', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 1000; i += 1) seen.add(shardOf(`cert-${i}`));
    expect(seen.size).toBe(SHARDS);
    expect(shardOf('abc')).toBe(shardOf('abc'));
  });

  it('builds expiry index keys that sort by time within a day bucket', () => {
    const a = keys.expiryIndex('2026-12-01T00:00:00.000Z', 'a');
    const b = keys.expiryIndex('2026-12-01T23:59:59.999Z', 'a');
    expect(a.GSI1PK).toBe(b.GSI1PK);
    expect(a.GSI1SK < b.GSI1SK).toBe(true);
  });

  it('lists every UTC day of a window, across month and year ends', () => {
    expect(daysBetween('2026-12-30T10:00:00.000Z', '2027-01-02T00:00:00.000Z')).toEqual([
      '2026-12-30',
      '2026-12-31',
      '2027-01-01',
      '2027-01-02',
    ]);
    expect(daysBetween('2026-12-30T10:00:00.000Z', '2026-12-30T11:00:00.000Z')).toEqual(['2026-12-30']);
  });

  it('buckets claim counters per minute', () => {
    expect(minuteBucket('2026-11-24T14:05:59.999Z')).toBe('2026-11-24T14:05');
  });
});
