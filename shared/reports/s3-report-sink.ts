/**
 * Reports in S3: PutObject / GetObject under the sink's prefix. Loaded by dynamic `import()` from
 * `report-sink.ts` when an `s3://` sink is first used, so the S3 client is not part of a cold start.
 */
import { GetObjectCommand, NoSuchKey, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { type ReportSink, s3Location, s3Prefix, safeName } from './sink';

export class S3ReportSink implements ReportSink {
  readonly location: string;
  private readonly client: S3Client;
  private readonly prefix: string;

  constructor(
    client: S3Client | undefined,
    private readonly bucket: string,
    prefix: string,
  ) {
    this.client = client ?? new S3Client({});
    this.prefix = s3Prefix(prefix);
    this.location = s3Location(bucket, prefix);
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
