/**
 * The functions' log lines as `fleetgate invoke` and `fleetgate logs` show them: Powertools JSON
 * lines (level, message, the function, the reason fields), anything else as text. Nothing that looks
 * like a PEM is ever shown (the functions never log one; this is the second lock).
 */

/** One log line: the parsed JSON entry, or the text of a line that is not JSON. */
export type LogEntry = { entry: Record<string, unknown> } | { text: string };

/** Fields every Powertools line carries; left out of the one-line summary. */
const STANDARD_FIELDS = new Set([
  'level',
  'message',
  'timestamp',
  'service',
  'function',
  'function_name',
  'function_arn',
  'function_memory_size',
  'function_request_id',
  'cold_start',
  'xray_trace_id',
  'sampling_rate',
  'source',
]);

const PEM = /-----BEGIN [A-Z0-9 ]+-----/;

/** A value with every string that holds a PEM replaced. */
export function withoutPems(value: unknown): unknown {
  if (typeof value === 'string') return PEM.test(value) ? '[PEM omitted]' : value;
  if (Array.isArray(value)) return value.map(withoutPems);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, withoutPems(item)]));
  }
  return value;
}

export function parseLogLine(line: string): LogEntry {
  const text = line.trim();
  if (text.startsWith('{')) {
    try {
      const parsed = JSON.parse(text) as unknown;
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
        return { entry: withoutPems(parsed) as Record<string, unknown> };
      }
    } catch {
      // not JSON: shown as text
    }
  }
  return { text: PEM.test(text) ? '[PEM omitted]' : text };
}

/** The serverless.yml name of the function that wrote an entry (its logger's `function` key). */
export function functionOf(entry: Record<string, unknown>): string | undefined {
  if (typeof entry.function === 'string') return entry.function;
  if (typeof entry.function_name === 'string') return entry.function_name.split('-').pop();
  return undefined;
}

/**
 * What the function column shows for an entry: the function that wrote it, else the entry's
 * `source` (the stack's own lines: `iot-endpoint`).
 */
export function sourceOf(entry: Record<string, unknown>): string | undefined {
  return functionOf(entry) ?? (typeof entry.source === 'string' ? entry.source : undefined);
}

/** Whether a line was written by `name`: a function, or one of the stack's own sources (text lines: none). */
export function isFrom(log: LogEntry, name: string): boolean {
  return 'entry' in log && sourceOf(log.entry) === name;
}

function shortValue(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

/** One line for people: time, level, function, message and the fields that say why. */
export function describeLog(log: LogEntry): string {
  if ('text' in log) return log.text;
  const { entry } = log;
  const extra = Object.entries(entry)
    .filter(([key]) => !STANDARD_FIELDS.has(key))
    .map(([key, value]) => `${key}=${shortValue(value)}`)
    .join(' ');
  const level = String(entry.level ?? '').padEnd(5);
  const time = typeof entry.timestamp === 'string' ? `${entry.timestamp} ` : '';
  const source = sourceOf(entry) ?? '-';
  return `${time}${level} ${source}  ${String(entry.message ?? '')}${extra ? `  ${extra}` : ''}`;
}

/** The pre-provisioning hook's decision as its log line records it (the answer to IoT carries no reason). */
export interface HookDecision {
  allowProvisioning: boolean;
  reason?: string;
  detail?: string;
  thingName?: string;
  /**
   * A denial the hook sent to the quarantine queue as clone or takeover evidence (its `quarantine
   * requested` line): the presented certificate, and `serial` when a device is to be quarantined too.
   */
  quarantine?: { reason: string; certificateId: string; serial?: string };
}

/** The denials the hook may send to quarantine (shared/domain/provisioning-rules.ts `hookSuspicion`). */
export const SUSPICIOUS_DENIALS: ReadonlySet<string> = new Set([
  'SERIAL_BOUND_TO_OTHER_CERTIFICATE',
  'PUBLIC_KEY_IN_USE',
]);

const DENIALS = new Set(['provisioning denied', 'pre-provisioning hook failed; denying']);

function decisionOf(entry: Record<string, unknown>): HookDecision | undefined {
  const text = (key: string) => (typeof entry[key] === 'string' ? { [key]: entry[key] as string } : {});
  if (entry.message === 'provisioning allowed') return { allowProvisioning: true, ...text('thingName') };
  if (DENIALS.has(String(entry.message))) {
    return { allowProvisioning: false, ...text('reason'), ...text('detail') };
  }
  return undefined;
}

/** The hook's last decision in an invocation's log lines, if it logged one. */
export function hookDecision(logs: readonly LogEntry[]): HookDecision | undefined {
  for (const log of [...logs].reverse()) {
    const decision = 'entry' in log ? decisionOf(log.entry) : undefined;
    if (decision) return decision;
  }
  return undefined;
}

/**
 * The hook's decision on one certificate (the `certificateId` its log line carries), the last one
 * logged: how `fleetgate device provision` finds why RegisterThing was denied in the stack's log.
 */
export function hookDecisionFor(logs: readonly LogEntry[], certificateId: string): HookDecision | undefined {
  const own = logs.filter(
    (log): log is { entry: Record<string, unknown> } =>
      'entry' in log &&
      functionOf(log.entry) === 'preProvisionHook' &&
      log.entry.certificateId === certificateId,
  );
  const decision = hookDecision(own);
  if (!decision || decision.allowProvisioning) return decision;
  const requested = own.findLast((log) => log.entry.message === 'quarantine requested')?.entry;
  if (!requested || typeof requested.reason !== 'string') return decision;
  const serial = typeof requested.quarantineSerial === 'string' ? requested.quarantineSerial : undefined;
  return {
    ...decision,
    quarantine: { reason: requested.reason, certificateId, ...(serial ? { serial } : {}) },
  };
}

/** The entries at WARN or above: what an operator should read after an invocation. */
export function warnings(logs: readonly LogEntry[]): LogEntry[] {
  return logs.filter(
    (log) => 'entry' in log && ['WARN', 'ERROR', 'CRITICAL'].includes(String(log.entry.level)),
  );
}

/** A record the consumer sent to its queue's DLQ at once (it can never be processed), as logged. */
export interface DeadLettered {
  messageId?: string;
  reason: string;
}

/** The records an invocation sent to the DLQ itself (the shared SQS consumer logs each one). */
export function deadLettered(logs: readonly LogEntry[]): DeadLettered[] {
  return logs.flatMap((log) => {
    if (!('entry' in log) || log.entry.message !== 'invalid message sent to the dead-letter queue') return [];
    const { messageId, reason } = log.entry;
    return [
      {
        ...(typeof messageId === 'string' ? { messageId } : {}),
        reason: typeof reason === 'string' ? reason : '(no reason logged)',
      },
    ];
  });
}
