import { Stack, Validations } from 'aws-cdk-lib/core';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { IConstruct } from 'constructs';
import { IAppTier } from '../app-tier';
import { QueueWorkers } from '../constructs/queue-workers';

/** Where the browser uploads to in the media bucket (stage 1m onwards); not served. */
export const UPLOADS_PREFIX = 'uploads/';
/** Where the workers write thumbnails in the media bucket; served with the media. */
export const THUMBNAILS_PREFIX = 'media/thumbnails/';

/**
 * The upload path of stage 1m onwards: the app tiers may put objects under `uploads/` (it hands the
 * browser a presigned POST), each new upload puts a job on the queue, and the workers read the
 * upload and write its thumbnail under `media/thumbnails/`.
 */
export function processUploads(
  workers: QueueWorkers,
  appTiers: (IAppTier & IConstruct)[],
  media: s3.IBucket,
): void {
  workers.enqueueObjectsCreated(media, UPLOADS_PREFIX);
  appTiers.forEach((tier) => grantObjects(tier, media, ['s3:PutObject'], UPLOADS_PREFIX));
  grantObjects(workers, media, ['s3:GetObject'], UPLOADS_PREFIX);
  grantObjects(workers, media, ['s3:PutObject'], THUMBNAILS_PREFIX);
  iam.Grant.addToPrincipal({
    grantee: workers,
    actions: ['s3:ListBucket'],
    resourceArns: [media.bucketArn],
  });
}

/**
 * The fleet knows the media bucket (MEDIA_BUCKET) and reads, writes and deletes objects under
 * `media/` in it, and lists it.
 */
export function connectMedia(web: IAppTier & IConstruct, media: s3.IBucket): void {
  web.addEnvironment('MEDIA_BUCKET', media.bucketName);
  grantObjects(web, media, ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'], 'media/');
  iam.Grant.addToPrincipal({ grantee: web, actions: ['s3:ListBucket'], resourceArns: [media.bucketArn] });
}

/** Lets `grantee` do `actions` on the objects under `prefix` in `bucket`, and nothing else. */
export function grantObjects(
  grantee: iam.IGrantable & IConstruct,
  bucket: s3.IBucket,
  actions: string[],
  prefix: string,
): void {
  iam.Grant.addToPrincipal({ grantee, actions, resourceArns: [bucket.arnForObjects(`${prefix}*`)] });
  const bucketId = Stack.of(grantee).getLogicalId(bucket.node.defaultChild as s3.CfnBucket);
  Validations.of(grantee).acknowledge({
    id: `AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/${prefix}*]`,
    reason: `The app reads or writes objects under ${prefix} by keys it chooses.`,
  });
}
