/**
 * AWS managed policies the templates attach, with their documents as AWS publishes them in the
 * AWS Managed Policy Reference (https://docs.aws.amazon.com/aws-managed-policy/latest/reference/).
 * A role naming a managed policy that is not here fails the local stack's start with an error that
 * says so: the local stack never guesses what a managed policy allows.
 */
import type { PolicyDocument } from './policy';

const MANAGED: Record<string, { version: string; source: string; document: PolicyDocument }> = {
  // https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSXRayDaemonWriteAccess.html (v2)
  AWSXRayDaemonWriteAccess: {
    version: 'v2',
    source: 'https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSXRayDaemonWriteAccess.html',
    document: {
      Version: '2012-10-17',
      Statement: [
        {
          Sid: 'AWSXRayDaemonWriteAccess',
          Effect: 'Allow',
          Action: [
            'xray:PutTraceSegments',
            'xray:PutTelemetryRecords',
            'xray:GetSamplingRules',
            'xray:GetSamplingTargets',
            'xray:GetSamplingStatisticSummaries',
          ],
          Resource: ['*'],
        },
      ],
    },
  },
  // https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSIoTThingsRegistration.html (v3)
  'service-role/AWSIoTThingsRegistration': {
    version: 'v3',
    source: 'https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSIoTThingsRegistration.html',
    document: {
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Action: [
            'iot:AddThingToThingGroup',
            'iot:AttachPolicy',
            'iot:AttachPrincipalPolicy',
            'iot:AttachThingPrincipal',
            'iot:CreateCertificateFromCsr',
            'iot:CreatePolicy',
            'iot:CreateThing',
            'iot:DescribeCertificate',
            'iot:DescribeThing',
            'iot:DescribeThingGroup',
            'iot:DescribeThingType',
            'iot:DetachPolicy',
            'iot:DetachThingPrincipal',
            'iot:GetPolicy',
            'iot:ListAttachedPolicies',
            'iot:ListPolicyPrincipals',
            'iot:ListPrincipalPolicies',
            'iot:ListPrincipalThings',
            'iot:ListTargetsForPolicy',
            'iot:ListThingGroupsForThing',
            'iot:ListThingPrincipals',
            'iot:RegisterCertificate',
            'iot:RegisterThing',
            'iot:RemoveThingFromThingGroup',
            'iot:UpdateCertificate',
            'iot:UpdateThing',
            'iot:UpdateThingGroupsForThing',
            'iot:AddThingToBillingGroup',
            'iot:DescribeBillingGroup',
            'iot:RemoveThingFromBillingGroup',
          ],
          Resource: ['*'],
        },
      ],
    },
  },
};

/** Thrown when a template attaches a managed policy whose document the local stack does not have. */
export class UnknownManagedPolicyError extends Error {
  override name = 'UnknownManagedPolicyError';
}

/** The document of `arn:aws:iam::aws:policy/<path/name>`. */
export function managedPolicyDocument(arn: string): PolicyDocument {
  const match = /^arn:[^:]+:iam::aws:policy\/(.+)$/.exec(arn);
  const entry = match?.[1] ? MANAGED[match[1]] : undefined;
  if (!entry) {
    throw new UnknownManagedPolicyError(
      `the local stack does not know the managed policy ${arn}: add its document (from the AWS Managed Policy Reference) to local/iam/managed-policies.ts, or use an inline policy`,
    );
  }
  return entry.document;
}
