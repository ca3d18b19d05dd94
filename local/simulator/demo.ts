/**
 * The `npm start` demo: a small fleet through every flow the stack can run, with a few bad actors,
 * then the expiry sweep and its report — a first look at fleetgate in about a minute.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { loadConfig } from '../../shared/config';
import { runExpirySweep, runIdFor, type SweepFiles, sweepPolicy } from '../../shared/expiry/expiry-sweep';
import type { QuarantineCounts } from '../../shared/quarantine/operator';
import { createReportSink } from '../../shared/reports/report-sink';
import { StoreClient } from '../../shared/store/client';
import { SweepFacts } from '../../shared/store/sweep-facts';
import { SweepStore } from '../../shared/store/sweep-store';
import { projectRoot } from '../paths';
import type { LocalStackOptions } from '../stack';
import type { StackHandle } from '../stack-control';
import { stackLogSink } from '../stack-file';
import { availableFlows, runSimulation, type SimulationFlow, type SimulationSummary } from './simulate';

/** How many devices and bad actors each flow gets in the demo (about 50 devices in all). */
// The factory flow is not part of the demo (`fleetgate simulate --flow factory` runs it).
const DEMO_FLEETS: Partial<Record<SimulationFlow, { devices: number; clones: number; invalid: number }>> = {
  fleet: { devices: 26, clones: 2, invalid: 3 },
  jitr: { devices: 12, clones: 1, invalid: 3 },
  jitp: { devices: 12, clones: 1, invalid: 3 },
};

/**
 * Certificate lifetimes of the JITR and JITP devices, spread so that the sweep's report has
 * something in every window: 1 in 12 expires within 7 days, 2 within 30, 3 within the chart's
 * 90 days; the rest live a year.
 */
function demoLifetimeDays(index: number): number {
  const spread = [3, 20, 27, 45, 60, 85];
  return index % 2 === 0 ? (spread[(index / 2) % spread.length] ?? 365) : 365;
}

export interface DemoSweep {
  runId: string;
  counts: Record<string, number>;
  atRisk: number;
  files: SweepFiles;
}

export interface DemoSummary {
  flows: SimulationSummary[];
  /** Flows the stack cannot run yet (a function they need is not in serverless.yml). */
  skippedFlows: SimulationFlow[];
  sweep?: DemoSweep;
  reportsDir: string;
  duplicatesCreated: number;
  lost: number;
  admittedBadActors: number;
  ok: boolean;
  durationMs: number;
  /** What is in quarantine once every flow has run, as `fleetgate quarantine list` counts it. */
  quarantine: QuarantineCounts;
}

/**
 * Stack options that keep handler logs off the terminal: they go to the stack's log
 * (`.fleetgate/stack.log`, `fleetgate logs`), metrics are off (FLEETGATE_HANDLER_LOGS=1 keeps both on
 * the terminal).
 */
export function quietStackOptions(options: LocalStackOptions): LocalStackOptions {
  if (process.env.FLEETGATE_HANDLER_LOGS) return options;
  return {
    ...options,
    env: { ...options.env, POWERTOOLS_METRICS_DISABLED: 'true' },
    handlerOutput: options.handlerOutput ?? stackLogSink(undefined, 'dev'),
  };
}

/** Runs the demo against a local stack. Never throws for a broken invariant: `ok` says so. */
export async function runDemo(
  handle: StackHandle,
  options: { reportsDir?: string; onStep?: (line: string) => void } = {},
): Promise<DemoSummary> {
  const started = performance.now();
  const say = options.onStep ?? (() => undefined);
  const flows = (await availableFlows(handle)).filter((flow) => DEMO_FLEETS[flow] !== undefined);
  const skippedFlows = (Object.keys(DEMO_FLEETS) as SimulationFlow[]).filter((flow) => !flows.includes(flow));
  const summaries: SimulationSummary[] = [];
  for (const flow of flows) {
    const fleet = DEMO_FLEETS[flow] ?? { devices: 0, clones: 0, invalid: 0 };
    say(
      `${flow}: ${fleet.devices} device${fleet.devices === 1 ? '' : 's'}, ${fleet.clones} clone${fleet.clones === 1 ? '' : 's'}, ${fleet.invalid} invalid …`,
    );
    summaries.push(
      await runSimulation(handle, {
        flow,
        ...fleet,
        duplicates: 1,
        concurrency: 8,
        seed: 7,
        settleTimeoutMs: 10_000,
        lifetimeDays: demoLifetimeDays,
      }),
    );
  }
  const reportsDir = options.reportsDir ?? join(projectRoot(), '.fleetgate', 'reports');
  say('expiry sweep …');
  const sweep = await sweepNow(handle, reportsDir);
  const duplicatesCreated = summaries.reduce((sum, s) => sum + s.duplicatesCreated, 0);
  const lost = summaries.reduce((sum, s) => sum + s.lost, 0);
  const admittedBadActors = summaries.reduce(
    (sum, s) => sum + s.admittedBadActors.length + s.unquarantinedClones.length,
    0,
  );
  const errors = summaries.reduce((sum, s) => sum + s.errors.length, 0);
  return {
    flows: summaries,
    skippedFlows,
    sweep,
    reportsDir,
    duplicatesCreated,
    lost,
    admittedBadActors,
    ok: duplicatesCreated === 0 && lost === 0 && admittedBadActors === 0 && errors === 0,
    durationMs: Math.round(performance.now() - started),
    // The flows share the stack: the last one's count covers them all.
    quarantine: summaries.at(-1)?.inQuarantine ?? { devices: 0, certificates: 0 },
  };
}

/** The expiry sweep over the stack's table, with the report files written under `reportsDir`. */
async function sweepNow(handle: StackHandle, reportsDir: string): Promise<DemoSweep> {
  const now = new Date().toISOString();
  const config = loadConfig({ ...process.env, TABLE_NAME: handle.tableName });
  const ddb = new DynamoDBClient({
    endpoint: handle.endpoints.dynamodb,
    region: handle.region,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  try {
    const runId = runIdFor('demo', now, randomUUID().slice(0, 8));
    const db = new StoreClient(
      DynamoDBDocumentClient.from(ddb, { marshallOptions: { removeUndefinedValues: true } }),
      handle.tableName,
    );
    const outcome = await runExpirySweep(
      { runId, now, policy: sweepPolicy(config) },
      {
        sweepStore: new SweepStore(db),
        facts: new SweepFacts(db),
        sink: createReportSink(`file://${reportsDir}`),
        remainingMs: () => Number.POSITIVE_INFINITY,
        safetyMarginMs: 0,
        pageSize: config.sweepPageSize,
        clock: Date.now,
      },
    );
    if (outcome.status !== 'complete') throw new Error(`sweep ${runId} did not complete`);
    return {
      runId,
      counts: outcome.summary.counts,
      atRisk: outcome.summary.atRisk,
      files: outcome.files,
    };
  } finally {
    ddb.destroy();
  }
}
