/**
 * A rotation rig for integration tests: the JITR rig (IoT emulator with a device CA and policy,
 * DynamoDB Local table), plus `rotateCertificate`, a `deviceLifecycle` whose rotation-commit seam
 * retires the old certificate (as the deployed handler is composed) and `sweepRotations`, all on one
 * clock the test moves. Rotation requests are what RotationRequestRule delivers for a device publish:
 * the payload plus `principal()`, `clientid()` and `topic(2)`.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { createHandler as createLifecycleHandler } from '../../functions/device-lifecycle/create-handler';
import { createHandler as createRotateHandler } from '../../functions/rotate-certificate/create-handler';
import { createHandler as createSweepHandler } from '../../functions/sweep-rotations/create-handler';
import type { PublishedMessage } from '../../local/iot-emulator';
import { createCsr, type KeyAlgorithm, type KeyedCertificate } from '../../local/pki';
import type { Config } from '../../shared/config';
import { IotDataMessenger } from '../../shared/iot/device-messages';
import { IotRegistry } from '../../shared/iot/iot-registry';
import { retireOnCommit } from '../../shared/rotation/retirement';
import type { ProvisioningStore } from '../../shared/store/provisioning-store';
import { RegistrationStore } from '../../shared/store/registration-store';
import { RotationStore } from '../../shared/store/rotation-store';
import { type RecordedOutcome, recordingMetrics } from './hook';
import { allowlist, deliver, deviceCertificate, type Rig, ruleOutput, startRig } from './jitr';
import { lambdaContext } from './lambda';

type Handler = (event: SQSEvent, context: ReturnType<typeof lambdaContext>) => Promise<SQSBatchResponse>;

export interface RotationRig {
  rig: Rig;
  config: Config;
  rotations: RotationStore;
  rotate: Handler;
  lifecycle: Handler;
  rotateOutcomes: RecordedOutcome[];
  lifecycleOutcomes: RecordedOutcome[];
  sweepOutcomes: RecordedOutcome[];
  /** Runs sweepRotations once. */
  sweep(): Promise<{ aborted: number; retired: number; failures: number }>;
  setNow(epochMs: number): void;
  /** Allowlists, registers through JITR and verifies a device (client id = serial); it stays connected. */
  activeDevice(serial: string): Promise<KeyedCertificate>;
  /** A CSR whose CN is `commonName` (default: the serial). */
  csr(commonName: string, algorithm?: KeyAlgorithm): Promise<string>;
  /**
   * The connected client `clientId` publishes `payload` on `fleetgate/<thingName>/rotate/request`;
   * resolves with the body RotationRequestRule would queue.
   */
  publishRequest(clientId: string, thingName: string, payload: unknown): Promise<string>;
  /** Delivers presence events published since the last call to deviceLifecycle. */
  deliverPresence(): Promise<void>;
  stop(): Promise<void>;
}

export async function startRotationRig(
  store: ProvisioningStore,
  options: {
    env?: Record<string, string>;
    /** Stands between rotateCertificate and the IoT registry (e.g. to make one call fail). */
    wrapRotationIot?: (iot: IotRegistry) => IotRegistry;
  } = {},
): Promise<RotationRig> {
  let nowMs: number | undefined;
  const clock = () => nowMs ?? Date.now();
  const rig = await startRig(store, { ...(options.env ? { env: options.env } : {}), now: clock });
  const config = rig.config;
  const logger = new Logger({
    serviceName: 'fleetgate',
    logLevel: (process.env.ROTATION_TEST_LOG_LEVEL ?? 'SILENT') as 'SILENT',
  });
  const iot = new IotRegistry(rig.iot);
  const data = new IoTDataPlaneClient({ ...rig.emulator.clientConfig(), maxAttempts: 1 });
  const rotations = new RotationStore(store);
  const rotateOutcomes: RecordedOutcome[] = [];
  const lifecycleOutcomes: RecordedOutcome[] = [];
  const sweepOutcomes: RecordedOutcome[] = [];
  const rotate = createRotateHandler({
    config,
    store,
    rotations,
    iot: options.wrapRotationIot ? options.wrapRotationIot(iot) : iot,
    messenger: new IotDataMessenger(data),
    deadLetters: rig.deadLetters,
    logger,
    metrics: recordingMetrics(rotateOutcomes),
    clock,
  }) as unknown as Handler;
  const lifecycleMetrics = recordingMetrics(lifecycleOutcomes);
  const lifecycle = createLifecycleHandler({
    config,
    store,
    registrations: new RegistrationStore(store),
    iot,
    quarantine: rig.quarantine,
    deadLetters: rig.deadLetters,
    logger,
    metrics: lifecycleMetrics,
    clock,
    onRotationCommitted: retireOnCommit({ iot, rotations, logger, metrics: lifecycleMetrics, clock }),
  }) as unknown as Handler;
  const sweepHandler = createSweepHandler({
    config,
    store,
    rotations,
    iot,
    logger,
    metrics: recordingMetrics(sweepOutcomes),
    clock,
  });
  const requests: PublishedMessage[] = [];
  rig.emulator.onPublish((message) => {
    if (/^fleetgate\/[^/]+\/rotate\/request$/.test(message.topic)) requests.push(message);
  });

  const deliverPresence = async () => {
    await deliver(lifecycle, rig.take('lifecycle').map(ruleOutput));
  };

  return {
    rig,
    config,
    rotations,
    rotate,
    lifecycle,
    rotateOutcomes,
    lifecycleOutcomes,
    sweepOutcomes,
    sweep: async () =>
      (await sweepHandler({}, lambdaContext('fleetgate-test-sweepRotations', 60_000))) as {
        aborted: number;
        retired: number;
        failures: number;
      },
    setNow: (epochMs) => {
      nowMs = epochMs;
    },
    activeDevice: async (serial) => {
      await allowlist(store, [serial]);
      const certificate = await deviceCertificate(rig.ca, serial);
      await rig.emulator.connect({ certificatePem: certificate.certificatePem, clientId: serial });
      await deliver(rig.registration, rig.take('registration').map(ruleOutput));
      await rig.emulator.connect({ certificatePem: certificate.certificatePem, clientId: serial });
      await deliverPresence();
      const device = await store.getDevice(serial);
      if (device?.state !== 'ACTIVE') throw new Error(`${serial} did not become ACTIVE`);
      return certificate;
    },
    csr: async (commonName, algorithm) => (await createCsr({ subject: { commonName }, algorithm })).csrPem,
    publishRequest: async (clientId, thingName, payload) => {
      const outcome = await rig.emulator.publish({
        clientId,
        topic: `fleetgate/${thingName}/rotate/request`,
        payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
      });
      if (!outcome.accepted) throw new Error(`publish refused: ${outcome.reason}`);
      const message = requests.pop();
      if (!message) throw new Error('the request was not published');
      const json = typeof message.json === 'object' && message.json !== null ? message.json : {};
      // RotationRequestRule: SELECT *, principal() AS principal, clientid() AS clientId, topic(2) AS thingName
      return JSON.stringify({
        ...json,
        principal: message.meta.principal,
        clientId: message.meta.clientId,
        thingName: message.topic.split('/')[1],
      });
    },
    deliverPresence,
    stop: async () => {
      data.destroy();
      await rig.stop();
    },
  };
}
