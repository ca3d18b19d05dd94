/**
 * AWS IoT error codes and the HTTP status each one is sent with. The status codes follow the service model
 * shipped in `@aws-sdk/client-iot` (the `httpError` trait of each exception shape) and the AWS IoT API
 * reference, including `ThrottlingException` = 400 ("The rate exceeds the limit. HTTP Status Code: 400");
 * the SDK recognises throttling by the error name, so its retries work the same.
 */
export const ERROR_STATUS = {
  /** IAM denied the caller (the local stack's IAM, from the calling function's role). */
  AccessDeniedException: 403,
  CertificateConflictException: 409,
  CertificateStateException: 406,
  CertificateValidationException: 400,
  ConflictingResourceUpdateException: 409,
  /** Data plane: a shadow update's version does not match. */
  ConflictException: 409,
  DeleteConflictException: 409,
  InternalFailureException: 500,
  InvalidRequestException: 400,
  LimitExceededException: 410,
  MalformedPolicyException: 400,
  RegistrationCodeValidationException: 400,
  ResourceAlreadyExistsException: 409,
  ResourceNotFoundException: 404,
  /** Data plane: a shadow document over the size limit. */
  RequestEntityTooLargeException: 413,
  ServiceUnavailableException: 503,
  ThrottlingException: 400,
  UnauthorizedException: 401,
  VersionConflictException: 409,
  /**
   * Not AWS's: an operation or a case the emulator (or the local IAM) does not emulate. 501, which the
   * SDK does not retry, so the caller fails at once with a message naming what is missing.
   */
  NotEmulatedException: 501,
  /** Data plane: unknown route / method. */
  MethodNotAllowedException: 405,
} as const;

/** An AWS IoT error code the emulator can return. */
export type IotErrorCode = keyof typeof ERROR_STATUS;

/** Thrown inside operation handlers when AWS would answer with an error; becomes an HTTP error response. */
export class IotError extends Error {
  readonly code: IotErrorCode;
  readonly status: number;
  /** Extra members of the error body (e.g. `resourceId` / `resourceArn` for ResourceAlreadyExistsException). */
  readonly extra: Record<string, string>;

  constructor(code: IotErrorCode, message: string, extra: Record<string, string> = {}) {
    super(message);
    this.name = code;
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.extra = extra;
  }
}

/** Shorthand for `new IotError('InvalidRequestException', message)`. */
export function invalidRequest(message: string): IotError {
  return new IotError('InvalidRequestException', message);
}

/** Shorthand for `new IotError('ResourceNotFoundException', message)`. */
export function notFound(message: string): IotError {
  return new IotError('ResourceNotFoundException', message);
}
