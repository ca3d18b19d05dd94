/**
 * Where an unfinished reconciliation run is continued: a message on `ReconcileQueue`, whose event
 * source invokes `reconcileInventory` again with it. The message only names the run; the
 * checkpoint in the table says where it stands, so a duplicate message cannot double-count.
 */
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { ReconcileContinuation } from '../../schemas/reconcile-inventory';

export interface ContinuationQueue {
  send(continuation: ReconcileContinuation): Promise<void>;
}

export class SqsContinuationQueue implements ContinuationQueue {
  constructor(
    private readonly sqs: SQSClient,
    private readonly queueUrl: string,
  ) {}

  async send(continuation: ReconcileContinuation): Promise<void> {
    await this.sqs.send(
      new SendMessageCommand({ QueueUrl: this.queueUrl, MessageBody: JSON.stringify(continuation) }),
    );
  }
}
