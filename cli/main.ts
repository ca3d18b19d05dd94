/**
 * `fleetgate` — the operator and developer tool (DESIGN.md §6). Each command registers itself
 * from `cli/commands/`; this file owns parsing, the JSON contract and exit codes.
 */
import { Command, CommanderError } from 'commander';
import { registerAllowlistCommands } from './commands/allowlist';
import { registerCertificatesCommands } from './commands/certificates';
import { registerDeviceCommands } from './commands/device';
import { registerDevicesCommands } from './commands/devices';
import { registerDlqCommands } from './commands/dlq';
import { registerDoctorCommand } from './commands/doctor';
import { registerInvokeCommand } from './commands/invoke';
import { registerLocalCommands } from './commands/local';
import { registerQuarantineCommands } from './commands/quarantine';
import { registerReconcileCommand } from './commands/reconcile';
import { registerReplayCommand } from './commands/replay';
import { registerSimulateCommand } from './commands/simulate';
import { registerSweepCommand } from './commands/sweep';
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
    (error: unknown) => {
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
    },
  );
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
}

export function buildProgram(): { program: Command; exitCode: () => number | undefined } {
  let exitCode: number | undefined;
  const program = new Command('fleetgate')
    .description('Provision AWS IoT devices and keep their identities healthy')
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .configureOutput({ writeErr: (text) => process.stderr.write(text) });
  const registry: CommandRegistry = {
    program,
    setExitCode: (code) => {
      exitCode = code;
    },
  };
  registerAllowlistCommands(registry);
  registerCertificatesCommands(registry);
  registerSweepCommand(registry);
  registerReconcileCommand(registry);
  registerLocalCommands(registry);
  registerInvokeCommand(registry);
  registerReplayCommand(registry);
  registerDevicesCommands(registry);
  registerQuarantineCommands(registry);
  registerDlqCommands(registry);
  registerSimulateCommand(registry);
  registerDoctorCommand(registry);
  registerDeviceCommands(registry);
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
  const { program, exitCode } = buildProgram();
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
