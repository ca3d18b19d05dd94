import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { projectRoot } from '../../local/paths';
// The local stack, its demo and the simulator are loaded by the commands that start a stack
// (`serve`, `dev`), not by `up`, `down` and `status`, which only read the stack file.
import type { LocalStack, LocalStackOptions } from '../../local/stack';
import { remoteHandle } from '../../local/stack-control';
import {
  isAlive,
  readStackFile,
  removeStackFile,
  type StackFile,
  stackFilePath,
  stackStartLine,
  writeStackFile,
} from '../../local/stack-file';
import { CommandFailure, type Output } from '../io';
import type { CommandRegistry } from '../main';
import { localStackOptions } from '../stack-options';

const BIN = join(projectRoot(), 'bin', 'fleetgate.mjs');

/** The stack file of a stack serving in this process. */
function stackFileOf(stack: LocalStack, control: string, mode: 'serve' | 'dev'): StackFile {
  return {
    pid: process.pid,
    startedAt: new Date().toISOString(),
    mode,
    region: stack.region,
    tableName: stack.tableName,
    endpoints: { ...stack.endpoints },
    queues: stack.queues,
    declared: stack.declared,
    iotResources: stack.iotResources,
    control,
    pids: { supervisor: process.pid, ...stack.pids },
    serverlessFile: localStackOptions().serverlessFile ?? join(projectRoot(), 'serverless.yml'),
  };
}

