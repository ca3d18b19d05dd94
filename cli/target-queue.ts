/**
 * The queues of serverless.yml on a target, for the dead-letter tools (its own module, so commands
 * that do not need SQS and serverless.yml's model do not load them).
 */
import { GetQueueUrlCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { StackEndpoints } from '../local/stack';
import { remoteHandle } from '../local/stack-control';
import { readStackFile } from '../local/stack-file';
import type { deadLetterDeclarations } from '../local/stack-model';
import { DeadLetters, deadLetterQueues, type Republish } from '../shared/dlq/dead-letters';
import { CommandFailure } from './io';
import { checkTarget, LOCAL_CREDENTIALS } from './target';

/** The queues of serverless.yml on a target, with what the dead-letter tools need. */
export interface QueueTarget {
  kind: 'stack' | 'env' | 'aws';
  stage: string;
  deadLetters: DeadLetters;
  /** Publishes through the local rules engine (running stack only): replays rule errors. */
  republish?: Republish;
  close(): void;
}

/**
 * Queues on AWS (`--target aws`, names for `--stage`), on the running local stack, or on the SQS
 * endpoint in `AWS_ENDPOINT_URL_SQS` (names for `--stage`, default `local`).
 * @throws CommandFailure when there is no local stack and no endpoint: an ephemeral stack has no
 *   dead letters to look at.
 */
export async function resolveQueueTarget(options: { target?: string; stage?: string }): Promise<QueueTarget> {
  const target = checkTarget(options.target);
  const serverlessFile = process.env.FLEETGATE_SERVERLESS_FILE;
  const [{ loadServerlessConfig }, { buildStackModel, deadLetterDeclarations }] = await Promise.all([
    import('../local/serverless-config'),
    import('../local/stack-model'),
  ]);
  const config = loadServerlessConfig(...(serverlessFile ? [serverlessFile] : []));
  const build = (stage: string, region: string) =>
    deadLetterDeclarations(buildStackModel(config, { stage, region }));
  const byName = (sqs: SQSClient) => {
    const cache = new Map<string, string>();
    return async (name: string) => {
      const known = cache.get(name);
      if (known) return known;
      const out = await sqs.send(new GetQueueUrlCommand({ QueueName: name }));
      const url = out.QueueUrl ?? '';
      cache.set(name, url);
      return url;
    };
  };
  if (target === 'aws') {
    const stage = options.stage ?? 'dev';
    const sqs = new SQSClient({});
    return queueTarget('aws', stage, sqs, build(stage, process.env.AWS_REGION ?? 'us-east-1'), byName(sqs));
  }
  const stack = readStackFile();
  if (stack?.endpoints.sqs) {
    const sqs = localSqs(stack.endpoints.sqs, stack.region);
    const known = stack.queues ?? {};
    const lookup = byName(sqs);
    const handle =
      typeof stack.control === 'string'
        ? remoteHandle({
            control: stack.control,
            endpoints: stack.endpoints as unknown as StackEndpoints,
            region: stack.region,
            tableName: stack.tableName,
            queues: known,
          })
        : undefined;
    return queueTarget(
      'stack',
      'local',
      sqs,
      build('local', stack.region),
      async (name) => known[name] ?? lookup(name),
      handle
        ? async (topic, payload) => {
            await handle.publish(topic, payloadOf(payload));
          }
        : undefined,
    );
  }
  const endpoint = process.env.AWS_ENDPOINT_URL_SQS;
  if (endpoint) {
    const stage = options.stage ?? 'local';
    const region = process.env.AWS_REGION ?? 'us-east-1';
    const sqs = localSqs(endpoint, region);
    return queueTarget('env', stage, sqs, build(stage, region), byName(sqs));
  }
  throw new CommandFailure(
    'no local stack is running (start one with `fleetgate local up`), AWS_ENDPOINT_URL_SQS is not set and --target is not aws',
  );
}

function queueTarget(
  kind: QueueTarget['kind'],
  stage: string,
  sqs: SQSClient,
  { declarations, ruleErrors }: ReturnType<typeof deadLetterDeclarations>,
  urlOf: (name: string) => Promise<string>,
  republish?: Republish,
): QueueTarget {
  const deadLetters = new DeadLetters(sqs, declarations, deadLetterQueues(declarations, ruleErrors), urlOf);
  return { kind, stage, deadLetters, ...(republish ? { republish } : {}), close: () => sqs.destroy() };
}

/** A rule's original payload as the rules engine takes it: JSON when it is JSON, else text. */
function payloadOf(payload: Buffer): unknown {
  const text = payload.toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** QuarantineQueue on a target: where `fleetgate quarantine add` sends its request. */
export interface QuarantineQueueTarget {
  kind: 'stack' | 'env' | 'aws';
  url: string;
  sqs: SQSClient;
  close(): void;
}

/**
 * QuarantineQueue of the running local stack, of the SQS endpoint in `AWS_ENDPOINT_URL_SQS`
 * (`fleetgate-<stage>-quarantine`, stage default `local`), or of AWS (`--target aws`, stage default
 * `dev`); `QUARANTINE_QUEUE_URL` names it directly.
 * @throws CommandFailure when there is none: an ephemeral stack has no worker to quarantine anything.
 */
export async function resolveQuarantineQueue(options: {
  target?: string;
  stage?: string;
}): Promise<QuarantineQueueTarget> {
  const target = checkTarget(options.target);
  const wrap = async (kind: QuarantineQueueTarget['kind'], sqs: SQSClient, stage: string) => {
    const url =
      process.env.QUARANTINE_QUEUE_URL ??
      (await sqs.send(new GetQueueUrlCommand({ QueueName: `fleetgate-${stage}-quarantine` }))).QueueUrl ??
      '';
    return { kind, url, sqs, close: () => sqs.destroy() };
  };
  if (target === 'aws') return wrap('aws', new SQSClient({}), options.stage ?? 'dev');
  const stack = readStackFile();
  if (stack?.endpoints.sqs) {
    const sqs = localSqs(stack.endpoints.sqs, stack.region);
    const known = stack.queues?.['fleetgate-local-quarantine'];
    return known
      ? { kind: 'stack', url: known, sqs, close: () => sqs.destroy() }
      : wrap('stack', sqs, 'local');
  }
  const endpoint = process.env.AWS_ENDPOINT_URL_SQS;
  if (endpoint) {
    const region = process.env.AWS_REGION ?? 'us-east-1';
    return wrap('env', localSqs(endpoint, region), options.stage ?? 'local');
  }
  throw new CommandFailure(
    'no quarantine queue: start the local stack (`fleetgate local up`), set AWS_ENDPOINT_URL_SQS, or use --target aws',
  );
}

/** An SQS client on a local endpoint (the running stack's, or `AWS_ENDPOINT_URL_SQS`). */
function localSqs(endpoint: string, region: string): SQSClient {
  return new SQSClient({ endpoint, region, credentials: LOCAL_CREDENTIALS });
}
