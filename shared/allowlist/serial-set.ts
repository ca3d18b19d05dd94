/**
 * In-file duplicate detection for the allowlist import in memory that does not grow with the
 * serials' length: of each serial accepted so far, 40 bits of its 64-bit hash (8 bits choose one of
 * 256 tables, one 32-bit word is stored) in open-addressing tables of `Uint32Array` words: 4 bytes a
 * serial, 5–11 with the tables' free slots; 1,000,000 serials ≈ 8 MB, instead of a `Set<string>`'s
 * ~60 MB of heap and the heap growth that comes with it.
 *
 * A hit is only a *suspect*: two different serials can share those 40 bits (about n²/2⁴¹ pairs among
 * n serials: ~0.5 expected at 1,000,000 serials, ~45 at 10,000,000). The import confirms each
 * suspect exactly (a second read of the file, comparing the serials themselves) before it rejects a
 * row as a duplicate, so a collision never becomes a false "duplicate" rejection: it only costs the
 * second read. The set never misses a hash it holds.
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

const SEGMENT_BITS = 8;
const SEGMENTS = 1 << SEGMENT_BITS;
/** Slots a segment may grow to inside the shared reservation (1 MB of address space a segment). */
const REGION_SLOTS = 1 << 18;

/**
 * A set of 64-bit hashes, kept as 40 bits each: 256 segments (chosen by the hash's top 8 bits), each
 * an open-addressing table with linear probing of one word a slot — the hash's low 32 bits, 0 = empty,
 * home slot from the word's own low bits — doubled when ¾ full. `add` and `has` may
 * take a different hash with the same top 8 and low 32 bits for one already added (a suspect, for the
 * caller to confirm), never the other way round. A segment grows in place, inside its own region of
 * one zero-filled reservation made up front (256 MB of address space; the allocator maps it lazily,
 * so only the pages a segment has reached count in RSS), rehashed through one small reused scratch
 * table: growing leaves no garbage behind. (Doubling separate arrays left every smaller generation in
 * RSS until a major GC: ~2× the live table.) A segment past its region (over ~50 million serials in
 * all) moves to an array of its own; where the reservation cannot be made (strict overcommit,
 * `ulimit -v`), every segment is an array of its own from the start (correct, with the old
 * generations left to the GC).
 */
export class SerialHashSet {
  private readonly reservation: Uint32Array | undefined;
  private readonly segments: Uint32Array[] = [];
  private readonly counts = new Uint32Array(SEGMENTS);
  private scratch = new Uint32Array(0);
  private total = 0;

  constructor(initialSlots = 1 << 14, options: { reserve?: boolean } = {}) {
    let slots = 16;
    while (slots * SEGMENTS < initialSlots && slots < REGION_SLOTS) slots *= 2;
    this.reservation = options.reserve === false ? undefined : reserve(SEGMENTS * REGION_SLOTS);
    for (let i = 0; i < SEGMENTS; i += 1) {
      const start = i * REGION_SLOTS;
      this.segments.push(this.reservation?.subarray(start, start + slots) ?? new Uint32Array(slots));
    }
  }

  /** Hashes added as new (a hash taken for one already there is not counted). */
  get size(): number {
    return this.total;
  }

  /** Adds `hash`; false when it (or a hash sharing its 40 bits) was already in the set. */
  add(hash: SerialHash): boolean {
    const [hi, word] = split(hash);
    const index = hi >>> (32 - SEGMENT_BITS);
    const words = this.segments[index] as Uint32Array;
    if (!insert(words, word)) return false;
    this.total += 1;
    const count = (this.counts[index] ?? 0) + 1;
    this.counts[index] = count;
    if (count * 4 > words.length * 3) this.grow(index, words);
    return true;
  }

  /** True when `hash` (or a hash sharing its 40 bits) was added. */
  has(hash: SerialHash): boolean {
    const [hi, word] = split(hash);
    const words = this.segments[hi >>> (32 - SEGMENT_BITS)] as Uint32Array;
    const mask = words.length - 1;
    for (let slot = word & mask; ; slot = (slot + 1) & mask) {
      const w = words[slot];
      if (w === 0) return false;
      if (w === word) return true;
    }
  }

  /** Doubles segment `index`: in place within its region (through the scratch table), else anew. */
  private grow(index: number, old: Uint32Array): void {
    const length = old.length * 2;
    let words: Uint32Array;
    if (this.reservation && old.buffer === this.reservation.buffer && length <= REGION_SLOTS) {
      if (this.scratch.length < old.length) this.scratch = new Uint32Array(old.length);
      const copy = this.scratch.subarray(0, old.length);
      copy.set(old);
      const start = index * REGION_SLOTS;
      words = this.reservation.subarray(start, start + length);
      words.fill(0, 0, old.length);
      rehash(copy, words);
    } else {
      words = new Uint32Array(length);
      rehash(old, words);
    }
    this.segments[index] = words;
  }
}

/** A zero-filled array of `words`, or undefined when the allocator refuses it. */
function reserve(words: number): Uint32Array | undefined {
  try {
    return new Uint32Array(words);
  } catch {
    return undefined;
  }
}

function rehash(from: Uint32Array, to: Uint32Array): void {
  for (let i = 0; i < from.length; i += 1) {
    const word = from[i] ?? 0;
    if (word !== 0) insert(to, word);
  }
}

/**
 * Puts `word` in the first free slot from its home slot (its own low bits: the stored word is what
 * places it, so a segment can be rehashed from its words alone); false when it is already there.
 */
function insert(words: Uint32Array, word: number): boolean {
  const mask = words.length - 1;
  for (let slot = word & mask; ; slot = (slot + 1) & mask) {
    const w = words[slot];
    if (w === 0) {
      words[slot] = word;
      return true;
    }
    if (w === word) return false;
  }
}

/** The segment's bits (the high word) and the stored word (the low word; 0 marks an empty slot, so 0 is stored as 1). */
function split([hi, lo]: SerialHash): [hi: number, word: number] {
  return [hi >>> 0, lo >>> 0 || 1];
}
