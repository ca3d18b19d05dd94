/**
 * Issue 15: the short version of `npm run chaos` (local/chaos.ts). On a local stack whose IoT
 * emulator answers the functions' calls with 5xx and throttling at 10 % each, where every JITR
 * registration crashes once between its IoT calls and its store write, and every IoT event is
 * delivered twice, concurrently: a few devices per flow (fleet provisioning, JITR, JITP) converge,
 * counted from the store and the emulator's registry — 0 duplicates, 0 orphan certificates or
 * things, 0 lost devices, nothing left in a dead-letter queue.
 */
import { describe, expect, it } from 'vitest';
import { formatChaos, runChaos } from '../../../local/chaos';

describe('chaos on the local stack (short)', () => {
  it('converges under injected 5xx, throttling, crashes and duplicated, reordered deliveries', async () => {
    const result = await runChaos({
      devices: 4,
      errorRate: 0.1,
      throttleRate: 0.1,
      crashOnce: true,
      duplicates: 1,
      visibilityTimeoutSeconds: 5,
      // Its own DynamoDB Local and the `local` stage: the simulator names policies and templates as
      // serverless.yml does for the stage, and the IAM call audit knows the `local` names.
      onProgress: (line) => console.log(line),
    });
    const report = formatChaos(result);
    console.log(report);
    // Faults were injected: the functions saw 5xx or throttling, and every JITR registration crashed once.
    expect(result.injected.serverErrors + result.injected.throttled, report).toBeGreaterThan(0);
    expect(result.injected.crashes, report).toBeGreaterThanOrEqual(4);
    for (const flow of result.flows) {
      expect(
        {
          active: flow.active,
          duplicates: flow.duplicates,
          orphanCertificates: flow.orphanCertificates,
          orphanThings: flow.orphanThings,
          lostDevices: flow.lostDevices,
        },
        `${flow.flow}\n${report}`,
      ).toEqual({ active: 4, duplicates: 0, orphanCertificates: 0, orphanThings: 0, lostDevices: 0 });
    }
    expect(result.lostEvents, report).toBe(0);
    expect(result.ok).toBe(true);
  }, 240_000);
});
