/**
 * Sweep-initiated rotation: the expiry sweep's `RotationRequester`. Each device inside the rotation
 * window gets a notice on `fleetgate/<thingName>/rotate/required` (the device answers with a CSR on
 * its rotation request topic), at most `limit` devices per run and once per device per UTC day: the
 * day's dedup marker is written before the publish, so overlapping or repeated runs never notify a
 * device twice in a day (a publish that fails after the marker is retried by the next day's run).
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { RotationCandidate } from '../domain/expiry';
import type { RotationRequester } from '../expiry/expiry-sweep';
import { type DeviceMessenger, type RotationRequired, rotationTopics } from '../iot/device-messages';
import type { ProvisioningStore } from '../store/provisioning-store';

/** Markers outlive the day they stand for. */
const MARKER_TTL_SECONDS = 2 * 86_400;

export interface RotationNoticeResult {
  sent: number;
  alreadySent: number;
  skipped: number;
  failed: number;
  /** Candidates left for a later run because the per-run limit was reached. */
  deferred: number;
}

export class RotationNotices implements RotationRequester {
  /** What the last `requestRotations` did (for the handler's summary and tests). */
  last: RotationNoticeResult = { sent: 0, alreadySent: 0, skipped: 0, failed: 0, deferred: 0 };

  constructor(
    private readonly deps: {
      messenger: DeviceMessenger;
      marks: Pick<ProvisioningStore, 'markOnce'>;
      /** Notices per run (`ROTATION_NOTICES_PER_RUN`). */
      limit: number;
      clock?: () => number;
      logger?: Logger;
      metrics?: Metrics;
    },
  ) {}

  /** Notifies the candidates, most urgent first (fewest days left). */
  async requestRotations(
    candidates: readonly RotationCandidate[],
    context: { runId: string },
  ): Promise<void> {
    const now = new Date((this.deps.clock ?? Date.now)()).toISOString();
    const day = now.slice(0, 10);
    const result: RotationNoticeResult = { sent: 0, alreadySent: 0, skipped: 0, failed: 0, deferred: 0 };
    const ordered = [...candidates].sort(
      (a, b) => a.daysLeft - b.daysLeft || a.serial.localeCompare(b.serial),
    );
    for (const candidate of ordered) {
      if (!candidate.thingName) {
        result.skipped += 1;
        continue;
      }
      if (result.sent + result.failed >= this.deps.limit) {
        result.deferred += 1;
        continue;
      }
      const first = await this.deps.marks.markOnce(`rotation-notice:${candidate.serial}:${day}`, {
        ttlSeconds: MARKER_TTL_SECONDS,
        now,
      });
      if (!first) {
        result.alreadySent += 1;
        continue;
      }
      const notice: RotationRequired = {
        reason: candidate.reason,
        certificateId: candidate.certificateId,
        notAfter: candidate.notAfter,
        daysLeft: candidate.daysLeft,
      };
      try {
        await this.deps.messenger.publish(rotationTopics.required(candidate.thingName), notice);
        result.sent += 1;
      } catch (error) {
        result.failed += 1;
        this.deps.logger?.warn('rotation notice not sent', {
          serial: candidate.serial,
          runId: context.runId,
          error,
        });
      }
    }
    this.last = result;
    this.deps.logger?.info('rotation notices', { runId: context.runId, ...result });
    if (this.deps.metrics) {
      const single = this.deps.metrics.singleMetric();
      single.addMetric('RotationNoticesSent', MetricUnit.Count, result.sent);
      if (result.failed > 0) {
        this.deps.metrics.singleMetric().addMetric('RotationNoticesFailed', MetricUnit.Count, result.failed);
      }
    }
  }
}
