/**
 * Where reports are written: `s3://bucket/prefix` (PutObject / GetObject under the prefix only)
 * or `file://dir` (a local folder, for the CLI and the local stack).
 *
 * The S3 client (~110 KB of the two report functions' bundles with its XML protocol, checksums and
 * `node:zlib`) is loaded by dynamic `import()` when an S3 sink is first used, not when a function's
 * module loads: with `splitting`, `./s3-report-sink` is a chunk beside the handler, so a cold start
 * pays for it only when (and after) the run reaches its report.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { onFirstUse } from '../on-first-use';
import { type ReportSink, s3Location, safeName } from './sink';

export type { ReportSink } from './sink';

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
  if (match?.[1]) return new LazyS3ReportSink(match[1], match[2] ?? '', options.s3);
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

/** An S3 sink whose client module is imported on first use (see the top of this file). */
class LazyS3ReportSink implements ReportSink {
  readonly location: string;
  private readonly load: () => Promise<ReportSink>;

  constructor(
    private readonly bucket: string,
    private readonly prefix: string,
    private readonly client?: S3Client,
  ) {
    this.location = s3Location(bucket, prefix);
    this.load = onFirstUse(async () => {
      const { S3ReportSink } = await import('./s3-report-sink');
      return new S3ReportSink(this.client, this.bucket, this.prefix);
    });
  }

  async put(name: string, body: string, contentType: string): Promise<string> {
    return (await this.load()).put(name, body, contentType);
  }

  async get(name: string): Promise<string | undefined> {
    return (await this.load()).get(name);
  }
}
