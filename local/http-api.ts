/**
 * The local API Gateway HTTP API: the `httpApi` routes of serverless.yml served on 127.0.0.1, with
 * their JWT authorizers, invoking the function with the payload format 2.0 event and mapping its
 * answer back, as API Gateway does.
 * @see https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html
 * @see https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-jwt-authorizer.html
 *
 * JWT authorizer, as API Gateway documents it: the token comes from the identity source (the
 * `Authorization` header, with or without `Bearer `); its signature must verify against the
 * issuer's keys, `iss` must equal the issuer, `aud` or `client_id` must be one of the audiences,
 * `exp` must be in the future and `nbf`/`iat` not in it (no leeway here: stricter). Any failure is
 * `401 {"message":"Unauthorized"}` and the function is not invoked. The verified claims reach the
 * function as `requestContext.authorizer.jwt.claims`.
 *
 * The issuer's keys: no IdP runs locally (Cognito is not emulated), so the local stack is the issuer
 * every authorizer names — it holds one RSA key, signs tokens for an installer on request
 * (`POST /.local-idp/token`, local only; `fleetgate installer token`) and verifies with that key.
 * A token from any other key, issuer or audience is refused.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWTPayload, jwtVerify, SignJWT } from 'jose';
import { listenLoopback } from './net';
import type { FunctionSpec, HttpRouteSpec, JwtAuthorizerSpec } from './stack-model';

export interface HttpApiOptions {
  functions: readonly FunctionSpec[];
  authorizers: Readonly<Record<string, JwtAuthorizerSpec>>;
  region: string;
  accountId: string;
  invoke: (functionName: string, event: unknown) => Promise<unknown>;
  port?: number;
  /** Epoch ms; tests move it. */
  clock?: () => number;
}

export interface LocalHttpApi {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly routes: ReadonlyArray<HttpRouteSpec & { functionName: string }>;
  /** Signs a token as `authorizer`'s issuer for `subject` (an installer), valid `ttlSeconds`. */
  issueToken(
    subject: string,
    options?: {
      authorizer?: string;
      ttlSeconds?: number;
      claims?: Record<string, unknown>;
      /** Sign for another issuer or audience than the authorizer's (tests of the authorizer). */
      issuer?: string;
      audience?: string;
    },
  ): Promise<string>;
  stop(): Promise<void>;
}

const UNAUTHORIZED = { message: 'Unauthorized' };
const MAX_BODY_BYTES = 10 * 1024 * 1024; // API Gateway's payload limit.
const API_ID = 'localapi';

