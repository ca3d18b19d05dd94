import type { Server as HttpServer } from 'node:http';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** Asks the OS for a free TCP port on the loopback interface. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Starts `server` on 127.0.0.1:`port`; rejects when it cannot listen (the port is taken). */
export function listenLoopback(server: HttpServer, port: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
}

/**
 * A `stop` for a local server, the same promise however often it is called: `release` first (the
 * clients it holds), then the open connections are dropped and the server closes.
 */
export function stopOnce(server: HttpServer, release: () => void = () => {}): () => Promise<void> {
  let stopped: Promise<void> | undefined;
  return () => {
    stopped ??= new Promise<void>((resolve) => {
      release();
      server.closeAllConnections();
      server.close(() => resolve());
    });
    return stopped;
  };
}

/** Polls `probe` until it returns true; rejects after `timeoutMs` or when `exited` settles first. */
export async function waitFor(
  probe: () => Promise<boolean>,
  options: { timeoutMs: number; what: string; exited?: Promise<unknown> },
): Promise<void> {
  let exitedEarly = false;
  options.exited?.then(() => {
    exitedEarly = true;
  });
  const deadline = Date.now() + options.timeoutMs;
  while (Date.now() < deadline) {
    if (exitedEarly) throw new Error(`${options.what} exited before it was ready`);
    if (await probe()) return;
    await sleep(100);
  }
  throw new Error(`${options.what} was not ready after ${options.timeoutMs} ms`);
}
