/**
 * `fleetgate` — the operator and developer tool (docs/architecture.md §7). Each command registers itself
 * from `cli/commands/`; this file owns parsing, the JSON contract and exit codes.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { projectRoot } from '../local/paths';
import {
  CommandFailure,
  createOutput,
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  guardBrokenPipes,
  type Output,
  printJson,
  UsageError,
} from './io';

export type Action = (output: Output) => Promise<unknown>;

/**
 * Runs a command body under the contract: the value it returns is the JSON document (or is
 * printed by the body itself in human mode); failures become exit 1 with a one-line reason.
 */
export function contract(json: boolean, action: Action): Promise<number> {
  const output = createOutput(json);
  return action(output).then(
    (result) => {
      if (json) printJson(result ?? { ok: true });
      return EXIT_OK;
    },
    (error: unknown) => failed(error, output, json),
  );
}

/** A command's failure under the contract: exit 2 for usage errors, 1 for the rest, with the reason. */
function failed(error: unknown, output: Output, json: boolean): number {
  if (error instanceof UsageError) {
    output.warn(`fleetgate: ${error.message}`);
    if (json) printJson({ ok: false, error: { code: 'USAGE', message: error.message } });
    return EXIT_USAGE;
  }
  const message = error instanceof Error ? error.message : String(error);
  output.warn(`fleetgate: ${message.split('\n')[0]}`);
  if (json) {
    const result = error instanceof CommandFailure ? error.result : undefined;
    printJson({ ok: false, error: { code: errorCode(error), message }, ...(result ? { result } : {}) });
  }
  if (process.env.FLEETGATE_DEBUG && error instanceof Error) output.warn(error.stack ?? '');
  return EXIT_FAILURE;
}

function errorCode(error: unknown): string {
  if (error instanceof CommandFailure) return 'FAILED';
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : 'ERROR';
}

export interface CommandRegistry {
  program: Command;
  /** Sets the exit code of the command that ran. */
  setExitCode(code: number): void;
  /** Runs `action` under the contract (`json`: one JSON document) and sets the exit code from it. */
  run(json: boolean | undefined, action: Action): Promise<void>;
}

/** A module of `cli/commands/` and the top-level commands it registers. */
export interface CommandModule {
  names: string[];
  /** The top-level summaries `fleetgate --help` lists (test/unit/cli-commands.test.ts keeps them equal to the modules'). */
  summaries: Record<string, string>;
  load: () => Promise<(registry: CommandRegistry) => void>;
}

/**
 * Every command module, loaded only when its command runs: `fleetgate devices get` loads the devices
 * module and what it needs, not the local stack, the simulator or every AWS SDK client.
 */
export const COMMAND_MODULES: CommandModule[] = [
  {
    names: ['allowlist'],
    summaries: { allowlist: 'Manage the allowlist of device serials' },
    load: async () => (await import('./commands/allowlist')).registerAllowlistCommands,
  },
  {
    names: ['certificates'],
    summaries: { certificates: 'Claim and CA certificates fleetgate watches (expiry sweep, reconciliation)' },
    load: async () => (await import('./commands/certificates')).registerCertificatesCommands,
  },
  {
    names: ['factory'],
    summaries: { factory: 'Factory-issued device certificates: register a batch in bulk' },
    load: async () => (await import('./commands/factory')).registerFactoryCommands,
  },
  {
    names: ['sweep'],
    summaries: {
      sweep: 'Run the certificate expiry sweep now; write the report (JSON, CSV, HTML); print the summary',
    },
    load: async () => (await import('./commands/sweep')).registerSweepCommand,
  },
  {
    names: ['reconcile'],
    summaries: {
      reconcile: 'Compare the IoT registry with the store (read-only); write the drift report (JSON, CSV)',
    },
    load: async () => (await import('./commands/reconcile')).registerReconcileCommand,
  },
  {
    names: ['local', 'dev'],
    summaries: {
      local: 'Run a local stack in the background',
      dev: 'Run the local stack in the foreground with a short demo fleet, then serve until Ctrl-C',
    },
    load: async () => (await import('./commands/local')).registerLocalCommands,
  },
  {
    names: ['invoke'],
    summaries: {
      invoke: "Run a function's handler (by its serverless.yml name) on an event and print its result",
    },
    load: async () => (await import('./commands/invoke')).registerInvokeCommand,
  },
  {
    names: ['logs'],
    summaries: {
      logs: "Show the local stack's log (.fleetgate/stack.log): what its functions logged, and why",
    },
    load: async () => (await import('./commands/logs')).registerLogsCommand,
  },
  {
    names: ['replay'],
    summaries: {
      replay: 'Publish recorded IoT events through the local rules engine, as AWS would deliver them',
    },
    load: async () => (await import('./commands/replay')).registerReplayCommand,
  },
  {
    names: ['devices'],
    summaries: { devices: 'Read devices from the provisioning store' },
    load: async () => (await import('./commands/devices')).registerDevicesCommands,
  },
  {
    names: ['quarantine'],
    summaries: {
      quarantine: 'Quarantine a device or certificate by hand; list quarantined ones; release or reject them',
    },
    load: async () => (await import('./commands/quarantine')).registerQuarantineCommands,
  },
  {
    names: ['dlq'],
    summaries: { dlq: 'Dead letters: list, replay to their source queue, or discard' },
    load: async () => (await import('./commands/dlq')).registerDlqCommands,
  },
  {
    names: ['simulate'],
    summaries: {
      simulate: 'Drive generated devices (real keys, CSRs, certificates) and bad actors through a flow',
    },
    load: async () => (await import('./commands/simulate')).registerSimulateCommand,
  },
  {
    names: ['doctor'],
    summaries: {
      doctor:
        'Preflight: table, queues, event configurations, CA auto-registration, device policy, quarantine group, hook wiring',
    },
    load: async () => (await import('./commands/doctor')).registerDoctorCommand,
  },
  {
    names: ['installer'],
    summaries: {
      installer:
        'Provisioning by trusted user: bind installers to serials or batches; get a temporary claim as the app would',
    },
    load: async () => (await import('./commands/installer')).registerInstallerCommands,
  },
  {
    names: ['device'],
    summaries: { device: 'Play one device by hand over MQTT against the running local stack' },
    load: async () => (await import('./commands/device')).registerDeviceCommands,
  },
];

