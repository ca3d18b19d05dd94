/**
 * `fleetgate invoke <function> --event <file>`: runs a function on an event, as its trigger would.
 * A raw event for a queue-fed function (an IoT message, a queue message body) is wrapped in the SQS
 * event its queue delivers — after the topic rule that feeds the queue, as `replay` routes it — so
 * every sample of `events/` can be invoked as it is. What the invocation logged comes back with the
 * result: the pre-provisioning hook's answer to IoT carries no reason, its log line does.
 */
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { evaluateIotSql } from '../../local/iot-sql';
import { InvocationError, UnknownFunctionError } from '../../local/lambda-runtime';
import { loadServerlessConfig } from '../../local/serverless-config';
import { buildStackModel, type FunctionSpec, type QueueSpec, type StackModel } from '../../local/stack-model';
import { eventKind, toRecordedEvent } from '../events';
import { CommandFailure, type Output, UsageError } from '../io';
import {
  deadLettered,
  describeLog,
  type HookDecision,
  hookDecision,
  type LogEntry,
  parseLogLine,
  warnings,
} from '../log-lines';
import type { CommandRegistry } from '../main';
import { checkTarget, localStackOptions, resolveStackTarget } from '../target';

/** Reads a JSON event file. @throws UsageError when it is missing or not JSON. */
export function readEventFile(file: string): unknown {
  if (!existsSync(file) || !statSync(file).isFile()) throw new UsageError(`${file}: no such file`);
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    // One line: JSON.parse quotes the start of the text, line breaks and all.
    const problem = (error instanceof Error ? error.message : String(error)).replace(/\s+/g, ' ');
    throw new UsageError(`${file}: not JSON (${problem})`);
  }
}

interface InvokeOptions {
  event: string;
  target?: string;
  stage: string;
  json?: boolean;
}

/** The event as the function receives it, and how it was wrapped. */
interface Delivery {
  event: unknown;
  /** Set when a raw event was wrapped in an SQS event: the queue, and the rule that fed it. */
  wrapped?: { queue: string; rule?: string; topic?: string };
}

function modelFor(target: 'local' | 'aws', stage: string): StackModel {
  const config = loadServerlessConfig(localStackOptions().serverlessFile);
  return target === 'aws'
    ? buildStackModel(config, { stage, region: process.env.AWS_REGION ?? 'us-east-1' })
    : buildStackModel(config);
}

/**
 * What the function's trigger would hand it: the event itself when it is already an SQS event or
 * the function is not queue-fed only (a schedule's function takes raw events); otherwise one SQS
 * record on the function's queue, whose body is what the feeding topic rule's SQL makes of the
 * message (or the event itself when no rule feeds the queue: a queue message body).
 * @throws UsageError when a rule feeds the queue and the event reaches none of them.
 */
export function deliveryFor(model: StackModel, spec: FunctionSpec, event: unknown, file: string): Delivery {
  const [mapping] = spec.sqs;
  if (!mapping || spec.schedules.length > 0 || eventKind(event).kind === 'sqs') return { event };
  const queue = model.queues.find((candidate) => candidate.logicalId === mapping.queue);
  if (!queue) return { event };
  const feeding = model.rules.filter((rule) =>
    rule.actions.some((action) => action.type === 'sqs' && action.queue === queue.logicalId),
  );
  if (feeding.length === 0)
    return { event: sqsEvent(queue, JSON.stringify(event), model), wrapped: { queue: queue.name } };
  const message = toRecordedEvent(event, file);
  if (!message) {
    throw new UsageError(
      `${file}: cannot tell the topic of this event, so not which rule feeds ${queue.name}; use an envelope {"topic": …, "payload": …}`,
    );
  }
  for (const rule of feeding) {
    const result = evaluateIotSql(rule.statement, message.payload, {
      topic: message.topic,
      ...(message.principal ? { principal: message.principal } : {}),
      ...(message.clientId ? { clientId: message.clientId } : {}),
      accountId: model.accountId,
      traceId: randomUUID(),
    });
    if (!result.matched) continue;
    const body = typeof result.output === 'string' ? result.output : JSON.stringify(result.output);
    return {
      event: sqsEvent(queue, body, model),
      wrapped: { queue: queue.name, rule: rule.ruleName, topic: message.topic },
    };
  }
  throw new UsageError(
    `${file}: ${message.topic} reaches none of the rules that feed ${queue.name} (${feeding.map((rule) => rule.ruleName).join(', ')}), so ${spec.name} would never receive it`,
  );
}

