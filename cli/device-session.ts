/**
 * One MQTT session per device, shared between terminals: `fleetgate device connect <name>` holds the
 * device's connection (client id = thing name) and serves a local socket; `device rotate <name>` in
 * another terminal asks it to publish the rotation request and to reconnect with the new certificate,
 * instead of opening a second connection with the same client id. AWS IoT answers a second connection
 * with that client id by disconnecting the first (`DUPLICATE_CLIENTID`), and fleetgate's clone
 * detection reads repeated ones as a clone: the tool must not make its user look like one.
 *
 * Protocol: one JSON line per request, one JSON line back (`{ok: true, …}` or `{ok: false, error}`).
 */
import { createHash } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type SessionRequest = { op: 'rotate'; csr: string; timeoutMs: number } | { op: 'reconnect' };

export type SessionResponse =
  | { ok: true; topic: string; body: Record<string, unknown> }
  | { ok: true; certificateId: string }
  | { ok: false; error: string; code?: SessionErrorCode };

/**
 * Why a session could not answer a rotation: `timeout` (no answer from the endpoint in time: the
 * request was sent and may still be answered), `closed` (the endpoint closed the device's connection).
 */
export type SessionErrorCode = 'timeout' | 'closed';

/** The socket of a device's session: short and per device directory (Unix sockets have a ~100-byte limit). */
export function sessionSocketPath(deviceDir: string): string {
  const id = createHash('sha256').update(deviceDir).digest('hex').slice(0, 16);
  return join(tmpdir(), `fleetgate-device-${id}.sock`);
}

/** Serves a device's session on its socket until the returned function is called. */
export async function serveSession(
  path: string,
  handle: (request: SessionRequest) => Promise<SessionResponse>,
): Promise<() => Promise<void>> {
  // A socket file left by a session that did not stop cleanly: nobody answers on it.
  if (existsSync(path) && (await ask(path, undefined)) === 'no-session') rmSync(path, { force: true });
  const server: Server = createServer((socket) => {
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const end = buffer.indexOf('\n');
      if (end < 0) return;
      const line = buffer.slice(0, end);
      buffer = '';
      let request: SessionRequest;
      try {
        request = JSON.parse(line) as SessionRequest;
      } catch {
        socket.end(`${JSON.stringify({ ok: false, error: 'not a JSON request' })}\n`);
        return;
      }
      handle(request)
        .catch(
          (error: unknown): SessionResponse => ({
            ok: false,
            error: error instanceof Error ? error.message : String(error),
            ...(error instanceof SessionError ? { code: error.code } : {}),
          }),
        )
        .then((response) => socket.end(`${JSON.stringify(response)}\n`));
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  return () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      rmSync(path, { force: true });
    });
}

/** A failure the session answers with its code (the other end tells the user what it means). */
export class SessionError extends Error {
  constructor(
    message: string,
    readonly code: SessionErrorCode,
  ) {
    super(message);
  }
}

/**
 * Sends `request` to the device's running session. `no-session` when none is running (no socket, or
 * a stale one nobody listens on); with `request` undefined, only checks that one is there. Always a
 * JSON answer or `no-session`: a session that stops before answering, answers something else, or
 * does not answer within `limitMs`, is an `{ok: false}` answer that says so.
 */
export function ask(
  path: string,
  request: SessionRequest | undefined,
  limitMs?: number,
): Promise<SessionResponse | 'no-session'> {
  if (!existsSync(path)) return Promise.resolve('no-session');
  return new Promise((resolve) => {
    const socket = createConnection(path);
    let buffer = '';
    const timer =
      limitMs === undefined
        ? undefined
        : setTimeout(() => {
            socket.destroy();
            resolve({
              ok: false,
              error: `the \`device connect\` session did not answer within ${limitMs / 1000} s`,
            });
          }, limitMs);
    socket.once('close', () => clearTimeout(timer));
    socket.setEncoding('utf8');
    socket.on('connect', () => {
      if (request === undefined) {
        socket.end();
        resolve({ ok: true, certificateId: '' });
        return;
      }
      socket.write(`${JSON.stringify(request)}\n`);
    });
    socket.on('data', (chunk: string) => {
      buffer += chunk;
    });
    socket.on('end', () => {
      if (request === undefined) return;
      const text = buffer.trim();
      if (text === '') {
        resolve({ ok: false, error: 'the `device connect` session stopped before answering' });
        return;
      }
      try {
        resolve(JSON.parse(text) as SessionResponse);
      } catch {
        resolve({ ok: false, error: 'the `device connect` session answered something that is not JSON' });
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      resolve(
        error.code === 'ECONNREFUSED' || error.code === 'ENOENT'
          ? 'no-session'
          : { ok: false, error: error.message },
      );
    });
  });
}
