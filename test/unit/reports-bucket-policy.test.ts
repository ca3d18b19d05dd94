/**
 * Issue 15: every S3 bucket serverless.yml declares (the reports bucket) has a bucket policy that
 * denies any request made without TLS — `aws:SecureTransport` false → Deny, on the bucket and on
 * its objects, for every principal.
 * @see https://docs.aws.amazon.com/AmazonS3/latest/userguide/security-best-practices.html
 */
import { describe, expect, it } from 'vitest';
import { type CfnResource, loadServerlessConfig } from '../../local/serverless-config';

const resources = loadServerlessConfig().resources?.Resources ?? {};

interface Statement {
  Effect?: string;
  Principal?: unknown;
  Action?: unknown;
  Resource?: unknown;
  Condition?: Record<string, Record<string, unknown>>;
}

function tlsOnlyPolicyFor(bucket: string): Statement | undefined {
  const policies = Object.values(resources).filter(
    (resource: CfnResource) =>
      resource.Type === 'AWS::S3::BucketPolicy' &&
      JSON.stringify(resource.Properties?.Bucket) === JSON.stringify({ Ref: bucket }),
  );
  for (const policy of policies) {
    const document = policy.Properties?.PolicyDocument as { Statement?: Statement[] } | undefined;
    const statement = (document?.Statement ?? []).find(
      (candidate) =>
        candidate.Effect === 'Deny' && String(candidate.Condition?.Bool?.['aws:SecureTransport']) === 'false',
    );
    if (statement) return statement;
  }
  return undefined;
}

describe('S3 buckets of serverless.yml', () => {
  const buckets = Object.entries(resources)
    .filter(([, resource]) => resource.Type === 'AWS::S3::Bucket')
    .map(([id]) => id);

  it('declares the reports bucket', () => {
    expect(buckets).toContain('ExpiryReportsBucket');
  });

  it.each(buckets)('%s denies every request without TLS, on the bucket and its objects', (bucket) => {
    const statement = tlsOnlyPolicyFor(bucket);
    expect(statement, `${bucket} has no TLS-only bucket policy`).toBeDefined();
    expect(statement?.Principal).toBe('*');
    expect(statement?.Action).toBe('s3:*');
    expect(statement?.Resource).toEqual([
      { 'Fn::GetAtt': [bucket, 'Arn'] },
      { 'Fn::Join': ['', [{ 'Fn::GetAtt': [bucket, 'Arn'] }, '/*']] },
    ]);
  });
});
