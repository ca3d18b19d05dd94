/**
 * Local AWS IoT emulator: the IoT control plane (restJson1, so the real `@aws-sdk/client-iot` talks to it
 * through `endpoint` / `AWS_ENDPOINT_URL_IOT`), the data-plane Publish, IoT Core's device-facing behaviour
 * (connect with JITR / JITP, presence events, Fleet Provisioning), fault injection and a call log.
 *
 * Every emulator is self-contained (no module-level mutable state); several can run side by side.
 *
 * Introspection routes (for a CLI in another process), all JSON:
 * - `GET /_emulator/health`, `GET /_emulator/state`, `GET /_emulator/ca`
 * - `GET /_emulator/calls` (`?api=`), `DELETE /_emulator/calls`
 * - `GET /_emulator/published` (`?topicPrefix=`), `DELETE /_emulator/published`
 * - `GET /_emulator/faults`, `POST /_emulator/faults` (body: {@link FaultSettings})
 * - `POST /_emulator/connect`, `POST /_emulator/disconnect`, `POST /_emulator/publish` (a connected device
 *   publishes: `{clientId, topic, payload}`; `payload` a JSON value, or a string with `encoding: "base64"`)
 * - `POST /_emulator/fleet/create-certificate-from-csr`, `POST /_emulator/fleet/create-keys-and-certificate`,
 *   `POST /_emulator/fleet/register-thing`
 *
 * @module
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { topicMatches } from '../iot-sql';
import { type CertificateAuthority, createCertificateAuthority } from '../pki';
import { CallLog, type CallRecord, summarizeInput } from './call-log';
import { createHandlers, type Handler, ROUTES, type Route } from './control-plane';
import {
  type ConnectInput,
  type ConnectOutcome,
  DeviceGateway,
  type DevicePublishInput,
  type DevicePublishOutcome,
  type FleetCertificateResponse,
  type FleetRejection,
  type HookInvoker,
  type RegisterThingAccepted,
  type RegisterThingInput,
  type Session,
} from './device';
import { IotError } from './errors';
import {
  type DisconnectReason,
  type PublishedMessage,
  Publisher,
  type PublishMeta,
  type PublishSink,
} from './events';
import { FaultInjector, type FaultSettings } from './faults';
import { buildInput, matchRoute, readBody, sendError, sendJson } from './http-server';
import { Registry } from './registry';
import { type ModelOperation, serviceModelOperations } from './service-model';
import { parseShadowTopic, ShadowService } from './shadow';

export type { CallRecord } from './call-log';
export { ROUTES } from './control-plane';
export type {
  ConnectInput,
  ConnectOutcome,
  ConnectRefusal,
  DevicePublishInput,
  DevicePublishOutcome,
  FleetCertificateResponse,
  FleetRejection,
  HookInvoker,
  PreProvisioningHookEvent,
  RegisterThingAccepted,
  RegisterThingInput,
  Session,
} from './device';
export { isRejection } from './device';
export { ERROR_STATUS, IotError, type IotErrorCode } from './errors';
export type {
  CertificateRegisteredEvent,
  DisconnectReason,
  PresenceConnectedEvent,
  PresenceDisconnectedEvent,
  PublishedMessage,
  PublishMeta,
  PublishSink,
  PublishSource,
  ThingEvent,
  ThingGroupMembershipEvent,
} from './events';
export { topics } from './events';
export {
  AWS_DEFAULT_QUOTAS,
  AWS_FLEET_PROVISIONING_QUOTAS,
  type FaultSettings,
  FLEET_THROTTLED,
  type LatencySetting,
  type QuotaSetting,
} from './faults';
export type { CertificateStatus, Registry } from './registry';

/** Options of {@link startIotEmulator}. */
export interface IotEmulatorOptions {
  /** TCP port; default a free one. */
  port?: number;
  /** Listen address; default 127.0.0.1. */
  host?: string;
  /** Default `123456789012`. */
  accountId?: string;
  /** Default `us-east-1`. */
  region?: string;
  /** Business clock (timestamps, token expiry, certificate validity); default `() => new Date()`. */
  now?: () => Date;
  /** Fault injection; everything off by default. */
  faults?: FaultSettings;
  /** Where published messages go (e.g. the local rules engine), besides `published` and listeners. */
  publish?: PublishSink;
  /** Invokes a pre-provisioning hook Lambda; without it, templates with a hook reject every device. */
  invokeHook?: HookInvoker;
  /** Pre-provisioning hook time limit; AWS: 5000 ms. */
  hookTimeoutMs?: number;
  /** Certificate ownership token lifetime; AWS: one hour. */
  ownershipTokenTtlMs?: number;
  /**
   * IAM for calls over HTTP: called with the caller's access key id (from the SigV4 header), the
   * operation and its input before the operation runs; throws (an {@link IotError}) to deny.
   */
  authorize?: (accessKeyId: string | undefined, api: string, input: Record<string, unknown>) => void;
}

