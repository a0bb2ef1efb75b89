import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib/core';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { markTier } from './tiers';

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

/**
 * A retained, private, SSE-S3 encrypted, TLS-only, versioned bucket of content (the web client,
 * media) whose access is logged to `logs` under `logPrefix`, and whose replaced versions expire after
 * `noncurrentVersionDays`. Content buckets are drawn in the stage diagrams; log buckets are not.
 */
export function contentBucket(
  scope: Construct,
  id: string,
  props: { logs: s3.IBucket; logPrefix: string; noncurrentVersionDays: number; cors?: s3.CorsRule[] },
): s3.Bucket {
  const bucket = new s3.Bucket(scope, id, {
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
    encryption: s3.BucketEncryption.S3_MANAGED,
    enforceSSL: true,
    versioned: true,
    lifecycleRules: [{ noncurrentVersionExpiration: Duration.days(props.noncurrentVersionDays) }],
    serverAccessLogsBucket: props.logs,
    serverAccessLogsPrefix: props.logPrefix,
    removalPolicy: RemovalPolicy.RETAIN,
    cors: props.cors,
  });
  markTier(bucket, 'bucket');
  return bucket;
}

/**
 * Lets browsers POST uploads straight to a bucket with a presigned POST and read the answer. Any
 * origin: the POST's signed policy, not CORS, decides what may be uploaded.
 */
export const BROWSER_UPLOADS_CORS: s3.CorsRule = {
  allowedMethods: [s3.HttpMethods.POST],
  allowedOrigins: ['*'],
  allowedHeaders: ['*'],
  maxAge: 3600,
};
