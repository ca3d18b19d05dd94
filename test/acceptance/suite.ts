/**
 * The frame of every flow file: the target opened from the run's descriptor, a ledger of what the
 * file creates in IoT, and — after the last test, whatever happened — the cleanup, which must leave
 * nothing behind.
 */
import { afterAll, beforeAll, inject } from 'vitest';
import { cleanUp, Ledger, leftovers } from './cleanup';
import { endAll } from './device';
import { type AcceptanceTarget, openTarget } from './target';

export interface FlowContext {
  readonly target: AcceptanceTarget;
  readonly ledger: Ledger;
  /** A serial of this run: `ACC-<runId>-<label>`. */
  serial(label: string): string;
  /** The thing fleetgate names after a serial (`THING_NAME_PREFIX` + serial). */
  thingName(serial: string): string;
}

export function flowContext(): FlowContext {
  let target: AcceptanceTarget | undefined;
  const ledger = new Ledger();
  beforeAll(() => {
    target = openTarget(inject('acceptanceTarget'));
  });
  afterAll(async () => {
    await endAll();
    if (!target) return;
    try {
      const report = await cleanUp(target.iot, ledger);
      const left = await leftovers(target.iot, ledger);
      if (report.failures.length > 0 || left.length > 0) {
        throw new Error(
          `cleanup left resources behind:\n  ${[...report.failures, ...left.map((what) => `still there: ${what}`)].join('\n  ')}`,
        );
      }
    } finally {
      target.close();
    }
  }, 300_000);
  const current = () => {
    if (!target) throw new Error('the target is opened in beforeAll');
    return target;
  };
  return {
    get target() {
      return current();
    },
    ledger,
    serial: (label) => `ACC-${current().runId}-${label}`,
    thingName: (serial) => `${current().settings.thingNamePrefix}${serial}`,
  };
}