/** SDK client configuration pointing at an emulator. */
export interface EmulatorClientConfig {
  endpoint: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
}

/** A running emulator. Create with {@link startIotEmulator}. */
export class IotEmulator {
  readonly accountId: string;
  readonly region: string;
  readonly registry: Registry;
  readonly devices: DeviceGateway;
  /** The Device Shadow service (classic and named shadows). */
  readonly shadows: ShadowService;
  private readonly callLog = new CallLog();
  private readonly publisher: Publisher;
  private readonly faultInjector: FaultInjector;
  private readonly handlers: Record<string, Handler>;
  private readonly now: () => Date;
  private server?: Server;
  private baseUrl = '';
  private authorizeCall: IotEmulatorOptions['authorize'];

  /** Use {@link startIotEmulator}. */
  constructor(
    options: IotEmulatorOptions,
    /** The emulator's own CA (plays "Amazon Root CA"): signs certificates from CSRs and key generation. */
    readonly issuer: CertificateAuthority,
  ) {
    this.accountId = options.accountId ?? '123456789012';
    this.region = options.region ?? 'us-east-1';
    this.authorizeCall = options.authorize;
    this.now = options.now ?? (() => new Date());
    this.publisher = new Publisher(options.publish, this.now);
    this.faultInjector = new FaultInjector(options.faults);
    this.registry = new Registry({
      accountId: this.accountId,
      region: this.region,
      now: this.now,
      publisher: this.publisher,
    });
    this.devices = new DeviceGateway({
      accountId: this.accountId,
      now: this.now,
      registry: this.registry,
      publisher: this.publisher,
      issuer,
      invokeHook: options.invokeHook,
      hookTimeoutMs: options.hookTimeoutMs ?? 5000,
      ownershipTokenTtlMs: options.ownershipTokenTtlMs ?? 3_600_000,
      issuedNotAfter: new Date('2049-12-31T23:59:59Z'),
      takeFleetToken: (operation) => this.faultInjector.takeFleetToken(operation),
    });
    this.shadows = new ShadowService(this.publisher, this.now);
    // A device's publish on a shadow request topic is a Device Shadow service request.
    this.publisher.onPublish((message) => {
      if (message.meta.source === 'device' && parseShadowTopic(message.topic)) {
        void this.shadows.handleMqtt(message.topic, message.payload);
      }
    });
    this.handlers = createHandlers({
      shadows: this.shadows,
      registry: this.registry,
      accountId: this.accountId,
      endpointAddress: (type) => {
        if (type !== 'iot:Data' && type !== 'iot:Data-ATS') {
          throw new IotError(
            'NotEmulatedException',
            `DescribeEndpoint ${type}: the local stack serves no ${type === 'iot:Jobs' ? 'Jobs' : 'credential provider'} endpoint`,
          );
        }
        const mqtt = this.mqttEndpoint;
        if (!mqtt) {
          throw new IotError(
            'NotEmulatedException',
            'DescribeEndpoint: no local MQTT endpoint is running with this emulator (startMqttBroker attaches one)',
          );
        }
        // What a client can connect to: the address alone when the endpoint is on IoT Core's port (a
        // client that appends :8883 works unchanged), otherwise with its port.
        return mqtt.port === 8883 ? mqtt.host : `${mqtt.host}:${mqtt.port}`;
      },
      createCertificateFromCsr: (csr, setAsActive) =>
        this.devices.issueFromCsr(csr, setAsActive ? 'ACTIVE' : 'INACTIVE'),
      createKeysAndCertificate: (setAsActive) =>
        this.devices.issueWithKeys(setAsActive ? 'ACTIVE' : 'INACTIVE'),
      createProvisioningClaim: (templateName) => this.devices.issueProvisioningClaim(templateName),
      publish: async (input) => {
        const topic = input.topic;
        if (typeof topic !== 'string' || topic.length === 0 || topic.length > 256) {
          throw new IotError('InvalidRequestException', 'topic is required (at most 256 characters)');
        }
        const qos = input.qos ?? 0;
        if (qos !== 0 && qos !== 1) throw new IotError('InvalidRequestException', 'qos must be 0 or 1');
        const payload = Buffer.isBuffer(input.payload) ? input.payload : Buffer.alloc(0);
        if (payload.length > 128 * 1024)
          throw new IotError('InvalidRequestException', 'payload exceeds 128 KB');
        await this.publisher.publish(topic, payload, {
          source: 'data-plane',
          qos,
          retain: input.retain === true,
          ...mqtt5PublishMeta(input),
        });
      },
    });
  }

