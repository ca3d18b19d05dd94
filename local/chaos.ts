/**
 * Fault injection on the local stack (`npm run chaos`; a short version runs in the test suite): the
 * IoT emulator answers the functions' calls with 5xx and ThrottlingException at a rate (10 % each by
 * default), functions crash between their IoT call and their store write (`shared/chaos.ts`), and
 * every IoT event is delivered again, concurrently (duplicated, reordered), while the simulator
 * drives N devices through each flow (fleet provisioning, JITR, JITP). Queues get short visibility
 * timeouts so a crashed delivery comes back in seconds, not minutes.
 *
 * Then the result is counted from the store and the emulator's registry — not from the simulator's
 * own summary:
 * - duplicates: a serial with more than one thing, a thing with more than one ACTIVE certificate, a
 *   device activated more than once (ACTIVATE history entries);
 * - orphans: a certificate of the run that is ACTIVE in IoT but attached to no thing or not ACTIVE
 *   in the store (or the reverse), a thing of the run without an ACTIVE certificate or that no device
 *   of the store names;
 * - lost: a legitimate device not ACTIVE in the store, a message left in a dead-letter queue or in
 *   the rule-errors queue.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chaosCrashes } from '../shared/chaos';
import type { ProvisioningStore } from '../shared/store/provisioning-store';
import type { IotEmulator } from './iot-emulator';
import { projectRoot } from './paths';
import { quietStackOptions } from './simulator/demo';
import { runSimulation, type SimulationFlow } from './simulator/simulate';
import { type LocalStack, startLocalStack } from './stack';
import { localHandle } from './stack-control';

export interface ChaosOptions {
  /** Legitimate devices per flow (default 200). */
  devices?: number;
  flows?: SimulationFlow[];
  /** Probability of an injected 5xx on a function's IoT call (default 0.1). */
  errorRate?: number;
  /** Probability of an injected ThrottlingException on a function's IoT call (default 0.1). */
  throttleRate?: number;
  /** Probability of a crash at each crash point (default 0.1). */
  crashRate?: number;
  /** Instead of `crashRate`: every unit of work crashes exactly once at each crash point. */
  crashOnce?: boolean;
  /** Extra deliveries of every IoT event (default 1: each event twice, concurrently). */
  duplicates?: number;
  /** Visibility timeout of the consumed queues, seconds (default 10). */
  visibilityTimeoutSeconds?: number;
  seed?: number;
  /** An already running DynamoDB Local (tests share one); default: the stack starts its own. */
  dynamodbEndpoint?: string;
  /**
   * Stage of the stack (default `local`): a shared DynamoDB Local needs a table of its own, and the
   * simulator names policies and templates after the table, as serverless.yml names them after the stage.
   */
  stage?: string;
  onProgress?: (line: string) => void;
}

export interface ChaosFlowResult {
  flow: SimulationFlow;
  runId: string;
  devices: number;
  active: number;
  duplicates: number;
  orphanCertificates: number;
  orphanThings: number;
  lostDevices: number;
  /** Details of every non-zero count above (serials, certificate ids), at most 20. */
  findings: string[];
  seconds: number;
}

export interface ChaosResult {
  flows: ChaosFlowResult[];
  /** Messages left in dead-letter queues and the rule-errors queue at the end. */
  lostEvents: number;
  deadLetters: Record<string, number>;
  /** What was injected: 5xx and throttling answers the emulator gave the functions, crashes. */
  injected: { serverErrors: number; throttled: number; crashes: number };
  ok: boolean;
}

