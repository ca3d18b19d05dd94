/**
 * In-file duplicate detection for the allowlist import in memory that does not grow with the
 * serials' length: a 64-bit hash of each serial accepted so far in an open-addressing table of
 * `Uint32Array` words (8 bytes a serial, 16–32 bytes with the table's free slots; 1,000,000 serials
 * ≈ 16 MB instead of a `Set<string>`'s ~100 MB and the heap growth that comes with it).
 *
 * A hash hit is only a *suspect*: two different serials can share a hash. The import confirms each
 * suspect exactly (a second read of the file, comparing the serials themselves) before it rejects a
 * row as a duplicate, so a collision never becomes a false "duplicate" rejection.
 */

/** A serial's 64-bit hash as two 32-bit halves. */
export type SerialHash = readonly [hi: number, lo: number];
export type SerialHasher = (serial: string) => SerialHash;

/**
 * Two independent 32-bit lanes of multiplicative mixing over the UTF-16 code units (the cyrb53
 * scheme, both lanes kept: 64 bits). Not cryptographic: a collision only costs a confirmation.
 */
export function serialHash64(serial: string): SerialHash {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < serial.length; i += 1) {
    const code = serial.charCodeAt(i);
    h1 = Math.imul(h1 ^ code, 2654435761);
    h2 = Math.imul(h2 ^ code, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return [h1 >>> 0, h2 >>> 0];
}

/** A set of 64-bit hashes: linear probing, 2 words a slot, (0, 0) = empty, doubled at half full. */
export class SerialHashSet {
  private words: Uint32Array;
  private mask: number;
  private count = 0;

  constructor(initialSlots = 1 << 14) {
    let slots = 1;
    while (slots < initialSlots) slots *= 2;
    this.words = new Uint32Array(slots * 2);
    this.mask = slots - 1;
  }

  get size(): number {
    return this.count;
  }

  /** Adds `hash`; false when it was already in the set. */
  add(hash: SerialHash): boolean {
    const [hi, lo] = normalize(hash);
    if (!this.insert(hi, lo)) return false;
    this.count += 1;
    if (this.count * 2 > this.mask + 1) this.grow();
    return true;
  }

  has(hash: SerialHash): boolean {
    const [hi, lo] = normalize(hash);
    const words = this.words;
    for (let slot = (lo ^ hi) & this.mask; ; slot = (slot + 1) & this.mask) {
      const h = words[slot * 2];
      const l = words[slot * 2 + 1];
      if (h === 0 && l === 0) return false;
      if (h === hi && l === lo) return true;
    }
  }

  private insert(hi: number, lo: number): boolean {
    const words = this.words;
    for (let slot = (lo ^ hi) & this.mask; ; slot = (slot + 1) & this.mask) {
      const h = words[slot * 2];
      const l = words[slot * 2 + 1];
      if (h === 0 && l === 0) {
        words[slot * 2] = hi;
        words[slot * 2 + 1] = lo;
        return true;
      }
      if (h === hi && l === lo) return false;
    }
  }

  private grow(): void {
    const old = this.words;
    this.words = new Uint32Array(old.length * 2);
    this.mask = old.length - 1;
    for (let i = 0; i < old.length; i += 2) {
      const hi = old[i] ?? 0;
      const lo = old[i + 1] ?? 0;
      if (hi !== 0 || lo !== 0) this.insert(hi, lo);
    }
  }
}

/** (0, 0) marks an empty slot, so a hash of (0, 0) is stored as (0, 1). */
function normalize([hi, lo]: SerialHash): SerialHash {
  return hi === 0 && lo === 0 ? [0, 1] : [hi >>> 0, lo >>> 0];
}
