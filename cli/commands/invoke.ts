import { existsSync, readFileSync, statSync } from 'node:fs';
import { InvocationError, UnknownFunctionError } from '../../local/lambda-runtime';
import { loadServerlessConfig } from '../../local/serverless-config';
import { buildStackModel } from '../../local/stack-model';
import { CommandFailure, type Output, UsageError } from '../io';
import { type CommandRegistry, contract } from '../main';
import { localStackOptions, resolveStackTarget } from '../target';

/** Reads a JSON event file. @throws UsageError when it is missing or not JSON. */
export function readEventFile(file: string): unknown {
  if (!existsSync(file) || !statSync(file).isFile()) throw new UsageError(`${file}: no such file`);
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new UsageError(`${file}: not JSON (${error instanceof Error ? error.message : String(error)})`);
  }
}

async function invokeOnAws(
  functionName: string,
  event: unknown,
  output: Output,
  stage: string,
): Promise<unknown> {
  const config = loadServerlessConfig(localStackOptions().serverlessFile);
  const model = buildStackModel(config, { stage, region: process.env.AWS_REGION ?? 'us-east-1' });
  const spec = model.functions.find((fn) => fn.name === functionName);
  if (!spec) throw new UsageError(`no function "${functionName}" in serverless.yml`);
  // Loaded on demand so the local tool does not need the Lambda client.
  const specifier = '@aws-sdk/client-lambda';
  let lambda: {
    LambdaClient: new (config: object) => { send(command: unknown): Promise<Record<string, unknown>> };
    InvokeCommand: new (input: object) => unknown;
  };
  try {
    lambda = (await import(/* @vite-ignore */ specifier)) as typeof lambda;
  } catch {
    throw new CommandFailure(
      '--target aws needs @aws-sdk/client-lambda (npm install @aws-sdk/client-lambda)',
    );
  }
  output.warn(`fleetgate: invoking ${spec.deployedName} on AWS`);
  const client = new lambda.LambdaClient({});
  const out = await client.send(
    new lambda.InvokeCommand({
      FunctionName: spec.deployedName,
      Payload: Buffer.from(JSON.stringify(event)),
    }),
  );
  const text = out.Payload ? Buffer.from(out.Payload as Uint8Array).toString('utf8') : '';
  const result = text ? (JSON.parse(text) as unknown) : undefined;
  if (out.FunctionError) throw new CommandFailure(`${functionName} failed: ${text}`, result);
  return result;
}

/** `fleetgate invoke <function> --event <file> [--target local|aws]` */
export function registerInvokeCommand({ program, setExitCode }: CommandRegistry): void {
  program
    .command('invoke')
    .description("Run a function's handler (by its serverless.yml name) on an event and print its result")
    .argument('<function>', 'function name in serverless.yml')
    .requiredOption('--event <file>', 'JSON event file')
    .option('--target <target>', 'local (default) or aws')
    .option('--stage <stage>', 'stage of the deployed function (--target aws)', 'dev')
    .option('--json', 'print one JSON document')
    .action(
      async (
        functionName: string,
        options: { event: string; target?: string; stage: string; json?: boolean },
      ) => {
        setExitCode(
          await contract(Boolean(options.json), async (output) => {
            const target = options.target ?? 'local';
            if (target !== 'local' && target !== 'aws') {
              throw new UsageError(`--target must be local or aws (got "${target}")`);
            }
            const event = readEventFile(options.event);
            const started = performance.now();
            let result: unknown;
            if (target === 'aws') {
              result = await invokeOnAws(functionName, event, output, options.stage);
            } else {
              const stack = await resolveStackTarget(output);
              try {
                result = await stack.handle.invoke(functionName, event);
              } catch (error) {
                if (error instanceof UnknownFunctionError) throw new UsageError(error.message);
                if (error instanceof InvocationError) {
                  throw new CommandFailure(`${functionName} failed: ${error.errorType}: ${error.message}`, {
                    errorType: error.errorType,
                    errorMessage: error.message,
                  });
                }
                throw error;
              } finally {
                await stack.close();
              }
            }
            const durationMs = Math.round(performance.now() - started);
            output.say(JSON.stringify(result, null, 2) ?? 'null');
            return { function: functionName, target, durationMs, result: result ?? null };
          }),
        );
      },
    );
}
