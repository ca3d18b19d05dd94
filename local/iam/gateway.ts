/**
 * The local stack's AWS front door for DynamoDB and SQS: one HTTP endpoint that identifies the caller
 * from the SigV4 `Authorization` header, authorizes the call against the caller's role (a function's
 * execution role; the operator's calls pass), answers a denial exactly as the service does, and
 * forwards everything else unchanged to DynamoDB Local or the local SQS server.
 *
 * Denials, as the services send them:
 * - DynamoDB: HTTP 400, `{"__type":"com.amazon.coral.service#AccessDeniedException","Message":…}`
 *   (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/CommonErrors.html).
 * - SQS (JSON protocol): HTTP 403, `x-amzn-query-error: AccessDenied;Sender`,
 *   `{"__type":"com.amazon.coral.service#AccessDeniedException","message":…}`.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DEAD_LETTER_REASON, DEAD_LETTER_SOURCE_MESSAGE } from '../../shared/dlq/dead-letter-sender';
import { freePort, listenLoopback, stopOnce } from '../net';
import { AccessDeniedError, type Authorizer, accessKeyOf, UnmappedCallError } from './authorizer';
import { type AccountScope, dynamodbChecks, sqsCheck, type TableKeys } from './requests';

const MAX_BODY_BYTES = 32 * 1024 * 1024;

export interface AwsGateway {
  /** `http://127.0.0.1:<port>`: the endpoint for both DynamoDB and SQS. */
  endpoint: string;
  stop(): Promise<void>;
}

export interface AwsGatewayOptions {
  authorizer: Authorizer;
  scope: AccountScope;
  /** DynamoDB Local's endpoint. */
  dynamodb: string;
  /** The local SQS server's endpoint. */
  sqs: string;
  /** The access key the DynamoDB Local data lives under (DynamoDB Local keeps one database per key). */
  dynamodbAccessKeyId: string;
  port?: number;
  /**
   * Told when a caller sends a message to a queue as a dead letter (a consumer that found a message
   * it can never process sends it to its DLQ at once, naming the source message and the reason):
   * how the stack's traces say "dead-lettered" for a message the consumer acknowledged.
   */
  onDeadLetter?: (deadLetter: { sourceMessageId: string; reason: string }) => void;
}

/** The dead letter a SendMessage carries (JSON or query protocol), if it is one. */
export function deadLetterOf(
  operation: string,
  parsed: Record<string, unknown>,
): { sourceMessageId: string; reason: string } | undefined {
  if (operation !== 'SendMessage') return undefined;
  const attributes: Record<string, string> = {};
  const json = parsed.MessageAttributes;
  if (typeof json === 'object' && json !== null) {
    for (const [name, value] of Object.entries(json as Record<string, { StringValue?: unknown }>)) {
      if (typeof value?.StringValue === 'string') attributes[name] = value.StringValue;
    }
  }
  for (const [key, value] of Object.entries(parsed)) {
    const match = /^MessageAttribute\.(\d+)\.Name$/.exec(key);
    const stringValue = match ? parsed[`MessageAttribute.${match[1]}.Value.StringValue`] : undefined;
    if (typeof value === 'string' && typeof stringValue === 'string') attributes[value] = stringValue;
  }
  const sourceMessageId = attributes[DEAD_LETTER_SOURCE_MESSAGE];
  if (!sourceMessageId) return undefined;
  return { sourceMessageId, reason: attributes[DEAD_LETTER_REASON] ?? '' };
}

