/**
 * Builds the pre-provisioning hook around a given store and config for integration tests, the
 * emulator end-to-end test and the benchmark, recording every outcome the handler counts.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import { createHandler } from '../../functions/pre-provision-hook/create-handler';
import type { QuarantineRequest } from '../../schemas/quarantine-request';
import { type Config, configFor } from '../../shared/config';
import type { ProvisioningStore } from '../../shared/store/provisioning-store';

export interface RecordedOutcome {
  name: string;
  reason?: string;
}

/**
 * Metrics that remember each single metric instead of printing EMF; stored metrics (flushed by
 * `logMetrics`) go to `stored` when given.
 */
export function recordingMetrics(outcomes: RecordedOutcome[], stored: RecordedOutcome[] = []): Metrics {
  return {
    singleMetric: () => {
      const dimensions: Record<string, string> = {};
      return {
        addDimension: (key: string, value: string) => {
          dimensions[key] = value;
        },
        addMetric: (name: string) => {
          outcomes.push(dimensions.reason ? { name, reason: dimensions.reason } : { name });
        },
      };
    },
    addMetric: (name: string) => {
      stored.push({ name });
    },
    publishStoredMetrics: () => undefined,
  } as unknown as Metrics;
}

export interface TestHook {
  hook: ReturnType<typeof createHandler>;
  config: Config;
  outcomes: RecordedOutcome[];
  /** Quarantine requests the hook sent (clone and takeover evidence). */
  quarantined: QuarantineRequest[];
  /** Moves the hook's clock (epoch ms). */
  setNow(epochMs: number): void;
}

export function buildTestHook(
  store: ProvisioningStore,
  env: Record<string, string> = {},
  nowMs = Date.now(),
  logger: Logger = new Logger({ serviceName: 'fleetgate', logLevel: 'SILENT' }),
): TestHook {
  const config = configFor({ TABLE_NAME: store.tableName, ...env });
  const outcomes: RecordedOutcome[] = [];
  const quarantined: QuarantineRequest[] = [];
  let now = nowMs;
  const hook = createHandler({
    config,
    store,
    logger,
    metrics: recordingMetrics(outcomes),
    quarantine: {
      send: async (request) => {
        quarantined.push(request);
      },
    },
    clock: () => now,
  });
  return {
    hook,
    config,
    outcomes,
    quarantined,
    setNow: (epochMs) => {
      now = epochMs;
    },
  };
}
