/**
 * The Device Shadow service, classic and named, over MQTT (the reserved `$aws/things/<thing>/shadow/...`
 * topics, https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-mqtt.html) and over the data
 * plane (GetThingShadow, UpdateThingShadow, DeleteThingShadow, ListNamedShadowsForThing with
 * `@aws-sdk/client-iot-data-plane`): accepted / rejected, delta, documents, versions, AWS's error codes and
 * limits (https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-error-messages.html), and the
 * device policy applying to the shadow topics as to any topic.
 */
import { AttachThingPrincipalCommand, CreateThingCommand, type IoTClient } from '@aws-sdk/client-iot';
import {
  ConflictException,
  DeleteThingShadowCommand,
  GetThingShadowCommand,
  InvalidRequestException,
  IoTDataPlaneClient,
  ListNamedShadowsForThingCommand,
  RequestEntityTooLargeException,
  ResourceNotFoundException,
  UpdateThingShadowCommand,
} from '@aws-sdk/client-iot-data-plane';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IotEmulator } from '../../../local/iot-emulator';
import type { MqttBroker } from '../../../local/mqtt/broker';
import {
  activeCertificate,
  createDevicePolicy,
  startEmulatorEndpoint,
  stopEmulatorEndpoint,
} from '../../support/iot-emulator';
import { closed, connect, type DeviceIdentity, PROTOCOL_VERSIONS, subscribeCodes } from '../../support/mqtt';

let emulator: IotEmulator;
let broker: MqttBroker;
let iot: IoTClient;
let data: IoTDataPlaneClient;
const clients: MqttClient[] = [];

/** A thing with an ACTIVE certificate carrying the project's device policy. */
async function device(thingName: string): Promise<DeviceIdentity> {
  const identity = await activeCertificate(iot, ['shadow-device'], thingName);
  await iot.send(new CreateThingCommand({ thingName }));
  await iot.send(new AttachThingPrincipalCommand({ thingName, principal: identity.certificateArn }));
  return identity;
}

/** The thing's device connected over MQTT 5, subscribed to `shadow/<topic>`, with what it receives. */
async function subscribedDevice(thing: string, topic: string) {
  const client = await connect(broker, await device(thing), thing, 5);
  clients.push(client);
  await client.subscribeAsync(`$aws/things/${thing}/shadow/${topic}`, { qos: 1 });
  return { client, seen: recorder(client) };
}

/** Collects every message on the client's shadow topics. */
function recorder(client: MqttClient): { topic: string; body: Record<string, unknown> }[] {
  const seen: { topic: string; body: Record<string, unknown> }[] = [];
  client.on('message', (topic, payload) => seen.push({ topic, body: JSON.parse(payload.toString()) }));
  return seen;
}