/** Runs a stack in this process until SIGINT / SIGTERM; `ready` is called once it serves. */
async function serve(
  mode: 'serve' | 'dev',
  ready: (file: StackFile, stack: LocalStack) => void | Promise<void>,
  exitAfterReady = false,
  options: LocalStackOptions = localStackOptions(),
): Promise<void> {
  const [{ startLocalStack }, { serveStackControl }] = await Promise.all([
    import('../../local/stack'),
    import('../../local/stack-control'),
  ]);
  const stack = await startLocalStack(options);
  const control = await serveStackControl(stack);
  const file = stackFileOf(stack, control.url, mode);
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      await control.close();
      await stack.stop();
      const current = readStackFile();
      if (current?.pid === process.pid) await removeStackFile();
    })();
    return stopping;
  };
  if (exitAfterReady) {
    try {
      await ready(file, stack);
    } finally {
      await stop();
    }
    return;
  }
  await writeStackFile(file);
  try {
    await ready(file, stack);
  } catch (error) {
    await stop();
    throw error;
  }
  await new Promise<void>((resolve) => {
    const onSignal = () => {
      void stop().then(resolve);
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
}

function describeStack(file: StackFile) {
  return {
    running: true,
    pid: file.pid,
    startedAt: file.startedAt,
    region: file.region,
    tableName: file.tableName,
    endpoints: file.endpoints,
    queues: file.queues ?? {},
    iotResources: file.iotResources ?? [],
    control: file.control,
    pids: file.pids,
    stackFile: stackFilePath(),
  };
}

function printStack(output: Output, file: StackFile): void {
  output.say(`local stack (pid ${file.pid})`);
  for (const [name, url] of Object.entries(file.endpoints)) output.say(`  ${name.padEnd(9)} ${url}`);
  output.say(`  table     ${file.tableName}`);
  for (const [name, url] of Object.entries(file.queues ?? {})) output.say(`  queue     ${name}  ${url}`);
  for (const resource of (file.iotResources ?? []) as Array<{ type: string; name: string }>) {
    output.say(`  iot       ${resource.type.replace('AWS::IoT::', '')}  ${resource.name}`);
  }
  output.say(`  stack file ${stackFilePath()}`);
}

function readRawStackFile(): StackFile | undefined {
  const path = stackFilePath();
  if (!existsSync(path)) return undefined;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as StackFile;
  } catch {
    return undefined;
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return true;
    await sleep(50);
  }
  return !isAlive(pid);
}

/** `fleetgate local up|down|status|serve` and `fleetgate dev` */
export function registerLocalCommands({ program, setExitCode, run }: CommandRegistry): void {
  const local = program.command('local').description('Run a local stack in the background');

  local
    .command('up')
    .description('Start a local stack in the background (found by other commands through the stack file)')
    .option('--json', 'print one JSON document')
    .option('--timeout <ms>', 'how long to wait for the stack to be ready', '60000')
    .action(async (options: { json?: boolean; timeout: string }) => {
      await run(options.json, async (output) => {
        const running = readStackFile();
        if (running) {
          output.say('a local stack is already running');
          printStack(output, running);
          return { ...describeStack(running), alreadyRunning: true };
        }
        const path = stackFilePath();
        const log = `${path.replace(/\.json$/, '')}.log`;
        mkdirSync(dirname(path), { recursive: true });
        const logFd = openSync(log, 'a');
        writeSync(logFd, stackStartLine('local up'));
        const child = spawn(process.execPath, [BIN, 'local', 'serve'], {
          cwd: projectRoot(),
          detached: true,
          stdio: ['ignore', logFd, logFd],
          env: { ...process.env, FLEETGATE_STACK_FILE: path },
        });
        child.unref();
        let exited = false;
        child.once('exit', () => {
          exited = true;
        });
        const deadline = Date.now() + Number(options.timeout);
        while (Date.now() < deadline && !exited) {
          const file = readStackFile();
          if (file && file.pid === child.pid) {
            output.say('local stack started');
            printStack(output, file);
            return { ...describeStack(file), alreadyRunning: false, log };
          }
          await sleep(100);
        }
        if (child.pid && !exited) killGroup(child.pid, 'SIGTERM');
        const tail = existsSync(log)
          ? readFileSync(log, 'utf8').trim().split('\n').slice(-5).join(' | ')
          : '';
        throw new CommandFailure(`the local stack did not start${tail ? `: ${tail}` : ''} (log: ${log})`);
      });
    });

  local
    .command('serve', { hidden: true })
    .description('Serve a local stack in the foreground and write the stack file (used by `local up`)')
    .action(async () => {
      // A handler that crashes outside its invocation must not take the whole stack down.
      process.on('uncaughtException', (error) =>
        process.stderr.write(`fleetgate local: uncaught ${error.stack}\n`),
      );
      process.on('unhandledRejection', (error) =>
        process.stderr.write(`fleetgate local: unhandled ${String(error)}\n`),
      );
      try {
        await serve('serve', (file) => {
          process.stdout.write(`serving (pid ${file.pid})\n`);
        });
        setExitCode(0);
      } catch (error) {
        process.stderr.write(
          `fleetgate local serve: ${error instanceof Error ? error.stack : String(error)}\n`,
        );
        // Last, so that `local up` (which shows the log's tail) names the cause.
        process.stderr.write(
          `fleetgate local serve failed: ${error instanceof Error ? error.message : String(error)}\n`,
        );
        setExitCode(1);
      }
    });

  local
    .command('down')
    .description('Stop the background local stack and everything it started')
    .option('--json', 'print one JSON document')
    .action(async (options: { json?: boolean }) => {
      await run(options.json, async (output) => {
        const file = readRawStackFile();
        if (!file) {
          output.say('no local stack is running');
          return { stopped: false, running: false };
        }
        const pids = { supervisor: file.pid, ...((file.pids as Record<string, number> | undefined) ?? {}) };
        const wasRunning = isAlive(file.pid);
        if (wasRunning) {
          process.kill(file.pid, 'SIGTERM');
          if (!(await waitGone(file.pid, 20_000))) {
            killGroup(file.pid, 'SIGKILL');
            await waitGone(file.pid, 5000);
          }
        }
        // Whatever the supervisor left behind (it was killed, or it crashed): its children's groups.
        for (const pid of Object.values(pids)) {
          if (typeof pid === 'number' && isAlive(pid)) {
            killGroup(pid, 'SIGKILL');
            await waitGone(pid, 5000);
          }
        }
        await removeStackFile();
        const left = Object.values(pids).filter((pid) => typeof pid === 'number' && isAlive(pid));
        if (left.length > 0) throw new CommandFailure(`processes still running: ${left.join(', ')}`);
        output.say(wasRunning ? `local stack stopped (pid ${file.pid})` : 'removed a stale stack file');
        return { stopped: wasRunning, running: false, pids };
      });
    });

  local
    .command('status')
    .description('Show the background local stack, its endpoints and queue depths')
    .option('--json', 'print one JSON document')
    .action(async (options: { json?: boolean }) => {
      await run(options.json, async (output) => {
        const file = readStackFile();
        if (!file) {
          output.say('no local stack is running (start one with `fleetgate local up`)');
          return { running: false };
        }
        const depths = await remoteHandle({
          control: String(file.control),
          endpoints: file.endpoints as never,
          region: file.region,
          tableName: file.tableName,
          queues: file.queues ?? {},
        }).depths();
        printStack(output, file);
        for (const [name, depth] of Object.entries(depths))
          if (depth > 0) output.say(`  ${name}: ${depth} message(s)`);
        return { ...describeStack(file), depths };
      });
    });

  program
    .command('dev')
    .description('Run the local stack in the foreground with a short demo fleet, then serve until Ctrl-C')
    .option('--json', 'print one JSON document (with --exit)')
    .option('--exit', 'stop right after the demo')
    .option('--no-demo', 'only start the stack and print its endpoints')
    .action(async (options: { json?: boolean; exit?: boolean; demo: boolean }) => {
      await run(options.json, async (output) => {
        const [{ quietStackOptions, runDemo }, { localHandle }, { printDemoSummary }] = await Promise.all([
          import('../../local/simulator/demo'),
          import('../../local/stack-control'),
          import('./simulate'),
        ]);
        let result: Record<string, unknown> = { running: false };
        await serve(
          'dev',
          async (file, stack) => {
            result = describeStack(file);
            printStack(output, file);
            if (options.demo) {
              output.say('');
              const reportsDir = process.env.FLEETGATE_REPORTS_DIR;
              const demo = await runDemo(localHandle(stack), {
                onStep: (line) => output.say(`  ${line}`),
                ...(reportsDir ? { reportsDir } : {}),
              });
              printDemoSummary(output, demo, Boolean(options.exit));
              result = { ...result, demo };
              if (!demo.ok) {
                throw new CommandFailure(
                  'the demo broke an invariant (duplicates, lost devices or admitted bad actors)',
                  result,
                );
              }
            }
            if (!options.exit) output.say('serving until Ctrl-C');
          },
          Boolean(options.exit),
          quietStackOptions(localStackOptions()),
        );
        return result;
      });
    });
}