  /** The MQTT device endpoint serving this emulator's devices, when one is running. */
  mqttEndpoint?: { host: string; port: number };

  /** Called by the MQTT endpoint (local/mqtt/broker.ts) when it starts (and with undefined when it stops). */
  setMqttEndpoint(endpoint: { host: string; port: number } | undefined): void {
    this.mqttEndpoint = endpoint;
  }

  /** `http://127.0.0.1:<port>`: pass as `endpoint` to IoTClient and IoTDataPlaneClient. */
  get endpoint(): string {
    return this.baseUrl;
  }

  /** The listening port. */
  get port(): number {
    return Number(new URL(this.baseUrl).port);
  }

  /** A ready-to-spread SDK client configuration (dummy credentials). */
  clientConfig(): EmulatorClientConfig {
    return {
      endpoint: this.baseUrl,
      region: this.region,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    };
  }

  /** Every call so far (control plane and data plane). */
  get calls(): readonly CallRecord[] {
    return this.callLog.records;
  }

  /** Number of calls to `api`, optionally with `outcome` (`ok` or an error code such as `ThrottlingException`). */
  callCount(api: string, outcome?: string): number {
    return this.callLog.count(api, outcome);
  }

  /** Forgets the call log. */
  clearCalls(): void {
    this.callLog.clear();
  }

  /** Every message published so far (presence, registration, registry events, data-plane Publish). */
  get published(): readonly PublishedMessage[] {
    return this.publisher.log;
  }

  /** Published messages whose topic starts with `prefix`. */
  publishedOn(prefix: string): PublishedMessage[] {
    return this.publisher.log.filter((m) => m.topic.startsWith(prefix));
  }

  /** Listens to every published message; returns an unsubscribe function. */
  onPublish(listener: (message: PublishedMessage) => void): () => void {
    return this.publisher.onPublish(listener);
  }

