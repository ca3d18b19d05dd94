/**
 * The fleet-provisioning pre-provisioning hook, built around its dependencies (`handler.ts` composes
 * them from the environment). AWS IoT calls it synchronously on RegisterThing and
 * waits at most 5 s; any error or timeout is an ACCESS_DENIED the device cannot tell apart. So the
 * hook denies by default: bad input, store failures, exceptions and a spent time budget all return
 * `{ allowProvisioning: false }` with a logged reason code, and nothing is ever thrown.
 *
 * No state lives between invocations except the composed dependencies: every decision is built
 * from the event and the store, so an allow cannot leak into the next request.
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/pre-provisioning-hook.html
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { type PreProvisionHookResponse, preProvisionHookEventSchema } from '../../schemas/pre-provision-hook';
import type { Config } from '../../shared/config';
import {
  deny,
  type Instant,
  instantAt,
  type ProvisioningDecision,
} from '../../shared/domain/provisioning-rules';
import { countOutcome } from '../../shared/logging';
import type { QuarantineSender } from '../../shared/quarantine-sender';
import { type ProvisionDeps, type ProvisionResult, provisionDevice } from './provision';
import { denied, toHookResponse } from './response';
import { timeBudgetMs, withTimeBudget } from './time-budget';

export interface HookDeps {
  config: Config;
  store: ProvisionDeps['store'];
  logger: Logger;
  metrics: Metrics;
  /** Where clone and takeover evidence goes; without it the hook only denies and logs. */
  quarantine?: QuarantineSender;
  /** Epoch milliseconds; tests freeze it. */
  clock?: () => number;
  newId?: () => string;
}

/** Builds the hook around its dependencies (tests pass their own store, config and clock). */
export function createHandler(deps: HookDeps) {
  const { config, logger, metrics } = deps;
  const clock = deps.clock ?? Date.now;
  const provisionDeps: ProvisionDeps = {
    config,
    store: deps.store,
    schema: preProvisionHookEventSchema(config),
    newId: deps.newId ?? randomUUID,
  };

  const decide = async (event: unknown, context: Context): Promise<PreProvisionHookResponse> => {
    const started = performance.now();
    const epochMs = clock();
    const now = instantAt(epochMs);
    const budget = timeBudgetMs(config.hookTimeBudgetMs, config.hookSafetyMarginMs, context);
    let result: ProvisionResult;
    try {
      result = await withTimeBudget(provisionDevice(event, provisionDeps, now), budget, () => ({
        decision: deny('TIME_BUDGET_EXCEEDED', `no decision within ${budget} ms`),
      }));
    } catch (error) {
      result = { error, decision: deny('INTERNAL_ERROR', errorName(error)) };
    }
    report(result, logger, metrics);
    if (result.suspicion && result.certificateId && deps.quarantine) {
      await reportSuspicion(result, deps.quarantine, now, budget - (clock() - epochMs), logger);
    }
    // AWS IoT waits 5 s at most: how close each decision came (published by logMetrics).
    metrics.addMetric('HookDecisionTime', MetricUnit.Milliseconds, Math.round(performance.now() - started));
    return toHookResponse(result.decision);
  };

  return middy<unknown, PreProvisionHookResponse>()
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(logMetrics(metrics))
    .use({
      // The last line of deny-by-default: whatever a middleware throws becomes a denial.
      onError: (request) => {
        logger.error('pre-provisioning hook failed; denying', {
          reason: 'INTERNAL_ERROR',
          error: request.error,
        });
        request.response = denied();
      },
    })
    .handler(decide);
}

/**
 * Sends a denial's clone or takeover evidence to the quarantine queue within what is left of the
 * budget. The answer stays a denial whatever happens here; a failed send is logged (the denial's
 * own log line and metric still record the attempt).
 */
async function reportSuspicion(
  result: ProvisionResult,
  quarantine: QuarantineSender,
  now: Instant,
  remainingMs: number,
  logger: Logger,
): Promise<void> {
  const { suspicion, certificateId } = result;
  if (!suspicion || !certificateId) return;
  const send = quarantine.send({
    // One request per presented certificate and reason: AWS IoT's retries of RegisterThing repeat it.
    requestId: `preProvisionHook:${suspicion.reason}:${certificateId}`,
    ...(suspicion.serial ? { serial: suspicion.serial } : {}),
    certificateId,
    reason: suspicion.reason,
    evidence: {
      flow: 'FLEET_PROVISIONING',
      detail: suspicion.detail,
      ...(result.serial ? { claimedSerial: result.serial } : {}),
      ...(result.claimCertificateId ? { claimCertificateId: result.claimCertificateId } : {}),
    },
    source: 'preProvisionHook',
    at: now.iso,
  });
  const sent = await withTimeBudget(
    send.then(() => true as const),
    remainingMs,
    () => false as const,
  ).catch((error: unknown) => {
    logger.error('quarantine request not sent', { reason: suspicion.reason, certificateId, error });
    return undefined;
  });
  if (sent === false)
    logger.error('quarantine request not sent in time', { reason: suspicion.reason, certificateId });
  // Said only once the queue has it: the tools read this line to tell the device's user (never a PEM).
  if (sent === true)
    logger.warn('quarantine requested', {
      reason: suspicion.reason,
      certificateId,
      ...(suspicion.serial ? { quarantineSerial: suspicion.serial } : {}),
    });
}

function report(result: ProvisionResult, logger: Logger, metrics: Metrics): void {
  const decision: ProvisioningDecision = result.decision;
  if (result.serial) logger.appendKeys({ serial: result.serial });
  const ids = { certificateId: result.certificateId, claimCertificateId: result.claimCertificateId };
  if (decision.allow) {
    logger.appendKeys({ thingName: decision.thingName });
    logger.info('provisioning allowed', {
      ...ids,
      binding: decision.binding,
      alreadyBound: decision.alreadyBound,
    });
    countOutcome(metrics, 'DeviceProvisioned');
    return;
  }
  const entry = { ...ids, reason: decision.reason, detail: decision.detail };
  if (result.error !== undefined) logger.error('provisioning denied', { ...entry, error: result.error });
  else logger.warn('provisioning denied', entry);
  countOutcome(metrics, 'ProvisioningDenied', { reason: decision.reason });
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : 'non-error thrown';
}
