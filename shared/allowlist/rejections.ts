/**
 * The rejected rows of an allowlist import, in memory that does not grow with their number: the
 * first `limit` rejections (by line) are kept for the summary, every rejection is counted, and once
 * there are more than `limit` the complete list is written to a report file (CSV `line,reason`, one
 * rejection a line, in line order), so no rejection is ever dropped.
 *
 * Rejections come in two runs, each in line order: those found while the file is read (`add`) and
 * the duplicates confirmed by the second read, at the end (`addLate`). Each run past `limit` spills
 * to a part file of its own; `finish` merges the two runs into the report by streaming both.
 */
import { once } from 'node:events';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createInterface } from 'node:readline';

export interface Rejection {
  line: number;
  reason: string;
}

export interface RejectionReportResult {
  /** The first rejections by line: all of them when there are at most `limit`. */
  rejected: Rejection[];
  /** How many rows were rejected in all. */
  rejectedCount: number;
  /** The complete list (CSV `line,reason`), written only when there were more than `limit`. */
  rejectedFile?: string;
}

/** Rejections kept in memory by default: enough for a typo-ridden file, a few hundred kB at most. */
export const DEFAULT_REJECTED_IN_MEMORY = 1000;

export const REPORT_HEADER = 'line,reason';

/** One rejection as a line of the report: `reason` quoted as a CSV field (quotes doubled). */
export function reportLine({ line, reason }: Rejection): string {
  return `${line},"${reason.replaceAll('"', '""')}"`;
}

/** A report line back as its rejection (what `reportLine` wrote). */
export function parseReportLine(text: string): Rejection {
  const comma = text.indexOf(',');
  return { line: Number(text.slice(0, comma)), reason: text.slice(comma + 2, -1).replaceAll('""', '"') };
}

/** One run of rejections in line order: its first `limit` in memory, the whole run in a part file once past it. */
class Run {
  readonly head: Rejection[] = [];
  count = 0;
  private out: WriteStream | undefined;
  private failure: Error | undefined;

  constructor(
    private readonly limit: number,
    private readonly partFile: string | undefined,
  ) {}

  get spilled(): boolean {
    return this.out !== undefined;
  }

  async add(rejection: Rejection): Promise<void> {
    this.count += 1;
    if (this.head.length < this.limit) this.head.push(rejection);
    if (this.count > this.limit && this.partFile !== undefined && !this.out) {
      this.out = createWriteStream(this.partFile);
      this.out.on('error', (error) => {
        this.failure ??= error;
      });
      for (const held of this.head) await this.write(held);
      if (this.head.length < this.count) await this.write(rejection);
      return;
    }
    if (this.out) await this.write(rejection);
  }

  private async write(rejection: Rejection): Promise<void> {
    if (this.failure) throw this.failure;
    const out = this.out as WriteStream;
    if (!out.write(`${reportLine(rejection)}\n`)) await once(out, 'drain');
  }

  async close(): Promise<void> {
    if (!this.out) return;
    this.out.end();
    await once(this.out, 'close');
    if (this.failure) throw this.failure;
  }

  /** The run in line order: from its part file when it spilled, else from memory. */
  async *rejections(): AsyncGenerator<Rejection> {
    if (!this.out || this.partFile === undefined) {
      yield* this.head;
      return;
    }
    const lines = createInterface({ input: createReadStream(this.partFile), crlfDelay: Infinity });
    for await (const text of lines) if (text !== '') yield parseReportLine(text);
  }
}

/**
 * Collects an import's rejections. Without `file`, every rejection is kept in memory (`limit` is
 * ignored): nothing may be dropped, and there is nowhere else to put them.
 */
export class RejectionReport {
  private readonly early: Run;
  private readonly late: Run;
  private readonly limit: number;

  constructor(
    options: { limit?: number; file?: string } = {},
    private readonly file = options.file,
  ) {
    this.limit =
      file === undefined ? Number.POSITIVE_INFINITY : (options.limit ?? DEFAULT_REJECTED_IN_MEMORY);
    this.early = new Run(this.limit, file === undefined ? undefined : `${file}.part-1`);
    this.late = new Run(this.limit, file === undefined ? undefined : `${file}.part-2`);
  }

  get count(): number {
    return this.early.count + this.late.count;
  }

  /** A rejection found while reading: in line order. */
  add(rejection: Rejection): Promise<void> {
    return this.early.add(rejection);
  }

  /** A rejection found after reading (a confirmed duplicate): in line order among themselves. */
  addLate(rejection: Rejection): Promise<void> {
    return this.late.add(rejection);
  }

  /** The summary's part; the report file written (the two runs merged) when past `limit`. */
  async finish(): Promise<RejectionReportResult> {
    await this.early.close();
    await this.late.close();
    const rejected = mergeHeads(this.early.head, this.late.head, this.limit);
    const rejectedCount = this.count;
    if (this.file === undefined || rejectedCount <= this.limit) return { rejected, rejectedCount };
    const out = createWriteStream(this.file);
    let failure: Error | undefined;
    out.on('error', (error) => {
      failure ??= error;
    });
    const write = async (text: string) => {
      if (failure) throw failure;
      if (!out.write(`${text}\n`)) await once(out, 'drain');
    };
    await write(REPORT_HEADER);
    for await (const rejection of merged(this.early.rejections(), this.late.rejections())) {
      await write(reportLine(rejection));
    }
    out.end();
    await once(out, 'close');
    if (failure) throw failure;
    await rm(`${this.file}.part-1`, { force: true });
    await rm(`${this.file}.part-2`, { force: true });
    return { rejected, rejectedCount, rejectedFile: this.file };
  }

  /** Removes the part files (an import that failed). */
  async discard(): Promise<void> {
    await this.early.close().catch(() => {});
    await this.late.close().catch(() => {});
    if (this.file === undefined) return;
    await rm(`${this.file}.part-1`, { force: true });
    await rm(`${this.file}.part-2`, { force: true });
  }
}

/** The first `limit` of two line-ordered lists, merged. */
function mergeHeads(a: readonly Rejection[], b: readonly Rejection[], limit: number): Rejection[] {
  const out: Rejection[] = [];
  let i = 0;
  let j = 0;
  while (out.length < limit && (i < a.length || j < b.length)) {
    const x = a[i];
    const y = b[j];
    if (y === undefined || (x !== undefined && x.line <= y.line)) {
      out.push(x as Rejection);
      i += 1;
    } else {
      out.push(y);
      j += 1;
    }
  }
  return out;
}

/** Two line-ordered streams of rejections as one, in line order. */
async function* merged(
  a: AsyncIterator<Rejection> & AsyncIterable<Rejection>,
  b: AsyncIterator<Rejection> & AsyncIterable<Rejection>,
): AsyncGenerator<Rejection> {
  let x = await a.next();
  let y = await b.next();
  while (!x.done || !y.done) {
    if (y.done || (!x.done && x.value.line <= y.value.line)) {
      yield x.value as Rejection;
      x = await a.next();
    } else {
      yield y.value;
      y = await b.next();
    }
  }
}