/** Starts the gateway on a free port (or `port`). */
export async function startAwsGateway(options: AwsGatewayOptions): Promise<AwsGateway> {
  const port = options.port ?? (await freePort());
  const tables = new TableKeyCache(options.dynamodb, options.scope.region, options.dynamodbAccessKeyId);
  const server: Server = createServer((req, res) => {
    handle(req, res, options, tables).catch((error: unknown) => {
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'application/x-amz-json-1.0' });
        res.end(
          JSON.stringify({
            __type: 'com.amazon.coral.service#InternalFailure',
            message: `fleetgate local gateway: ${error instanceof Error ? error.message : String(error)}`,
          }),
        );
      } else {
        res.destroy();
      }
    });
  });
  server.keepAliveTimeout = 5_000;
  await listenLoopback(server, port);
  return { endpoint: `http://127.0.0.1:${port}`, stop: stopOnce(server, () => tables.destroy()) };
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  options: AwsGatewayOptions,
  tables: TableKeyCache,
): Promise<void> {
  const body = await readBody(req);
  const target = String(req.headers['x-amz-target'] ?? '');
  const accessKeyId = accessKeyOf(req.headers.authorization);
  const scopeService = /Credential=[^/]+\/\d{8}\/[^/]+\/([^/]+)\//.exec(
    String(req.headers.authorization ?? ''),
  )?.[1];
  const service = target.startsWith('DynamoDB_')
    ? 'dynamodb'
    : target.startsWith('AmazonSQS.')
      ? 'sqs'
      : (scopeService ??
        (req.headers['content-type']?.includes('x-www-form-urlencoded') ? 'sqs' : undefined));
  if (service !== 'dynamodb' && service !== 'sqs') {
    res.writeHead(400, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        __type: 'com.amazon.coral.service#UnknownOperationException',
        message: `fleetgate local gateway serves DynamoDB and SQS only (got ${service ?? 'an unsigned request'})`,
      }),
    );
    return;
  }
  try {
    if (service === 'dynamodb') {
      const operation = target.split('.')[1] ?? '';
      const parsed = parseJson(body);
      if (parsed && options.authorizer.principal(accessKeyId)) {
        await tables.prefetch(tableNames(parsed));
        for (const check of dynamodbChecks(operation, parsed, options.scope, (name) => tables.get(name))) {
          options.authorizer.authorize(accessKeyId, check);
        }
      }
    } else if (options.authorizer.principal(accessKeyId)) {
      const json = target.startsWith('AmazonSQS.');
      const parsed = json ? parseJson(body) : Object.fromEntries(new URLSearchParams(body.toString('utf8')));
      const operation = json ? (target.split('.')[1] ?? '') : String(parsed?.Action ?? '');
      options.authorizer.authorize(accessKeyId, sqsCheck(operation, parsed ?? {}, options.scope));
      const deadLetter = options.onDeadLetter ? deadLetterOf(operation, parsed ?? {}) : undefined;
      if (deadLetter) options.onDeadLetter?.(deadLetter);
    }
  } catch (error) {
    if (error instanceof AccessDeniedError) {
      deny(res, service, error);
      return;
    }
    if (error instanceof UnmappedCallError) {
      // 400, not 5xx: a call the local IAM cannot map fails once, loudly, instead of being retried.
      res.writeHead(400, { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-requestid': randomUUID() });
      res.end(
        JSON.stringify({
          __type: 'fleetgate.local#NotEmulatedException',
          message: `fleetgate local IAM cannot authorize this call (not emulated): ${error.message}`,
        }),
      );
      return;
    }
    throw error;
  }
  await forward(req, res, body, service === 'dynamodb' ? options.dynamodb : options.sqs, (headers) => {
    // DynamoDB Local keeps one database per access key: every caller reads and writes the same one.
    if (service === 'dynamodb' && typeof headers.authorization === 'string') {
      headers.authorization = headers.authorization.replace(
        /Credential=[^/]+\//,
        `Credential=${options.dynamodbAccessKeyId}/`,
      );
    }
  });
}

function deny(res: ServerResponse, service: 'dynamodb' | 'sqs', error: AccessDeniedError): void {
  if (service === 'dynamodb') {
    const text = JSON.stringify({
      __type: 'com.amazon.coral.service#AccessDeniedException',
      Message: error.message,
    });
    res.writeHead(400, {
      'content-type': 'application/x-amz-json-1.0',
      'content-length': Buffer.byteLength(text),
      'x-amzn-requestid': randomUUID(),
    });
    res.end(text);
    return;
  }
  const text = JSON.stringify({
    __type: 'com.amazon.coral.service#AccessDeniedException',
    message: error.message,
  });
  res.writeHead(403, {
    'content-type': 'application/x-amz-json-1.0',
    'content-length': Buffer.byteLength(text),
    'x-amzn-query-error': 'AccessDenied;Sender',
    'x-amzn-requestid': randomUUID(),
  });
  res.end(text);
}

function forward(
  req: IncomingMessage,
  res: ServerResponse,
  body: Buffer,
  upstream: string,
  edit: (headers: Record<string, string | string[] | undefined>) => void,
): Promise<void> {
  const url = new URL(req.url ?? '/', upstream);
  const headers: Record<string, string | string[] | undefined> = { ...req.headers, host: url.host };
  headers['content-length'] = String(body.length);
  delete headers['transfer-encoding'];
  edit(headers);
  return new Promise<void>((resolve, reject) => {
    const out = request(
      {
        hostname: url.hostname,
        port: url.port,
        path: url.pathname + url.search,
        method: req.method,
        headers,
      },
      (upstreamRes) => {
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
        upstreamRes.pipe(res);
        upstreamRes.on('end', resolve);
        upstreamRes.on('error', reject);
      },
    );
    out.on('error', reject);
    out.end(body);
  });
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new Error('request body too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function parseJson(body: Buffer): Record<string, unknown> | undefined {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as unknown;
    return typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function tableNames(body: Record<string, unknown>): string[] {
  const names = new Set<string>();
  if (typeof body.TableName === 'string') names.add(body.TableName);
  for (const name of Object.keys((body.RequestItems ?? {}) as object)) names.add(name);
  for (const item of (body.TransactItems ?? []) as Array<Record<string, { TableName?: unknown }>>) {
    for (const request of Object.values(item)) {
      if (typeof request?.TableName === 'string') names.add(request.TableName);
    }
  }
  return [...names];
}

/** Key attributes per table, read once from DynamoDB Local (DescribeTable). */
class TableKeyCache {
  private readonly keys = new Map<string, TableKeys | undefined>();
  private readonly client: DynamoDBClient;

  constructor(endpoint: string, region: string, accessKeyId: string) {
    this.client = new DynamoDBClient({
      endpoint,
      region,
      credentials: { accessKeyId, secretAccessKey: 'local' },
      maxAttempts: 2,
    });
  }

  async prefetch(names: string[]): Promise<void> {
    await Promise.all(
      names
        .filter((name) => !this.keys.get(name))
        .map(async (name) => {
          try {
            const out = await this.client.send(new DescribeTableCommand({ TableName: name }));
            const hash = (schema: Array<{ AttributeName?: string; KeyType?: string }> | undefined) =>
              schema?.find((key) => key.KeyType === 'HASH')?.AttributeName ?? '';
            this.keys.set(name, {
              partitionKey: hash(out.Table?.KeySchema),
              indexes: Object.fromEntries(
                [
                  ...(out.Table?.GlobalSecondaryIndexes ?? []),
                  ...(out.Table?.LocalSecondaryIndexes ?? []),
                ].map((index) => [index.IndexName ?? '', hash(index.KeySchema)]),
              ),
            });
          } catch {
            // No such table (yet): authorize without leading keys; DynamoDB answers the call itself.
            this.keys.set(name, undefined);
          }
        }),
    );
  }

  get(name: string): TableKeys | undefined {
    return this.keys.get(name);
  }

  destroy(): void {
    this.client.destroy();
  }
}
