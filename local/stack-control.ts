/**
 * The control port of a background local stack (`fleetgate local serve`): other processes publish,
 * invoke, trigger and settle through it, so handlers and pollers run in one place. JSON over HTTP on
 * the loopback interface; a {@link StackHandle} hides whether the stack is remote or in-process.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { InvocationError, UnknownFunctionError } from './lambda-runtime';
import type { MessageTrace } from './queue-poller';
import type { PublishMeta } from './rules-engine';
import type { LocalStack, PublishResult, StackEndpoints } from './stack';
import type { DeclaredIotNames } from './stack-model';

/** What a command needs from a local stack, wherever it runs. */
export interface StackHandle {
  readonly endpoints: StackEndpoints;
  readonly region: string;
  readonly tableName: string;
  readonly queues: Record<string, string>;
  /** The device policy, claim policy and fleet-provisioning template serverless.yml declares. */
  readonly declared: DeclaredIotNames;
  /** Resolves with the handler's result; rejects with InvocationError / UnknownFunctionError. */
  invoke(functionName: string, event: unknown): Promise<unknown>;
  /** `invoke`, with the lines the invocation logged (an InvocationError carries them in `logs`). */
  invokeWithLogs(functionName: string, event: unknown): Promise<{ result: unknown; logs: string[] }>;
  /**
   * Runs a function's cold start (loads its handler) without invoking it: no event, so no decision
   * in its log (a warm-up invocation with an empty event would log a denial nobody made).
   */
  warm(functionName: string): Promise<void>;
  publish(topic: string, payload: unknown, meta?: PublishMeta): Promise<PublishResult>;
  trigger(functionName: string, options?: { time?: string }): Promise<unknown>;
  settle(timeoutMs?: number): Promise<void>;
  traces(messageIds: string[]): Promise<Record<string, MessageTrace | undefined>>;
  depths(): Promise<Record<string, number>>;
  functionNames(): Promise<string[]>;
}

/** A StackHandle over an in-process stack. */
export function localHandle(stack: LocalStack): StackHandle {
  return {
    endpoints: stack.endpoints,
    region: stack.region,
    tableName: stack.tableName,
    queues: stack.queues,
    declared: stack.declared,
    invoke: (name, event) => stack.invoke(name, event),
    invokeWithLogs: (name, event) => stack.invokeWithLogs(name, event),
    warm: (name) => stack.functions.warm(name),
    publish: (topic, payload, meta) => stack.publish(topic, payload as object, meta),
    trigger: (name, options) => stack.trigger(name, options),
    settle: (timeoutMs) => stack.settle(timeoutMs),
    traces: async (ids) => Object.fromEntries(ids.map((id) => [id, stack.trace(id)])),
    depths: () => stack.depths(),
    functionNames: async () => stack.functions.names,
  };
}

type Route = (body: Record<string, unknown>) => Promise<unknown>;

/** Serves a stack's control routes on a free loopback port. */
export async function serveStackControl(stack: LocalStack): Promise<{ url: string; close(): Promise<void> }> {
  const handle = localHandle(stack);
  const routes: Record<string, Route> = {
    'POST /invoke': async (body) =>
      body.withLogs === true
        ? handle.invokeWithLogs(String(body.functionName), body.event)
        : handle.invoke(String(body.functionName), body.event),
    'POST /warm': async (body) => {
      await handle.warm(String(body.functionName));
      return { warmed: true };
    },
    'POST /publish': async (body) =>
      handle.publish(String(body.topic), body.payload, (body.meta ?? {}) as PublishMeta),
    'POST /trigger': async (body) =>
      handle.trigger(String(body.functionName), body.time ? { time: String(body.time) } : {}),
    'POST /settle': async (body) => {
      await handle.settle(typeof body.timeoutMs === 'number' ? body.timeoutMs : undefined);
      return { settled: true };
    },
    'POST /traces': async (body) => handle.traces((body.messageIds ?? []) as string[]),
    'GET /status': async () => ({
      endpoints: handle.endpoints,
      queues: handle.queues,
      depths: await handle.depths(),
      functions: await handle.functionNames(),
    }),
  };
  const server: Server = createServer((request, response) => {
    const route = routes[`${request.method} ${request.url}`];
    const reply = (status: number, document: unknown) => {
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(JSON.stringify(document ?? null));
    };
    if (!route) return reply(404, { error: { errorType: 'NotFound', errorMessage: request.url } });
    readJson(request)
      .then((body) => route(body))
      .then(
        (result) => reply(200, { result }),
        (error: unknown) => reply(500, { error: describeError(error) }),
      );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

interface RemoteError {
  errorType: string;
  errorMessage: string;
  kind?: 'invocation' | 'unknown-function' | 'settle' | 'other';
  functionName?: string;
  logs?: string[];
}

function describeError(error: unknown): RemoteError {
  if (error instanceof InvocationError) {
    return {
      errorType: error.errorType,
      errorMessage: error.message,
      kind: 'invocation',
      functionName: error.functionName,
      ...(error.logs ? { logs: error.logs } : {}),
    };
  }
  if (error instanceof UnknownFunctionError) {
    return { errorType: error.name, errorMessage: error.message, kind: 'unknown-function' };
  }
  const name = error instanceof Error ? error.name : 'Error';
  return {
    errorType: name,
    errorMessage: error instanceof Error ? error.message : String(error),
    kind: name === 'SettleTimeoutError' ? 'settle' : 'other',
  };
}

async function readJson(request: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

/** A StackHandle that talks to a background stack's control port. */
export function remoteHandle(stack: {
  control: string;
  endpoints: StackEndpoints;
  region: string;
  tableName: string;
  queues: Record<string, string>;
  declared?: DeclaredIotNames;
}): StackHandle {
  const call = async (method: string, path: string, body?: unknown): Promise<unknown> => {
    const response = await fetch(`${stack.control}${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const document = (await response.json()) as { result?: unknown; error?: RemoteError };
    if (document.error) {
      const { error } = document;
      if (error.kind === 'invocation') {
        const failure = new InvocationError(error.functionName ?? '', error.errorType, error.errorMessage);
        if (error.logs) failure.logs = error.logs;
        throw failure;
      }
      if (error.kind === 'unknown-function') throw new UnknownFunctionError(error.errorMessage);
      const failure = new Error(error.errorMessage);
      failure.name = error.errorType;
      throw failure;
    }
    return document.result;
  };
  return {
    endpoints: stack.endpoints,
    region: stack.region,
    tableName: stack.tableName,
    queues: stack.queues,
    declared: stack.declared ?? {},
    invoke: (functionName, event) => call('POST', '/invoke', { functionName, event }),
    invokeWithLogs: async (functionName, event) =>
      (await call('POST', '/invoke', { functionName, event, withLogs: true })) as {
        result: unknown;
        logs: string[];
      },
    warm: async (functionName) => {
      await call('POST', '/warm', { functionName });
    },
    publish: async (topic, payload, meta) =>
      (await call('POST', '/publish', { topic, payload, meta })) as PublishResult,
    trigger: (functionName, options) => call('POST', '/trigger', { functionName, ...options }),
    settle: async (timeoutMs) => {
      await call('POST', '/settle', { timeoutMs });
    },
    traces: async (messageIds) =>
      (await call('POST', '/traces', { messageIds })) as Record<string, MessageTrace | undefined>,
    depths: async () => ((await call('GET', '/status')) as { depths: Record<string, number> }).depths,
    functionNames: async () => ((await call('GET', '/status')) as { functions: string[] }).functions,
  };
}
