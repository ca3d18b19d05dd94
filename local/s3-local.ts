/**
 * A small local S3 for the buckets serverless.yml declares: path-style PutObject, GetObject,
 * HeadObject, DeleteObject, ListObjectsV2, HeadBucket and CreateBucket, objects stored as files under
 * `<root>/<bucket>/<key>`, every call authorized by the local IAM. Any other operation answers
 * `NotImplemented` naming it, never a plausible success.
 *
 * S3's rule for a missing object (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html,
 * "Permissions"): with `s3:ListBucket` on the bucket the answer is 404 NoSuchKey, without it 403
 * AccessDenied. The ListBucket check carries no `s3:prefix` (the request lists nothing), so a
 * ListBucket grant conditioned on a prefix does not turn the 403 into a 404.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { dirname, join, relative, sep } from 'node:path';
import { AccessDeniedError, type Authorizer, accessKeyOf, type CallCheck } from './iam/authorizer';
import { s3BucketArn, s3ObjectArn } from './iam/requests';
import { freePort, listenLoopback, stopOnce } from './net';

const MAX_OBJECT_BYTES = 64 * 1024 * 1024;
const META_DIR = '.fleetgate-s3-meta';

export interface LocalS3 {
  endpoint: string;
  /** Folder the buckets live in. */
  root: string;
  stop(): Promise<void>;
}

class S3Error extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Starts the local S3 with `buckets` created (idempotently) under `root`. */
export async function startLocalS3(options: {
  root: string;
  buckets: readonly string[];
  authorizer?: Authorizer;
  port?: number;
}): Promise<LocalS3> {
  for (const bucket of options.buckets) await mkdir(join(options.root, bucket), { recursive: true });
  const port = options.port ?? (await freePort());
  const server: Server = createServer((req, res) => {
    serve(req, res, options.root, options.authorizer).catch((error: unknown) => {
      if (error instanceof AccessDeniedError)
        return sendError(res, new S3Error(403, 'AccessDenied', error.message));
      if (error instanceof S3Error) return sendError(res, error);
      sendError(
        res,
        new S3Error(500, 'InternalError', error instanceof Error ? error.message : String(error)),
      );
    });
  });
  await listenLoopback(server, port);
  return { endpoint: `http://127.0.0.1:${port}`, root: options.root, stop: stopOnce(server) };
}

async function serve(req: IncomingMessage, res: ServerResponse, root: string, authorizer?: Authorizer) {
  const url = new URL(req.url ?? '/', 'http://local');
  const [bucket = '', ...keyParts] = url.pathname.slice(1).split('/');
  const key = keyParts.map((part) => decodeURIComponent(part)).join('/');
  const accessKeyId = accessKeyOf(req.headers.authorization);
  const authorize = (check: CallCheck) => authorizer?.authorize(accessKeyId, check);
  const method = req.method ?? 'GET';
  const unsupported = [...url.searchParams.keys()].filter(
    (name) =>
      !['list-type', 'prefix', 'delimiter', 'max-keys', 'continuation-token', 'start-after', 'x-id'].includes(
        name,
      ),
  );
  if (!bucket)
    throw new S3Error(501, 'NotImplemented', 'ListBuckets is not emulated by the fleetgate local S3');
  if (unsupported.length > 0 || req.headers['x-amz-copy-source']) {
    throw new S3Error(
      501,
      'NotImplemented',
      `${method} with ${unsupported.join(', ') || 'x-amz-copy-source'} is not emulated by the fleetgate local S3`,
    );
  }
  const bucketDir = join(root, bucket);
  if (!key) {
    if (method === 'PUT') {
      authorize({ action: 's3:CreateBucket', resources: [s3BucketArn(bucket)] });
      await mkdir(bucketDir, { recursive: true });
      return sendEmpty(res, 200, { location: `/${bucket}` });
    }
    await requireBucket(bucketDir, bucket);
    if (method === 'HEAD') {
      authorize({ action: 's3:ListBucket', resources: [s3BucketArn(bucket)] });
      return sendEmpty(res, 200);
    }
    if (method === 'GET' && url.searchParams.get('list-type') === '2') {
      const prefix = url.searchParams.get('prefix') ?? '';
      authorize({
        action: 's3:ListBucket',
        resources: [s3BucketArn(bucket)],
        context: {
          's3:prefix': prefix,
          ...(url.searchParams.get('delimiter')
            ? { 's3:delimiter': url.searchParams.get('delimiter') ?? '' }
            : {}),
          's3:max-keys': url.searchParams.get('max-keys') ?? '1000',
        },
      });
      return listObjects(res, bucketDir, bucket, url.searchParams);
    }
    throw new S3Error(
      501,
      'NotImplemented',
      `${method} /${bucket} is not emulated by the fleetgate local S3`,
    );
  }
  if (key.split('/').some((part) => part === '..' || part === '.' || part === META_DIR)) {
    throw new S3Error(400, 'InvalidArgument', `key ${key} is not supported by the fleetgate local S3`);
  }
  await requireBucket(bucketDir, bucket);
  const file = join(bucketDir, ...key.split('/'));
  const meta = join(bucketDir, META_DIR, `${key}.json`);
  if (method === 'PUT') {
    authorize({ action: 's3:PutObject', resources: [s3ObjectArn(bucket, key)] });
    const body = decodeBody(req, await readBody(req));
    await mkdir(dirname(file), { recursive: true });
    await mkdir(dirname(meta), { recursive: true });
    const temporary = `${file}.${randomUUID()}.tmp`;
    await writeFile(temporary, body);
    await rename(temporary, file);
    const etag = `"${createHash('md5').update(body).digest('hex')}"`;
    await writeFile(
      meta,
      JSON.stringify({ contentType: req.headers['content-type'] ?? 'binary/octet-stream', etag }),
    );
    return sendEmpty(res, 200, { etag });
  }
  if (method === 'GET' || method === 'HEAD') {
    authorize({ action: 's3:GetObject', resources: [s3ObjectArn(bucket, key)] });
    const content = await readFile(file).catch(() => undefined);
    if (!content) {
      // 404 only for a caller who may list the bucket (no prefix in the check).
      authorize({ action: 's3:ListBucket', resources: [s3BucketArn(bucket)] });
      throw new S3Error(404, 'NoSuchKey', 'The specified key does not exist.');
    }
    const info = JSON.parse(await readFile(meta, 'utf8').catch(() => '{}')) as {
      contentType?: string;
      etag?: string;
    };
    const modified = (await stat(file)).mtime.toUTCString();
    res.writeHead(200, {
      'content-type': info.contentType ?? 'binary/octet-stream',
      'content-length': content.length,
      etag: info.etag ?? `"${createHash('md5').update(content).digest('hex')}"`,
      'last-modified': modified,
      'x-amz-request-id': randomUUID(),
    });
    res.end(method === 'HEAD' ? undefined : content);
    return;
  }
  if (method === 'DELETE') {
    authorize({ action: 's3:DeleteObject', resources: [s3ObjectArn(bucket, key)] });
    await rm(file, { force: true });
    await rm(meta, { force: true });
    return sendEmpty(res, 204);
  }
  throw new S3Error(
    501,
    'NotImplemented',
    `${method} on an object is not emulated by the fleetgate local S3`,
  );
}

