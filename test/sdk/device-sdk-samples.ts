/**
 * The AWS IoT Device SDK v2 for JavaScript's own samples, as a child process the tests start
 * (`node --import tsx test/sdk/device-sdk-samples.ts <sample> --option value …`): the SDK's native
 * client (aws-crt) stays out of the test runner's workers.
 *
 * Each sample makes the calls of the SDK's sample of the same name (aws-iot-device-sdk-js-v2 v1.28.0,
 * `samples/node/…`), in the same order with the same options; the only additions are what a local
 * endpoint needs and AWS's does not: `--port` (withPort / with_port) and `--ca_file`
 * (withCertificateAuthorityFromPath / with_certificate_authority_from_path), since the samples connect to
 * port 8883 and trust the system's Amazon Root CA.
 * - `fleet_provisioning_basic`: samples/node/service_clients/fleet_provisioning/basic/index.ts
 *   (CreateKeysAndCertificate + RegisterThing through IotIdentityClientv2 over MQTT 5);
 * - `fleet_provisioning_csr`: samples/node/service_clients/fleet_provisioning/csr/index.ts
 *   (CreateCertificateFromCsr + RegisterThing);
 *   both with `--mqtt 311` run the same identity client calls over MQTT 3.1.1
 *   (IotIdentityClientv2.newFromMqtt311 on a connection from AwsIotMqttConnectionConfigBuilder
 *   .new_mtls_builder_from_path, the SDK's MQTT 3.1.1 builder);
 * - `mqtt5_x509`: samples/node/mqtt/mqtt5_x509/index.ts (connect, subscribe, publish `--count` messages
 *   QoS 1, receive them, unsubscribe, stop);
 * - `identity_errors`: the identity client's error path: a request IoT rejects reaches the caller as a
 *   ServiceError whose `modeledError` is the `/rejected` payload (RegisterThing with a token IoT never
 *   issued, CreateCertificateFromCsr with a CSR that is not one).
 *
 * Every sample prints what the SDK's sample prints and, last, one line `RESULT <json>` for the test.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { iot, iotidentity, mqtt, mqtt5 } from 'aws-iot-device-sdk-v2';

const TIMEOUT = 100_000;

function parseArgs(argv: string[]): { sample: string; options: Record<string, string> } {
  const [sample = '', ...rest] = argv;
  const options: Record<string, string> = {};
  for (let i = 0; i < rest.length; i += 2) {
    const name = rest[i] ?? '';
    if (!name.startsWith('--')) throw new Error(`unexpected argument ${name}`);
    options[name.slice(2)] = rest[i + 1] ?? '';
  }
  return { sample, options };
}

const { sample, options: args } = parseArgs(process.argv.slice(2));
const required = (name: string): string => {
  const value = args[name];
  if (!value) throw new Error(`--${name} is required`);
  return value;
};

function result(value: unknown): void {
  console.log(`RESULT ${JSON.stringify(value)}`);
}

/** The MQTT 5 client of the samples: newDirectMqttBuilderWithMtlsFromPath + connect properties. */
function mqtt5Client(): mqtt5.Mqtt5Client {
  const builder = iot.AwsIotMqtt5ClientConfigBuilder.newDirectMqttBuilderWithMtlsFromPath(
    required('endpoint'),
    required('cert'),
    required('key'),
  );
  // Local endpoint only: its port and the CA that signed its server certificate.
  builder.withPort(Number(required('port')));
  builder.withCertificateAuthorityFromPath(undefined, required('ca_file'));
  builder.withConnectProperties({
    clientId: required('client_id'),
    keepAliveIntervalSeconds: 1200,
  });
  return new mqtt5.Mqtt5Client(builder.build());
}

async function startMqtt5(client: mqtt5.Mqtt5Client): Promise<void> {
  const connectionSuccess = once(client, 'connectionSuccess');
  client.start();
  await Promise.race([
    connectionSuccess,
    new Promise((_, reject) => setTimeout(() => reject(new Error('Connection timeout')), TIMEOUT)),
  ]);
  console.log('Connected!');
}

async function stopMqtt5(client: mqtt5.Mqtt5Client): Promise<void> {
  console.log('Disconnecting...');
  const stopped = once(client, 'stopped');
  client.stop();
  await stopped;
  console.log('Disconnected');
}

/** The identity client over the transport `--mqtt` names (5, the samples' default, or 311). */
async function identityClient(): Promise<{
  identity: iotidentity.IotIdentityClientv2;
  stop: () => Promise<void>;
}> {
  const rr = {
    maxRequestResponseSubscriptions: 2,
    maxStreamingSubscriptions: 0,
    operationTimeoutInSeconds: 60,
  };
  if ((args.mqtt ?? '5') === '311') {
    const builder = iot.AwsIotMqttConnectionConfigBuilder.new_mtls_builder_from_path(
      required('cert'),
      required('key'),
    );
    builder.with_endpoint(required('endpoint'));
    builder.with_port(Number(required('port')));
    builder.with_certificate_authority_from_path(undefined, required('ca_file'));
    builder.with_client_id(required('client_id'));
    builder.with_clean_session(true);
    const connection = new mqtt.MqttClient().new_connection(builder.build());
    const identity = iotidentity.IotIdentityClientv2.newFromMqtt311(connection, rr);
    await connection.connect();
    console.log('Connected!');
    return {
      identity,
      stop: async () => {
        console.log('Disconnecting...');
        await connection.disconnect();
        console.log('Disconnected');
      },
    };
  }
  const protocolClient = mqtt5Client();
  const identity = iotidentity.IotIdentityClientv2.newFromMqtt5(protocolClient, rr);
  await startMqtt5(protocolClient);
  return { identity, stop: () => stopMqtt5(protocolClient) };
}