/** The package version (`fleetgate --version`), from package.json. */
export function version(): string {
  return (JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as { version: string })
    .version;
}

/**
 * The program for `argv`: the module of the command `argv` names, fully registered; without a known
 * command (`--help`, `--version`, a typo) every top-level command as a one-line summary, which is all
 * the top-level help shows. `all` registers every module (tests, documentation).
 */
export async function buildProgram(
  argv: readonly string[] = [],
  options: { all?: boolean } = {},
): Promise<{ program: Command; exitCode: () => number | undefined }> {
  let exitCode: number | undefined;
  const program = new Command('fleetgate')
    .description('Provision AWS IoT devices and keep their identities healthy')
    .version(version(), '-V, --version', 'print the fleetgate version')
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .configureOutput({
      writeErr: (text) => process.stderr.write(text),
      // commander's own usage errors (`error: missing required argument …`) as fleetgate's others.
      outputError: (text, write) => write(text.replace(/^error: /, 'fleetgate: ')),
    });
  const setExitCode = (code: number) => {
    exitCode = code;
  };
  const registry: CommandRegistry = {
    program,
    setExitCode,
    run: (json, action) => contract(Boolean(json), action).then(setExitCode),
  };
  const positional = argv.filter((arg) => !arg.startsWith('-'));
  // `fleetgate help devices` is `fleetgate devices --help`.
  const first = positional[0] === 'help' ? positional[1] : positional[0];
  const named = COMMAND_MODULES.find((module) => first !== undefined && module.names.includes(first));
  if (options.all) {
    for (const module of COMMAND_MODULES) (await module.load())(registry);
  } else if (named) {
    (await named.load())(registry);
  } else {
    for (const module of COMMAND_MODULES) {
      for (const name of module.names) {
        program
          .command(name)
          .description(module.summaries[name] ?? '')
          .allowUnknownOption()
          .allowExcessArguments();
      }
    }
  }
  for (const extend of extraCommands) extend(registry);
  return { program, exitCode: () => exitCode };
}

/** Other modules (local stack, quarantine, …) add their commands here. */
const extraCommands: Array<(registry: CommandRegistry) => void> = [];
export function addCommands(extend: (registry: CommandRegistry) => void): void {
  extraCommands.push(extend);
}

export async function main(argv: string[]): Promise<number> {
  guardBrokenPipes();
  const { program, exitCode } = await buildProgram(argv);
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      if (
        error.code === 'commander.helpDisplayed' ||
        error.code === 'commander.version' ||
        error.exitCode === 0
      ) {
        return EXIT_OK;
      }
      if (argv.includes('--json')) printJson({ ok: false, error: { code: 'USAGE', message: error.message } });
      return EXIT_USAGE;
    }
    throw error;
  }
  return exitCode() ?? EXIT_OK;
}
