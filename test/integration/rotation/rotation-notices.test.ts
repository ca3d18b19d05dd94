/**
 * Sweep-initiated rotation notices through the real data-plane SDK (IoT emulator) and DynamoDB
 * Local: at most the configured number per run, most urgent first, once per device per day.
 */
import { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type IotEmulator, startIotEmulator } from '../../../local/iot-emulator';
import type { RotationCandidate } from '../../../shared/domain/expiry';
import { IotDataMessenger } from '../../../shared/iot/device-messages';
import { RotationNotices } from '../../../shared/rotation/rotation-notices';
import { createTestTable, type TestTable } from '../../support/dynamo';

let table: TestTable;
let emulator: IotEmulator;
let data: IoTDataPlaneClient;

beforeAll(async () => {
  table = await createTestTable('notices');
  emulator = await startIotEmulator();
  data = new IoTDataPlaneClient({ ...emulator.clientConfig(), maxAttempts: 1 });
});
afterAll(async () => {
  data.destroy();
  await emulator.stop();
  await table.drop();
});

function candidate(serial: string, daysLeft: number, thingName: string | null = serial): RotationCandidate {
  return {
    serial,
    ...(thingName ? { thingName } : {}),
    certificateId: serial.toLowerCase().padEnd(64, '0').slice(0, 64),
    notAfter: '2026-12-10T00:00:00.000Z',
    daysLeft,
    reason: 'EXPIRING',
  };
}

describe('RotationNotices', () => {
  it('notifies at most the limit per run, most urgent first, once per device per day', async () => {
    // Prepare
    let now = Date.parse('2026-11-24T03:00:00Z');
    const notices = new RotationNotices({
      messenger: new IotDataMessenger(data),
      marks: table.store,
      limit: 2,
      clock: () => now,
    });
    const candidates = [
      candidate('N-LATE', 20),
      candidate('N-SOON', 3),
      candidate('N-MID', 10),
      candidate('N-NOTHING', 1, null),
    ];
    // Act: two runs on the same day, one the next day
    await notices.requestRotations(candidates, { runId: 'run-1' });
    const first = notices.last;
    await notices.requestRotations(candidates, { runId: 'run-2' });
    const second = notices.last;
    now += 86_400_000;
    await notices.requestRotations(candidates, { runId: 'run-3' });
    // Assess
    expect(first).toEqual({ sent: 2, alreadySent: 0, skipped: 1, failed: 0, deferred: 1 });
    expect(second).toEqual({ sent: 1, alreadySent: 2, skipped: 1, failed: 0, deferred: 0 });
    expect(notices.last).toEqual({ sent: 2, alreadySent: 0, skipped: 1, failed: 0, deferred: 1 });
    const topics = emulator.publishedOn('fleetgate/').map((m) => m.topic);
    expect(topics).toEqual([
      'fleetgate/N-SOON/rotate/required',
      'fleetgate/N-MID/rotate/required',
      'fleetgate/N-LATE/rotate/required',
      'fleetgate/N-SOON/rotate/required',
      'fleetgate/N-MID/rotate/required',
    ]);
    expect(emulator.publishedOn('fleetgate/N-SOON/')[0]?.json).toEqual({
      reason: 'EXPIRING',
      certificateId: candidate('N-SOON', 3).certificateId,
      notAfter: '2026-12-10T00:00:00.000Z',
      daysLeft: 3,
    });
  });
});
