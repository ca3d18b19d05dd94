/**
 * Preload (`node --require test/sdk/local-endpoint.cjs …`) that points the AWS IoT Device SDK v2's
 * samples, unmodified, at the local MQTT endpoint.
 *
 * The samples of aws-iot-device-sdk-js-v2 v1.28.0 (test/sdk/vendor/) take the endpoint host, the
 * certificate and the key as arguments but have no option for the two things a local endpoint needs and
 * AWS IoT Core's does not: they build their client with
 * `iot.AwsIotMqtt5ClientConfigBuilder.newDirectMqttBuilderWithMtlsFromPath(endpoint, cert, key)`, which
 * connects to port 8883 and trusts the system's CA store (where Amazon Root CA 1 is). This preload wraps
 * that one factory so the builder it returns also gets
 * - `withPort(FLEETGATE_SAMPLE_PORT)`: the local endpoint's port, and
 * - `withCertificateAuthorityFromPath(undefined, FLEETGATE_SAMPLE_CA_FILE)`: the CA that signed the local
 *   endpoint's server certificate,
 * the same two builder calls the SDK documents for a custom port and CA; everything else (client id,
 * keep-alive, the identity client, every request) is the sample's own code. Without both variables set,
 * it changes nothing.
 */
'use strict';

const port = process.env.FLEETGATE_SAMPLE_PORT;
const caFile = process.env.FLEETGATE_SAMPLE_CA_FILE;

if (port && caFile) {
  const { iot } = require('aws-iot-device-sdk-v2');
  const Builder = iot.AwsIotMqtt5ClientConfigBuilder;
  const newDirectMqttBuilderWithMtlsFromPath = Builder.newDirectMqttBuilderWithMtlsFromPath;
  Builder.newDirectMqttBuilderWithMtlsFromPath = function localEndpoint(hostName, certPath, keyPath) {
    const builder = newDirectMqttBuilderWithMtlsFromPath.call(this, hostName, certPath, keyPath);
    builder.withPort(Number(port));
    builder.withCertificateAuthorityFromPath(undefined, caFile);
    return builder;
  };
}
