/**
 * The Device Shadow service, classic and named shadows: get / update / delete over MQTT
 * (`$aws/things/<thing>/shadow[/name/<shadow>]/<op>` → `/accepted`, `/rejected`, `/update/delta`,
 * `/update/documents`) and over the data-plane HTTP API (GetThingShadow, UpdateThingShadow,
 * DeleteThingShadow, ListNamedShadowsForThing).
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-mqtt.html
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-document.html
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-error-messages.html
 */
import { IotError } from './errors';
import type { Publisher } from './events';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/** AWS's limits (AWS General Reference, "AWS IoT Device Shadow service quotas"). */
export const SHADOW_LIMITS = {
  /** Size of the state document (desired and reported) in bytes. */
  stateBytes: 8 * 1024,
  /** Levels of nesting in the desired or reported section. */
  depth: 6,
  /** clientToken length in bytes. */
  clientTokenBytes: 64,
  /** Named shadows' names. */
  shadowNameLength: 64,
  thingNameLength: 128,
} as const;

const NAME = /^[a-zA-Z0-9:_-]+$/;

interface ShadowRecord {
  desired?: JsonObject;
  reported?: JsonObject;
  /** Epoch seconds per leaf, mirroring desired / reported. */
  metadata: { desired?: JsonObject; reported?: JsonObject };
  version: number;
}

/** A shadow request's outcome: the reply document, or AWS's error (code, message). */
export type ShadowOutcome = { ok: true; document: JsonObject } | { ok: false; code: number; message: string };

/** Thrown inside the service; becomes a `/rejected` message or an HTTP error. */
class ShadowError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** A shadow request topic: `$aws/things/<thing>/shadow[/name/<shadow>]/(get|update|delete)`. */
export function parseShadowTopic(
  topic: string,
): { thingName: string; shadowName?: string; operation: 'get' | 'update' | 'delete' } | undefined {
  const match = /^\$aws\/things\/([^/]+)\/shadow(?:\/name\/([^/]+))?\/(get|update|delete)$/.exec(topic);
  if (!match) return undefined;
  return {
    thingName: match[1] as string,
    ...(match[2] !== undefined ? { shadowName: match[2] } : {}),
    operation: match[3] as 'get' | 'update' | 'delete',
  };
}