export async function startHttpApi(options: HttpApiOptions): Promise<LocalHttpApi> {
  const clock = options.clock ?? Date.now;
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const kid = randomUUID();
  const routes = options.functions.flatMap((fn) =>
    fn.httpApi.map((route) => ({ ...route, functionName: fn.name })),
  );
  for (const route of routes) {
    if (route.authorizer && !options.authorizers[route.authorizer]) {
      throw new Error(`route ${route.method} ${route.path}: authorizer ${route.authorizer} is not declared`);
    }
  }

  const issueToken: LocalHttpApi['issueToken'] = async (subject, tokenOptions = {}) => {
    const name = tokenOptions.authorizer ?? Object.keys(options.authorizers)[0];
    const authorizer = name ? options.authorizers[name] : undefined;
    if (!authorizer) throw new Error('no JWT authorizer is declared (provider.httpApi.authorizers)');
    const now = Math.floor(clock() / 1000);
    return new SignJWT({ token_use: 'id', ...tokenOptions.claims })
      .setProtectedHeader({ alg: 'RS256', kid })
      .setSubject(subject)
      .setIssuer(tokenOptions.issuer ?? authorizer.issuer)
      .setAudience(tokenOptions.audience ?? authorizer.audience[0] ?? '')
      .setIssuedAt(now)
      .setExpirationTime(now + (tokenOptions.ttlSeconds ?? 3600))
      .sign(privateKey);
  };

  const server: Server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      if (!response.headersSent) send(response, 500, { message: 'Internal Server Error' });
      process.stderr.write(`http api: ${error instanceof Error ? error.message : String(error)}\n`);
    });
  });

  const localIdp = async (method: string, path: string, body: Buffer, response: ServerResponse) => {
    if (path === '/.local-idp/token' && method === 'POST') {
      await localToken(body, response);
      return true;
    }
    if (path === '/.local-idp/jwks.json' && method === 'GET') {
      send(response, 200, { keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' }] });
      return true;
    }
    return false;
  };

  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const url = new URL(request.url ?? '/', 'http://127.0.0.1');
    const method = (request.method ?? 'GET').toUpperCase();
    const body = await readBody(request);
    if (body === undefined) return send(response, 413, { message: 'Request Entity Too Large' });
    if (await localIdp(method, url.pathname, body, response)) return;
    const route = routes.find((candidate) => candidate.method === method && candidate.path === url.pathname);
    if (!route) return send(response, 404, { message: 'Not Found' });
    return serveRoute({ request, response, url, route, body }, options, publicKey, clock);
  };

  const localToken = async (body: Buffer, response: ServerResponse) => {
    let input: { subject?: unknown; authorizer?: unknown; ttlSeconds?: unknown };
    try {
      input = JSON.parse(body.toString('utf8') || '{}') as typeof input;
    } catch {
      return send(response, 400, { message: 'body: must be JSON' });
    }
    if (typeof input.subject !== 'string' || input.subject === '') {
      return send(response, 400, { message: 'subject: is required (the installer id)' });
    }
    try {
      const token = await issueToken(input.subject, {
        ...(typeof input.authorizer === 'string' ? { authorizer: input.authorizer } : {}),
        ...(typeof input.ttlSeconds === 'number' ? { ttlSeconds: input.ttlSeconds } : {}),
      });
      return send(response, 200, { token });
    } catch (error) {
      return send(response, 400, { message: (error as Error).message });
    }
  };

  await listenLoopback(server, options.port ?? 0);
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    routes,
    issueToken,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Authorizes and invokes one route's function, answering as API Gateway does. */
async function serveRoute(
  call: {
    request: IncomingMessage;
    response: ServerResponse;
    url: URL;
    route: HttpRouteSpec & { functionName: string };
    body: Buffer;
  },
  options: HttpApiOptions,
  key: Parameters<typeof jwtVerify>[1] & object,
  clock: () => number,
): Promise<void> {
  const { request, response, route } = call;
  const authorizer = route.authorizer ? options.authorizers[route.authorizer] : undefined;
  const claims = authorizer ? await verify(request, authorizer, key, clock) : undefined;
  if (authorizer && !claims) {
    response.setHeader('www-authenticate', 'Bearer');
    return send(response, 401, UNAUTHORIZED);
  }
  const event = payloadV2(request, call.url, route, call.body, claims, options, clock());
  let result: unknown;
  try {
    result = await options.invoke(route.functionName, event);
  } catch {
    return send(response, 500, { message: 'Internal Server Error' });
  }
  respond(response, result);
}

/** The verified claims of the request's token, or undefined (then the answer is 401). */
async function verify(
  request: IncomingMessage,
  authorizer: JwtAuthorizerSpec,
  key: Parameters<typeof jwtVerify>[1] & object,
  clock: () => number,
): Promise<JWTPayload | undefined> {
  const header = headerOf(request, authorizer.identitySource);
  if (!header) return undefined;
  const token = header.replace(/^Bearer\s+/i, '').trim();
  try {
    const { payload } = await jwtVerify(token, key, {
      issuer: authorizer.issuer,
      algorithms: ['RS256'],
      currentDate: new Date(clock()),
      requiredClaims: ['exp'],
    });
    const audiences = [payload.aud ?? [], payload.client_id ?? []].flat().map(String);
    if (!audiences.some((audience) => authorizer.audience.includes(audience))) return undefined;
    const nowSeconds = Math.floor(clock() / 1000);
    if (typeof payload.iat === 'number' && payload.iat > nowSeconds) return undefined;
    return payload;
  } catch {
    return undefined;
  }
}

/** `$request.header.Authorization` → the header's value. */
function headerOf(request: IncomingMessage, identitySource: string): string | undefined {
  const name = identitySource.replace(/^\$request\.header\./i, '').toLowerCase();
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

async function readBody(request: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

const TEXT_TYPES = /^(text\/|application\/(json|xml|javascript|x-www-form-urlencoded)|[^;]*\+json)/i;

/** The payload format 2.0 event API Gateway sends. JWT claims reach the function as strings. */
function payloadV2(
  request: IncomingMessage,
  url: URL,
  route: HttpRouteSpec,
  body: Buffer,
  claims: JWTPayload | undefined,
  options: Pick<HttpApiOptions, 'accountId'>,
  nowMs: number,
): unknown {
  const headers = headersOf(request);
  const contentType = headers['content-type'] ?? '';
  const text = body.length === 0 || contentType === '' || TEXT_TYPES.test(contentType);
  const routeKey = `${route.method} ${route.path}`;
  return {
    version: '2.0',
    routeKey,
    rawPath: url.pathname,
    rawQueryString: url.search.replace(/^\?/, ''),
    headers,
    ...(url.search ? { queryStringParameters: Object.fromEntries(url.searchParams) } : {}),
    requestContext: {
      accountId: options.accountId,
      apiId: API_ID,
      ...(claims ? { authorizer: { jwt: { claims: claimStrings(claims), scopes: null } } } : {}),
      domainName: headers.host ?? '127.0.0.1',
      domainPrefix: API_ID,
      http: {
        method: route.method,
        path: url.pathname,
        protocol: `HTTP/${request.httpVersion}`,
        sourceIp: request.socket.remoteAddress ?? '127.0.0.1',
        userAgent: headers['user-agent'] ?? '',
      },
      requestId: randomUUID(),
      routeKey,
      stage: '$default',
      time: new Date(nowMs).toUTCString(),
      timeEpoch: nowMs,
    },
    ...(body.length > 0
      ? { body: text ? body.toString('utf8') : body.toString('base64'), isBase64Encoded: !text }
      : { isBase64Encoded: false }),
  };
}

function headersOf(request: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (value !== undefined) headers[name.toLowerCase()] = Array.isArray(value) ? value.join(',') : value;
  }
  return headers;
}

/** JWT claims as API Gateway passes them: every value a string. */
function claimStrings(claims: JWTPayload): Record<string, string> {
  return Object.fromEntries(
    Object.entries(claims).map(([name, value]) => [
      name,
      typeof value === 'string' ? value : JSON.stringify(value),
    ]),
  );
}

/** The function's answer as API Gateway maps payload 2.0 responses. */
function respond(response: ServerResponse, result: unknown): void {
  const structured =
    typeof result === 'object' && result !== null && 'statusCode' in result
      ? (result as {
          statusCode: number;
          headers?: Record<string, string>;
          body?: string;
          isBase64Encoded?: boolean;
        })
      : undefined;
  if (!structured) {
    send(response, 200, result ?? null);
    return;
  }
  for (const [name, value] of Object.entries(structured.headers ?? {}))
    response.setHeader(name, String(value));
  response.statusCode = structured.statusCode;
  const body = structured.body ?? '';
  response.end(structured.isBase64Encoded ? Buffer.from(body, 'base64') : body);
}

function send(response: ServerResponse, status: number, body: unknown): void {
  response.statusCode = status;
  response.setHeader('content-type', 'application/json');
  response.end(JSON.stringify(body));
}
