/**
 * DynamoDB Local managed by the project: the jar is taken from the npm tarball of
 * `amplify-dynamodb-simulator` (never its dependency tree), verified against a pinned checksum,
 * cached under `.fleetgate/cache`, and started as a child process that cannot outlive its parent.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, waitFor } from './net';
import { projectRoot } from './paths';

const run = promisify(execFile);

export const DYNAMODB_LOCAL_PACKAGE = 'amplify-dynamodb-simulator@2.9.30';
/** sha512 of the npm tarball, as published in the registry's `dist.integrity`. */
export const DYNAMODB_LOCAL_INTEGRITY =
  'sha512-xTeeRLvzEfqyd5lh3bH4c0kHvSHHmmhD5ZDsHFKAQ5g2Zl6JqlFdutaQhCLHzxEp6Ry1o7TB6niIoXuQAnSewQ==';

/** Where the jar lives once fetched (git-ignored). */
export function dynamoDbLocalDir(root = projectRoot()): string {
  return join(root, '.fleetgate', 'cache', 'dynamodb-local-2.9.30');
}

async function sha512Base64(file: string): Promise<string> {
  const hash = createHash('sha512');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('base64');
}

/**
 * Makes sure the DynamoDB Local jar is in the cache, fetching it through the npm registry
 * (`npm pack`) on first use. Concurrent callers are safe: extraction happens in a temporary
 * folder that is renamed into place atomically.
 * @throws Error when the tarball's checksum does not match the pinned integrity.
 */
export async function ensureDynamoDbLocal(root = projectRoot()): Promise<string> {
  const dir = dynamoDbLocalDir(root);
  const marker = join(dir, '.verified');
  if (existsSync(marker)) return dir;
  await mkdir(join(root, '.fleetgate', 'cache'), { recursive: true });
  const work = await mkdtemp(join(tmpdir(), 'fleetgate-ddbl-'));
  try {
    const { stdout } = await run(
      'npm',
      ['pack', DYNAMODB_LOCAL_PACKAGE, '--json', '--pack-destination', work],
      {
        maxBuffer: 64 * 1024 * 1024,
      },
    );
    const packed = JSON.parse(stdout.slice(stdout.indexOf('['))) as Array<{ filename: string }>;
    const filename = packed[0]?.filename;
    if (!filename) throw new Error(`npm pack ${DYNAMODB_LOCAL_PACKAGE} printed no file name`);
    const tarball = join(work, filename.replace(/^@.*\//, '').replace('/', '-'));
    const actual = `sha512-${await sha512Base64(tarball)}`;
    if (actual !== DYNAMODB_LOCAL_INTEGRITY) {
      throw new Error(
        `DynamoDB Local tarball checksum mismatch: expected ${DYNAMODB_LOCAL_INTEGRITY}, got ${actual}`,
      );
    }
    await run('tar', ['xzf', tarball, '-C', work, 'package/emulator']);
    const staged = join(work, 'package', 'emulator');
    await writeFile(join(staged, '.verified'), `${DYNAMODB_LOCAL_INTEGRITY}\n`);
    try {
      await rename(staged, dir);
    } catch (error) {
      // Another process won the race and already put a verified copy in place.
      if (!existsSync(marker)) throw error;
    }
    return dir;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export interface DynamoDbLocal {
  readonly endpoint: string;
  readonly port: number;
  readonly pid: number;
  stop(): Promise<void>;
}

/**
 * Starts DynamoDB Local in memory on a free port and waits until it answers.
 * The JVM runs under a small shell guard that kills it when our stdin pipe closes, so it dies
 * with its parent even when the parent is killed with SIGKILL.
 */
export async function startDynamoDbLocal(
  options: { port?: number; root?: string } = {},
): Promise<DynamoDbLocal> {
  const dir = await ensureDynamoDbLocal(options.root);
  const port = options.port ?? (await freePort());
  const java = [
    'java',
    '-Xms64m',
    '-Xmx512m',
    '-XX:+UseSerialGC',
    `-Djava.library.path=${shellQuote(join(dir, 'DynamoDBLocal_lib'))}`,
    '-jar',
    shellQuote(join(dir, 'DynamoDBLocal.jar')),
    '-inMemory',
    '-disableTelemetry',
    '-port',
    String(port),
  ].join(' ');
  const guard = `${java} >/dev/null 2>&1 & child=$!; trap 'kill $child 2>/dev/null; wait $child; exit 0' TERM INT HUP; read _ignored; kill $child 2>/dev/null; wait $child`;
  const child = spawn('sh', ['-c', guard], { cwd: dir, stdio: ['pipe', 'ignore', 'pipe'], detached: true });
  child.unref();
  (child.stdin as unknown as { unref?: () => void }).unref?.();
  const endpoint = `http://127.0.0.1:${port}`;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    await waitFor(async () => isDynamoDbUp(endpoint), {
      timeoutMs: Number(process.env.FLEETGATE_DYNAMODB_START_TIMEOUT_MS ?? 30_000),
      what: `DynamoDB Local on ${endpoint}`,
      exited,
    });
  } catch (error) {
    await killGroup(child);
    throw error;
  }
  let stopped: Promise<void> | undefined;
  return {
    endpoint,
    port,
    pid: child.pid ?? -1,
    stop: () => {
      stopped ??= killGroup(child);
      return stopped;
    },
  };
}

async function isDynamoDbUp(endpoint: string): Promise<boolean> {
  try {
    const response = await fetch(endpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-amz-json-1.0',
        'x-amz-target': 'DynamoDB_20120810.ListTables',
        authorization:
          'AWS4-HMAC-SHA256 Credential=local/20200101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0',
      },
      body: '{}',
      signal: AbortSignal.timeout(1000),
    });
    return response.status === 200;
  } catch {
    return false;
  }
}

async function killGroup(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.stdin?.end();
  try {
    if (child.pid) process.kill(-child.pid, 'SIGTERM');
  } catch {
    // already gone
  }
  const timer = setTimeout(() => {
    try {
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }, 3000);
  await done;
  clearTimeout(timer);
}

function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** Reads the version file DynamoDB Local ships, for diagnostics. */
export async function dynamoDbLocalChecksumFile(root = projectRoot()): Promise<string> {
  return (await readFile(join(dynamoDbLocalDir(root), 'sha256'), 'utf8')).trim();
}
