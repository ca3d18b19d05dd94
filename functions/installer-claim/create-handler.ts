/**
 * `POST /claims` — provisioning by trusted user. An installer signed in to the team's app (a JWT the
 * HTTP API's authorizer has verified) asks for a temporary claim for one serial:
 * 1. the body is `{ "serial": "…" }` (400 with the field and rule otherwise);
 * 2. the installer must be bound to the serial or its batch, the serial allowlisted and able to take
 *    a certificate (`decideInstallerClaim`: 403 / 404 / 409);
 * 3. at most `INSTALLER_CLAIMS_PER_MINUTE` claims per installer per minute (429, `Retry-After`);
 * 4. `CreateProvisioningClaim` for the trusted-user template (five minutes on AWS);
 * 5. the claim is recorded (who, which serial, until when) with an entry in the device's history —
 *    before it is returned: the hook admits a temporary claim only when this record exists and names
 *    the serial, so a claim whose record failed is useless (the API answers 500) rather than open.
 * The response carries the claim certificate and private key once (`Cache-Control: no-store`); no log
 * line ever does.
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/provision-wo-cert.html#trusted-user
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import {
  type InstallerClaimError,
  type InstallerClaimEvent,
  type InstallerClaimResponse,
  installerClaimBodySchema,
  installerClaimEventSchema,
} from '../../schemas/installer-claim';
import { fieldIssues, formatIssues } from '../../schemas/issues';
import type { Config } from '../../shared/config';
import {
  checkInstallerSerial,
  decideInstallerClaim,
  type InstallerClaimDecision,
  refuse,
} from '../../shared/domain/installer-rules';
import { countOutcome } from '../../shared/logging';
import type { InstallerStore } from '../../shared/store/installer-store';

export const ACTOR = 'installerClaim';

/** What `CreateProvisioningClaim` returns that the API passes on. */
export interface IssuedClaim {
  certificateId: string;
  certificatePem: string;
  privateKey: string;
  expiration: Date;
}

export interface InstallerClaimDeps {
  config: Config;
  store: Pick<InstallerStore, 'claimFacts' | 'countClaim' | 'recordClaim'>;
  /** CreateProvisioningClaim for a template. */
  createClaim: (templateName: string) => Promise<IssuedClaim>;
  logger: Logger;
  metrics: Metrics;
  clock?: () => number;
  newId?: () => string;
}

type Result = APIGatewayProxyStructuredResultV2;