async function requireBucket(dir: string, bucket: string): Promise<void> {
  const info = await stat(dir).catch(() => undefined);
  if (!info?.isDirectory())
    throw new S3Error(404, 'NoSuchBucket', `The specified bucket does not exist: ${bucket}`);
}

async function listObjects(res: ServerResponse, dir: string, bucket: string, params: URLSearchParams) {
  const prefix = params.get('prefix') ?? '';
  const maxKeys = Math.min(1000, Math.max(0, Number(params.get('max-keys') ?? 1000)));
  const after = params.get('continuation-token') ?? params.get('start-after') ?? '';
  const keys = (await walk(dir, dir)).filter((key) => key.startsWith(prefix) && key > after).sort();
  const page = keys.slice(0, maxKeys);
  const truncated = keys.length > page.length;
  const contents = await Promise.all(
    page.map(async (key) => {
      const info = await stat(join(dir, ...key.split('/')));
      return `<Contents><Key>${xml(key)}</Key><LastModified>${info.mtime.toISOString()}</LastModified><Size>${info.size}</Size><StorageClass>STANDARD</StorageClass></Contents>`;
    }),
  );
  const text = `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>${xml(bucket)}</Name><Prefix>${xml(prefix)}</Prefix><KeyCount>${page.length}</KeyCount><MaxKeys>${maxKeys}</MaxKeys><IsTruncated>${truncated}</IsTruncated>${
    truncated ? `<NextContinuationToken>${xml(page[page.length - 1] ?? '')}</NextContinuationToken>` : ''
  }${contents.join('')}</ListBucketResult>`;
  res.writeHead(200, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function walk(root: string, dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const keys: string[] = [];
  for (const entry of entries) {
    if (entry.name === META_DIR || entry.name.endsWith('.tmp')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) keys.push(...(await walk(root, path)));
    else keys.push(relative(root, path).split(sep).join('/'));
  }
  return keys;
}

/** `aws-chunked` bodies (streaming SigV4 or trailing checksums): the data without the framing. */
function decodeBody(req: IncomingMessage, body: Buffer): Buffer {
  const encoding = String(req.headers['content-encoding'] ?? '');
  const sha = String(req.headers['x-amz-content-sha256'] ?? '');
  if (!encoding.includes('aws-chunked') && !sha.startsWith('STREAMING-')) return body;
  const parts: Buffer[] = [];
  let offset = 0;
  while (offset < body.length) {
    const lineEnd = body.indexOf('\r\n', offset);
    if (lineEnd < 0) break;
    const size = Number.parseInt(body.subarray(offset, lineEnd).toString('latin1').split(';')[0] ?? '', 16);
    if (!Number.isFinite(size) || size === 0) break;
    parts.push(body.subarray(lineEnd + 2, lineEnd + 2 + size));
    offset = lineEnd + 2 + size + 2;
  }
  return Buffer.concat(parts);
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_OBJECT_BYTES)
      throw new S3Error(400, 'EntityTooLarge', 'object too large for the local S3');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function sendEmpty(res: ServerResponse, status: number, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-length': 0, 'x-amz-request-id': randomUUID(), ...headers });
  res.end();
}

function sendError(res: ServerResponse, error: S3Error): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const requestId = randomUUID();
  const text = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${error.code}</Code><Message>${xml(error.message)}</Message><RequestId>${requestId}</RequestId></Error>`;
  res.writeHead(error.status, {
    'content-type': 'application/xml',
    'content-length': Buffer.byteLength(text),
    'x-amz-request-id': requestId,
  });
  res.end(text);
}

function xml(text: string): string {
  return text.replace(/[<>&'"]/g, (ch) => `&#${ch.charCodeAt(0)};`);
}