/** One SQS record on `queue`, as Lambda's event source mapping hands it to the function. */
function sqsEvent(queue: QueueSpec, body: string, model: StackModel): unknown {
  const now = String(Date.now());
  return {
    Records: [
      {
        messageId: randomUUID(),
        receiptHandle: `fleetgate-invoke-${randomUUID()}`,
        body,
        attributes: {
          ApproximateReceiveCount: '1',
          SentTimestamp: now,
          SenderId: 'fleetgate-invoke',
          ApproximateFirstReceiveTimestamp: now,
        },
        messageAttributes: {},
        md5OfBody: createHash('md5').update(body).digest('hex'),
        eventSource: 'aws:sqs',
        eventSourceARN: queue.arn,
        awsRegion: model.region,
      },
    ],
  };
}

async function invokeOnAws(
  spec: FunctionSpec,
  event: unknown,
  output: Output,
): Promise<{ result: unknown; logs: string[] }> {
  // Loaded on demand so the local tool does not need the Lambda client.
  const specifier = '@aws-sdk/client-lambda';
  let lambda: {
    LambdaClient: new (config: object) => { send(command: unknown): Promise<Record<string, unknown>> };
    InvokeCommand: new (input: object) => unknown;
  };
  try {
    lambda = (await import(/* @vite-ignore */ specifier)) as typeof lambda;
  } catch {
    throw new CommandFailure(
      '--target aws needs @aws-sdk/client-lambda (npm install @aws-sdk/client-lambda)',
    );
  }
  output.warn(`fleetgate: invoking ${spec.deployedName} on AWS`);
  const client = new lambda.LambdaClient({});
  const out = await client.send(
    new lambda.InvokeCommand({
      FunctionName: spec.deployedName,
      Payload: Buffer.from(JSON.stringify(event)),
      // The last 4 KB of the invocation's log: where the hook's reason is.
      LogType: 'Tail',
    }),
  );
  const text = out.Payload ? Buffer.from(out.Payload as Uint8Array).toString('utf8') : '';
  const result = text ? (JSON.parse(text) as unknown) : undefined;
  const logs =
    typeof out.LogResult === 'string'
      ? Buffer.from(out.LogResult, 'base64').toString('utf8').split('\n')
      : [];
  if (out.FunctionError) throw new CommandFailure(`${spec.name} failed: ${text}`, { result, logs });
  return { result, logs };
}

async function invokeLocally(
  functionName: string,
  event: unknown,
  output: Output,
): Promise<{ result: unknown; logs: string[] }> {
  const stack = await resolveStackTarget(output);
  try {
    return await stack.handle.invokeWithLogs(functionName, event);
  } catch (error) {
    if (error instanceof UnknownFunctionError) throw new UsageError(error.message);
    if (error instanceof InvocationError) {
      const logs = (error.logs ?? []).map(parseLogLine);
      for (const log of warnings(logs)) output.warn(`  ${describeLog(log)}`);
      throw new CommandFailure(`${functionName} failed: ${error.errorType}: ${error.message}`, {
        errorType: error.errorType,
        errorMessage: error.message,
        logs: logs.map(logDocument),
      });
    }
    throw error;
  } finally {
    await stack.close();
  }
}

function logDocument(log: LogEntry): unknown {
  return 'entry' in log ? log.entry : log.text;
}

function sayDecision(output: Output, decision: HookDecision): void {
  if (decision.allowProvisioning) {
    output.say(`allowed${decision.thingName ? `: thing ${decision.thingName}` : ''}`);
    return;
  }
  output.say(
    `denied: ${decision.reason ?? '(no reason logged)'}${decision.detail ? ` — ${decision.detail}` : ''}`,
  );
}

