/**
 * fleetgate's schemas are written with zod's `mini` build (schemas/zod.ts) instead of the classic
 * one, for the cold start. The rules must not change with the build: every kind of rule the schemas
 * use, built both ways, gives the same data and the same issues (path, code, message) on the same
 * inputs. (test/unit/zod-locale.test.ts checks, without the classic build loaded, that schemas/zod.ts
 * configures the English messages the classic build configures on import.) And the scheduled event,
 * written by hand in `mini`, answers as Powertools' `EventBridgeSchema` (classic) with the same two
 * literals.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EventBridgeSchema } from '@aws-lambda-powertools/parser/schemas/eventbridge';
import { describe, expect, it } from 'vitest';
import * as classic from 'zod';
import { ScheduledEventSchema } from '../../schemas/scheduled-event';
import * as z from '../../schemas/zod';

type Parse = {
  safeParse(input: unknown): { success: boolean; data?: unknown; error?: { issues: unknown[] } };
};

/** Data on success, else each issue's path, code and message: what fleetgate reports of a parse. */
function answer(schema: Parse, input: unknown) {
  const result = schema.safeParse(input);
  if (result.success) return { data: result.data };
  return {
    issues: (result.error?.issues ?? []).map((issue) => {
      const { path, code, message } = issue as { path: PropertyKey[]; code: string; message: string };
      return { path: path.map(String), code, message };
    }),
  };
}

const HEX = /^[0-9a-f]{4}$/;
const notTime = (value: string) => !Number.isNaN(Date.parse(value));

/** [rule, classic schema, mini schema, inputs]: each rule as the schemas write it in both builds. */
const RULES: Array<[string, Parse, Parse, unknown[]]> = [
  [
    'string with a type message, length bounds with and without messages',
    classic.string({ error: 'must be a string' }).min(1, 'must not be empty').max(4),
    z.string({ error: 'must be a string' }).check(z.minLength(1, 'must not be empty'), z.maxLength(4)),
    ['ab', '', 'abcde', 7, null, undefined, ['a']],
  ],
  [
    'regex and startsWith',
    classic.string().regex(HEX, 'must be 4 hex characters').startsWith('a'),
    z.string().check(z.regex(HEX, 'must be 4 hex characters'), z.startsWith('a')),
    ['a0f1', 'b0f1', 'A0F1', 'zz', 1],
  ],
  [
    'a transform after a regex',
    classic
      .string()
      .regex(/^[0-9a-fA-F]{4}$/)
      .transform((value) => value.toLowerCase()),
    z.pipe(
      z.string().check(z.regex(/^[0-9a-fA-F]{4}$/)),
      z.transform((value: string) => value.toLowerCase()),
    ),
    ['ABCD', 'abcd', 'xyz', 5],
  ],
  [
    'an integer, non-negative, with a type message; min on numbers',
    classic.number({ error: 'must be a number' }).int().nonnegative().min(0).max(10),
    z.number({ error: 'must be a number' }).check(z.int(), z.nonnegative(), z.gte(0), z.lte(10)),
    [0, 3, -1, 1.5, 11, '3', Number.NaN, Number.POSITIVE_INFINITY],
  ],
  [
    'enum, literal, boolean, unknown',
    classic.object({
      e: classic.enum(['A', 'B']),
      l: classic.literal('x'),
      b: classic.boolean(),
      u: classic.unknown(),
    }),
    z.object({ e: z.enum(['A', 'B']), l: z.literal('x'), b: z.boolean(), u: z.unknown() }),
    [{ e: 'A', l: 'x', b: true, u: 1 }, { e: 'C', l: 'y', b: 'no' }, {}, 'object'],
  ],
  [
    'optional, nullable, defaults (value and function)',
    classic.object({
      o: classic.string().optional(),
      n: classic.string().nullable().optional(),
      d: classic.record(classic.string(), classic.string()).default({}),
      f: classic.array(classic.number()).default(() => []),
    }),
    z.object({
      o: z.optional(z.string()),
      n: z.optional(z.nullable(z.string())),
      d: z._default(z.record(z.string(), z.string()), {}),
      f: z._default(z.array(z.number()), () => []),
    }),
    [{}, { o: 'a', n: null, d: { k: 'v' }, f: [1] }, { o: 1, n: 2, d: { k: 1 }, f: ['x'] }],
  ],
  [
    'loose, strict and plain objects',
    classic.object({
      loose: classic.looseObject({ a: classic.string() }),
      strict: classic.object({ a: classic.string().optional() }).strict(),
      strictObject: classic.strictObject({ s: classic.string() }),
      plain: classic.object({ a: classic.string() }),
    }),
    z.object({
      loose: z.looseObject({ a: z.string() }),
      strict: z.strictObject({ a: z.optional(z.string()) }),
      strictObject: z.strictObject({ s: z.string() }),
      plain: z.object({ a: z.string() }),
    }),
    [
      { loose: { a: 'x', extra: 1 }, strict: {}, strictObject: { s: 's' }, plain: { a: 'x', extra: 1 } },
      { loose: { a: 1 }, strict: { b: 1 }, strictObject: { s: 's', t: 1 }, plain: {} },
    ],
  ],
  [
    'records with key rules and messages',
    classic.record(
      classic.string().min(1, 'names must not be empty').max(3),
      classic.string({ error: 'must be a string' }).max(2, 'at most 2'),
      { error: 'must be an object of string values' },
    ),
    z.record(
      z.string().check(z.minLength(1, 'names must not be empty'), z.maxLength(3)),
      z.string({ error: 'must be a string' }).check(z.maxLength(2, 'at most 2')),
      { error: 'must be an object of string values' },
    ),
    [{ a: 'b' }, { '': 'b', long: 'c', b: 'xyz', c: 1 }, 'x', null, []],
  ],
  [
    'unions and discriminated unions',
    classic.union([
      classic.discriminatedUnion('t', [
        classic.looseObject({ t: classic.literal('a'), n: classic.number() }),
        classic.looseObject({ t: classic.literal('b') }),
      ]),
      classic.string(),
    ]),
    z.union([
      z.discriminatedUnion('t', [
        z.looseObject({ t: z.literal('a'), n: z.number() }),
        z.looseObject({ t: z.literal('b') }),
      ]),
      z.string(),
    ]),
    [{ t: 'a', n: 1 }, { t: 'a' }, { t: 'b', x: 1 }, { t: 'c' }, 's', 1],
  ],
  [
    'refine and superRefine with paths and messages',
    classic
      .object({ a: classic.string().optional(), b: classic.string().optional() })
      .refine((value) => value.a !== undefined || value.b !== undefined, {
        message: 'a or b is required',
        path: ['a'],
      })
      .superRefine((value, context) => {
        if (value.b === 'bad') context.addIssue({ code: 'custom', path: ['b'], message: 'is bad' });
      }),
    z.object({ a: z.optional(z.string()), b: z.optional(z.string()) }).check(
      z.refine((value) => value.a !== undefined || value.b !== undefined, {
        message: 'a or b is required',
        path: ['a'],
      }),
      z.superRefine((value, context) => {
        if (value.b === 'bad') context.addIssue({ code: 'custom', path: ['b'], message: 'is bad' });
      }),
    ),
    [{ a: 'x' }, {}, { b: 'bad' }, { a: 'x', b: 'bad' }],
  ],
  [
    'ISO date-times, refined times, custom and lazy schemas',
    classic.object({
      at: classic.iso.datetime(),
      time: classic.string({ error: 'must be a string' }).refine(notTime, 'must be an ISO-8601 time'),
      custom: classic.custom<string>((value) => value === 'ok', 'must be ok'),
      lazy: classic.lazy(() => classic.number()),
    }),
    z.object({
      at: z.iso.datetime(),
      time: z.string({ error: 'must be a string' }).check(z.refine(notTime, 'must be an ISO-8601 time')),
      custom: z.custom<string>((value) => value === 'ok', 'must be ok'),
      lazy: z.lazy(() => z.number()),
    }),
    [
      { at: '2026-12-08T01:00:00Z', time: '2026-12-08', custom: 'ok', lazy: 1 },
      { at: '2026-12-08T01:00:00+01:00', time: 'never', custom: 'no', lazy: '1' },
      { at: 'yesterday', time: 5 },
    ],
  ],
];

