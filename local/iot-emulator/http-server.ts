/**
 * node:http front end: matches restJson1 requests to operations, decodes labels, query, headers and body,
 * and writes AWS-shaped responses and errors (`x-amzn-errortype` header + `{"message"}` body, which the SDK
 * turns into its exception classes).
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Route } from './control-plane';
import { IotError } from './errors';

const MAX_BODY_BYTES = 1024 * 1024;

/** A route match: the operation and its decoded input members. */
export interface MatchedRequest {
  route: Route;
  input: Record<string, unknown>;
}

function convert(value: string, type: 'string' | 'number' | 'boolean', name: string): unknown {
  if (type === 'string') return value;
  if (type === 'boolean') {
    if (value === 'true') return true;
    if (value === 'false') return false;
    throw new IotError('InvalidRequestException', `${name} must be true or false`);
  }
  const n = Number(value);
  if (value === '' || !Number.isFinite(n))
    throw new IotError('InvalidRequestException', `${name} must be a number`);
  return n;
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new IotError('InvalidRequestException', 'malformed URI');
  }
}

/** Finds the route for `method` + raw path; returns labels decoded. */
export function matchRoute(
  routes: Route[],
  method: string,
  rawPath: string,
): { route: Route; labels: Record<string, string> } | undefined {
  const segments = rawPath.split('/').slice(1);
  for (const route of routes) {
    if (route.method !== method) continue;
    const template = route.path.split('/').slice(1);
    const labels: Record<string, string> = {};
    let ok = true;
    for (let i = 0; i < template.length; i += 1) {
      const part = template[i] ?? '';
      const label = /^\{(.+)\}$/.exec(part)?.[1];
      if (label && label === route.greedyLabel) {
        const rest = segments.slice(i);
        if (rest.length === 0 || rest.join('') === '') ok = false;
        else labels[label] = rest.map(decodeSegment).join('/');
        break;
      }
      const segment = segments[i];
      if (segment === undefined) {
        ok = false;
        break;
      }
      if (label) {
        if (segment === '') {
          ok = false;
          break;
        }
        labels[label] = decodeSegment(segment);
      } else if (part !== segment) {
        ok = false;
        break;
      }
      if (i === template.length - 1 && segments.length !== template.length) ok = false;
    }
    if (ok) return { route, labels };
  }
  return undefined;
}

/** Reads the request body (bounded). */
export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > MAX_BODY_BYTES) throw new IotError('InvalidRequestException', 'request body too large');
    chunks.push(buffer);
  }
  return Buffer.concat(chunks);
}

/** Builds the operation input from labels, query, headers and body. */
export function buildInput(
  route: Route,
  labels: Record<string, string>,
  url: URL,
  headers: IncomingMessage['headers'],
  body: Buffer,
): Record<string, unknown> {
  const input: Record<string, unknown> = {};
  if (route.body === 'raw') {
    input.payload = body;
  } else if (body.length > 0) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      throw new IotError('InvalidRequestException', 'request body is not valid JSON');
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new IotError('InvalidRequestException', 'request body must be a JSON object');
    }
    Object.assign(input, parsed);
  }
  for (const [member, [name, type]] of Object.entries(route.query ?? {})) {
    const value = url.searchParams.get(name);
    if (value !== null) input[member] = convert(value, type, name);
  }
  for (const [member, header] of Object.entries(route.headers ?? {})) {
    const value = headers[header];
    if (typeof value === 'string') input[member] = value;
  }
  for (const [label, value] of Object.entries(labels)) {
    const type = route.labelTypes?.[label] ?? 'string';
    input[label] = convert(value, type, label);
  }
  return input;
}

/** Writes a JSON (or empty) success response. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'x-amzn-requestid': randomUUID(),
  });
  res.end(text);
}

/** Writes an AWS error response. */
export function sendError(res: ServerResponse, error: IotError): void {
  const text = JSON.stringify({ message: error.message, ...error.extra });
  res.writeHead(error.status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'x-amzn-errortype': error.code,
    'x-amzn-requestid': randomUUID(),
  });
  res.end(text);
}