/** Records an SQS-fed function reported as failed: SQS would deliver them again. */
function failedRecords(result: unknown): string[] {
  const failures = (result as { batchItemFailures?: unknown } | null)?.batchItemFailures;
  if (!Array.isArray(failures)) return [];
  return failures.map((failure) => String((failure as { itemIdentifier?: unknown })?.itemIdentifier));
}

/**
 * @throws CommandFailure when the invocation sent records to the DLQ at once, or failed records SQS
 *   would deliver again.
 */
function throwIfRecordsFailed(
  functionName: string,
  logs: Parameters<typeof deadLettered>[0],
  result: unknown,
  document: Record<string, unknown>,
): void {
  const sentAway = deadLettered(logs);
  if (sentAway.length > 0) {
    throw new CommandFailure(
      `${functionName} sent ${sentAway.length} record(s) to the queue's DLQ at once (never processable): ${sentAway.map((entry) => entry.reason).join('; ')}`,
      { ...document, deadLettered: sentAway },
    );
  }
  const failed = failedRecords(result);
  if (failed.length > 0) {
    throw new CommandFailure(
      `${functionName} failed ${failed.length} record(s); SQS would deliver them again (then to the queue's DLQ)`,
      document,
    );
  }
}

async function runInvoke(functionName: string, options: InvokeOptions, output: Output): Promise<unknown> {
  const target = checkTarget(options.target);
  const raw = readEventFile(options.event);
  const model = modelFor(target, options.stage);
  const spec = model.functions.find((fn) => fn.name === functionName);
  if (!spec) {
    throw new UsageError(
      `no function "${functionName}" in serverless.yml (have: ${model.functions.map((fn) => fn.name).join(', ')})`,
    );
  }
  const delivery = deliveryFor(model, spec, raw, options.event);
  if (delivery.wrapped) {
    const via = delivery.wrapped.rule ? ` through ${delivery.wrapped.rule}` : '';
    output.warn(`fleetgate: delivering the event as one SQS record of ${delivery.wrapped.queue}${via}`);
  }
  const started = performance.now();
  const { result, logs: lines } =
    target === 'aws'
      ? await invokeOnAws(spec, delivery.event, output)
      : await invokeLocally(functionName, delivery.event, output);
  const durationMs = Math.round(performance.now() - started);
  const logs = lines.filter((line) => line.trim() !== '').map(parseLogLine);
  const decision = functionName === 'preProvisionHook' ? hookDecision(logs) : undefined;
  output.say(JSON.stringify(result, null, 2) ?? 'null');
  if (decision) sayDecision(output, decision);
  else for (const log of warnings(logs)) output.say(`  ${describeLog(log)}`);
  const document = {
    function: functionName,
    target,
    durationMs,
    ...(delivery.wrapped ? { deliveredAs: { sqs: delivery.wrapped } } : {}),
    result: result ?? null,
    ...(decision ? { decision } : {}),
    logs: logs.map(logDocument),
  };
  throwIfRecordsFailed(functionName, logs, result, document);
  return document;
}

/** `fleetgate invoke <function> --event <file> [--target local|aws]` */
export function registerInvokeCommand({ program, run }: CommandRegistry): void {
  program
    .command('invoke')
    .description("Run a function's handler (by its serverless.yml name) on an event and print its result")
    .argument('<function>', 'function name in serverless.yml')
    .requiredOption(
      '--event <file>',
      'JSON event file: the raw event (wrapped as the trigger delivers it) or the trigger’s own event',
    )
    .option('--target <target>', 'local (default) or aws')
    .option('--stage <stage>', 'stage of the deployed function (--target aws)', 'dev')
    .option('--json', 'print one JSON document')
    .action(async (functionName: string, options: InvokeOptions) => {
      await run(options.json, (output) => runInvoke(functionName, options, output));
    });
}
