/**
 * The local AWS IoT rules engine: every published message is matched against the topic rules of
 * serverless.yml (`AWS::IoT::TopicRule`), each matching rule's SQL is evaluated, and its actions run —
 * Sqs (SendMessage of the SQL output) and Lambda (asynchronous invocation). When an action fails, the
 * rule's ErrorAction receives one message per rule and message in AWS's error-action format.
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/iot-rules.html
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/rule-error-handling.html
 */
import { randomUUID } from 'node:crypto';
import { evaluateIotSql, type MessageContext, topicMatches } from './iot-sql';
import type { ActionSpec, RuleSpec } from './stack-model';

/** Who published, as far as the SQL functions `principal()` and `clientid()` are concerned. */
export interface PublishMeta {
  principal?: string;
  clientId?: string;
  timestamp?: number;
}

export type ActionOutcome =
  | { type: 'sqs'; queue: string; ok: true; messageId: string }
  | { type: 'lambda'; function: string; ok: true }
  | { type: 'sqs' | 'lambda' | 'unsupported'; target: string; ok: false; error: string };

export interface RuleOutcome {
  rule: string;
  actions: ActionOutcome[];
  /** Present when an action failed and the rule has an ErrorAction. */
  errorAction?: ActionOutcome;
}

export interface RulesEngineTargets {
  /** Sends a message to the queue with this logical id; resolves with the message id. */
  /** Sends as the rule action's role (`role`: its logical id), as IoT does. */
  sendMessage(queue: string, body: string, role?: string): Promise<string>;
  /** Starts an asynchronous invocation (IoT invokes Lambda with InvocationType Event). */
  invokeAsync(functionName: string, event: unknown): void;
  hasFunction(functionName: string): boolean;
  accountId: string;
}

export class RulesEngine {
  constructor(
    private readonly rules: readonly RuleSpec[],
    private readonly targets: RulesEngineTargets,
  ) {}

  /** The rules whose topic filter matches a topic (whatever their WHERE clause says). */
  rulesFor(topic: string): RuleSpec[] {
    return this.rules.filter((rule) => !rule.disabled && topicMatches(rule.statement.topicFilter, topic));
  }

  /**
   * Publishes a message: runs every enabled rule whose FROM and WHERE accept it, and resolves with
   * one outcome per rule that ran (an empty list when no rule matched).
   */
  async publish(
    topic: string,
    payload: Buffer | string | object,
    meta: PublishMeta = {},
  ): Promise<RuleOutcome[]> {
    const bytes = Buffer.isBuffer(payload)
      ? payload
      : Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload));
    const parsed = parsePayload(bytes);
    const context: MessageContext = {
      topic,
      ...(meta.principal ? { principal: meta.principal } : {}),
      ...(meta.clientId ? { clientId: meta.clientId } : {}),
      timestamp: meta.timestamp ?? Date.now(),
      accountId: this.targets.accountId,
      traceId: randomUUID(),
    };
    const outcomes: RuleOutcome[] = [];
    for (const rule of this.rules) {
      if (rule.disabled) continue;
      const result = evaluateIotSql(rule.statement, parsed, context);
      if (!result.matched) continue;
      const actions: ActionOutcome[] = [];
      for (const action of rule.actions) actions.push(await this.run(action, result.output, bytes));
      const outcome: RuleOutcome = { rule: rule.ruleName, actions };
      const failures = actions.filter((action) => !action.ok);
      if (failures.length > 0 && rule.errorAction) {
        const message = {
          ruleName: rule.ruleName,
          topic,
          cloudwatchTraceId: context.traceId,
          clientId: meta.clientId ?? 'n/a',
          base64OriginalPayload: bytes.toString('base64'),
          failures: failures.map((failure) => ({
            failedAction:
              failure.type === 'sqs'
                ? 'SqsAction'
                : failure.type === 'lambda'
                  ? 'LambdaAction'
                  : failure.type,
            failedResource: 'target' in failure ? failure.target : '',
            errorMessage: 'error' in failure ? failure.error : '',
          })),
        };
        outcome.errorAction = await this.run(rule.errorAction, message, Buffer.from(JSON.stringify(message)));
      }
      outcomes.push(outcome);
    }
    return outcomes;
  }

  private async run(action: ActionSpec, output: unknown, original: Buffer): Promise<ActionOutcome> {
    if (action.type === 'sqs') {
      try {
        const body = action.useBase64
          ? Buffer.from(serialize(output, original)).toString('base64')
          : serialize(output, original);
        const messageId = await this.targets.sendMessage(action.queue, body, action.role);
        return { type: 'sqs', queue: action.queue, ok: true, messageId };
      } catch (error) {
        return { type: 'sqs', target: action.queue, ok: false, error: messageOf(error) };
      }
    }
    if (action.type === 'lambda') {
      if (!this.targets.hasFunction(action.functionName)) {
        return {
          type: 'lambda',
          target: action.functionName,
          ok: false,
          error: `Function not found: ${action.functionName}`,
        };
      }
      this.targets.invokeAsync(action.functionName, output);
      return { type: 'lambda', function: action.functionName, ok: true };
    }
    return {
      type: 'unsupported',
      target: action.actionType,
      ok: false,
      error: `${action.actionType} actions are not emulated locally`,
    };
  }
}

function parsePayload(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    return bytes.toString('utf8');
  }
}

function serialize(output: unknown, original: Buffer): string {
  if (typeof output === 'string') return output;
  if (output === undefined) return original.toString('utf8');
  return JSON.stringify(output);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