async function until<T>(read: () => T | undefined, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

beforeAll(async () => {
  ({ emulator, broker, iot } = await startEmulatorEndpoint());
  data = new IoTDataPlaneClient({ ...emulator.clientConfig(), maxAttempts: 1 });
  await createDevicePolicy(iot, 'shadow-device');
});

afterAll(async () => {
  for (const c of clients) c.end(true);
  data?.destroy();
  await stopEmulatorEndpoint({ emulator, broker, iot });
});

describe('classic shadow over MQTT 5', () => {
  it('get (404), update desired → accepted + delta + documents, report → no delta, stale version → 409, delete', async () => {
    // Prepare
    const thing = 'shadow-classic';
    const { client, seen } = await subscribedDevice(thing, '#');
    const base = `$aws/things/${thing}/shadow`;
    const next = (topic: string, after = 0) => until(() => seen.slice(after).find((m) => m.topic === topic));
    // Act + Assess: no shadow yet.
    await client.publishAsync(`${base}/get`, JSON.stringify({ clientToken: 't-0' }), { qos: 1 });
    expect((await next(`${base}/get/rejected`)).body).toEqual({
      code: 404,
      message: `No shadow exists with name: '${thing}'`,
      timestamp: expect.any(Number),
      clientToken: 't-0',
    });
    // The application wants the light red.
    let mark = seen.length;
    await client.publishAsync(
      `${base}/update`,
      JSON.stringify({ state: { desired: { color: 'red', brightness: 7 } }, clientToken: 't-1' }),
      { qos: 1 },
    );
    expect((await next(`${base}/update/accepted`, mark)).body).toEqual({
      state: { desired: { color: 'red', brightness: 7 } },
      metadata: {
        desired: { color: { timestamp: expect.any(Number) }, brightness: { timestamp: expect.any(Number) } },
      },
      version: 1,
      timestamp: expect.any(Number),
      clientToken: 't-1',
    });
    expect((await next(`${base}/update/delta`, mark)).body).toMatchObject({
      state: { color: 'red', brightness: 7 },
      version: 1,
      clientToken: 't-1',
    });
    const created = (await next(`${base}/update/documents`, mark)).body;
    expect(created).not.toHaveProperty('previous');
    expect(created.current).toMatchObject({
      state: { desired: { color: 'red', brightness: 7 } },
      version: 1,
    });
    // The device reports red but not the brightness yet.
    mark = seen.length;
    await client.publishAsync(`${base}/update`, JSON.stringify({ state: { reported: { color: 'red' } } }), {
      qos: 1,
    });
    const documents = (await next(`${base}/update/documents`, mark)).body;
    expect(documents).toMatchObject({ previous: { version: 1 }, current: { version: 2 } });
    expect(seen.slice(mark).some((m) => m.topic === `${base}/update/delta`)).toBe(false);
    mark = seen.length;
    await client.publishAsync(`${base}/get`, '{}', { qos: 1 });
    expect((await next(`${base}/get/accepted`, mark)).body).toMatchObject({
      state: {
        desired: { color: 'red', brightness: 7 },
        reported: { color: 'red' },
        delta: { brightness: 7 },
      },
      version: 2,
    });
    // A writer that read version 1 loses.
    mark = seen.length;
    await client.publishAsync(
      `${base}/update`,
      JSON.stringify({ state: { desired: { color: 'blue' } }, version: 1, clientToken: 't-stale' }),
      { qos: 1 },
    );
    expect((await next(`${base}/update/rejected`, mark)).body).toEqual({
      code: 409,
      message: 'Version conflict',
      timestamp: expect.any(Number),
      clientToken: 't-stale',
    });
    mark = seen.length;
    await client.publishAsync(`${base}/delete`, '{}', { qos: 1 });
    expect((await next(`${base}/delete/accepted`, mark)).body).toEqual({
      version: 2,
      timestamp: expect.any(Number),
    });
    // The version goes on from where the deleted shadow left it.
    const recreated = await data.send(
      new UpdateThingShadowCommand({
        thingName: thing,
        payload: Buffer.from('{"state":{"reported":{"on":true}}}'),
      }),
    );
    expect(JSON.parse(Buffer.from(recreated.payload ?? new Uint8Array()).toString()).version).toBe(3);
  });

  it('rejects what AWS rejects: bad JSON, missing state, desired not an object, nesting over 6, over 8 KB', async () => {
    // Prepare
    const thing = 'shadow-errors';
    const { client, seen } = await subscribedDevice(thing, 'update/rejected');
    const deep = { a: { b: { c: { d: { e: { f: { g: 1 } } } } } } };
    const requests = [
      ['{not json', 'Invalid JSON'],
      ['{"desired":{}}', 'Missing required node: state'],
      ['{"state":{"desired":5}}', 'Desired node must be an object'],
      [
        JSON.stringify({ state: { desired: deep } }),
        'JSON contains too many levels of nesting; maximum is 6',
      ],
    ] as const;
    // Act
    for (const [payload] of requests) {
      await client.publishAsync(`$aws/things/${thing}/shadow/update`, payload, { qos: 1 });
    }
    await client.publishAsync(
      `$aws/things/${thing}/shadow/update`,
      JSON.stringify({ state: { reported: { blob: 'x'.repeat(9000) } } }),
      { qos: 1 },
    );
    await until(() => (seen.length === 5 ? seen : undefined));
    // Assess
    expect(seen.map((m) => [m.body.code, m.body.message])).toEqual([
      ...requests.map(([, message]) => [400, message]),
      [413, 'The payload exceeds the maximum size allowed'],
    ]);
  });
});

describe('named shadows', () => {
  it('over MQTT 3.1.1 on .../shadow/name/<name>/..., listed by ListNamedShadowsForThing, read by GetThingShadow', async () => {
    // Prepare
    const thing = 'shadow-named';
    const client = await connect(broker, await device(thing), thing, 4);
    clients.push(client);
    const base = `$aws/things/${thing}/shadow/name/config`;
    await client.subscribeAsync(`${base}/update/+`, { qos: 1 });
    const seen = recorder(client);
    // Act
    await client.publishAsync(`${base}/update`, JSON.stringify({ state: { reported: { interval: 60 } } }), {
      qos: 1,
    });
    const accepted = await until(() => seen.find((m) => m.topic === `${base}/update/accepted`));
    await data.send(
      new UpdateThingShadowCommand({
        thingName: thing,
        shadowName: 'firmware',
        payload: Buffer.from('{"state":{"desired":{"version":"2.1"}}}'),
      }),
    );
    const listed = await data.send(new ListNamedShadowsForThingCommand({ thingName: thing }));
    const got = await data.send(new GetThingShadowCommand({ thingName: thing, shadowName: 'config' }));
    // Assess
    expect(accepted.body).toMatchObject({ state: { reported: { interval: 60 } }, version: 1 });
    expect(listed.results).toEqual(['config', 'firmware']);
    expect(JSON.parse(Buffer.from(got.payload ?? new Uint8Array()).toString())).toMatchObject({
      state: { reported: { interval: 60 } },
      version: 1,
    });
    await expect(data.send(new GetThingShadowCommand({ thingName: thing }))).rejects.toBeInstanceOf(
      ResourceNotFoundException,
    );
  });
});

describe('data-plane HTTP API', () => {
  it("UpdateThingShadow's delta reaches the subscribed device; errors are AWS's exceptions", async () => {
    // Prepare
    const thing = 'shadow-http';
    const { seen } = await subscribedDevice(thing, 'update/delta');
    // Act
    const updated = await data.send(
      new UpdateThingShadowCommand({
        thingName: thing,
        payload: Buffer.from('{"state":{"desired":{"mode":"eco"}}}'),
      }),
    );
    const delta = await until(() => seen[0]);
    const conflict = data.send(
      new UpdateThingShadowCommand({
        thingName: thing,
        payload: Buffer.from('{"state":{"desired":{"mode":"max"}},"version":7}'),
      }),
    );
    const invalid = data.send(
      new UpdateThingShadowCommand({ thingName: thing, payload: Buffer.from('[1]') }),
    );
    const large = data.send(
      new UpdateThingShadowCommand({
        thingName: thing,
        payload: Buffer.from(JSON.stringify({ state: { desired: { blob: 'x'.repeat(9000) } } })),
      }),
    );
    const deleted = await data.send(new DeleteThingShadowCommand({ thingName: thing }));
    // Assess
    expect(JSON.parse(Buffer.from(updated.payload ?? new Uint8Array()).toString())).toMatchObject({
      state: { desired: { mode: 'eco' } },
      version: 1,
    });
    expect(delta).toMatchObject({
      topic: `$aws/things/${thing}/shadow/update/delta`,
      body: { state: { mode: 'eco' } },
    });
    await expect(conflict).rejects.toBeInstanceOf(ConflictException);
    await expect(invalid).rejects.toBeInstanceOf(InvalidRequestException);
    await expect(large).rejects.toBeInstanceOf(RequestEntityTooLargeException);
    expect(JSON.parse(Buffer.from(deleted.payload ?? new Uint8Array()).toString())).toMatchObject({
      version: 1,
    });
    await expect(data.send(new DeleteThingShadowCommand({ thingName: thing }))).rejects.toBeInstanceOf(
      ResourceNotFoundException,
    );
  });
});

describe.each(PROTOCOL_VERSIONS)('device policy on shadow topics ($name)', ({ version }) => {
  it("a device may not touch another thing's shadow: SUBSCRIBE refused, PUBLISH refused", async () => {
    // Prepare
    const own = `shadow-own-v${version}`;
    const other = `shadow-other-v${version}`;
    await device(other);
    const client = await connect(broker, await device(own), own, version);
    clients.push(client);
    // Act
    const codes = await subscribeCodes(client, `$aws/things/${other}/shadow/get/accepted`);
    const granted = await subscribeCodes(client, `$aws/things/${own}/shadow/get/accepted`);
    const publish = client
      .publishAsync(`$aws/things/${other}/shadow/update`, '{"state":{"desired":{"x":1}}}', { qos: 1 })
      .then(
        () => 'acknowledged',
        (error: { code?: number }) => error.code ?? 'error',
      );
    // Assess: 3.1.1 is disconnected, MQTT 5 gets PUBACK 0x87; the shadow is not created either way.
    expect(codes).toEqual([version === 5 ? 0x87 : 0x80]);
    expect(granted).toEqual([1]);
    if (version === 5) expect(await publish).toBe(0x87);
    else await closed(client);
    await expect(data.send(new GetThingShadowCommand({ thingName: other }))).rejects.toBeInstanceOf(
      ResourceNotFoundException,
    );
  });
});
