/**
 * A refused MQTT connection is logged where the functions' logs go (the stack's log, `fleetgate
 * logs`): a third-party client (mosquitto, another SDK) is told only a CONNACK code, as by AWS IoT,
 * whose own log entry for it (AWSIotLogsV2 `eventType: Connect`, `status: Failure`) the line follows.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { describeLog, parseLogLine } from '../../../cli/log-lines';
import { createCertificateAuthority, createDeviceCertificate, exportPrivateKeyPem } from '../../../local/pki';
import { type LocalStack, startLocalStack } from '../../../local/stack';
import { tryConnect } from '../../support/mqtt';
import { waitFor } from '../../support/wait';

let stack: LocalStack;
const output: string[] = [];

beforeAll(async () => {
  stack = await startLocalStack({
    dynamodbEndpoint: inject('dynamodbEndpoint'),
    tableName: `refusal-log-${randomUUID().slice(0, 8)}`,
    handlerOutput: (text) => {
      output.push(text);
    },
  });
});
afterAll(async () => {
  await stack?.stop();
});

describe('refused MQTT connections in the stack log', () => {
  it('names the client id, the presented certificate and the reason, never the PEM', async () => {
    const broker = stack.mqtt;
    if (!broker) throw new Error('the stack started without its MQTT endpoint');
    // A certificate AWS IoT has never seen (its CA is not registered either).
    const ca = await createCertificateAuthority();
    const device = await createDeviceCertificate(ca, { subject: { commonName: 'stranger' } });
    const identity = {
      certificatePem: device.certificatePem,
      privateKeyPem: await exportPrivateKeyPem(device.keys.privateKey),
    };
    const attempt = await tryConnect(broker, identity, 'stranger-1');
    expect(attempt.connected).toBe(false);
    const refusal = broker.refusals.at(-1);
    expect(refusal).toMatchObject({ clientId: 'stranger-1', certificateId: device.certificateId });

    const line = await waitFor(
      async () =>
        output
          .join('')
          .split('\n')
          .find((text) => text.includes('"MQTT connection refused"')) ?? '',
      (text) => text !== '',
    );
    const entry = JSON.parse(line) as Record<string, unknown>;
    expect(entry).toMatchObject({
      level: 'WARN',
      source: 'iot-endpoint',
      eventType: 'Connect',
      status: 'Failure',
      clientId: 'stranger-1',
      principalId: device.certificateId,
      reason: refusal?.reason,
      protocolVersion: 4,
    });
    expect(line).not.toMatch(/-----BEGIN/);
    expect(describeLog(parseLogLine(line))).toMatch(
      /WARN\s+iot-endpoint {2}MQTT connection refused {2}eventType=Connect status=Failure clientId=stranger-1/,
    );
  });
});
