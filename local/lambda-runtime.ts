/**
 * Runs serverless.yml functions in-process, unchanged: the handler module is imported from the path
 * serverless.yml names (TypeScript through tsx). Each function of each stack gets its own module
 * instance and its own environment, as each Lambda function gets its own sandbox: while a function's
 * code runs (its cold start and every invocation, including everything it awaits), `process.env` is
 * that function's environment — its serverless.yml variables and its own credentials — and nothing
 * else in the process sees them. (An AsyncLocalStorage behind `process.env`: concurrent invocations of
 * different functions each read their own variables, so the SDK signs each call as its function.)
 *
 * What a function writes to stdout and stderr (its log lines, its EMF metrics) is, as on Lambda, its
 * log: it goes where the stack sends handler output (`handlerOutput`: a log file, or the process's
 * own stdout by default), and each invocation's lines can be handed back to its caller
 * (`invoke(…, { logs })`) — how `fleetgate invoke` shows a hook's reason next to its bare answer.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
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

const sandboxEnv = new AsyncLocalStorage<Record<string, string | undefined>>();
let envInstalled = false;

/** Where the output of the code running in one invocation (or cold start) goes. */
interface OutputCapture {
  /** The invocation's lines, when its caller asked for them (bounded). */
  lines?: string[];
  /** The stack's destination for handler output; the process's own stream when absent. */
  sink?: (text: string) => void;
}

const outputCapture = new AsyncLocalStorage<OutputCapture>();
let writesInstalled = false;
/** Lines kept per invocation for its caller (the newest win). */
const MAX_CAPTURED_LINES = 500;

/**
 * Routes writes to stdout and stderr made inside an invocation's async context (once per process):
 * to the stack's handler output, and to the invocation's lines when its caller wants them. Writes
 * outside any invocation are untouched.
 */
function installOutputCapture(): void {
  if (writesInstalled) return;
  writesInstalled = true;
  for (const stream of [process.stdout, process.stderr]) {
    const original = stream.write.bind(stream) as (...args: unknown[]) => boolean;
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      const capture = outputCapture.getStore();
      if (!capture) return original(chunk, ...rest);
      const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8');
      if (capture.lines) keepLines(capture.lines, text);
      if (!capture.sink) return original(chunk, ...rest);
      capture.sink(text);
      const callback = rest.find((arg) => typeof arg === 'function') as (() => void) | undefined;
      callback?.();
      return true;
    }) as typeof stream.write;
  }
}

function keepLines(lines: string[], text: string): void {
  for (const line of text.split('\n')) if (line.trim() !== '') lines.push(line);
  if (lines.length > MAX_CAPTURED_LINES) lines.splice(0, lines.length - MAX_CAPTURED_LINES);
}

/**
 * Puts a per-sandbox view behind `process.env` (once per process): inside a function's async
 * context reads and writes go to that function's variables; outside, to the process's own.
 */
function installSandboxEnv(): void {
  if (envInstalled) return;
  envInstalled = true;
  const real = process.env;
  process.env = new Proxy(real, {
    get(target, key) {
      const store = sandboxEnv.getStore();
      if (store && typeof key === 'string') return store[key];
      return Reflect.get(target, key);
    },
    set(target, key, value) {
      const store = sandboxEnv.getStore();
      if (store && typeof key === 'string') {
        store[key] = String(value);
        return true;
      }
      return Reflect.set(target, key, value);
    },
    deleteProperty(target, key) {
      const store = sandboxEnv.getStore();
      if (store && typeof key === 'string') {
        delete store[key];
        return true;
      }
      return Reflect.deleteProperty(target, key);
    },
    has(target, key) {
      const store = sandboxEnv.getStore();
      if (store && typeof key === 'string') return key in store && store[key] !== undefined;
      return Reflect.has(target, key);
    },
    ownKeys(target) {
      const store = sandboxEnv.getStore();
      return store ? Object.keys(store).filter((key) => store[key] !== undefined) : Reflect.ownKeys(target);
    },
    getOwnPropertyDescriptor(target, key) {
      const store = sandboxEnv.getStore();
      if (!store) return Reflect.getOwnPropertyDescriptor(target, key);
      if (typeof key !== 'string' || store[key] === undefined) return undefined;
      return { value: store[key], writable: true, enumerable: true, configurable: true };
    },
  });
}

