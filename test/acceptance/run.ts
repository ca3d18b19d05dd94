/**
 * `npm run test:acceptance [-- --target local|aws --stage S --region R …]`: parses the options,
 * passes them to the suite in environment variables and runs vitest with the acceptance config.
 * Exit code: vitest's; 2 on a usage error.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { PROJECT_ROOT } from './names';
import { optionsToEnv, parseAcceptanceArgs, USAGE, UsageError } from './options';

function main(): void {
  let options: ReturnType<typeof parseAcceptanceArgs>;
  try {
    options = parseAcceptanceArgs(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    if (error.message !== 'help') process.stderr.write(`test:acceptance: ${error.message}\n`);
    process.stderr.write(`${USAGE}\n`);
    process.exitCode = error.message === 'help' ? 0 : 2;
    return;
  }
  const vitest = join(dirname(createRequire(import.meta.url).resolve('vitest/package.json')), 'vitest.mjs');
  const child = spawn(
    process.execPath,
    [
      vitest,
      'run',
      '--config',
      join(PROJECT_ROOT, 'test', 'acceptance', 'vitest.config.ts'),
      ...options.vitestArgs,
    ],
    { cwd: PROJECT_ROOT, stdio: 'inherit', env: { ...process.env, ...optionsToEnv(options) } },
  );
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.once('SIGINT', forward);
  process.once('SIGTERM', forward);
  child.on('exit', (code, signal) => {
    process.exitCode = code ?? (signal ? 1 : 0);
  });
}

main();
