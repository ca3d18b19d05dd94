/**
 * `fleetgate logs [--function F] [--follow] [--all]`: the local stack's log (`.fleetgate/stack.log`,
 * beside the stack file): what its functions wrote — Powertools JSON lines with the function, the
 * message and the reason fields — and, for `fleetgate local up`, the stack's own output. The log is
 * appended to across stack runs, each starting with a stack-start line; the latest run's lines are
 * shown unless `--all`, which marks where each run starts.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { SERVING_LINE, STACK_LOG_SOURCES, STACK_START, stackLogPath } from '../../local/stack-file';
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

/** What `local serve` prints as it starts serving: part of its run's start, not an entry. */
function isServingLine(log: LogEntry): boolean {
  return 'text' in log && SERVING_LINE.test(log.text);
}

/** One stack run: its stack-start line, as `--json` gives it (`runs`). */
interface Run {
  start: { entry: Record<string, unknown> };
  mode: string;
  at: string;
  pid?: number;
}

/** A log line and the run it belongs to (none for lines before the first stack-start line). */
interface RunLine {
  log: LogEntry;
  run?: Run;
}

/** The log's runs, and its entries each with its run (stack-start and serving lines are not entries). */
function splitRuns(all: readonly LogEntry[]): { runs: Run[]; lines: RunLine[] } {
  const runs: Run[] = [];
  const lines: RunLine[] = [];
  let current: Run | undefined;
  for (const log of all) {
    if (isStackStart(log)) {
      const { mode, at, pid } = log.entry;
      current = {
        start: log,
        mode: String(mode ?? 'stack'),
        at: String(at ?? ''),
        ...(typeof pid === 'number' ? { pid } : {}),
      };
      runs.push(current);
    } else if (!isServingLine(log)) lines.push({ log, ...(current ? { run: current } : {}) });
  }
  return { runs, lines };
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
        else if (isServingLine(log)) continue;
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

/** The sources `--function` takes besides the functions: the stack's own (`source` of its lines). */
const OWN_SOURCES: readonly string[] = Object.values(STACK_LOG_SOURCES);

/**
 * @throws UsageError when `name` is neither a function serverless.yml declares nor one of the stack's
 * own log sources; the error lists both.
 */
async function checkFunction(name: string): Promise<void> {
  if (OWN_SOURCES.includes(name)) return;
  const [{ loadServerlessConfig }, { buildStackModel }] = await Promise.all([
    import('../../local/serverless-config'),
    import('../../local/stack-model'),
  ]);
  const names = buildStackModel(loadServerlessConfig(process.env.FLEETGATE_SERVERLESS_FILE)).functions.map(
    (fn) => fn.name,
  );
  if (!names.includes(name)) {
    throw new UsageError(
      `--function: no function "${name}" in serverless.yml, nor a log source of the stack's own (functions: ${names.join(', ')}; the stack's own: ${OWN_SOURCES.join(', ')})`,
    );
  }
}

/** The stack log's runs and entries. */
function readRuns(file: string): { runs: Run[]; lines: RunLine[] } {
  return splitRuns(
    readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map(parseLogLine),
  );
}

/**
 * `--all`: the lines, each run's header where it starts (runs without lines too); when `--lines` cut
 * earlier lines off, from the run of the first line shown.
 */
function printRuns(logs: readonly RunLine[], runs: readonly Run[], cut: boolean, output: Output): void {
  const first = cut ? logs[0]?.run : undefined;
  let next = first ? runs.indexOf(first) : 0;
  for (const line of logs) {
    while (line.run && next <= runs.indexOf(line.run)) {
      output.say(describeStart((runs[next] as Run).start));
      next += 1;
    }
    output.say(describeLog(line.log));
  }
  for (; next < runs.length; next += 1) output.say(describeStart((runs[next] as Run).start));
}

/** The latest run's lines, under its header. */
function printLatest(logs: readonly RunLine[], latest: Run | undefined, output: Output): void {
  if (latest) output.say(`${describeStart(latest.start)} (earlier runs: --all)`);
  for (const line of logs) output.say(describeLog(line.log));
}

/** A line as `--json` gives it: as it was logged, plus `run` (when its stack run started: `runs[].at`). */
function jsonLine({ log, run }: RunLine): Record<string, unknown> {
  return { ...('entry' in log ? log.entry : { text: log.text }), ...(run ? { run: run.at } : {}) };
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
  const { runs, lines } = readRuns(file);
  // The latest stack run's lines (the log is appended to across runs), or every run's with --all.
  const latest = runs.at(-1);
  const kept = (options.all || !latest ? lines : lines.filter((line) => line.run === latest)).filter((line) =>
    keep(line.log),
  );
  const logs = kept.slice(-count);
  if (options.all) printRuns(logs, runs, kept.length > logs.length, output);
  else printLatest(logs, latest, output);
  if (options.follow) {
    output.warn(`fleetgate: following ${file} (Ctrl-C to stop)`);
    await follow(file, output, keep);
    return undefined;
  }
  return {
    file,
    ...(latest && !options.all ? { since: latest.at } : {}),
    ...(options.function ? { function: options.function } : {}),
    ...(options.all ? { runs: runs.map(({ start: _, ...run }) => run) } : {}),
    lines: logs.map(jsonLine),
  };
}

/** `fleetgate logs [--function F] [--follow] [--lines N] [--all]` */
export function registerLogsCommand({ program, run }: CommandRegistry): void {
  program
    .command('logs')
    .description("Show the local stack's log (.fleetgate/stack.log): what its functions logged, and why")
    .option(
      '--function <name>',
      `only lines of this function (its serverless.yml name) or of the stack's own source (${OWN_SOURCES.join(', ')}: refused MQTT connections)`,
    )
    .option('--follow', 'keep printing lines as they are written, until Ctrl-C')
    .option('--lines <n>', 'the last this many lines', '50')
    .option('--metrics', 'include the metric lines (embedded metric format)')
    .option(
      '--all',
      "every stack run's lines, each run under its `— … stack started … —` header (default: the latest run's)",
    )
    .option('--json', 'print one JSON document (not with --follow)')
    .action(async (options: LogsOptions) => {
      await run(options.json, (output) => runLogs(options, output));
    });
}
