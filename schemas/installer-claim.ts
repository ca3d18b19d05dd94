/**
 * `POST /claims` of the installer API: the HTTP API event (payload format 2.0) behind a JWT
 * authorizer, and the request body `{ "serial": "…" }`. The event schema names the fields the
 * function reads, as the payload format documents them; Powertools' `APIGatewayProxyEventV2Schema`
 * is not used because it imports `{ z }` and so all of zod (the bundle went from ~420 KB to 873 KB).
 * @see https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html
 * @see https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-jwt-authorizer.html
 */
import * as z from 'zod';

export const installerClaimEventSchema = z.looseObject({
  version: z.literal('2.0'),
  routeKey: z.string(),
  body: z.string().optional(),
  isBase64Encoded: z.boolean(),
  requestContext: z.looseObject({
    requestId: z.string(),
    http: z.looseObject({ method: z.string(), path: z.string() }),
    authorizer: z
      .looseObject({
        jwt: z.looseObject({
          claims: z.record(z.string(), z.unknown()),
          scopes: z.array(z.string()).nullish(),
        }),
      })
      .optional(),
  }),
});
export type InstallerClaimEvent = z.infer<typeof installerClaimEventSchema>;

/** The body: one serial, nothing else (an unknown field is refused, not ignored). */
export const installerClaimBodySchema = z.strictObject({
  serial: z.string({ error: 'is required and must be a string' }).min(1, 'must not be empty').max(128),
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
