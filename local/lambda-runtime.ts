/**
 * Runs serverless.yml functions in-process, unchanged: the handler module is imported from the path
 * serverless.yml names (TypeScript through tsx), with the function's environment set before the import
 * (handlers read their configuration at cold start) and before every invocation. Each function of each
 * stack gets its own module instance, as each Lambda function gets its own sandbox.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { FunctionSpec } from './stack-model';

/** The subset of the Lambda context object handlers use. */
export interface LocalLambdaContext {
  functionName: string;
  functionVersion: string;
  invokedFunctionArn: string;
  memoryLimitInMB: string;
  awsRequestId: string;
  logGroupName: string;
  logStreamName: string;
  callbackWaitsForEmptyEventLoop: boolean;
  getRemainingTimeInMillis(): number;
  done(): void;
  fail(): void;
  succeed(): void;
}

type Handler = (event: unknown, context: LocalLambdaContext) => unknown;

/** Thrown when an invocation fails: the handler threw, timed out, or could not be loaded. */
export class InvocationError extends Error {
  override name = 'InvocationError';
  constructor(
    readonly functionName: string,
    readonly errorType: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Thrown when a function name is not declared in serverless.yml. */
export class UnknownFunctionError extends Error {
  override name = 'UnknownFunctionError';
}

export interface InvocationRecord {
  functionName: string;
  requestId: string;
  ok: boolean;
  durationMs: number;
  error?: { errorType: string; errorMessage: string };
}

export class LocalFunctions {
  private readonly specs: Map<string, FunctionSpec>;
  private readonly modules = new Map<string, Promise<Handler>>();
  private active = 0;
  private applied = new Set<string>();
  private readonly instance = randomUUID().slice(0, 8);
  /** Every invocation, oldest first (bounded). */
  readonly log: InvocationRecord[] = [];

  constructor(
    functions: readonly FunctionSpec[],
    private readonly options: {
      /** Folder handler paths are relative to (the folder of serverless.yml). */
      root: string;
      /** Variables every function gets first (endpoints, region, credentials). */
      baseEnv: Record<string, string>;
      /** Variables that win over what serverless.yml declares: AWS-only resources with a local stand-in. */
      overrides?: Record<string, string>;
    },
  ) {
    this.specs = new Map(functions.map((fn) => [fn.name, fn]));
  }

  get names(): string[] {
    return [...this.specs.keys()];
  }

  get busy(): number {
    return this.active;
  }

  spec(name: string): FunctionSpec {
    const spec = this.specs.get(name);
    if (!spec)
      throw new UnknownFunctionError(
        `no function "${name}" in serverless.yml (have: ${this.names.join(', ') || 'none'})`,
      );
    return spec;
  }

  /** The environment a function runs with. */
  environment(name: string): Record<string, string> {
    const spec = this.spec(name);
    return {
      ...this.options.baseEnv,
      ...spec.environment,
      ...this.options.overrides,
      AWS_LAMBDA_FUNCTION_NAME: spec.deployedName,
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(spec.memorySize),
      AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
    };
  }

  /**
   * Invokes a function synchronously and resolves with its result.
   * @throws UnknownFunctionError for a name serverless.yml does not declare.
   * @throws InvocationError when the handler throws, rejects or runs past its timeout.
   */
  async invoke(name: string, event: unknown): Promise<unknown> {
    const spec = this.spec(name);
    this.active += 1;
    const requestId = randomUUID();
    const started = performance.now();
    try {
      // Functions share this process: the environment is applied and the module imported under one
      // lock, so a cold start never reads another function's variables while its import is pending.
      const handler = await this.exclusive(async () => {
        this.applyEnvironment(name);
        return this.load(spec);
      });
      const deadline = Date.now() + spec.timeoutSeconds * 1000;
      const context = lambdaContext(spec, requestId, deadline);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new InvocationError(
                name,
                'Sandbox.Timedout',
                `Task timed out after ${spec.timeoutSeconds.toFixed(2)} seconds`,
              ),
            ),
          spec.timeoutSeconds * 1000,
        );
        timer.unref();
      });
      try {
        const result = await Promise.race([Promise.resolve().then(() => handler(event, context)), timeout]);
        this.record({ functionName: name, requestId, ok: true, durationMs: performance.now() - started });
        return result;
      } finally {
        clearTimeout(timer);
      }
    } catch (error) {
      const failure =
        error instanceof InvocationError
          ? error
          : new InvocationError(
              name,
              error instanceof Error ? error.name : 'Error',
              error instanceof Error ? error.message : String(error),
              { cause: error },
            );
      this.record({
        functionName: name,
        requestId,
        ok: false,
        durationMs: performance.now() - started,
        error: { errorType: failure.errorType, errorMessage: failure.message },
      });
      throw failure;
    } finally {
      this.active -= 1;
    }
  }

  /**
   * Sets the function's environment on `process.env`, removing the variables only other functions
   * declare (functions share this process, not a sandbox each).
   */
  private applyEnvironment(name: string): void {
    const environment = this.environment(name);
    for (const key of this.applied) {
      if (!(key in environment)) delete process.env[key];
    }
    this.applied = new Set(Object.keys(this.spec(name).environment));
    Object.assign(process.env, environment);
  }

  private envLock: Promise<unknown> = Promise.resolve();

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.envLock.then(work, work);
    this.envLock = run.catch(() => undefined);
    return run;
  }

  private record(entry: InvocationRecord): void {
    this.log.push(entry);
    if (this.log.length > 10_000) this.log.splice(0, this.log.length - 10_000);
  }

  private load(spec: FunctionSpec): Promise<Handler> {
    let loaded = this.modules.get(spec.name);
    if (!loaded) {
      loaded = importHandler(spec, this.options.root, `${this.instance}-${spec.name}`);
      // A module that failed to load is retried on the next invocation (like a failed cold start).
      loaded.catch(() => this.modules.delete(spec.name));
      this.modules.set(spec.name, loaded);
    }
    return loaded;
  }
}

async function importHandler(spec: FunctionSpec, root: string, instance: string): Promise<Handler> {
  const dot = spec.handler.lastIndexOf('.');
  const modulePath = spec.handler.slice(0, dot);
  const exportName = spec.handler.slice(dot + 1);
  const file = ['.ts', '.mts', '.js', '.mjs']
    .map((ext) => join(root, `${modulePath}${ext}`))
    .find(existsSync);
  if (!file || dot < 0) {
    throw new InvocationError(
      spec.name,
      'Runtime.ImportModuleError',
      `cannot find the handler file of ${spec.handler} under ${root}`,
    );
  }
  // The query string gives each function (and each stack) its own module instance.
  const module = (await import(
    /* @vite-ignore */ `${pathToFileURL(file).href}?fleetgate=${instance}`
  )) as Record<string, unknown>;
  const handler = module[exportName];
  if (typeof handler !== 'function') {
    throw new InvocationError(spec.name, 'Runtime.HandlerNotFound', `${spec.handler} is not a function`);
  }
  return handler as Handler;
}

function lambdaContext(spec: FunctionSpec, requestId: string, deadline: number): LocalLambdaContext {
  return {
    functionName: spec.deployedName,
    functionVersion: '$LATEST',
    invokedFunctionArn: spec.arn,
    memoryLimitInMB: String(spec.memorySize),
    awsRequestId: requestId,
    logGroupName: `/aws/lambda/${spec.deployedName}`,
    logStreamName: `local/[$LATEST]${requestId.replaceAll('-', '')}`,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}
