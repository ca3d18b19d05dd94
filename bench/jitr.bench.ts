import { AWS_DEFAULT_QUOTAS } from '../local/iot-emulator';
import { allowlist, deliver, deviceCertificate, ruleOutput, startRig } from '../test/support/jitr';
import type { BenchContext, BenchRow } from './types';

const DEVICES = 100;
const REGISTRATION_APIS = [
  'DescribeCertificate',
  'CreateThing',
  'AttachPolicy',
  'AttachThingPrincipal',
  'UpdateCertificate',
];

export async function run(context: BenchContext): Promise<BenchRow[]> {
  const { client, store } = await context.table('jitr');
  const rig = await startRig(store, { maxAttempts: 5 });
  try {
    const serials = Array.from({ length: DEVICES }, (_, i) => `SN-BENCH-${String(i).padStart(5, '0')}`);
    await allowlist(store, serials);
    const devices = await Promise.all(
      serials.map(async (serial) => ({ serial, certificate: await deviceCertificate(rig.ca, serial) })),
    );
    for (const { serial, certificate } of devices)
      await rig.emulator.connect({ certificatePem: certificate.certificatePem, clientId: serial });
    const events = rig.take('registration').map(ruleOutput);
    rig.emulator.clearCalls();
    rig.emulator.setFaults({ quotas: 'aws-default' });

    const tripsBefore = store.stats.roundTrips;
    const started = performance.now();
    const registration = await deliver(rig.registration, events, {
      concurrency: 2,
      batchSize: 10,
      redeliveryMs: 1000,
    });
    const seconds = (performance.now() - started) / 1000;
    const registrationTrips = store.stats.roundTrips - tripsBefore;
    const calls = rig.emulator.calls;
    const okCalls = calls.filter((call) => call.outcome === 'ok').length;
    const throttled = calls.filter((call) => call.outcome === 'ThrottlingException').length;

    rig.emulator.setFaults({});
    for (const { serial, certificate } of devices)
      await rig.emulator.connect({ certificatePem: certificate.certificatePem, clientId: serial });
    const connected = rig
      .take('lifecycle')
      .filter((message) => message.topic.startsWith('$aws/events/presence/connected/'));
    const verifyBefore = store.stats.roundTrips;
    await deliver(rig.lifecycle, connected.map(ruleOutput), { concurrency: 2, batchSize: 10 });
    const verifyTrips = store.stats.roundTrips - verifyBefore;
    const repeatBefore = store.stats.roundTrips;
    await deliver(rig.lifecycle, connected.map(ruleOutput), { concurrency: 2, batchSize: 10 });
    const repeatTrips = store.stats.roundTrips - repeatBefore;
    const active = (await Promise.all(serials.map((serial) => store.getDevice(serial)))).filter(
      (d) => d?.state === 'ACTIVE',
    ).length;
    if (active !== DEVICES || registration.deadLettered.length > 0)
      throw new Error(`only ${active}/${DEVICES} devices ended ACTIVE`);

    // Every device needs one call of each API: the slowest quota sets the pace.
    const ideal = Math.min(
      ...REGISTRATION_APIS.map((api) => AWS_DEFAULT_QUOTAS[api] ?? Number.POSITIVE_INFINITY),
    );
    const rate = DEVICES / seconds;
    return [
      {
        name: 'IoT API calls per registered device (successful)',
        value: okCalls / DEVICES,
        unit: 'calls',
        target: '5 (+1 DescribeCACertificate per container and TTL)',
      },
      {
        name: 'IoT API attempts per registered device (incl. throttled)',
        value: calls.length / DEVICES,
        unit: 'calls',
        target: `${throttled} throttled in total`,
      },
      {
        name: 'DynamoDB round trips per registered device',
        value: registrationTrips / DEVICES,
        unit: 'round trips',
        target: '≤ 4',
        ratio: 4 / (registrationTrips / DEVICES),
      },
      {
        name: 'DynamoDB round trips per verification (first connected)',
        value: verifyTrips / DEVICES,
        unit: 'round trips',
        target: '≤ 7',
        ratio: 7 / (verifyTrips / DEVICES),
      },
      {
        name: 'DynamoDB round trips per repeated presence event',
        value: repeatTrips / DEVICES,
        unit: 'round trips',
        target: '1',
        ratio: 1 / (repeatTrips / DEVICES),
      },
      {
        name: `JITR devices/s under default quotas (${DEVICES} devices, 2×10 in flight)`,
        value: rate,
        unit: 'devices/s',
        target: `${ideal} (quota-limited ideal)`,
        ratio: rate / ideal,
      },
      { name: 'SQS redeliveries during the run', value: registration.retried, unit: 'records' },
    ];
  } finally {
    await rig.stop();
    client.destroy();
  }
}
