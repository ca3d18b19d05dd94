/**
 * The command contract (docs/architecture.md §7): with `--json` exactly one JSON document on stdout; exit 0
 * on success, 1 on a handled failure (one-line reason on stderr), 2 on usage errors.
 */

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

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