function shadowTopic(thingName: string, shadowName: string | undefined): string {
  return `$aws/things/${thingName}/shadow${shadowName !== undefined ? `/name/${shadowName}` : ''}`;
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function depth(value: Json): number {
  if (!isObject(value)) return 0;
  let deepest = 0;
  for (const child of Object.values(value)) deepest = Math.max(deepest, depth(child));
  return deepest + 1;
}

/** Merges `patch` into `target`: a null deletes the key, objects merge, anything else replaces. */
function merge(target: JsonObject | undefined, patch: JsonObject): JsonObject | undefined {
  const out: JsonObject = { ...(target ?? {}) };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else if (isObject(value)) {
      const merged = merge(isObject(out[key]) ? (out[key] as JsonObject) : undefined, value);
      if (merged === undefined) delete out[key];
      else out[key] = merged;
    } else out[key] = value;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** Metadata for what `patch` set: the same shape with `{ timestamp }` at every leaf. */
function stamp(patch: JsonObject, timestamp: number): JsonObject {
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(patch)) {
    out[key] = isObject(value) ? stamp(value, timestamp) : { timestamp };
  }
  return out;
}

function mergeMetadata(
  target: JsonObject | undefined,
  patch: JsonObject,
  timestamp: number,
): JsonObject | undefined {
  const out: JsonObject = { ...(target ?? {}) };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else if (isObject(value)) {
      const existing = out[key];
      const merged = mergeMetadata(
        isObject(existing) && !('timestamp' in existing) ? existing : undefined,
        value,
        timestamp,
      );
      if (merged === undefined) delete out[key];
      else out[key] = merged;
    } else out[key] = { timestamp };
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

function equal(a: Json | undefined, b: Json | undefined): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** desired − reported: what the device has not reported yet (objects compared key by key). */
function delta(desired: JsonObject | undefined, reported: JsonObject | undefined): JsonObject | undefined {
  if (!desired) return undefined;
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(desired)) {
    const current = reported?.[key];
    if (isObject(value) && isObject(current)) {
      const inner = delta(value, current);
      if (inner) out[key] = inner;
    } else if (!equal(value, current)) out[key] = value;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** The metadata of the keys in `shape` (for the delta's metadata). */
function pick(metadata: JsonObject | undefined, shape: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(shape)) {
    const entry = metadata?.[key];
    if (entry === undefined) continue;
    out[key] = isObject(value) && isObject(entry) && !('timestamp' in entry) ? pick(entry, value) : entry;
  }
  return out;
}

/** The shadows of one emulator. */
export class ShadowService {
  private readonly shadows = new Map<string, ShadowRecord>();
  /** Versions survive a delete: the next update continues from them. */
  private readonly versions = new Map<string, number>();

  constructor(
    private readonly publisher: Publisher,
    private readonly now: () => Date,
  ) {}

  private key(thingName: string, shadowName: string | undefined): string {
    return `${thingName}\u0000${shadowName ?? ''}`;
  }

  private check(thingName: string, shadowName: string | undefined): void {
    if (thingName.length > SHADOW_LIMITS.thingNameLength || !NAME.test(thingName)) {
      throw new ShadowError(400, 'Invalid thing name');
    }
    if (
      shadowName !== undefined &&
      (shadowName.length > SHADOW_LIMITS.shadowNameLength || !NAME.test(shadowName))
    ) {
      throw new ShadowError(400, 'Invalid shadow name');
    }
  }

  private notFound(thingName: string, shadowName: string | undefined): ShadowError {
    return new ShadowError(404, `No shadow exists with name: '${shadowName ?? thingName}'`);
  }

  /** The whole shadow document (GetThingShadow, `/get/accepted`). */
  private documentOf(record: ShadowRecord): JsonObject {
    const state: JsonObject = {};
    if (record.desired) state.desired = record.desired;
    if (record.reported) state.reported = record.reported;
    const d = delta(record.desired, record.reported);
    if (d) state.delta = d;
    const metadata: JsonObject = {};
    if (record.metadata.desired) metadata.desired = record.metadata.desired;
    if (record.metadata.reported) metadata.reported = record.metadata.reported;
    return { state, metadata, version: record.version, timestamp: this.seconds() };
  }

  private seconds(): number {
    return Math.floor(this.now().getTime() / 1000);
  }

  get(thingName: string, shadowName?: string): JsonObject {
    this.check(thingName, shadowName);
    const record = this.shadows.get(this.key(thingName, shadowName));
    if (!record) throw this.notFound(thingName, shadowName);
    return this.documentOf(record);
  }

  /** Applies an update; returns the accepted document and publishes delta and documents. */
  async update(thingName: string, shadowName: string | undefined, payload: Buffer): Promise<JsonObject> {
    this.check(thingName, shadowName);
    let request: unknown;
    try {
      request = JSON.parse(payload.toString('utf8'));
    } catch {
      throw new ShadowError(400, 'Invalid JSON');
    }
    if (!isObject(request)) throw new ShadowError(400, 'Invalid JSON');
    const { clientToken } = request;
    if (clientToken !== undefined) {
      if (
        typeof clientToken !== 'string' ||
        Buffer.byteLength(clientToken) > SHADOW_LIMITS.clientTokenBytes
      ) {
        throw new ShadowError(400, 'Invalid clientToken');
      }
    }
    if (!('state' in request)) throw new ShadowError(400, 'Missing required node: state');
    const state = request.state;
    if (!isObject(state)) throw new ShadowError(400, 'State node must be an object');
    for (const key of Object.keys(state)) {
      if (key !== 'desired' && key !== 'reported')
        throw new ShadowError(400, `State contains an invalid node: '${key}'`);
    }
    const { desired, reported } = state;
    if (desired !== undefined && desired !== null && !isObject(desired))
      throw new ShadowError(400, 'Desired node must be an object');
    if (reported !== undefined && reported !== null && !isObject(reported))
      throw new ShadowError(400, 'Reported node must be an object');
    for (const section of [desired, reported]) {
      if (isObject(section) && depth(section) > SHADOW_LIMITS.depth) {
        throw new ShadowError(
          400,
          `JSON contains too many levels of nesting; maximum is ${SHADOW_LIMITS.depth}`,
        );
      }
    }
    const key = this.key(thingName, shadowName);
    const previous = this.shadows.get(key);
    const version = request.version;
    if (version !== undefined) {
      if (typeof version !== 'number' || !Number.isInteger(version))
        throw new ShadowError(400, 'Invalid version');
      if (version !== (previous?.version ?? this.versions.get(key) ?? 0))
        throw new ShadowError(409, 'Version conflict');
    }
    const timestamp = this.seconds();
    const next: ShadowRecord = {
      desired:
        desired === null
          ? undefined
          : isObject(desired)
            ? merge(previous?.desired, desired)
            : previous?.desired,
      reported:
        reported === null
          ? undefined
          : isObject(reported)
            ? merge(previous?.reported, reported)
            : previous?.reported,
      metadata: {
        desired:
          desired === null
            ? undefined
            : isObject(desired)
              ? mergeMetadata(previous?.metadata.desired, desired, timestamp)
              : previous?.metadata.desired,
        reported:
          reported === null
            ? undefined
            : isObject(reported)
              ? mergeMetadata(previous?.metadata.reported, reported, timestamp)
              : previous?.metadata.reported,
      },
      version: (previous?.version ?? this.versions.get(key) ?? 0) + 1,
    };
    const size = Buffer.byteLength(
      JSON.stringify({ desired: next.desired ?? null, reported: next.reported ?? null }),
    );
    if (size > SHADOW_LIMITS.stateBytes)
      throw new ShadowError(413, 'The payload exceeds the maximum size allowed');
    this.shadows.set(key, next);
    this.versions.set(key, next.version);

    const token: JsonObject = typeof clientToken === 'string' ? { clientToken } : {};
    const acceptedState: JsonObject = {};
    const acceptedMetadata: JsonObject = {};
    if (desired !== undefined) {
      acceptedState.desired = desired as Json;
      acceptedMetadata.desired = isObject(desired) ? stamp(desired, timestamp) : { timestamp };
    }
    if (reported !== undefined) {
      acceptedState.reported = reported as Json;
      acceptedMetadata.reported = isObject(reported) ? stamp(reported, timestamp) : { timestamp };
    }
    const accepted: JsonObject = {
      state: acceptedState,
      metadata: acceptedMetadata,
      version: next.version,
      timestamp,
      ...token,
    };
    const base = shadowTopic(thingName, shadowName);
    await this.publish(`${base}/update/accepted`, accepted);
    const d = delta(next.desired, next.reported);
    if (d && isObject(desired)) {
      await this.publish(`${base}/update/delta`, {
        state: d,
        metadata: pick(next.metadata.desired, d),
        version: next.version,
        timestamp,
        ...token,
      });
    }
    const snapshot = (record: ShadowRecord): JsonObject => {
      const document = this.documentOf(record);
      const { timestamp: _t, ...rest } = document;
      const shadowState = { ...(rest.state as JsonObject) };
      delete shadowState.delta;
      return { ...rest, state: shadowState };
    };
    await this.publish(`${base}/update/documents`, {
      ...(previous ? { previous: snapshot(previous) } : {}),
      current: snapshot(next),
      timestamp,
      ...token,
    });
    return accepted;
  }

  /** Deletes a shadow; the version is kept for the next one. */
  async delete(thingName: string, shadowName: string | undefined, clientToken?: string): Promise<JsonObject> {
    this.check(thingName, shadowName);
    const key = this.key(thingName, shadowName);
    const record = this.shadows.get(key);
    if (!record) throw this.notFound(thingName, shadowName);
    this.shadows.delete(key);
    return { version: record.version, timestamp: this.seconds(), ...(clientToken ? { clientToken } : {}) };
  }

  /** ListNamedShadowsForThing: the thing's named shadows, by name. */
  namedShadows(thingName: string): string[] {
    this.check(thingName, undefined);
    const prefix = `${thingName}\u0000`;
    return [...this.shadows.keys()]
      .filter((key) => key.startsWith(prefix) && key.length > prefix.length)
      .map((key) => key.slice(prefix.length))
      .sort();
  }

  private async publish(topic: string, document: JsonObject): Promise<void> {
    await this.publisher.publish(topic, document, { source: 'shadow', qos: 1 });
  }

  /**
   * A device's PUBLISH on a shadow request topic: the reply on `/accepted` or `/rejected`
   * (`{code, message, timestamp, clientToken}`), published for every subscriber allowed to receive it.
   */
  async handleMqtt(topic: string, payload: Buffer): Promise<void> {
    const request = parseShadowTopic(topic);
    if (!request) return;
    const base = `${shadowTopic(request.thingName, request.shadowName)}/${request.operation}`;
    let clientToken: string | undefined;
    try {
      const parsed = payload.length === 0 ? {} : JSON.parse(payload.toString('utf8'));
      if (isObject(parsed) && typeof parsed.clientToken === 'string') clientToken = parsed.clientToken;
    } catch {
      if (request.operation !== 'update') {
        await this.publish(`${base}/rejected`, {
          code: 400,
          message: 'Invalid JSON',
          timestamp: this.seconds(),
        });
        return;
      }
    }
    try {
      switch (request.operation) {
        case 'get': {
          const document = this.get(request.thingName, request.shadowName);
          await this.publish(`${base}/accepted`, { ...document, ...(clientToken ? { clientToken } : {}) });
          return;
        }
        case 'update':
          await this.update(request.thingName, request.shadowName, payload);
          return;
        case 'delete':
          await this.publish(
            `${base}/accepted`,
            await this.delete(request.thingName, request.shadowName, clientToken),
          );
          return;
      }
    } catch (error) {
      const shadowError =
        error instanceof ShadowError ? error : new ShadowError(500, 'Internal service failure');
      await this.publish(`${base}/rejected`, {
        code: shadowError.code,
        message: shadowError.message,
        timestamp: this.seconds(),
        ...(clientToken ? { clientToken } : {}),
      });
    }
  }
}

/** The data-plane API's error for a shadow error code (API reference, AWS IoT data plane). */
export function shadowHttpError(error: unknown): IotError {
  if (!(error instanceof ShadowError))
    return error instanceof IotError ? error : new IotError('InternalFailureException', String(error));
  switch (error.code) {
    case 404:
      return new IotError('ResourceNotFoundException', error.message);
    case 409:
      return new IotError('ConflictException', error.message);
    case 413:
      return new IotError('RequestEntityTooLargeException', error.message);
    default:
      return new IotError('InvalidRequestException', error.message);
  }
}
