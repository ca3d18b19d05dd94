/**
 * `POST /claims` of the installer API: the HTTP API event (payload format 2.0) behind a JWT
 * authorizer, and the request body `{ "serial": "…" }`. The event schema names the fields the
 * function reads, as the payload format documents them; Powertools' `APIGatewayProxyEventV2Schema`
 * is not used because it is built on zod's classic build and imports all of it (the bundle went
 * from ~420 KB to 873 KB); fleetgate's schemas are zod's `mini` build (./zod.ts).
 * @see https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html
 * @see https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-jwt-authorizer.html
 */
import * as z from './zod';

export const installerClaimEventSchema = z.looseObject({
  version: z.literal('2.0'),
  routeKey: z.string(),
  body: z.optional(z.string()),
  isBase64Encoded: z.boolean(),
  requestContext: z.looseObject({
    requestId: z.string(),
    http: z.looseObject({ method: z.string(), path: z.string() }),
    authorizer: z.optional(
      z.looseObject({
        jwt: z.looseObject({
          claims: z.record(z.string(), z.unknown()),
          scopes: z.nullish(z.array(z.string())),
        }),
      }),
    ),
  }),
});
export type InstallerClaimEvent = z.infer<typeof installerClaimEventSchema>;

/** The body: one serial, nothing else (an unknown field is refused, not ignored). */
export const installerClaimBodySchema = z.strictObject({
  serial: z
    .string({ error: 'is required and must be a string' })
    .check(z.minLength(1, 'must not be empty'), z.maxLength(128, 'must be at most 128 characters')),
});

/** What the API answers on success (201). The private key is in it once, and nowhere else. */
export interface InstallerClaimResponse {
  serial: string;
  installer: string;
  templateName: string;
  certificateId: string;
  certificatePem: string;
  privateKey: string;
  /** ISO time the temporary claim stops working (five minutes on AWS). */
  expiration: string;
}

/** What the API answers on a refusal or failure. */
export interface InstallerClaimError {
  error: string;
  message: string;
}
