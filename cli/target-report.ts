import { type Config, loadConfig } from '../shared/config';
import { UsageError } from './io';

/**
 * What a report-writing command (`sweep`, `reconcile`) runs with: the instant (`--now`, default
 * now), the configuration from the usual variables, and where the report goes (`--out DIR`, else
 * the configured destination).
 * @throws UsageError for a `--now` that is not an ISO-8601 time.
 */
export function reportRun(options: { now?: string; out?: string }): {
  now: string;
  config: Config;
  destination: string;
} {
  const nowMs = options.now === undefined ? Date.now() : Date.parse(options.now);
  if (Number.isNaN(nowMs)) throw new UsageError(`--now: not an ISO-8601 time: ${options.now}`);
  // The store target decides the table; the other settings come from the usual variables.
  const config = loadConfig({ ...process.env, TABLE_NAME: process.env.TABLE_NAME ?? 'fleetgate-local' });
  const destination = options.out ? `file://${options.out}` : config.reportDestination;
  return { now: new Date(nowMs).toISOString(), config, destination };
}
