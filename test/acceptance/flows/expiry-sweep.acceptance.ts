/**
 * The expiry sweep and its report: a JITR device whose certificate expires in three days (its
 * operator's CA issued it short-lived), the sweep started as its schedule would start it, and the
 * report read from where the deployment writes it (the stack's reports folder, or the S3 bucket):
 * the certificate is in the JSON and the CSV as expiring, and the device, a rotation candidate, is told to rotate on `fleetgate/<thing>/rotate/required`.
 */
import { describe, expect, it } from 'vitest';
import { end, inbox } from '../device';
import { allowlist, deviceReaches, registerDeviceCa } from '../operator';
import { connectUntilAccepted, jitrIdentity } from '../steps';
import { flowContext } from '../suite';

const flow = flowContext();
const DAY_MS = 86_400_000;

interface ExpiryReport {
  format: string;
  runId: string;
  summary: { counts: Record<string, number> };
  atRisk: Array<{ certificateId: string; serial?: string; class: string; daysLeft?: number }>;
  rotation: Array<{ serial?: string; certificateId: string }>;
}

describe('expiry sweep and report', () => {
  it('reports a certificate that expires in three days (JSON, CSV) and tells its device to rotate', async () => {
    // Prepare: an ACTIVE device with a certificate that expires in three days.
    const { target } = flow;
    const { ca } = await registerDeviceCa(target, flow.ledger, 'expiry');
    const serial = flow.serial('EXPIRY1');
    const thingName = flow.thingName(serial);
    flow.ledger.thing(thingName);
    await allowlist(target, [{ serial }]);
    const identity = await jitrIdentity(ca, serial, { notAfter: new Date(Date.now() + 3 * DAY_MS) });
    flow.ledger.certificate(identity.certificateId);
    const { client } = await connectUntilAccepted(flow, identity, thingName);
    await deviceReaches(target, serial, { state: 'ACTIVE', certificateId: identity.certificateId });
    // The device listens for the sweep's notice, as firmware that rotates on request does.
    const requiredTopic = `fleetgate/${thingName}/rotate/required`;
    await client.subscribeAsync(requiredTopic, { qos: 1 });
    const notices = inbox(client, [requiredTopic]);

    // Act: a manual run (`{"runId"}`), as an operator starts one between the daily schedules.
    const runId = `acceptance-${target.runId}-${Date.now().toString(36)}`;
    const answer = await target.invokeExpirySweep({ runId });
    const required = await notices.next(target.patienceMs);
    await end(client);
    const report = JSON.parse(await target.readReport(answer.files.json)) as ExpiryReport;
    const csv = await target.readReport(answer.files.csv);

    // Assess
    expect(answer.runId).toBe(runId);
    expect(report).toMatchObject({ format: 'fleetgate.expiry-report/1', runId });
    const entry = report.atRisk.find((row) => row.certificateId === identity.certificateId);
    expect(entry).toMatchObject({ serial, class: expect.stringMatching(/^EXPIRING_\d+D$/) });
    expect(report.summary.counts[String(entry?.class)]).toBeGreaterThanOrEqual(1);
    expect(report.rotation.map((row) => row.certificateId)).toContain(identity.certificateId);
    expect(required.body).toMatchObject({ reason: 'EXPIRING', certificateId: identity.certificateId });
    expect(csv.split('\r\n').find((line) => line.includes(identity.certificateId))).toContain(serial);
  });
});
