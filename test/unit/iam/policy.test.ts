/**
 * The local IAM evaluator against an independent implementation of AWS's policy evaluation logic:
 * `@cloud-copilot/iam-simulate` (AGPL-3.0, a devDependency used only here as a test oracle; the local
 * stack ships its own Apache-2.0 evaluator). Hand-picked cases cover the rules fleetgate's templates
 * rely on; generated cases (fast-check) cover combinations nobody picked.
 * https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
 */
import { runSimulation } from '@cloud-copilot/iam-simulate';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type AuthorizationRequest,
  type Decision,
  evaluate,
  type NamedPolicy,
  type PolicyStatement,
} from '../../../local/iam/policy';

const ACCOUNT = '123456789012';

async function oracle(statements: PolicyStatement[], request: AuthorizationRequest): Promise<Decision> {
  const response = await runSimulation(
    {
      identityPolicies: [{ name: 'p', policy: { Version: '2012-10-17', Statement: statements } }],
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      request: {
        action: request.action,
        principal: `arn:aws:iam::${ACCOUNT}:role/r`,
        resource: { resource: request.resource, accountId: ACCOUNT },
        contextVariables: Object.fromEntries(
          Object.entries(request.context).filter(([, value]) => value !== undefined),
        ) as Record<string, string | string[]>,
      },
    },
    {},
  );
  if (response.resultType === 'error') throw new Error(JSON.stringify(response.errors));
  return response.overallResult as Decision;
}

function local(statements: PolicyStatement[], request: AuthorizationRequest): Decision {
  const policies: NamedPolicy[] = [{ name: 'p', document: { Version: '2012-10-17', Statement: statements } }];
  return evaluate(policies, request).decision;
}

const TABLE = `arn:aws:dynamodb:us-east-1:${ACCOUNT}:table/fleetgate-dev-provisioning`;
const CERT = `arn:aws:iot:us-east-1:${ACCOUNT}:cert/0123abcd`;
const BUCKET = 'arn:aws:s3:::fleetgate-dev-reports';

/** One Allow statement for `action` on `resource` under `condition`, and a request for that action there. */
function allowIf(
  action: string,
  resource: string,
  condition: PolicyStatement['Condition'],
  context: AuthorizationRequest['context'] = {},
): [PolicyStatement[], AuthorizationRequest] {
  return [
    [{ Effect: 'Allow', Action: action, Resource: resource, Condition: condition }],
    { action, resource, context },
  ];
}

type Case = [string, PolicyStatement[], AuthorizationRequest];
const SWEEP_KEYS = { 'dynamodb:LeadingKeys': ['SWEEP#*'] };

const CASES: Case[] = [
  ...(
    [
      ['matching', 'SWEEP#2026'],
      ['another partition', 'DEVICE#SN1'],
    ] as const
  ).map(
    ([which, key]): Case => [
      `ForAllValues:StringLike LeadingKeys, ${which}`,
      ...allowIf(
        'dynamodb:PutItem',
        TABLE,
        { 'ForAllValues:StringLike': SWEEP_KEYS },
        { 'dynamodb:LeadingKeys': [key] },
      ),
    ],
  ),
  [
    'ForAllValues with the key absent is vacuously true',
    ...allowIf('dynamodb:Scan', TABLE, { 'ForAllValues:StringLike': SWEEP_KEYS }),
  ],
  [
    'ForAnyValue with the key absent is false',
    ...allowIf('dynamodb:Scan', TABLE, { 'ForAnyValue:StringLike': SWEEP_KEYS }),
  ],
  [
    's3:prefix condition without a prefix in the request (the GetObject 404 check)',
    ...allowIf('s3:ListBucket', BUCKET, { StringLike: { 's3:prefix': ['expiry/*'] } }),
  ],
  [
    'explicit deny wins over allow',
    [
      { Effect: 'Allow', Action: 'iot:*', Resource: '*' },
      {
        Effect: 'Deny',
        Action: 'iot:UpdateCertificate',
        Resource: `arn:aws:iot:us-east-1:${ACCOUNT}:cert/*`,
      },
    ],
    { action: 'iot:UpdateCertificate', resource: CERT, context: {} },
  ],
  [
    'granted on thing/* does not cover a certificate ARN',
    [
      {
        Effect: 'Allow',
        Action: 'iot:AttachThingPrincipal',
        Resource: `arn:aws:iot:us-east-1:${ACCOUNT}:thing/*`,
      },
    ],
    { action: 'iot:AttachThingPrincipal', resource: CERT, context: {} },
  ],
  [
    'action wildcards are case-insensitive',
    [{ Effect: 'Allow', Action: 'IOT:attach*', Resource: '*' }],
    { action: 'iot:AttachThingPrincipal', resource: CERT, context: {} },
  ],
  [
    'NotAction allows everything else',
    [{ Effect: 'Allow', NotAction: 'iot:Delete*', Resource: '*' }],
    { action: 'iot:DeleteCertificate', resource: CERT, context: {} },
  ],
  [
    'NotResource',
    [
      {
        Effect: 'Allow',
        Action: 'iot:DescribeCertificate',
        NotResource: `arn:aws:iot:us-east-1:${ACCOUNT}:cert/0123*`,
      },
    ],
    { action: 'iot:DescribeCertificate', resource: CERT, context: {} },
  ],
  [
    'resource wildcards do not cross the account segment',
    [{ Effect: 'Allow', Action: 'iot:DescribeCertificate', Resource: 'arn:aws:iot:us-east-1:*cert/*' }],
    { action: 'iot:DescribeCertificate', resource: CERT, context: {} },
  ],
  [
    'StringNotEquals with the key absent',
    ...allowIf('dynamodb:GetItem', TABLE, { StringNotEquals: { 'dynamodb:Select': 'ALL_ATTRIBUTES' } }),
  ],
  [
    'StringEqualsIfExists with the key absent',
    ...allowIf('dynamodb:GetItem', TABLE, { StringEqualsIfExists: { 'dynamodb:Select': 'COUNT' } }),
  ],
  [
    'Null: true requires the key to be absent',
    ...allowIf(
      'dynamodb:GetItem',
      TABLE,
      { Null: { 'dynamodb:Select': 'true' } },
      { 'dynamodb:Select': 'COUNT' },
    ),
  ],
];