  /**
   * Resolves with the first message published on a topic matching `topicFilter` (MQTT wildcards) from now
   * on, or rejects after `timeoutMs` (default 10 s). Messages already in the log do not count: subscribe
   * before the action that publishes, as a device would.
   */
  nextPublished(topicFilter: string, timeoutMs = 10_000): Promise<PublishedMessage> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`nothing was published on ${topicFilter} within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.publisher.onPublish((message) => {
        if (!topicMatches(topicFilter, message.topic)) return;
        clearTimeout(timer);
        off();
        resolve(message);
      });
    });
  }

  /** Sets (or clears) the IAM check for calls over HTTP (see {@link IotEmulatorOptions.authorize}). */
  setAuthorizer(authorize: IotEmulatorOptions['authorize']): void {
    this.authorizeCall = authorize;
  }

  /** Replaces the fault settings at runtime (omitted fields are off). */
  setFaults(settings: FaultSettings): void {
    this.faultInjector.set(settings);
  }

  /** The current fault settings. */
  faults(): FaultSettings {
    return this.faultInjector.get();
  }

  /**
   * Calls an operation directly (no HTTP), with the same faults, quotas and call logging as over HTTP.
   * Throws {@link IotError}.
   */
  async invoke(api: string, input: Record<string, unknown> = {}, caller?: string): Promise<unknown> {
    const handler = this.handlers[api];
    if (!handler) throw new IotError('InvalidRequestException', `Unknown operation ${api}`);
    const started = performance.now();
    const at = this.now().toISOString();
    try {
      // Quotas are judged on arrival; latency and injected errors apply to admitted and throttled calls alike.
      let throttled: unknown;
      try {
        this.faultInjector.takeToken(api);
      } catch (error) {
        throttled = error;
      }
      const latency = this.faultInjector.latencyFor(api, caller);
      if (latency > 0) await sleep(latency);
      if (throttled) throw throttled;
      this.faultInjector.maybeFail(api, caller);
      const output = await handler(input);
      this.log(api, input, 'ok', at, started);
      return output;
    } catch (error) {
      const iotError =
        error instanceof IotError
          ? error
          : new IotError('InternalFailureException', error instanceof Error ? error.message : String(error));
      this.log(api, input, iotError.code, at, started);
      throw iotError;
    }
  }

  private log(
    api: string,
    input: Record<string, unknown>,
    outcome: string,
    at: string,
    started: number,
  ): void {
    this.callLog.add({
      api,
      input: summarizeInput(input),
      outcome,
      at,
      durationMs: performance.now() - started,
    });
  }

  // ---------------------------------------------------------------- device-facing

  /** A device connects with its certificate (JITR / JITP happen here). */
  connect(input: ConnectInput): Promise<ConnectOutcome> {
    return this.devices.connect(input);
  }

  /** A device disconnects (default reason CLIENT_INITIATED_DISCONNECT). */
  disconnect(input: {
    clientId: string;
    sessionIdentifier?: string;
    reason?: DisconnectReason;
  }): Promise<boolean> {
    return this.devices.disconnect(input);
  }

  /** A connected device publishes on a topic (routed with its certificate as `principal()`). */
  publish(input: DevicePublishInput): Promise<DevicePublishOutcome> {
    return this.devices.publish(input);
  }

  /** Live sessions by client id. */
  get sessions(): ReadonlyMap<string, Session> {
    return this.devices.sessions;
  }

  /** Fleet provisioning CreateCertificateFromCsr. */
  createCertificateFromCsr(input: { csr: string }): Promise<FleetCertificateResponse | FleetRejection> {
    return this.devices.createCertificateFromCsr(input);
  }

  /** Fleet provisioning CreateKeysAndCertificate. */
  createKeysAndCertificate(): Promise<FleetCertificateResponse | FleetRejection> {
    return this.devices.createKeysAndCertificate();
  }

  /** Fleet provisioning RegisterThing. */
  registerThing(input: RegisterThingInput): Promise<RegisterThingAccepted | FleetRejection> {
    return this.devices.registerThing(input);
  }

  /** JSON summary of the registry and sessions (what `GET /_emulator/state` returns). */
  state(): Record<string, unknown> {
    const r = this.registry;
    return {
      accountId: this.accountId,
      region: this.region,
      caCertificates: [...r.cas.values()].map((ca) => ({
        certificateId: ca.certificateId,
        status: ca.status,
        autoRegistrationStatus: ca.autoRegistrationStatus,
        hasTemplate: Boolean(ca.registrationConfig?.templateBody || ca.registrationConfig?.templateName),
      })),
      certificates: [...r.certificates.values()].map((c) => ({
        certificateId: c.certificateId,
        status: c.status,
        caCertificateId: c.caCertificateId,
        things: [...(r.principalThings.get(c.certificateArn) ?? [])],
        policies: [...(r.targetPolicies.get(c.certificateArn) ?? [])],
      })),
      things: [...r.things.values()].map((t) => ({
        thingName: t.thingName,
        version: t.version,
        attributes: t.attributes,
        principals: [...t.principals],
        groups: [...t.groups],
      })),
      thingGroups: [...r.thingGroups.values()].map((g) => ({
        thingGroupName: g.thingGroupName,
        parentGroupName: g.parentGroupName,
        things: g.things.size,
      })),
      policies: [...r.policies.values()].map((p) => ({ policyName: p.policyName, targets: [...p.targets] })),
      provisioningTemplates: [...r.templates.values()].map((t) => ({
        templateName: t.templateName,
        enabled: t.enabled,
        hook: t.preProvisioningHook?.targetArn,
      })),
      eventConfigurations: Object.fromEntries(r.eventConfigurations),
      sessions: [...this.devices.sessions.values()],
      faults: this.faults(),
      calls: this.callLog.records.length,
      published: this.publisher.log.length,
    };
  }

  // ---------------------------------------------------------------- HTTP

  /** Starts listening. */
  async listen(port = 0, host = '127.0.0.1'): Promise<void> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) sendError(res, new IotError('InternalFailureException', String(error)));
        else res.destroy();
      });
    });
    server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // A factory line powering on at once (`fleetgate simulate --burst`) opens ~1,000 connections
      // together: a deeper accept queue than node's default 511 (the kernel caps it at somaxconn).
      server.listen({ port, host, backlog: 2048 }, () => resolve());
    });
    this.server = server;
    const address = server.address() as AddressInfo;
    this.baseUrl = `http://${host}:${address.port}`;
  }

  /** Stops the server (closes idle keep-alive connections too). */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://emulator');
    const rawPath = (req.url ?? '/').split('?')[0] ?? '/';
    if (rawPath.startsWith('/_emulator/')) return this.handleIntrospection(req, res, url);
    let api = 'Unknown';
    let input: Record<string, unknown> = {};
    let caller: string | undefined;
    try {
      const match = matchRoute(ROUTES, req.method ?? 'GET', rawPath);
      const body = await readBody(req);
      if (!match) {
        // A real operation the emulator does not serve fails as such, never with a plausible answer
        // (a 404 would read as "does not exist" to code that creates what is missing).
        const modelled = matchRoute(serviceModelOperations() as Route[], req.method ?? 'GET', rawPath);
        if (modelled) {
          api = modelled.route.api;
          throw new IotError(
            'NotEmulatedException',
            `${api} is an AWS IoT ${(modelled.route as ModelOperation).service === 'iot-data' ? 'data-plane' : 'control-plane'} operation that the local IoT emulator does not emulate`,
          );
        }
        throw new IotError(
          'NotEmulatedException',
          `No AWS IoT operation is bound to ${req.method} ${rawPath} (the local IoT emulator serves the operations in local/iot-emulator/control-plane.ts)`,
        );
      }
      api = match.route.api;
      input = buildInput(match.route, match.labels, url, req.headers, body);
      const authorization = req.headers.authorization;
      const accessKeyId =
        typeof authorization === 'string' ? /Credential=([^/,\s]+)\//.exec(authorization)?.[1] : undefined;
      caller = accessKeyId;
      this.authorizeCall?.(accessKeyId, api, input);
    } catch (error) {
      const iotError =
        error instanceof IotError ? error : new IotError('InvalidRequestException', String(error));
      this.log(api, input, iotError.code, this.now().toISOString(), performance.now());
      return sendError(res, iotError);
    }
    try {
      const output = await this.invoke(api, input, caller);
      sendJson(res, 200, output);
    } catch (error) {
      sendError(res, error as IotError);
    }
  }

  private async handleIntrospection(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const route = `${req.method} ${url.pathname}`;
    const bodyOf = async (): Promise<Record<string, unknown>> => {
      const raw = await readBody(req);
      if (raw.length === 0) return {};
      const parsed: unknown = JSON.parse(raw.toString('utf8'));
      return typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
    };
    try {
      switch (route) {
        case 'GET /_emulator/health':
          return sendJson(res, 200, { ok: true, endpoint: this.endpoint });
        case 'GET /_emulator/state':
          return sendJson(res, 200, this.state());
        case 'GET /_emulator/ca':
          return sendJson(res, 200, {
            certificatePem: this.issuer.certificatePem,
            certificateId: this.issuer.certificateId,
          });
        case 'GET /_emulator/calls': {
          const api = url.searchParams.get('api');
          return sendJson(res, 200, { calls: this.calls.filter((c) => api === null || c.api === api) });
        }
        case 'DELETE /_emulator/calls':
          this.clearCalls();
          return sendJson(res, 200, { ok: true });
        case 'GET /_emulator/published': {
          const prefix = url.searchParams.get('topicPrefix') ?? '';
          return sendJson(res, 200, {
            messages: this.publishedOn(prefix).map((m) => ({
              topic: m.topic,
              meta: m.meta,
              payload: m.json ?? m.payload.toString('base64'),
              encoding: m.json === undefined ? 'base64' : 'json',
            })),
          });
        }
        case 'DELETE /_emulator/published':
          this.publisher.log.length = 0;
          return sendJson(res, 200, { ok: true });
        case 'GET /_emulator/faults':
          return sendJson(res, 200, this.faults());
        case 'POST /_emulator/faults':
          this.setFaults((await bodyOf()) as FaultSettings);
          return sendJson(res, 200, this.faults());
        case 'POST /_emulator/connect':
          return sendJson(res, 200, await this.connect((await bodyOf()) as unknown as ConnectInput));
        case 'POST /_emulator/disconnect': {
          const body = (await bodyOf()) as { clientId: string; reason?: DisconnectReason };
          return sendJson(res, 200, { disconnected: await this.disconnect(body) });
        }
        case 'POST /_emulator/publish': {
          const body = await bodyOf();
          const payload =
            body.encoding === 'base64' && typeof body.payload === 'string'
              ? Buffer.from(body.payload, 'base64')
              : typeof body.payload === 'string'
                ? body.payload
                : JSON.stringify(body.payload ?? null);
          const outcome = await this.publish({
            clientId: String(body.clientId ?? ''),
            topic: String(body.topic ?? ''),
            payload,
            ...(body.qos === 1 ? { qos: 1 as const } : {}),
          });
          return sendJson(
            res,
            200,
            outcome.accepted
              ? { accepted: true, topic: outcome.message.topic, meta: outcome.message.meta }
              : outcome,
          );
        }
        case 'POST /_emulator/fleet/create-certificate-from-csr':
          return sendJson(res, 200, await this.createCertificateFromCsr((await bodyOf()) as { csr: string }));
        case 'POST /_emulator/fleet/create-keys-and-certificate':
          return sendJson(res, 200, await this.createKeysAndCertificate());
        case 'POST /_emulator/fleet/register-thing':
          return sendJson(
            res,
            200,
            await this.registerThing((await bodyOf()) as unknown as RegisterThingInput),
          );
        default:
          return sendError(res, new IotError('ResourceNotFoundException', `No emulator route ${route}`));
      }
    } catch (error) {
      return sendError(
        res,
        error instanceof IotError ? error : new IotError('InvalidRequestException', String(error)),
      );
    }
  }
}

