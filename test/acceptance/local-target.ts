/**
 * `--target local`: the local stack as a user starts it, `fleetgate local up` (a background process
 * with its own stack file in a temporary folder, so a stack the user is running is left alone), and
 * `fleetgate local down` at the end. With `--stack-file` the suite uses a stack that is already
 * running and leaves it running.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliJson, runFleetgate } from './cli';
import { deployedNames, serviceName } from './names';
import type { LocalDescriptor } from './target';

interface StackStatus {
  running: boolean;
  region: string;
  tableName: string;
  endpoints: Record<string, string>;
  log?: string;
}

export interface LocalTarget {
  descriptor: LocalDescriptor;
  /** Stops the stack if the suite started it. */
  stop(): Promise<void>;
}

/**
 * @param options.stackFile a running stack to use (left running)
 * @param options.ownStackFile where the stack this run starts writes its stack file (the runner
 *   picks it, so it can stop the stack even when vitest is interrupted); default a new temporary one
 */
export async function startLocalTarget(options: {
  runId: string;
  stackFile?: string;
  ownStackFile?: string;
}): Promise<LocalTarget> {
  const dir = await mkdtemp(join(tmpdir(), 'fleetgate-acceptance-stack-'));
  const stackFile = options.stackFile ?? options.ownStackFile ?? join(dir, 'stack.json');
  const env = { FLEETGATE_STACK_FILE: stackFile, FLEETGATE_DEVICES_DIR: join(dir, 'devices') };
  let status: StackStatus;
  if (options.stackFile) {
    status = cliJson<StackStatus>(await runFleetgate(['local', 'status', '--json'], env));
    if (!status.running)
      throw new Error(`no local stack is running with stack file ${options.stackFile} (fleetgate local up)`);
  } else {
    status = cliJson<StackStatus>(await runFleetgate(['local', 'up', '--json', '--timeout', '120000'], env));
  }
  const stop = async () => {
    try {
      if (options.stackFile) return;
      const down = await runFleetgate(['local', 'down', '--json'], env);
      if (down.code !== 0) throw new Error(`fleetgate local down exited ${down.code}: ${down.stderr.trim()}`);
    } finally {
      // The run's device keys (fleetgate device claim) and, for a stack of its own, its stack file.
      await rm(dir, { recursive: true, force: true });
    }
  };
  try {
    const { iot, mqtt } = status.endpoints;
    if (!iot || !mqtt) throw new Error('the local stack has no IoT emulator or MQTT endpoint');
    // The CA the device endpoint's server certificate chains to (docs/mqtt-endpoint.md).
    const ca = (await (await fetch(`${iot}/_emulator/ca`)).json()) as { certificatePem: string };
    return {
      descriptor: {
        kind: 'local',
        runId: options.runId,
        region: status.region,
        // The local stack is stage `local` of serverless.yml, with the defaults of its params.
        names: { ...deployedNames(serviceName(), 'local'), tableName: status.tableName },
        endpoint: { url: mqtt, caPem: ca.certificatePem },
        settings: { thingNamePrefix: '', duplicateClientIdThreshold: 3 },
        stackFile,
        devicesDir: env.FLEETGATE_DEVICES_DIR,
        iotEndpoint: iot,
        ...(status.endpoints.s3 ? { s3Endpoint: status.endpoints.s3 } : {}),
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Stops the stack of `stackFile` if one is still running there (the runner's last resort). */
export async function stopLocalStack(stackFile: string): Promise<void> {
  await runFleetgate(['local', 'down', '--json'], { FLEETGATE_STACK_FILE: stackFile });
}