describe('local IAM policy evaluation (oracle: iam-simulate)', () => {
  for (const [name, statements, request] of CASES) {
    it(`agrees with the oracle: ${name}`, async () => {
      expect(local(statements, request)).toBe(await oracle(statements, request));
    });
  }

  it('an unknown condition operator never allows, and a Deny with one always applies', () => {
    const request: AuthorizationRequest = { action: 'iot:UpdateCertificate', resource: CERT, context: {} };
    expect(
      local(
        [{ Effect: 'Allow', Action: '*', Resource: '*', Condition: { StringSoundsLike: { 'aws:x': 'y' } } }],
        request,
      ),
    ).toBe('ImplicitlyDenied');
    expect(
      local(
        [
          { Effect: 'Allow', Action: '*', Resource: '*' },
          { Effect: 'Deny', Action: '*', Resource: '*', Condition: { StringSoundsLike: { 'aws:x': 'y' } } },
        ],
        request,
      ),
    ).toBe('ExplicitlyDenied');
  });

  it('agrees with the oracle on 300 generated statements and requests', async () => {
    const segment = fc.constantFrom('A', 'B', 'SWEEP#', 'DEVICE#', 'x');
    const value = fc.array(segment, { minLength: 1, maxLength: 3 }).map((parts) => parts.join(''));
    const pattern = fc.oneof(
      value,
      value.map((v) => `${v}*`),
      fc.constant('*'),
      value.map((v) => `${v}?`),
    );
    const operator = fc.constantFrom(
      'StringEquals',
      'StringNotEquals',
      'StringLike',
      'StringNotLike',
      'StringEqualsIfExists',
      'StringNotLikeIfExists',
      'ForAllValues:StringLike',
      'ForAnyValue:StringLike',
      'ForAllValues:StringEquals',
      'ForAnyValue:StringNotEquals',
    );
    const actions = ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query'];
    const statement = fc.record({
      Effect: fc.constantFrom<'Allow' | 'Deny'>('Allow', 'Allow', 'Deny'),
      Action: fc.constantFrom<string | string[]>(
        'dynamodb:*',
        'dynamodb:GetItem',
        ['dynamodb:PutItem', 'dynamodb:Query'],
        'dynamodb:*Item',
      ),
      Resource: fc.constantFrom<string | string[]>(
        '*',
        TABLE,
        `${TABLE}/index/*`,
        'arn:aws:dynamodb:*:*:table/fleetgate-*',
      ),
      Condition: fc.option(
        fc.tuple(operator, fc.array(pattern, { minLength: 1, maxLength: 2 })).map(([op, values]) => ({
          [op]: { 'dynamodb:LeadingKeys': values },
        })),
        { nil: undefined },
      ),
    });
    const request = fc.record({
      action: fc.constantFrom(...actions),
      resource: fc.constantFrom(TABLE, `${TABLE}/index/StateIndex`),
      keys: fc.option(fc.array(value, { minLength: 0, maxLength: 2 }), { nil: undefined }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(statement, { minLength: 1, maxLength: 3 }),
        request,
        async (statements, req) => {
          const authorization: AuthorizationRequest = {
            action: req.action,
            resource: req.resource,
            context: req.keys === undefined ? {} : { 'dynamodb:LeadingKeys': req.keys },
          };
          const clean = statements.map((s) =>
            s.Condition ? s : { Effect: s.Effect, Action: s.Action, Resource: s.Resource },
          );
          expect(local(clean as PolicyStatement[], authorization)).toBe(
            await oracle(clean as PolicyStatement[], authorization),
          );
        },
      ),
      { numRuns: 300, seed: 20261207 },
    );
  });
});
