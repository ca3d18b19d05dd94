/**
 * Lambda entry point of the inventory reconciliation (`reconcileInventory` in serverless.yml,
 * `rate(7 days)`, continued through `ReconcileQueue`): one Lambda handler routing the scheduled
 * event to the schedule entry point and SQS events to the queue entry point. Composition happens
 * once per container, here; the behaviour is in `create-handler.ts` and `shared/reconcile/`.
 */
import { IoTClient } from '@aws-sdk/client-iot';
import { documentClient } from '../../shared/aws/clients';
import { loadConfig } from '../../shared/config';
import { ConfigError } from '../../shared/errors';
import { IotInventory } from '../../shared/iot/iot-inventory';
import { createLogger, createMetrics } from '../../shared/logging';
import { onFirstUse } from '../../shared/on-first-use';
import { deadLettersOnFirstUse, type SqsOnFirstUse, sqsOnFirstUse } from '../../shared/queue-senders';
import type { ContinuationQueue } from '../../shared/reconcile/continuation-queue';
import { createReportSink } from '../../shared/reports/report-sink';
import { StoreClient } from '../../shared/store/client';
import { ProvisioningStore } from '../../shared/store/provisioning-store';
import { ReconcileStore } from '../../shared/store/reconcile-store';
import { createHandler, type ReconcileInventoryDeps } from './create-handler';

export { createHandler, type ReconcileInventoryDeps } from './create-handler';

/** Composition from the environment, once per container. Throws ConfigError on a bad environment. */
function defaultDeps(): ReconcileInventoryDeps {
  const config = loadConfig(process.env);
  if (!config.reconcileQueueUrl)
    throw new ConfigError(['RECONCILE_QUEUE_URL: required by reconcileInventory']);
  if (!config.deadLetterQueueUrl)
    throw new ConfigError(['DEAD_LETTER_QUEUE_URL: required by reconcileInventory']);
  const db = new StoreClient(documentClient(), config.tableName);
  // The SQS client is loaded on the first continuation or dead letter (a run that ends in one
  // invocation sends none): shared/queue-senders.ts.
  const sqs = sqsOnFirstUse({});
  return {
    reconcileStore: new ReconcileStore(db),
    provisioningStore: new ProvisioningStore(db),
    // The token buckets keep under the quota; the retries are the safety net when others share it.
    inventory: new IotInventory(new IoTClient({ maxAttempts: 8 }), config.reconcileMaxTps),
    sink: createReportSink(config.reportDestination),
    continuations: continuationsOnFirstUse(sqs, config.reconcileQueueUrl),
    deadLetters: deadLettersOnFirstUse(sqs, config.deadLetterQueueUrl),
    safetyMarginMs: config.reconcileSafetyMarginMs,
    pageSize: config.reconcilePageSize,
    neverConnectedDays: config.factoryNeverConnectedDays,
    thingNamePrefix: config.thingNamePrefix,
    clock: Date.now,
    logger: createLogger('reconcileInventory'),
    metrics: createMetrics('reconcileInventory'),
  };
}

/** `SqsContinuationQueue` on `queueUrl`, loaded with the SQS client on the first continuation. */
function continuationsOnFirstUse(sqs: SqsOnFirstUse, queueUrl: string): ContinuationQueue {
  const queue = onFirstUse(async () => {
    const [client, { SqsContinuationQueue }] = await Promise.all([
      sqs(),
      import('../../shared/reconcile/continuation-queue'),
    ]);
    return new SqsContinuationQueue(client, queueUrl);
  });
  return { send: async (continuation) => (await queue()).send(continuation) };
}

export const handler = createHandler(defaultDeps());
