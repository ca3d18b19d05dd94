/**
 * `.fleetgate/stack.json`: how commands find a running local stack (`fleetgate local up`).
 */
import { createWriteStream, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { projectRoot } from './paths';

export interface StackFile {
  /** Process id of the stack's supervisor process. */
  pid: number;
  startedAt: string;
  region: string;
  tableName: string;
  /** Standard SDK endpoint variables, e.g. `{ dynamodb: 'http://127.0.0.1:8000' }`. */
  endpoints: Record<string, string>;
  /** Queue name → URL for the queues declared in serverless.yml. */
  queues?: Record<string, string>;
  /** Anything else the stack wants to publish (ports, folders). */
  [key: string]: unknown;
}

export function stackFilePath(root = projectRoot()): string {
  return process.env.FLEETGATE_STACK_FILE ?? join(root, '.fleetgate', 'stack.json');
}

/**
 * The local stack's log, beside its stack file (`.fleetgate/stack.log`): what its functions write
 * (`fleetgate logs` reads it), and for `fleetgate local up` the stack process's own output too.
 */
export function stackLogPath(stackFile = stackFilePath()): string {
  return `${stackFile.replace(/\.json$/, '')}.log`;
}

/**
 * The line each stack run starts its part of the log with (the log is appended to across runs):
 * `fleetgate logs` shows what came after the last one, so a new stack never shows an old stack's lines.
 */
export function stackStartLine(mode: string, at = new Date()): string {
  return `${JSON.stringify({ fleetgate: STACK_START, mode, at: at.toISOString(), pid: process.pid })}\n`;
}

/** The `fleetgate` field of a stack-start line. */
export const STACK_START = 'stack-start';

/**
 * The stack's own log sources besides its functions: the `source` of the lines the stack itself
 * writes to its log (the MQTT endpoint's refused and closed connections, failed TLS handshakes).
 * `fleetgate logs --function` takes them as it takes a function's name.
 */
export const STACK_LOG_SOURCES = { iotEndpoint: 'iot-endpoint' } as const;

/**
 * What `fleetgate local serve` prints once it serves (`serving (pid N)`), in the log of a stack
 * started by `fleetgate local up`: part of the run's start, not a log entry.
 */
export const SERVING_LINE = /^serving \(pid \d+\)$/;

/**
 * Appends handler output to the stack's log (`LocalStackOptions.handlerOutput`), after a stack-start
 * line: each sink serves one stack run.
 */
export function stackLogSink(path = stackLogPath(), mode = 'in-process'): (text: string) => void {
  mkdirSync(dirname(path), { recursive: true });
  const stream = createWriteStream(path, { flags: 'a' });
  stream.write(stackStartLine(mode));
  return (text) => {
    stream.write(text);
  };
}

/** The running stack, or undefined when there is none (or its file is stale). */
export function readStackFile(path = stackFilePath()): StackFile | undefined {
  if (!existsSync(path)) return undefined;
  try {
    const stack = JSON.parse(readFileSync(path, 'utf8')) as StackFile;
    if (typeof stack.pid !== 'number' || !isAlive(stack.pid)) return undefined;
    return stack;
  } catch {
    return undefined;
  }
}

export async function writeStackFile(stack: StackFile, path = stackFilePath()): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `${JSON.stringify(stack, null, 2)}\n`);
}

export async function removeStackFile(path = stackFilePath()): Promise<void> {
  await rm(path, { force: true });
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
