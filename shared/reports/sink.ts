/**
 * What a report destination is (`ReportSink`) and the rules for the names written to it, shared by
 * the file sink (`report-sink.ts`) and the S3 sink that module loads on first use (`s3-report-sink.ts`).
 */

export interface ReportSink {
  /** Human-readable location of the destination (`s3://…` or an absolute folder). */
  readonly location: string;
  /** Writes `body` under `name` (a relative path with `/`); returns where it went. */
  put(name: string, body: string, contentType: string): Promise<string>;
  /** The object under `name`, or undefined when there is none. */
  get(name: string): Promise<string | undefined>;
}

/** The prefix without leading or trailing slashes. */
export function s3Prefix(prefix: string): string {
  return prefix.replace(/^\/+|\/+$/g, '');
}

/** `s3://bucket[/prefix]`. */
export function s3Location(bucket: string, prefix: string): string {
  const clean = s3Prefix(prefix);
  return `s3://${bucket}${clean ? `/${clean}` : ''}`;
}

/** `name` itself, when it is a relative path with no empty, `.` or `..` segment (no escape from the sink). */
export function safeName(name: string): string {
  if (name.split('/').some((part) => part === '' || part === '.' || part === '..')) {
    throw new TypeError(`report name must be a relative path without . or .. segments: ${name}`);
  }
  return name;
}
