import { randomUUID } from 'node:crypto';
import { notAskedReason } from '../../shared/domain/expiry';
import { runExpirySweep, runIdFor, sweepPolicy } from '../../shared/expiry/expiry-sweep';
import { createReportSink } from '../../shared/reports/report-sink';
import { SweepFacts } from '../../shared/store/sweep-facts';
import { SweepStore } from '../../shared/store/sweep-store';
import { CommandFailure, type Output } from '../io';
import type { CommandRegistry } from '../main';
import { plural } from '../plural';
import { resolveStoreTarget } from '../target';
import { reportRun } from '../target-report';

/** `fleetgate sweep [--now ISO] [--out DIR]`: runs the expiry sweep now and writes the report files. */
export function registerSweepCommand({ program, run }: CommandRegistry): void {
  program
    .command('sweep')
    .description(
      'Run the certificate expiry sweep now; write the report (JSON, CSV, HTML); print the summary',
    )
    .option('--now <iso>', 'classify as of this instant (default: now)')
    .option('--out <dir>', 'write the report files here (default: REPORT_DESTINATION or .fleetgate/reports)')
    .option('--json', 'print one JSON document')
    .option('--target <target>', 'local (default) or aws')
    .option('--table <name>', 'table name (default: the stack’s, or TABLE_NAME)')
    .action(
      async (options: { now?: string; out?: string; json?: boolean; target?: string; table?: string }) => {
        await run(options.json, async (output) => {
          const { now, config, destination } = reportRun(options);
          const target = await resolveStoreTarget(options, output);
          try {
            const runId = runIdFor('cli', now, randomUUID().slice(0, 8));
            // With --now the run is a what-if: compared with the latest real run before that
            // instant, and never the baseline of a later run.
            const simulated = options.now !== undefined;
            const outcome = await runExpirySweep(
              { runId, now, policy: sweepPolicy(config), simulated },
              {
                sweepStore: new SweepStore(target.store),
                facts: new SweepFacts(target.store),
                sink: createReportSink(destination),
                remainingMs: () => Number.POSITIVE_INFINITY,
                safetyMarginMs: 0,
                pageSize: config.sweepPageSize,
                clock: Date.now,
              },
            );
            if (outcome.status !== 'complete') throw new CommandFailure(`sweep ${runId} did not complete`);
            const { summary, change, files } = outcome;
            const previousRunId = outcome.report?.change.previousRunId;
            saySweep(output, { runId, now, simulated, tableName: target.tableName, previousRunId }, outcome);
            return {
              runId,
              now,
              simulated,
              table: target.tableName,
              summary,
              change: { ...change, ...(previousRunId ? { previousRunId } : {}) },
              files,
            };
          } finally {
            await target.close();
          }
        });
      },
    );
}

/** The human lines of a completed sweep: counts, change since the previous run, files written. */
function saySweep(
  output: Output,
  run: {
    runId: string;
    now: string;
    simulated: boolean;
    tableName: string;
    previousRunId: string | undefined;
  },
  outcome: Extract<Awaited<ReturnType<typeof runExpirySweep>>, { status: 'complete' }>,
): void {
  const { summary, change, files } = outcome;
  output.say(
    `expiry sweep ${run.runId} as of ${run.now} (table ${run.tableName})${run.simulated ? ': what-if run, not the baseline of later runs' : ''}`,
  );
  for (const [name, count] of Object.entries(summary.counts)) output.say(`  ${name.padEnd(14)} ${count}`);
  output.say(
    `  ${'at risk'.padEnd(14)} ${summary.atRisk} (${plural(summary.rotationCandidates, 'device')} should rotate)`,
  );
  output.say(
    run.previousRunId
      ? `  since ${run.previousRunId} (the latest real run on this table${run.simulated ? ' before that instant' : ''}): ${change.newAtRisk} new, ${change.resolved} resolved, ${change.expired} expired, ${change.reclassified} reclassified, ${change.agedOut} left the look-back`
      : `  no earlier real run on this table${run.simulated ? ' before that instant' : ''}: everything at risk is new`,
  );
  const notAsked = notAskedLine(summary);
  if (notAsked) output.say(`  not asked to rotate: ${notAsked}: listed in the report only`);
  output.say(`  read ${summary.itemsRead} index items (${summary.readUnits} RCU), no Scan, no IoT calls`);
  output.say(`  ${files.json}\n  ${files.csv}\n  ${files.html}`);
}

/**
 * The devices the sweep does not ask to rotate, by reason, with their states: `2 devices never
 * connected (PROVISIONING), 1 device held (QUARANTINED)`; undefined when there are none.
 */
function notAskedLine(summary: {
  byDeviceState?: Record<string, number>;
  notAskedToRotate?: { held: number; neverConnected: number };
}): string | undefined {
  const states = (reason: 'held' | 'not connected') =>
    Object.keys(summary.byDeviceState ?? {})
      .filter((state) => notAskedReason(state) === reason)
      .sort()
      .join(', ');
  const { held = 0, neverConnected = 0 } = summary.notAskedToRotate ?? {};
  const parts = [
    ...(neverConnected > 0
      ? [`${plural(neverConnected, 'device')} never connected (${states('not connected')})`]
      : []),
    ...(held > 0 ? [`${plural(held, 'device')} held (${states('held')})`] : []),
  ];
  return parts.length > 0 ? parts.join(', ') : undefined;
}