/** Runs the chaos scenario on a fresh local stack and counts the outcome. */
export async function runChaos(options: ChaosOptions = {}): Promise<ChaosResult> {
  const say = options.onProgress ?? (() => undefined);
  const devices = options.devices ?? 200;
  const flows = options.flows ?? ['fleet', 'jitr', 'jitp'];
  const seed = options.seed ?? 15;
  const serverlessFile = await fastQueuesCopy(options.visibilityTimeoutSeconds ?? 10);
  const stack = await startLocalStack(
    quietStackOptions({
      serverlessFile,
      root: projectRoot(),
      ...(options.dynamodbEndpoint ? { dynamodbEndpoint: options.dynamodbEndpoint } : {}),
      ...(options.stage ? { stage: options.stage } : {}),
      env: options.crashOnce
        ? { FLEETGATE_CHAOS_CRASH_ONCE: '1' }
        : { FLEETGATE_CHAOS_CRASH_RATE: String(options.crashRate ?? 0.1) },
      onError: () => undefined,
    }),
  );
  try {
    const emulator = stack.emulator;
    if (!emulator) throw new Error('the local stack started without the IoT emulator');
    const crashesBefore = totalCrashes();
    // Only the functions' calls: the simulator's own setup (policies, CAs) is the operator's.
    emulator.setFaults({
      errorRate: options.errorRate ?? 0.1,
      throttleRate: options.throttleRate ?? 0.1,
      callers: ['local-fn-'],
      seed,
    });
    const { DynamoDBClient } = await import('@aws-sdk/client-dynamodb');
    const { DynamoDBDocumentClient } = await import('@aws-sdk/lib-dynamodb');
    const { ProvisioningStore: Store } = await import('../shared/store/provisioning-store');
    const ddb = new DynamoDBClient({
      endpoint: stack.endpoints.dynamodb,
      region: stack.region,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    const store = new Store(DynamoDBDocumentClient.from(ddb), stack.tableName);
    const results: ChaosFlowResult[] = [];
    try {
      for (const flow of flows) {
        const runId = randomBytes(3).toString('hex').toUpperCase();
        const started = performance.now();
        say(`${flow}: ${devices} devices under chaos (run ${runId})…`);
        await runSimulation(localHandle(stack), {
          flow,
          devices,
          runId,
          seed,
          duplicates: options.duplicates ?? 1,
          concurrency: 8,
          activationTimeoutMs: 180_000,
          settleTimeoutMs: 300_000,
        }).catch((error: unknown) => say(`${flow}: the simulator reported ${String(error)}`));
        await stack.settle(300_000).catch((error: unknown) => say(`${flow}: ${String(error)}`));
        const counts = await countFlow(store, emulator, runId, devices);
        results.push({ flow, runId, devices, ...counts, seconds: (performance.now() - started) / 1000 });
      }
    } finally {
      ddb.destroy();
    }
    const deadLetters = await deadLetterDepths(stack);
    const lostEvents = Object.values(deadLetters).reduce((sum, n) => sum + n, 0);
    const log = emulator.calls;
    const injected = {
      serverErrors: log.filter(
        (call) =>
          call.outcome === 'InternalFailureException' || call.outcome === 'ServiceUnavailableException',
      ).length,
      throttled: log.filter((call) => call.outcome === 'ThrottlingException').length,
      crashes: totalCrashes() - crashesBefore,
    };
    const ok =
      lostEvents === 0 &&
      results.every(
        (r) =>
          r.duplicates === 0 && r.orphanCertificates === 0 && r.orphanThings === 0 && r.lostDevices === 0,
      );
    return { flows: results, lostEvents, deadLetters, injected, ok };
  } finally {
    await stack.stop();
  }
}

function totalCrashes(): number {
  return Object.values(chaosCrashes()).reduce((sum, n) => sum + n, 0);
}

/** serverless.yml with short visibility timeouts on the consumed queues. */
async function fastQueuesCopy(visibilityTimeoutSeconds: number): Promise<string> {
  const original = await readFile(join(projectRoot(), 'serverless.yml'), 'utf8');
  const fast = original.replace(
    /VisibilityTimeout: (181|361)\b/g,
    `VisibilityTimeout: ${visibilityTimeoutSeconds}`,
  );
  const dir = await mkdtemp(join(tmpdir(), 'fleetgate-chaos-'));
  const file = join(dir, 'serverless.yml');
  await writeFile(file, fast);
  return file;
}

async function deadLetterDepths(stack: LocalStack): Promise<Record<string, number>> {
  const names = new Set(
    stack.model.queues
      .filter((queue) => /DLQ$/.test(queue.logicalId) || queue.logicalId === 'RuleErrorsQueue')
      .map((queue) => queue.name),
  );
  const depths = await stack.depths();
  return Object.fromEntries(Object.entries(depths).filter(([name, n]) => names.has(name) && n > 0));
}

/** Duplicates, orphans and lost devices of one run, from the store and the emulator's registry. */
async function countFlow(
  store: ProvisioningStore,
  emulator: IotEmulator,
  runId: string,
  devices: number,
): Promise<Omit<ChaosFlowResult, 'flow' | 'runId' | 'devices' | 'seconds'>> {
  const prefix = `SIM-${runId}-`;
  const findings: string[] = [];
  const note = (line: string) => {
    if (findings.length < 20) findings.push(line);
  };
  const registry = emulator.registry;
  const serials = Array.from({ length: devices }, (_, index) => `${prefix}${String(index).padStart(6, '0')}`);
  const records = new Map<string, Awaited<ReturnType<ProvisioningStore['getDevice']>>>();
  for (const serial of serials) records.set(serial, await store.getDevice(serial));

  let duplicates = 0;
  let lostDevices = 0;
  for (const serial of serials) {
    const device = records.get(serial);
    if (device?.state !== 'ACTIVE') {
      lostDevices += 1;
      note(`lost: ${serial} is ${device?.state ?? 'missing'}`);
    }
    const activations = (await store.history(serial)).filter((entry) => entry.event === 'ACTIVATE').length;
    if (activations > 1) {
      duplicates += activations - 1;
      note(`duplicate: ${serial} activated ${activations} times`);
    }
  }

  const things = [...registry.things.values()].filter(
    (thing) => thing.thingName.startsWith(prefix) || (thing.attributes.serial ?? '').startsWith(prefix),
  );
  const thingsBySerial = new Map<string, string[]>();
  for (const thing of things) {
    const serial = thing.attributes.serial ?? thing.thingName;
    thingsBySerial.set(serial, [...(thingsBySerial.get(serial) ?? []), thing.thingName]);
  }
  for (const [serial, names] of thingsBySerial) {
    if (names.length > 1) {
      duplicates += names.length - 1;
      note(`duplicate: ${serial} has things ${names.join(', ')}`);
    }
  }
  const certificateOf = (arn: string) =>
    [...registry.certificates.values()].find((c) => c.certificateArn === arn);
  let orphanThings = 0;
  for (const thing of things) {
    const active = [...thing.principals].map(certificateOf).filter((c) => c?.status === 'ACTIVE');
    if (active.length > 1) {
      duplicates += active.length - 1;
      note(`duplicate: thing ${thing.thingName} has ${active.length} ACTIVE certificates`);
    }
    const owner = records.get(thing.attributes.serial ?? thing.thingName);
    if (active.length === 0 || owner?.thingName !== thing.thingName) {
      orphanThings += 1;
      note(
        `orphan thing: ${thing.thingName} (${active.length} ACTIVE certificates, store: ${owner?.thingName ?? 'no device'})`,
      );
    }
  }

  // The run's certificates: those whose subject names a serial of the run.
  const attached = new Set(things.flatMap((thing) => [...thing.principals]));
  let orphanCertificates = 0;
  for (const certificate of registry.certificates.values()) {
    if (!certificate.certificate.subject.includes(prefix)) continue;
    const record = await store.getCertificate(certificate.certificateId);
    const activeInIot = certificate.status === 'ACTIVE';
    const activeInStore = record?.status === 'ACTIVE';
    if (activeInIot && (!attached.has(certificate.certificateArn) || !activeInStore)) {
      orphanCertificates += 1;
      note(
        `orphan certificate: ${certificate.certificateId.slice(0, 12)}… ACTIVE in IoT, ${
          attached.has(certificate.certificateArn) ? 'attached' : 'attached to no thing'
        }, store: ${record?.status ?? 'unknown'}`,
      );
    } else if (!activeInIot && activeInStore) {
      orphanCertificates += 1;
      note(
        `orphan record: ${certificate.certificateId.slice(0, 12)}… ACTIVE in the store, ${certificate.status} in IoT`,
      );
    }
  }
  const active = serials.filter((serial) => records.get(serial)?.state === 'ACTIVE').length;
  return { active, duplicates, orphanCertificates, orphanThings, lostDevices, findings };
}

/** The counts as the chaos run prints them. */
export function formatChaos(result: ChaosResult): string {
  const lines = [
    `chaos: ${result.injected.serverErrors} injected 5xx, ${result.injected.throttled} throttled, ${result.injected.crashes} crashes between an IoT call and a store write`,
  ];
  for (const flow of result.flows) {
    lines.push(
      `${flow.flow.padEnd(5)} run ${flow.runId}: ${flow.devices} devices, ${flow.active} ACTIVE in ${flow.seconds.toFixed(1)} s`,
      `  duplicates         ${flow.duplicates}`,
      `  orphan certs       ${flow.orphanCertificates}`,
      `  orphan things      ${flow.orphanThings}`,
      `  lost devices       ${flow.lostDevices}`,
      ...flow.findings.map((finding) => `    ${finding}`),
    );
  }
  lines.push(
    `lost events (DLQs, rule errors): ${result.lostEvents}${
      result.lostEvents > 0 ? ` ${JSON.stringify(result.deadLetters)}` : ''
    }`,
    result.ok ? 'converged: 0 duplicates, 0 orphans, 0 lost' : 'DID NOT CONVERGE',
  );
  return lines.join('\n');
}
