/**
 * The command contract (docs/architecture.md §7): with `--json` exactly one JSON document on stdout; exit 0
 * on success, 1 on a handled failure (one-line reason on stderr), 2 on usage errors, 3 when a bulk
 * command did its work but left some of its input out (`allowlist import` with rejected rows,
 * `factory import` with rows rejected, failed or in progress: the good rows are written, the JSON
 * document is the usual summary or report).
 */

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
export const EXIT_PARTIAL = 3;

/** Thrown when the command line itself is wrong (unknown option, missing argument). */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Thrown when a command ran but could not do what was asked; the message is the one-line reason. */
export class CommandFailure extends Error {
  override name = 'CommandFailure';
  constructor(
    message: string,
    readonly result?: unknown,
  ) {
    super(message);
  }
}

export interface Output {
  readonly json: boolean;
  /** Human-readable line on stdout (suppressed in --json mode). */
  say(line: string): void;
  /** Diagnostic line on stderr (always). */
  warn(line: string): void;
  /** Whether stderr is a terminal (progress bars). */
  readonly interactive: boolean;
}

/**
 * `fleetgate … | head -1`: once the reader of stdout (or stderr) goes away, a write fails with EPIPE,
 * which Node raises as an unhandled 'error' event — a stack trace instead of a quiet end. After an
 * EPIPE the stream's further output is discarded (nobody can read it) and the command runs to its
 * end, closing what it opened (an ephemeral DynamoDB Local, a stack), with its own exit code. Any
 * other stream error is still an error.
 */
export function guardBrokenPipes(
  streams: ReadonlyArray<NodeJS.WriteStream> = [process.stdout, process.stderr],
): void {
  for (const stream of streams) {
    if (guarded.has(stream)) continue;
    guarded.add(stream);
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
      discardOutput(stream);
    });
  }
}

const guarded = new WeakSet<NodeJS.WriteStream>();

function discardOutput(stream: NodeJS.WriteStream): void {
  stream.write = ((_chunk: unknown, encoding?: unknown, callback?: unknown) => {
    const done = typeof encoding === 'function' ? encoding : callback;
    if (typeof done === 'function') queueMicrotask(() => (done as () => void)());
    return true;
  }) as NodeJS.WriteStream['write'];
}

export function createOutput(json: boolean): Output {
  return {
    json,
    say: (line) => {
      if (!json) process.stdout.write(`${line}\n`);
    },
    warn: (line) => {
      process.stderr.write(`${line}\n`);
    },
    interactive: Boolean(process.stderr.isTTY) && !process.env.CI,
  };
}

/** Writes the single JSON document of a --json run. */
export function printJson(document: unknown): void {
  process.stdout.write(`${JSON.stringify(document, null, 2)}\n`);
}

/** A one-line progress indicator on stderr, redrawn in place; silent when stderr is not a TTY. */
export function progressBar(output: Output, label: string): { update(text: string): void; done(): void } {
  let last = 0;
  let drawn = false;
  return {
    update(text) {
      if (!output.interactive) return;
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      drawn = true;
      process.stderr.write(`\r\x1b[2K${label} ${text}`);
    },
    done() {
      if (drawn) process.stderr.write('\r\x1b[2K');
    },
  };
}
