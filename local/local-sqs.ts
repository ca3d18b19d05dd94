/**
 * Local SQS through `local-aws-sqs` (an in-process, SDK-compatible server) with the queues and DLQs
 * serverless.yml declares. local-aws-sqs applies RedrivePolicy itself: a message received
 * maxReceiveCount times moves to the DLQ, body and attributes intact, when its visibility timeout
 * ends.
 */
import type { Server } from 'node:http';
import { CreateQueueCommand, SQSClient } from '@aws-sdk/client-sqs';
import { createSqsServer } from 'local-aws-sqs';
import { freePort, stopOnce } from './net';
import type { QueueSpec } from './stack-model';

export interface LocalSqs {
  endpoint: string;
  client: SQSClient;
  /** Logical id → queue URL. */
  urls: Map<string, string>;
  stop(): Promise<void>;
}

export const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };

/** Starts local SQS on a free port and creates the queues (DLQs first, so redrive targets exist). */
export async function startLocalSqs(options: {
  queues: readonly QueueSpec[];
  region: string;
  accountId: string;
  port?: number;
}): Promise<LocalSqs> {
  const port = options.port ?? (await freePort());
  const server: Server = await createSqsServer({
    port,
    hostname: '127.0.0.1',
    region: options.region,
    accountId: options.accountId,
    emulateQueueCreationLifecycle: false,
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new SQSClient({ endpoint, region: options.region, credentials: LOCAL_CREDENTIALS });
  const urls = new Map<string, string>();
  const ordered = [...options.queues].sort((a, b) => Number(Boolean(a.redrive)) - Number(Boolean(b.redrive)));
  for (const queue of ordered) {
    const out = await client.send(
      new CreateQueueCommand({ QueueName: queue.name, Attributes: queue.attributes }),
    );
    urls.set(queue.logicalId, out.QueueUrl ?? `${endpoint}/${options.accountId}/${queue.name}`);
  }
  return { endpoint, client, urls, stop: stopOnce(server, () => client.destroy()) };
}