export function createHandler(deps: InstallerClaimDeps) {
  const { config, logger, metrics } = deps;
  const clock = deps.clock ?? Date.now;
  const newId = deps.newId ?? randomUUID;

  /** The installer and serial of a well-formed request, or the answer to a malformed one. */
  const requestOf = (
    raw: unknown,
  ): { installer: string; serial: string; requestId: string } | { answer: Result } => {
    const event = installerClaimEventSchema.safeParse(raw);
    if (!event.success) {
      // Not an HTTP API event at all: a wiring error, not the caller's.
      logger.error('not an HTTP API (payload 2.0) event', { issues: formatIssues(fieldIssues(event.error)) });
      return { answer: failure(500, 'INTERNAL_ERROR', 'the function received an event it does not handle') };
    }
    const installer = installerOf(event.data, config.installerIdClaim);
    if (!installer) {
      return { answer: failure(401, 'UNAUTHENTICATED', `the token has no ${config.installerIdClaim} claim`) };
    }
    logger.appendKeys({ installer });
    const body = parseBody(event.data);
    if (!body.ok) return { answer: refusal(body.decision) };
    logger.appendKeys({ serial: body.serial });
    const invalid = checkInstallerSerial(body.serial, config);
    if (invalid) return { answer: refusal(invalid) };
    return { installer, serial: body.serial, requestId: event.data.requestContext.requestId };
  };

  const issue = async (raw: unknown): Promise<Result> => {
    const request = requestOf(raw);
    if ('answer' in request) return request.answer;
    const { installer, serial } = request;
    const templateName = config.installerTemplateName;
    if (!templateName) {
      logger.error('INSTALLER_TEMPLATE_NAME is not set');
      return failure(500, 'INTERNAL_ERROR', 'the installer API is not configured');
    }
    const facts = await deps.store.claimFacts(installer, serial);
    const decision = decideInstallerClaim({ installer, serial }, facts, config);
    if (!decision.allow) return refusal(decision);

    const now = new Date(clock()).toISOString();
    if (!(await deps.store.countClaim(installer, now, config.installerClaimsPerMinute))) {
      const retryAfter = 60 - new Date(clock()).getUTCSeconds();
      return refusal(
        refuse('RATE_EXCEEDED', `installer reached ${config.installerClaimsPerMinute} claims this minute`),
        { 'retry-after': String(retryAfter) },
      );
    }

    let claim: IssuedClaim;
    try {
      claim = await deps.createClaim(templateName);
    } catch (error) {
      const throttled = (error as { name?: string }).name === 'ThrottlingException';
      logger.error('CreateProvisioningClaim failed', { error, templateName });
      return throttled
        ? failure(503, 'IOT_THROTTLED', 'AWS IoT is throttling claims; retry shortly', { 'retry-after': '1' })
        : failure(500, 'INTERNAL_ERROR', 'the claim could not be created');
    }
    const expiration = claim.expiration.toISOString();
    const recorded = await deps.store.recordClaim(
      {
        claimCertificateId: claim.certificateId,
        serial,
        installer,
        templateName,
        expiration,
        issuedAt: now,
        requestId: request.requestId,
      },
      { id: newId(), actor: ACTOR },
    );
    if (!recorded) {
      logger.error('temporary claim already recorded', { claimCertificateId: claim.certificateId });
      return failure(500, 'INTERNAL_ERROR', 'the claim could not be recorded');
    }
    logger.info('temporary claim issued', {
      claimCertificateId: claim.certificateId,
      binding: decision.binding,
      expiration,
    });
    countOutcome(metrics, 'TemporaryClaimIssued');
    const response: InstallerClaimResponse = {
      serial,
      installer,
      templateName,
      certificateId: claim.certificateId,
      certificatePem: claim.certificatePem,
      privateKey: claim.privateKey,
      expiration,
    };
    return json(201, response);
  };

  const refusal = (
    decision: Extract<InstallerClaimDecision, { allow: false }>,
    headers: Record<string, string> = {},
  ): Result => {
    logger.warn('temporary claim refused', { reason: decision.reason, detail: decision.detail });
    countOutcome(metrics, 'TemporaryClaimRefused', { reason: decision.reason });
    return failure(decision.status, decision.reason, decision.detail, headers);
  };

  return middy<unknown, Result>()
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(logMetrics(metrics))
    .use({
      // A store or SDK failure is a 500 with a reason, never a stack trace to the caller.
      onError: (request) => {
        logger.error('installer claim failed', { error: request.error });
        request.response = failure(500, 'INTERNAL_ERROR', 'the claim could not be issued');
      },
    })
    .handler(issue);
}

/** The installer: the configured claim of the JWT the authorizer verified (`sub` by default). */
function installerOf(event: InstallerClaimEvent, claimName: string): string | undefined {
  const claims = event.requestContext.authorizer?.jwt.claims;
  const value = claims?.[claimName];
  return typeof value === 'string' && value.length > 0 && value.length <= 256 ? value : undefined;
}

function parseBody(
  event: InstallerClaimEvent,
): { ok: true; serial: string } | { ok: false; decision: Extract<InstallerClaimDecision, { allow: false }> } {
  const bad = (detail: string) => ({ ok: false as const, decision: refuse('INVALID_REQUEST', detail) });
  if (event.body === undefined || event.body === '') return bad('body: is required ({"serial": "…"})');
  const text = event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return bad('body: must be JSON');
  }
  const parsed = installerClaimBodySchema.safeParse(value);
  if (!parsed.success) {
    const issues = fieldIssues(parsed.error).map((issue) => ({
      field: issue.field === 'event' ? 'body' : `body.${issue.field}`,
      rule: issue.rule,
    }));
    return bad(formatIssues(issues));
  }
  return { ok: true, serial: parsed.data.serial };
}

function json(statusCode: number, body: InstallerClaimResponse | InstallerClaimError, headers = {}): Result {
  return {
    statusCode,
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers },
    body: JSON.stringify(body),
  };
}

function failure(
  statusCode: number,
  error: string,
  message: string,
  headers: Record<string, string> = {},
): Result {
  return json(statusCode, { error, message }, headers);
}