/**
 * The MQTT 5 properties of a data-plane Publish, as the API reference binds them: `contentType`,
 * `responseTopic`, `messageExpiry` in the query, `x-amz-mqtt5-user-properties` (base64 of a JSON array
 * of one-pair objects), `x-amz-mqtt5-payload-format-indicator` (`UNSPECIFIED_BYTES` | `UTF8_DATA`) and
 * `x-amz-mqtt5-correlation-data` (base64) in headers.
 * @see https://docs.aws.amazon.com/iot/latest/apireference/API_iotdata_Publish.html
 */
function mqtt5PublishMeta(input: Record<string, unknown>): { mqtt5?: PublishMeta['mqtt5'] } {
  const properties: Record<string, unknown> = {};
  if (typeof input.contentType === 'string') properties.contentType = input.contentType;
  if (typeof input.responseTopic === 'string') properties.responseTopic = input.responseTopic;
  const format = input.payloadFormatIndicator;
  if (format !== undefined) {
    if (format !== 'UNSPECIFIED_BYTES' && format !== 'UTF8_DATA')
      throw new IotError(
        'InvalidRequestException',
        'payloadFormatIndicator must be UNSPECIFIED_BYTES or UTF8_DATA',
      );
    properties.payloadFormatIndicator = format === 'UTF8_DATA';
  }
  if (typeof input.correlationData === 'string')
    properties.correlationData = Buffer.from(input.correlationData, 'base64');
  if (typeof input.userProperties === 'string') {
    let pairs: unknown;
    try {
      pairs = JSON.parse(Buffer.from(input.userProperties, 'base64').toString('utf8'));
    } catch {
      throw new IotError('InvalidRequestException', 'userProperties must be a JSON array of objects');
    }
    if (!Array.isArray(pairs))
      throw new IotError('InvalidRequestException', 'userProperties must be a JSON array');
    const user: Record<string, string | string[]> = {};
    for (const pair of pairs) {
      if (typeof pair !== 'object' || pair === null)
        throw new IotError('InvalidRequestException', 'invalid userProperties');
      for (const [key, value] of Object.entries(pair as Record<string, unknown>)) {
        const text = String(value);
        const existing = user[key];
        user[key] =
          existing === undefined ? text : [...(Array.isArray(existing) ? existing : [existing]), text];
      }
    }
    properties.userProperties = user;
  }
  const expiry = input.messageExpiry;
  const mqtt5: NonNullable<PublishMeta['mqtt5']> = {
    ...(Object.keys(properties).length > 0 ? { properties } : {}),
    ...(typeof expiry === 'number' ? { messageExpiryInterval: expiry } : {}),
  };
  return Object.keys(mqtt5).length > 0 ? { mqtt5 } : {};
}

/**
 * Starts an emulator on 127.0.0.1 (a free port unless `options.port`). Resolves once it is listening;
 * call `stop()` when done.
 */
export async function startIotEmulator(options: IotEmulatorOptions = {}): Promise<IotEmulator> {
  const issuer = await createCertificateAuthority({
    subject: { commonName: 'fleetgate IoT emulator CA', organization: 'fleetgate local' },
    notBefore: new Date('2020-01-01T00:00:00Z'),
    notAfter: new Date('2050-01-01T00:00:00Z'),
  });
  const emulator = new IotEmulator(options, issuer);
  await emulator.listen(options.port ?? 0, options.host ?? '127.0.0.1');
  return emulator;
}
