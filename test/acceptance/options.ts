/**
 * The options of `npm run test:acceptance` and how they reach the test workers: the runner
 * (`run.ts`) parses the command line once and passes the result on in environment variables, which
 * the suite's global setup reads back with `optionsFromEnv`.
 */
import { randomBytes } from 'node:crypto';

export type TargetKind = 'local' | 'aws';

export interface AcceptanceOptions {
  target: TargetKind;
  /** Deployed stage (`--target aws`). */
  stage?: string;
  /** AWS region (`--target aws`; default AWS_REGION, then AWS_DEFAULT_REGION). */
  region?: string;
  /** A running local stack to use instead of starting one (`--target local`). */
  stackFile?: string;
  /** Passed to vitest as they are (file filters, `--reporter`, …). */
  vitestArgs: string[];
}

/** Unique per run (serials, thing names, CA subjects): re-running against the same stack works. */
export function newRunId(now = Date.now()): string {
  return `${now.toString(36)}${randomBytes(2).toString('hex')}`.toUpperCase();
}

/** A command line the runner refuses; exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export const USAGE = `usage: npm run test:acceptance -- [--target local] [--stack-file <path>] [vitest args…]
       npm run test:acceptance -- --target aws --stage <stage> [--region <region>] [vitest args…]

  --target local   (default) start a local stack (fleetgate local up), run the flows, stop it;
                   --stack-file uses a stack already running (fleetgate local up) and leaves it running
  --target aws     run the flows against the deployed stack <service>-<stage> in <region>
                   (credentials from the usual AWS SDK chain: AWS_PROFILE, environment, SSO, …)`;

const STAGE = /^[A-Za-z0-9-]{1,32}$/;
const REGION = /^[a-z]{2}(-[a-z]+)+-\d$/;

/**
 * Parses the runner's arguments (what follows `npm run test:acceptance --`).
 * @throws UsageError for an unknown target, a missing or malformed stage or region, or options that
 *   belong to the other target.
 */
export function parseAcceptanceArgs(
  argv: string[],
  env: Record<string, string | undefined> = process.env,
): AcceptanceOptions {
  const values: Partial<Record<'target' | 'stage' | 'region' | 'stack-file', string>> = {};
  const vitestArgs: string[] = [];
  for (let index = 0; index < argv.length; index += 1) {
    const arg = argv[index] as string;
    if (arg === '--help' || arg === '-h') throw new UsageError('help');
    const match = /^--(target|stage|region|stack-file)(?:=(.*))?$/.exec(arg);
    if (!match) {
      // Anything else (file filters, `--reporter=verbose`, …) is vitest's.
      vitestArgs.push(arg);
      continue;
    }
    const name = match[1] as keyof typeof values;
    let value = match[2];
    if (value === undefined) {
      index += 1;
      value = argv[index];
    }
    if (value === undefined || value === '' || value.startsWith('--'))
      throw new UsageError(`--${name} needs a value`);
    values[name] = value;
  }
  const target = values.target ?? 'local';
  if (target !== 'local' && target !== 'aws')
    throw new UsageError(`--target must be local or aws (got "${target}")`);
  if (target === 'local') {
    if (values.stage !== undefined || values.region !== undefined)
      throw new UsageError('--stage and --region go with --target aws');
    return { target, ...(values['stack-file'] ? { stackFile: values['stack-file'] } : {}), vitestArgs };
  }
  if (values['stack-file'] !== undefined) throw new UsageError('--stack-file goes with --target local');
  const stage = values.stage;
  if (!stage) throw new UsageError('--target aws needs --stage <stage> (the stage you deployed)');
  if (!STAGE.test(stage)) throw new UsageError(`--stage must match ${STAGE.source} (got "${stage}")`);
  const region = values.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  if (!region) throw new UsageError('--target aws needs --region <region> (or AWS_REGION)');
  if (!REGION.test(region)) throw new UsageError(`--region is not an AWS region name (got "${region}")`);
  return { target, stage, region, vitestArgs };
}

/** Environment variables carrying the options from the runner to the suite. */
export const ENV = {
  target: 'FLEETGATE_ACCEPTANCE_TARGET',
  stage: 'FLEETGATE_ACCEPTANCE_STAGE',
  region: 'FLEETGATE_ACCEPTANCE_REGION',
  stackFile: 'FLEETGATE_ACCEPTANCE_STACK_FILE',
  /** The AWS target as the runner resolved it (JSON), so the suite does not resolve it again. */
  descriptor: 'FLEETGATE_ACCEPTANCE_DESCRIPTOR',
  /** Where the local stack the run starts keeps its stack file (chosen by the runner). */
  ownStackFile: 'FLEETGATE_ACCEPTANCE_OWN_STACK_FILE',
} as const;

export function optionsToEnv(options: AcceptanceOptions): Record<string, string> {
  return {
    [ENV.target]: options.target,
    ...(options.stage ? { [ENV.stage]: options.stage } : {}),
    ...(options.region ? { [ENV.region]: options.region } : {}),
    ...(options.stackFile ? { [ENV.stackFile]: options.stackFile } : {}),
  };
}

/** The options the runner set; a bare `vitest --config …` run is the local target. */
export function optionsFromEnv(env: Record<string, string | undefined> = process.env): AcceptanceOptions {
  const args = ['--target', env[ENV.target] ?? 'local'];
  if (env[ENV.stage]) args.push('--stage', env[ENV.stage] as string);
  if (env[ENV.region]) args.push('--region', env[ENV.region] as string);
  if (env[ENV.stackFile]) args.push('--stack-file', env[ENV.stackFile] as string);
  return parseAcceptanceArgs(args, env);
}
