/**
 * `fleetgate logs [--function F] [--follow] [--all]`: the local stack's log (`.fleetgate/stack.log`,
 * beside the stack file): what its functions wrote — Powertools JSON lines with the function, the
 * message and the reason fields — and, for `fleetgate local up`, the stack's own output. The log is
 * appended to across stack runs, each starting with a stack-start line; the latest run's lines are
 * shown unless `--all`.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { STACK_START, stackLogPath } from '../../local/stack-file';
import { CommandFailure, type Output, UsageError } from '../io';
import { describeLog, isFrom, type LogEntry, parseLogLine } from '../log-lines';
import type { CommandRegistry } from '../main';

interface LogsOptions {
  function?: string;
  follow?: boolean;
  metrics?: boolean;
  all?: boolean;
  lines: string;
  json?: boolean;
}

function lineCount(value: string): number {
  const count = Number(value);
  if (!Number.isInteger(count) || count < 1) throw new UsageError('--lines must be a positive integer');
  return count;
}

/** Embedded-metric-format lines (`_aws`): CloudWatch turns them into metrics, people rarely read them. */
function isMetrics(log: LogEntry): boolean {
  return 'entry' in log && '_aws' in log.entry;
}

function wanted(options: LogsOptions) {
  return (log: LogEntry) =>
    (options.function === undefined || isFrom(log, options.function)) && (options.metrics || !isMetrics(log));
}

/** The line a stack run starts its part of the log with (`stackStartLine`). */
function isStackStart(log: LogEntry): log is { entry: Record<string, unknown> } {
  return 'entry' in log && log.entry.fleetgate === STACK_START;
}

/** `— stack started … —`, between runs in the output. */
function describeStart(log: { entry: Record<string, unknown> }): string {
  return `— ${String(log.entry.mode ?? 'stack')} stack started ${String(log.entry.at ?? '')} —`;
}

/** Reads what was appended to `file` after `offset`: complete lines, and where the next read starts. */
function readFrom(file: string, offset: number): { lines: string[]; offset: number } {
  const size = statSync(file).size;
  if (size < offset) return { lines: [], offset: 0 }; // truncated: start again
  if (size === offset) return { lines: [], offset };
  const buffer = Buffer.alloc(size - offset);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, buffer, 0, buffer.length, offset);
  } finally {
    closeSync(fd);
  }
  const text = buffer.toString('utf8');
  const end = text.lastIndexOf('\n');
  if (end < 0) return { lines: [], offset };
  return {
    lines: text.slice(0, end).split('\n'),
    offset: offset + Buffer.byteLength(text.slice(0, end + 1)),
  };
}

/** Prints new lines as they are appended, until Ctrl-C. */
async function follow(file: string, output: Output, keep: (log: LogEntry) => boolean): Promise<number> {
  let offset = statSync(file).size;
  let printed = 0;
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const next = readFrom(file, offset);
      offset = next.offset;
      for (const log of next.lines.map(parseLogLine)) {
        if (isStackStart(log)) output.say(describeStart(log));
        else if (keep(log)) {
          output.say(describeLog(log));
          printed += 1;
        }
      }
    }, 250);
    process.once('SIGINT', () => {
      clearInterval(timer);
      resolve();
    });
  });
  return printed;
}

/** @throws UsageError when serverless.yml declares no function of that name. */
async function checkFunction(name: string): Promise<void> {
  const [{ loadServerlessConfig }, { buildStackModel }] = await Promise.all([
    import('../../local/serverless-config'),
    import('../../local/stack-model'),
  ]);
  const names = buildStackModel(loadServerlessConfig(process.env.FLEETGATE_SERVERLESS_FILE)).functions.map(
    (fn) => fn.name,
  );
  if (!names.includes(name)) {
    throw new UsageError(`--function: no function "${name}" in serverless.yml (have: ${names.join(', ')})`);
  }
}

async function runLogs(options: LogsOptions, output: Output): Promise<unknown> {
  const count = lineCount(options.lines);
  if (options.follow && options.json) {
    throw new UsageError('--follow prints lines as they come; it does not go with --json (one document)');
  }
  if (options.function) await checkFunction(options.function);
  const file = stackLogPath();
  if (!existsSync(file)) {
    throw new CommandFailure(
      `no stack log at ${file}: start a stack with \`fleetgate local up\` or \`fleetgate dev\` (FLEETGATE_STACK_FILE moves it)`,
    );
  }
  const keep = wanted(options);
  const all = readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map(parseLogLine);
  // The latest stack run's lines (the log is appended to across runs), or every run's with --all.
  const lastStart = all.findLastIndex(isStackStart);
  const start = lastStart >= 0 ? (all[lastStart] as { entry: Record<string, unknown> }) : undefined;
  const logs = (options.all ? all : all.slice(lastStart + 1))
    .filter((log) => !isStackStart(log) && keep(log))
    .slice(-count);
  if (start && !options.all) {
    output.say(`${describeStart(start)} (earlier runs: --all)`);
  }
  for (const log of logs) output.say(describeLog(log));
  if (options.follow) {
    output.warn(`fleetgate: following ${file} (Ctrl-C to stop)`);
    await follow(file, output, keep);
    return undefined;
  }
  return {
    file,
    ...(start && !options.all ? { since: start.entry.at } : {}),
    ...(options.function ? { function: options.function } : {}),
    lines: logs.map((log) => ('entry' in log ? log.entry : { text: log.text })),
  };
}

/** `fleetgate logs [--function F] [--follow] [--lines N] [--all]` */
export function registerLogsCommand({ program, run }: CommandRegistry): void {
  program
    .command('logs')
    .description("Show the local stack's log (.fleetgate/stack.log): what its functions logged, and why")
    .option('--function <name>', 'only lines of this function (its serverless.yml name)')
    .option('--follow', 'keep printing lines as they are written, until Ctrl-C')
    .option('--lines <n>', 'the last this many lines', '50')
    .option('--metrics', 'include the metric lines (embedded metric format)')
    .option('--all', "every stack run's lines (default: the latest run's, since its stack started)")
    .option('--json', 'print one JSON document (not with --follow)')
    .action(async (options: LogsOptions) => {
      await run(options.json, (output) => runLogs(options, output));
    });
}
