/**
 * The hook's denial alarms watch exactly the metric the hook emits: a CloudWatch alarm matches a
 * metric only with the same namespace, name and the complete dimension set, so the EMF document
 * Powertools writes for a TIME_BUDGET_EXCEEDED / STORE_UNAVAILABLE denial is compared with the
 * alarms serverless.yml declares.
 * @see https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_concepts.html#Dimension
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadServerlessConfig } from '../../local/serverless-config';
import { DENY_REASONS } from '../../shared/domain/provisioning-rules';
import { countOutcome, createMetrics } from '../../shared/logging';

interface EmfDocument {
  _aws: {
    CloudWatchMetrics: Array<{ Namespace: string; Dimensions: string[][]; Metrics: Array<{ Name: string }> }>;
  };
  [key: string]: unknown;
}

/** The EMF documents Powertools writes to stdout while `act` runs (metrics switched on). */
function emitted(act: () => void): EmfDocument[] {
  const previous = process.env.POWERTOOLS_METRICS_DISABLED;
  process.env.POWERTOOLS_METRICS_DISABLED = 'false';
  const lines: string[] = [];
  const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  });
  const log = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
    lines.push(args.map(String).join(' '));
  });
  try {
    act();
  } finally {
    write.mockRestore();
    log.mockRestore();
    if (previous === undefined) delete process.env.POWERTOOLS_METRICS_DISABLED;
    else process.env.POWERTOOLS_METRICS_DISABLED = previous;
  }
  return lines
    .flatMap((line) => line.split('\n'))
    .filter((line) => line.includes('"_aws"'))
    .map((line) => JSON.parse(line) as EmfDocument);
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('hook denial alarms', () => {
  it.each([
    ['TIME_BUDGET_EXCEEDED', 'HookTimeBudgetDenialsAlarm'],
    ['STORE_UNAVAILABLE', 'HookStoreUnavailableDenialsAlarm'],
  ] as const)('%s: the alarm %s matches the metric the hook emits', (reason, alarmId) => {
    // Prepare
    const alarm = loadServerlessConfig().resources?.Resources?.[alarmId]?.Properties as {
      Namespace: string;
      MetricName: string;
      Dimensions: Array<{ Name: string; Value: string }>;
    };
    // Act: what functions/pre-provision-hook/hook.ts does for a denial
    const documents = emitted(() =>
      countOutcome(createMetrics('preProvisionHook'), 'ProvisioningDenied', { reason }),
    );
    // Assess
    expect(DENY_REASONS).toContain(reason);
    expect(documents).toHaveLength(1);
    const [document] = documents as [EmfDocument];
    const [directive] = document._aws.CloudWatchMetrics;
    expect(directive?.Namespace).toBe(alarm.Namespace);
    expect(directive?.Metrics.map((metric) => metric.Name)).toEqual([alarm.MetricName]);
    const emittedDimensions = (directive?.Dimensions[0] ?? []).map((name) => ({
      Name: name,
      Value: document[name],
    }));
    const byName = (a: { Name: string }, b: { Name: string }) => a.Name.localeCompare(b.Name);
    expect(emittedDimensions.sort(byName)).toEqual([...alarm.Dimensions].sort(byName));
    expect(alarm.Dimensions).toContainEqual({ Name: 'reason', Value: reason });
  });
});
