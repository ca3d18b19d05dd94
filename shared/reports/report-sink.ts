/**
 * Where reports are written: `s3://bucket/prefix` (PutObject / GetObject under the prefix only)
 * or `file://dir` (a local folder, for the CLI and the local stack).
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { GetObjectCommand, NoSuchKey, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';

export interface ReportSink {
  /** Human-readable location of the destination (`s3://…` or an absolute folder). */
  readonly location: string;
  /** Writes `body` under `name` (a relative path with `/`); returns where it went. */
  put(name: string, body: string, contentType: string): Promise<string>;
  /** The object under `name`, or undefined when there is none. */
  get(name: string): Promise<string | undefined>;
}

/**
 * The sink for a `REPORT_DESTINATION`.
 * @throws TypeError when the destination is neither `s3://bucket[/prefix]` nor `file://dir`.
 */
export function createReportSink(
  destination: string,
  options: { s3?: S3Client; cwd?: string } = {},
): ReportSink {
  if (destination.startsWith('file://')) {
    return new FileReportSink(resolve(options.cwd ?? process.cwd(), destination.slice('file://'.length)));
  }
  const match = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(destination);
  if (match?.[1]) return new S3ReportSink(options.s3 ?? new S3Client({}), match[1], match[2] ?? '');
  throw new TypeError(`REPORT_DESTINATION must be s3://bucket/prefix or file://dir (got "${destination}")`);
}

export class FileReportSink implements ReportSink {
  constructor(readonly location: string) {}

  async put(name: string, body: string): Promise<string> {
    const file = join(this.location, ...safeName(name).split('/'));
    await mkdir(dirname(file), { recursive: true });
    // Write then rename, so a reader never sees half a report.
    const temporary = `${file}.${process.pid}.tmp`;
    await writeFile(temporary, body, 'utf8');
    await rename(temporary, file);
    return file;
  }

  async get(name: string): Promise<string | undefined> {
    try {
      return await readFile(join(this.location, ...safeName(name).split('/')), 'utf8');
    } catch (error) {
      if ((error as { code?: string }).code === 'ENOENT') return undefined;
      throw error;
    }
  }
}

export class S3ReportSink implements ReportSink {
  readonly location: string;
  private readonly prefix: string;

  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    prefix: string,
  ) {
    this.prefix = prefix.replace(/^\/+|\/+$/g, '');
    this.location = `s3://${bucket}${this.prefix ? `/${this.prefix}` : ''}`;
  }

  async put(name: string, body: string, contentType: string): Promise<string> {
    const key = this.key(name);
    await this.client.send(
      new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: contentType }),
    );
    return `s3://${this.bucket}/${key}`;
  }

  async get(name: string): Promise<string | undefined> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(name) }));
      return out.Body ? await out.Body.transformToString('utf8') : undefined;
    } catch (error) {
      // Without s3:ListBucket a missing key is AccessDenied, so the policy grants ListBucket on the prefix.
      if (error instanceof NoSuchKey || (error as { name?: string }).name === 'NoSuchKey') return undefined;
      throw error;
    }
  }

  private key(name: string): string {
    const clean = safeName(name);
    return this.prefix ? `${this.prefix}/${clean}` : clean;
  }
}

function safeName(name: string): string {
  if (name.split('/').some((part) => part === '' || part === '.' || part === '..')) {
    throw new TypeError(`report name must be a relative path without . or .. segments: ${name}`);
  }
  return name;
}