async function fleetProvisioning(flow: 'basic' | 'csr'): Promise<void> {
  console.log('Connecting...');
  const { identity, stop } = await identityClient();
  let created:
    | iotidentity.model.CreateKeysAndCertificateResponse
    | iotidentity.model.CreateCertificateFromCsrResponse;
  if (flow === 'basic') {
    created = await identity.createKeysAndCertificate({});
    console.log(`CreateKeysAndCertificate Response: ${JSON.stringify(created)}`);
  } else {
    const csr = readFileSync(required('csr_file'), 'utf8');
    created = await identity.createCertificateFromCsr({ certificateSigningRequest: csr });
    console.log(`CreateCertificateFromCsr Response: ${JSON.stringify(created)}`);
  }
  const registerThingRequest: iotidentity.model.RegisterThingRequest = {
    templateName: required('template_name'),
    certificateOwnershipToken: created.certificateOwnershipToken,
  };
  if (args.template_parameters) registerThingRequest.parameters = JSON.parse(args.template_parameters);
  const registerThingResponse = await identity.registerThing(registerThingRequest);
  console.log(`RegisterThing Response: ${JSON.stringify(registerThingResponse)}`);
  identity.close();
  await stop();
  result({ created, registered: registerThingResponse });
}

async function pubSub(): Promise<void> {
  const topic = required('topic');
  const count = Number(args.count ?? '5');
  const message = args.message ?? 'Hello from mqtt5 sample';
  let receivedCount = 0;
  const received: string[] = [];
  const client = mqtt5Client();
  client.on('messageReceived', (eventData: mqtt5.MessageReceivedEvent) => {
    const payload = eventData.message.payload
      ? Buffer.from(eventData.message.payload as ArrayBuffer).toString('utf-8')
      : '';
    console.log(`==== Received message from topic '${eventData.message.topicName}': ${payload} ====`);
    received.push(payload);
    receivedCount++;
    if (receivedCount === count) setImmediate(() => client.emit('receivedAll'));
  });
  client.on('connectionFailure', (eventData: mqtt5.ConnectionFailureEvent) => {
    console.log(`Lifecycle Connection Failure with exception: ${eventData.error}`);
  });
  await startMqtt5(client);
  const suback = await client.subscribe({
    subscriptions: [{ topicFilter: topic, qos: mqtt5.QoS.AtLeastOnce }],
  });
  console.log(`Suback received with reason code: ${suback.reasonCodes}`);
  const pubacks: number[] = [];
  for (let publishCount = 1; publishCount <= count; publishCount++) {
    const publishResult = await client.publish({
      topicName: topic,
      payload: `${message} [${publishCount}]`,
      qos: mqtt5.QoS.AtLeastOnce,
    });
    const reasonCode = (publishResult as mqtt5.PubackPacket | undefined)?.reasonCode ?? -1;
    console.log(`PubAck received with ${reasonCode}`);
    pubacks.push(reasonCode);
  }
  if (receivedCount < count) {
    await Promise.race([
      once(client, 'receivedAll'),
      new Promise<void>((resolve) => setTimeout(resolve, 5000)),
    ]);
  }
  console.log(`${receivedCount} message(s) received.`);
  const unsuback = await client.unsubscribe({ topicFilters: [topic] });
  console.log(`Unsuback received with reason code: ${unsuback.reasonCodes}`);
  await stopMqtt5(client);
  result({ suback: suback.reasonCodes, pubacks, received, unsuback: unsuback.reasonCodes });
}

async function identityErrors(): Promise<void> {
  const { identity, stop } = await identityClient();
  const caught = async (request: () => Promise<unknown>) => {
    try {
      await request();
      return { thrown: false };
    } catch (error) {
      const e = error as { name?: string; message?: string; modeledError?: unknown };
      return { thrown: true, name: e.name, modeledError: e.modeledError };
    }
  };
  const badToken = await caught(() =>
    identity.registerThing({
      templateName: required('template_name'),
      certificateOwnershipToken: 'not-a-token-IoT-issued',
      parameters: {},
    }),
  );
  const badCsr = await caught(() =>
    identity.createCertificateFromCsr({ certificateSigningRequest: 'not a certificate signing request' }),
  );
  identity.close();
  await stop();
  result({ badToken, badCsr });
}

async function main(): Promise<void> {
  switch (sample) {
    case 'fleet_provisioning_basic':
      return fleetProvisioning('basic');
    case 'fleet_provisioning_csr':
      return fleetProvisioning('csr');
    case 'mqtt5_x509':
      return pubSub();
    case 'identity_errors':
      return identityErrors();
    default:
      throw new Error(`unknown sample ${sample}`);
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
