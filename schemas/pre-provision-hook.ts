/**
 * The event AWS IoT sends to a fleet-provisioning pre-provisioning hook, and the answer it expects.
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/pre-provisioning-hook.html
 */
import { type FieldIssue, fieldIssues } from './issues';
import * as z from './zod';

const HEX_64 = /^[0-9a-fA-F]{64}$/;
const TEMPLATE_ARN = /^arn:aws[a-z-]*:iot:[a-z0-9-]{1,32}:\d{12}:provisioningtemplate\/[0-9A-Za-z_-]{1,36}$/;
/** RegisterThing parameters: names and values as the template language allows, bounded. */
const MAX_PARAMETERS = 50;
const MAX_PARAMETER_VALUE = 2048;

export interface PreProvisionHookSchemaOptions {
  /** The template parameter that carries the device serial (`SERIAL_PARAMETER`). */
  serialParameter: string;
  serialPattern: RegExp;
  /** Upper bound of `certificatePem` in characters (the parser checks bytes). */
  maxCertificatePemBytes: number;
}

/** Builds the schema of the hook event for one configuration (the serial parameter is configurable). */
export function preProvisionHookEventSchema(options: PreProvisionHookSchemaOptions) {
  const text = (max: number) =>
    z
      .string({ error: 'must be a string' })
      .check(z.minLength(1, 'must not be empty'), z.maxLength(max, `must be at most ${max} characters`));
  return z.object(
    {
      claimCertificateId: z
        .string({ error: 'must be a string' })
        .check(z.regex(HEX_64, 'must be 64 hex characters')),
      certificateId: z
        .string({ error: 'must be a string' })
        .check(z.regex(HEX_64, 'must be 64 hex characters')),
      certificatePem: text(options.maxCertificatePemBytes),
      templateArn: z
        .string({ error: 'must be a string' })
        .check(z.regex(TEMPLATE_ARN, 'must be a provisioning template ARN')),
      clientId: text(128),
      parameters: z
        .record(
          z
            .string()
            .check(
              z.minLength(1, 'parameter names must not be empty'),
              z.maxLength(128, 'parameter names are at most 128 characters'),
            ),
          z
            .string({ error: 'must be a string' })
            .check(z.maxLength(MAX_PARAMETER_VALUE, `must be at most ${MAX_PARAMETER_VALUE} characters`)),
          { error: 'must be an object of string values' },
        )
        .check(
          z.superRefine((parameters, context) => {
            const count = Object.keys(parameters).length;
            if (count > MAX_PARAMETERS) {
              context.addIssue({ code: 'custom', message: `must hold at most ${MAX_PARAMETERS} parameters` });
              return;
            }
            const serial = Object.hasOwn(parameters, options.serialParameter)
              ? parameters[options.serialParameter]
              : undefined;
            if (serial === undefined) {
              context.addIssue({ code: 'custom', path: [options.serialParameter], message: 'is required' });
            } else if (!options.serialPattern.test(serial)) {
              context.addIssue({
                code: 'custom',
                path: [options.serialParameter],
                message: `must match ${options.serialPattern.source}`,
              });
            }
          }),
        ),
    },
    { error: 'must be an object' },
  );
}

export type PreProvisionHookEvent = z.infer<ReturnType<typeof preProvisionHookEventSchema>>;

/** The hook's answer; `parameterOverrides` values are strings, as AWS IoT requires. */
export interface PreProvisionHookResponse {
  allowProvisioning: boolean;
  parameterOverrides?: Record<string, string>;
}

export type HookEventParse =
  | { success: true; event: PreProvisionHookEvent; serial: string }
  | { success: false; reason: 'INVALID_EVENT' | 'INVALID_SERIAL'; issues: FieldIssue[] };

/**
 * Parses an untrusted hook event. Never throws: a bad event is an answer naming every broken field
 * (`parameters.SerialNumber: must match …`). Only a serial that is present but malformed is
 * `INVALID_SERIAL`; everything else is `INVALID_EVENT`.
 */
export function parsePreProvisionHookEvent(
  schema: ReturnType<typeof preProvisionHookEventSchema>,
  options: Pick<PreProvisionHookSchemaOptions, 'serialParameter'>,
  input: unknown,
): HookEventParse {
  const parsed = schema.safeParse(input);
  if (parsed.success) {
    const serial = parsed.data.parameters[options.serialParameter] ?? '';
    return { success: true, event: parsed.data, serial };
  }
  const issues = fieldIssues(parsed.error);
  const serialField = `parameters.${options.serialParameter}`;
  // A serial that is there but malformed (pattern, length) is INVALID_SERIAL; a missing one is not.
  const onlySerial = issues.every(
    (issue) =>
      issue.field === serialField && issue.rule !== 'is required' && issue.rule !== 'must be a string',
  );
  return { success: false, reason: onlySerial ? 'INVALID_SERIAL' : 'INVALID_EVENT', issues };
}
