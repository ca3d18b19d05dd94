/**
 * One Powertools Logger and Metrics factory for every function (service `fleetgate`). Log decisions
 * and failures, append the serial / thing name once known, and never log PEMs, private keys or
 * whole events.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';

export const SERVICE_NAME = 'fleetgate';
export const METRICS_NAMESPACE = 'fleetgate';

/** The logger of one function; `POWERTOOLS_LOG_LEVEL` sets the level. */
export function createLogger(functionName?: string): Logger {
  return new Logger({
    serviceName: SERVICE_NAME,
    ...(functionName ? { persistentKeys: { function: functionName } } : {}),
  });
}

/** The metrics emitter of one function (EMF on stdout; `POWERTOOLS_METRICS_DISABLED` silences it). */
export function createMetrics(functionName?: string): Metrics {
  return new Metrics({
    namespace: METRICS_NAMESPACE,
    serviceName: SERVICE_NAME,
    ...(functionName ? { defaultDimensions: { function: functionName } } : {}),
  });
}

/**
 * Publishes one business outcome right away, with its own dimensions. Each call is a fresh single
 * metric, so no dimension can leak into a later invocation.
 */
export function countOutcome(metrics: Metrics, name: string, dimensions: Record<string, string> = {}): void {
  const single = metrics.singleMetric();
  for (const [key, value] of Object.entries(dimensions)) single.addDimension(key, value);
  single.addMetric(name, MetricUnit.Count, 1);
}