describe("zod's mini build, as schemas/zod.ts configures it, answers as the classic build", () => {
  it.each(RULES)('%s', (_rule, classicSchema, miniSchema, inputs) => {
    for (const input of inputs) {
      expect(answer(miniSchema, input), JSON.stringify(input)).toEqual(answer(classicSchema, input));
    }
  });
});

describe("the scheduled event answers as Powertools' EventBridgeSchema with a schedule's literals", () => {
  const powertools = EventBridgeSchema.extend({
    'detail-type': classic.literal('Scheduled Event'),
    source: classic.literal('aws.events'),
  });
  const sample = JSON.parse(
    readFileSync(join(__dirname, '..', '..', 'events', 'schedule', 'expiry-sweep-scheduled.json'), 'utf8'),
  ) as Record<string, unknown>;
  const variants: Array<[string, unknown]> = [
    ['the sample', sample],
    ['with replay-name', { ...sample, 'replay-name': 'replay_archive' }],
    ['with a detail object', { ...sample, detail: { a: 1 } }],
    ['with an unknown field (stripped)', { ...sample, extra: true }],
    ['an offset time', { ...sample, time: '2026-11-24T06:00:00+01:00' }],
    ['a time with milliseconds', { ...sample, time: '2026-11-24T06:00:00.123Z' }],
    ['a date only', { ...sample, time: '2026-11-24' }],
    ['another detail-type', { ...sample, 'detail-type': 'EC2 Instance State-change Notification' }],
    ['another source', { ...sample, source: 'aws.ec2' }],
    ['no resources', { ...sample, resources: undefined }],
    ['a resource that is not a string', { ...sample, resources: [1] }],
    ['no id, account or region', { ...sample, id: undefined, account: undefined, region: undefined }],
    ['a numeric version', { ...sample, version: 0 }],
    ['replay-name not a string', { ...sample, 'replay-name': 5 }],
    ['no detail (it may be anything)', { ...sample, detail: undefined }],
    ['not an object', 'Scheduled Event'],
  ];
  it.each(variants)('%s', (_name, input) => {
    expect(answer(ScheduledEventSchema, input)).toEqual(answer(powertools, input));
  });
});
