/**
 * Every typed error fleetgate throws. Each has a stable `code`, says whether a retry can help
 * (`retryable`), and keeps its `cause`. Map them to outcomes in one place per trigger type; never
 * match on `message`.
 */

export abstract class FleetgateError extends Error {
  abstract readonly code: string;
  abstract readonly retryable: boolean;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Thrown when input (an event, a PEM, a CSV row, a parameter) breaks a rule; `field` names where. */
export class ValidationError extends FleetgateError {
  readonly code = 'VALIDATION';
  readonly retryable = false;
  constructor(
    readonly issues: ReadonlyArray<{ field: string; rule: string }>,
    options?: { cause?: unknown },
  ) {
    super(issues.map((issue) => `${issue.field}: ${issue.rule}`).join('; '), options);
  }
}

/** Thrown when configuration read at cold start is missing or invalid (all problems at once). */
export class ConfigError extends FleetgateError {
  readonly code = 'CONFIG';
  readonly retryable = false;
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration: ${problems.join('; ')}`);
  }
}

/** Thrown when a device, certificate or other record the caller relies on does not exist. */
export class NotFoundError extends FleetgateError {
  readonly code = 'NOT_FOUND';
  readonly retryable = false;
}

/** Thrown when a requested state change is not legal from the device's current state. */
export class IllegalTransitionError extends FleetgateError {
  readonly code = 'ILLEGAL_TRANSITION';
  readonly retryable = false;
}

/** Thrown when a dependency (DynamoDB, IoT, SQS) fails in a way that a later retry may fix. */
export class TransientError extends FleetgateError {
  readonly code = 'TRANSIENT';
  readonly retryable = true;
}

/** Thrown when a dependency refuses the request for good (permissions, malformed request). */
export class PermanentError extends FleetgateError {
  readonly code = 'PERMANENT';
  readonly retryable = false;
}

/**
 * Thrown when an SQS message can never be processed, whatever the retries: a malformed body, a
 * schema violation, a request that names nothing that exists ("serial X is unknown and no
 * certificateId was given"). `issues` says which field breaks which rule. The SQS consumer
 * (shared/sqs-consumer.ts) records it and applies its invalid-message policy (dead-letter at once,
 * or acknowledge) instead of letting SQS redeliver it; every other error is retried.
 */
export class InvalidMessageError extends FleetgateError {
  readonly code = 'INVALID_MESSAGE';
  readonly retryable = false;
  constructor(
    readonly issues: ReadonlyArray<{ field: string; rule: string }>,
    options?: { cause?: unknown },
  ) {
    super(issues.map((issue) => `${issue.field}: ${issue.rule}`).join('; '), options);
  }
}

export function isRetryable(error: unknown): boolean {
  if (error instanceof FleetgateError) return error.retryable;
  return isTransientAwsError(error);
}

const TRANSIENT_AWS_NAMES = new Set([
  'ThrottlingException',
  'Throttling',
  'TooManyRequestsException',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'InternalFailureException',
  'InternalServerError',
  'InternalServerException',
  'ServiceUnavailableException',
  'ServiceUnavailable',
  'TransactionInProgressException',
  'TimeoutError',
  'RequestTimeout',
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
]);

/** True for AWS SDK errors that a retry with backoff can fix (throttling, 5xx, network). */
export function isTransientAwsError(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const candidate = error as { name?: unknown; code?: unknown; $metadata?: { httpStatusCode?: number } };
  if (typeof candidate.name === 'string' && TRANSIENT_AWS_NAMES.has(candidate.name)) return true;
  if (typeof candidate.code === 'string' && TRANSIENT_AWS_NAMES.has(candidate.code)) return true;
  const status = candidate.$metadata?.httpStatusCode;
  return typeof status === 'number' && (status >= 500 || status === 429);
}

/**
 * Thrown when an item read from the provisioning table does not have the shape its entity
 * requires (a field missing or of the wrong type): the table holds something no writer of this
 * code base wrote. `key` names the item, `field` the first offending attribute.
 */
export class MalformedItemError extends FleetgateError {
  readonly code = 'MALFORMED_ITEM';
  readonly retryable = false;
  constructor(
    readonly entity: string,
    readonly key: string,
    readonly field: string,
    readonly rule: string,
  ) {
    super(`malformed ${entity} item ${key}: ${field}: ${rule}`);
  }
}