/** Credentials a function's calls are signed with (its execution role's, on AWS). */
export interface FunctionCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** Thrown when an invocation fails: the handler threw, timed out, or could not be loaded. */
export class InvocationError extends Error {
  override name = 'InvocationError';
  /** What the failed invocation wrote, when its caller asked for its lines. */
  logs?: string[];
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
  private readonly sandboxes = new Map<string, Record<string, string | undefined>>();
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
      /** Each function's own credentials (the local IAM tells functions apart by them). */
      credentials?: (functionName: string) => FunctionCredentials | undefined;
      /** Where handler output goes (a stack's log file); default the process's own stdout / stderr. */
      handlerOutput?: (text: string) => void;
    },
  ) {
    this.specs = new Map(functions.map((fn) => [fn.name, fn]));
    installSandboxEnv();
    installOutputCapture();
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
    const credentials = this.options.credentials?.(name);
    return {
      ...this.options.baseEnv,
      ...spec.environment,
      ...this.options.overrides,
      ...(credentials
        ? {
            AWS_ACCESS_KEY_ID: credentials.accessKeyId,
            AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
            ...(credentials.sessionToken ? { AWS_SESSION_TOKEN: credentials.sessionToken } : {}),
          }
        : {}),
      AWS_LAMBDA_FUNCTION_NAME: spec.deployedName,
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(spec.memorySize),
      AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
    };
  }

  /** The function's sandbox environment: created at its first cold start, kept like a warm sandbox's. */
  private sandbox(name: string): Record<string, string | undefined> {
    let env = this.sandboxes.get(name);
    if (!env) {
      env = this.environment(name);
      this.sandboxes.set(name, env);
    }
    return env;
  }

  /**
   * Runs a function's cold start (imports its handler in its own environment) without invoking it:
   * provisioned concurrency, for functions called synchronously under a deadline (the
   * pre-provisioning hook: AWS IoT waits 5 s), so compiling TypeScript locally never eats that time.
   * What the cold start writes goes where handler output goes.
   */
  async warm(name: string): Promise<void> {
    const spec = this.spec(name);
    const capture: OutputCapture = this.options.handlerOutput ? { sink: this.options.handlerOutput } : {};
    await outputCapture.run(capture, () => sandboxEnv.run(this.sandbox(name), () => this.load(spec)));
  }

  /**
   * Invokes a function synchronously and resolves with its result. `options.logs` receives the lines
   * the invocation wrote (its cold start included), as CloudWatch would show them.
   * @throws UnknownFunctionError for a name serverless.yml does not declare.
   * @throws InvocationError when the handler throws, rejects or runs past its timeout.
   */
  async invoke(name: string, event: unknown, options: { logs?: string[] } = {}): Promise<unknown> {
    const capture: OutputCapture = {
      ...(options.logs ? { lines: options.logs } : {}),
      ...(this.options.handlerOutput ? { sink: this.options.handlerOutput } : {}),
    };
    try {
      return await outputCapture.run(capture, () => this.invokeCaptured(name, event));
    } catch (error) {
      if (error instanceof InvocationError && options.logs) error.logs = options.logs;
      throw error;
    }
  }

  private async invokeCaptured(name: string, event: unknown): Promise<unknown> {
    const spec = this.spec(name);
    this.active += 1;
    const requestId = randomUUID();
    const started = performance.now();
    try {
      const env = this.sandbox(name);
      // The import runs in the function's environment (handlers read their configuration at cold start).
      const handler = await sandboxEnv.run(env, () => this.load(spec));
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
        const result = await Promise.race([
          sandboxEnv.run(env, () => Promise.resolve().then(() => handler(event, context))),
          timeout,
        ]);
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
  // The bundled CLI runs as JavaScript: the functions' TypeScript needs tsx's loader (registered once).
  if (CLI_BUNDLED && /\.m?ts$/.test(file)) await registerTypeScript();
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

/** Read once, outside any function's sandbox environment (bin/fleetgate.mjs sets it). */
const CLI_BUNDLED = process.env.FLEETGATE_CLI_BUNDLED === '1';
let typescript: Promise<unknown> | undefined;

function registerTypeScript(): Promise<unknown> {
  typescript ??= import('tsx/esm/api').then(({ register }) => register());
  return typescript;
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
