/**
 * The MQTT 3.1.1 counterpart of the AWS IoT Device SDK v2's fleet provisioning samples, as a child process
 * the tests start (`node --import tsx test/sdk/mqtt311-identity.ts <sample> --option value …`): the SDK's
 * native client (aws-crt) stays out of the test runner's workers.
 *
 * Why this file exists next to the vendored samples (test/sdk/vendor/): aws-iot-device-sdk-js-v2 v1.28.0
 * has no MQTT 3.1.1 sample. Its fleet provisioning samples
 * (`samples/node/service_clients/fleet_provisioning/{basic,csr}`, run unmodified by the tests) build
 * IotIdentityClientv2 on an MQTT 5 client only; the same identity client also takes an MQTT 3.1.1
 * connection (IotIdentityClientv2.newFromMqtt311). This file makes the samples' calls, in the same order
 * with the same options and the same output, on such a connection
 * (AwsIotMqttConnectionConfigBuilder.new_mtls_builder_from_path, the SDK's MQTT 3.1.1 builder), plus
 * `--port` and `--ca_file` for the local endpoint:
 * - `fleet_provisioning_basic`: CreateKeysAndCertificate + RegisterThing;
 * - `fleet_provisioning_csr`: CreateCertificateFromCsr (`--csr_file`) + RegisterThing;
 * - `identity_errors`: the identity client's error path over MQTT 3.1.1: a request IoT rejects reaches the
 *   caller as a ServiceError whose `modeledError` is the `/rejected` payload (RegisterThing with a token
 *   IoT never issued, CreateCertificateFromCsr with a CSR that is not one); prints `RESULT <json>`.
 */
import { readFileSync } from 'node:fs';
import { iot, iotidentity, mqtt } from 'aws-iot-device-sdk-v2';

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

/** IotIdentityClientv2 on an MQTT 3.1.1 connection, with the samples' request-response options. */
async function identityClient(): Promise<{
  identity: iotidentity.IotIdentityClientv2;
  stop: () => Promise<void>;
}> {
  const builder = iot.AwsIotMqttConnectionConfigBuilder.new_mtls_builder_from_path(
    required('cert'),
    required('key'),
  );
  builder.with_endpoint(required('endpoint'));
  // Local endpoint only: its port and the CA that signed its server certificate.
  builder.with_port(Number(required('port')));
  builder.with_certificate_authority_from_path(undefined, required('ca_file'));
  builder.with_client_id(required('client_id'));
  builder.with_clean_session(true);
  const connection = new mqtt.MqttClient().new_connection(builder.build());
  const identity = iotidentity.IotIdentityClientv2.newFromMqtt311(connection, {
    maxRequestResponseSubscriptions: 2,
    maxStreamingSubscriptions: 0,
    operationTimeoutInSeconds: 60,
  });
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
  console.log(`RESULT ${JSON.stringify({ badToken, badCsr })}`);
}

async function main(): Promise<void> {
  switch (sample) {
    case 'fleet_provisioning_basic':
      return fleetProvisioning('basic');
    case 'fleet_provisioning_csr':
      return fleetProvisioning('csr');
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
