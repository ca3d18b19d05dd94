/**
 * The local MQTT device endpoint: mutual-TLS MQTT connections per second (TLS handshake, the registry's
 * certificate check, iot:Connect policy evaluation, presence events, CONNACK, DISCONNECT) with real
 * `mqtt` clients, and fleet provisioning by claim over MQTT on the whole local stack.
 */
import {
  AttachPolicyCommand,
  CreateCertificateFromCsrCommand,
  CreatePolicyCommand,
  IoTClient,
} from '@aws-sdk/client-iot';
import { startIotEmulator } from '../local/iot-emulator/index';
import { startMqttBroker } from '../local/mqtt/broker';
import { connectDevice } from '../local/mqtt/client';
import { renderPolicyDocument } from '../local/mqtt/policies';
import { createCsr, exportPrivateKeyPem } from '../local/pki';
import { quietStackOptions } from '../local/simulator/demo';
import { pool, runSimulation } from '../local/simulator/simulate';
import { startLocalStack } from '../local/stack';
import { localHandle } from '../local/stack-control';
import { claimClientId } from '../shared/domain/client-ids';
import type { BenchContext, BenchRow } from './types';

const CONNECTIONS = 400;
const CONCURRENCY = 16;
const IDENTITIES = 20;

export async function run(context: BenchContext): Promise<BenchRow[]> {
  return [...(await connections()), ...(await fleet(context))];
}

async function connections(): Promise<BenchRow[]> {
  const emulator = await startIotEmulator({});
  const broker = await startMqttBroker({ emulator });
  const iot = new IoTClient(emulator.clientConfig());
  try {
    await iot.send(
      new CreatePolicyCommand({
        policyName: 'claim',
        policyDocument: renderPolicyDocument('claim-policy.json', {
          region: emulator.region,
          accountId: emulator.accountId,
          parameters: { ProvisioningTemplateName: 'bench' },
        }),
      }),
    );
    const identities = await Promise.all(
      Array.from({ length: IDENTITIES }, async () => {
        const csr = await createCsr({ subject: { commonName: 'bench' } });
        const out = await iot.send(
          new CreateCertificateFromCsrCommand({ certificateSigningRequest: csr.csrPem, setAsActive: true }),
        );
        await iot.send(new AttachPolicyCommand({ policyName: 'claim', target: out.certificateArn }));
        return {
          certificatePem: out.certificatePem ?? '',
          privateKeyPem: await exportPrivateKeyPem(csr.keys.privateKey),
        };
      }),
    );
    const latencies: number[] = [];
    let failed = 0;
    const started = performance.now();
    await pool(
      Array.from({ length: CONNECTIONS }, (_, i) => i),
      CONCURRENCY,
      async (i) => {
        const identity = identities[i % IDENTITIES];
        if (!identity) return;
        const begin = performance.now();
        const result = await connectDevice({
          url: broker.url,
          caPem: broker.caPem,
          ...identity,
          clientId: claimClientId(`bench-${i}`),
        });
        if (!result.connected) {
          failed += 1;
          return;
        }
        latencies.push(performance.now() - begin);
        await result.client.endAsync();
      },
    );
    const seconds = (performance.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    const at = (p: number) =>
      latencies[Math.min(latencies.length - 1, Math.ceil(p * latencies.length) - 1)] ?? 0;
    return [
      {
        name: `connections/s: mutual TLS connect → CONNACK → DISCONNECT (${CONNECTIONS}, ${CONCURRENCY} at once)`,
        value: Math.round((latencies.length / seconds) * 10) / 10,
        unit: 'connections/s',
      },
      { name: 'connect → CONNACK p50', value: Math.round(at(0.5) * 10) / 10, unit: 'ms' },
      { name: 'connect → CONNACK p99', value: Math.round(at(0.99) * 10) / 10, unit: 'ms' },
      { name: 'refused connections', value: failed, unit: 'connections', target: '0' },
    ];
  } finally {
    iot.destroy();
    await broker.stop();
    await emulator.stop();
  }
}

/** Fleet provisioning by claim over MQTT on the local stack (hook, DynamoDB, rules, lifecycle). */
async function fleet(context: BenchContext): Promise<BenchRow[]> {
  const stack = await startLocalStack(quietStackOptions({ dynamodbEndpoint: await context.dynamodb() }));
  try {
    const summary = await runSimulation(localHandle(stack), {
      flow: 'fleet',
      devices: 100,
      transport: 'mqtt',
      concurrency: 8,
    });
    return [
      { name: 'fleet over MQTT: devices/s (100)', value: summary.devicesPerSecond, unit: 'devices/s' },
      {
        name: 'fleet over MQTT: connections/s (claim + device)',
        value: summary.mqtt?.connectionsPerSecond ?? 0,
        unit: 'connections/s',
      },
      {
        name: 'fleet over MQTT: duplicates + lost',
        value: summary.duplicatesCreated + summary.lost,
        unit: 'devices',
        target: '0',
      },
    ];
  } finally {
    await stack.stop();
  }
}
