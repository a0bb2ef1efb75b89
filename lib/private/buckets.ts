import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib/core';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

/**
 * A retained, private, SSE-S3 encrypted, TLS-only bucket for access logs that expire after
 * `retentionDays`. SSE-S3 because load balancers cannot write to KMS-encrypted buckets.
 */
export function logBucket(
  scope: Construct,
  retentionDays: number,
  objectOwnership?: s3.ObjectOwnership,
): s3.Bucket {
  const bucket = new s3.Bucket(scope, 'LogBucket', {
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
    encryption: s3.BucketEncryption.S3_MANAGED,
    enforceSSL: true,
    objectOwnership,
    lifecycleRules: [{ expiration: Duration.days(retentionDays) }],
    removalPolicy: RemovalPolicy.RETAIN,
  });
  Validations.of(bucket).acknowledge({
    id: 'AwsSolutions-S1',
    reason: 'This is the access log bucket; logging its own access would log forever.',
  });
  return bucket;
}
