/**
 * The workers layer of stage 1m onwards: slow work leaves the web request. The browser uploads straight
 * to the media bucket under `uploads/` (the API hands it a presigned POST); each new upload puts a job
 * on the queue, and a worker writes its thumbnail under `media/thumbnails/`, which CloudFront serves.
 */
import { CfnOutput, Duration, Stack } from 'aws-cdk-lib/core';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import { Construct, IConstruct } from 'constructs';
import { AppSource } from '../../app-source';
import { IAppTier } from '../../app-tier';
import { CdnStatic } from '../../constructs/cdn-static';
import { QueueWorkers } from '../../constructs/queue-workers';
import { StageNetwork } from '../../constructs/stage-network';
import { checkDuration, ScaleStagesError } from '../../private/errors';
import { StageSizing } from '../stage-table';
import { grantObjects, processUploads } from '../uploads';
import { IDatabaseLayer } from './data';

/**
 * The job queue and its workers in the app subnets: the app tier puts jobs on the queue, the workers
 * reach the database and the media bucket, and each upload to the bucket becomes a job.
 */
export function workersLayer(
  scope: Construct,
  network: StageNetwork,
  sizing: NonNullable<StageSizing['workers']>,
  settings: {
    readonly worker?: AppSource;
    readonly workerInstanceType?: ec2.InstanceType;
    readonly workerMaxCapacity?: number;
  },
  connect: {
    readonly appTiers: (IAppTier & IConstruct)[];
    readonly database?: IDatabaseLayer;
    readonly media: s3.IBucket;
  },
): QueueWorkers {
  const workers = new QueueWorkers(scope, 'Workers', {
    vpc: network.vpc,
    vpcSubnets: network.appSubnets,
    worker: settings.worker,
    instanceType: settings.workerInstanceType ?? new ec2.InstanceType(sizing.instanceType),
    maxCapacity: settings.workerMaxCapacity ?? sizing.maxCapacity,
  });
  connect.appTiers.forEach((tier) => workers.connectProducer(tier));
  connect.database?.connectApp(workers);
  workers.addEnvironment('MEDIA_BUCKET', connect.media.bucketName);
  processUploads(workers, connect.appTiers, connect.media);
  return workers;
}

/**
 * The primary region's part of the workers layer: browsers may POST uploads, and a schedule puts a
 * pre-render job on the queue, which a worker renders to the web bucket under `prerendered/`, served
 * with the TTL the worker sets in `Cache-Control`.
 */
export function prerenderLayer(
  stack: Stack,
  workers: QueueWorkers,
  cdn: CdnStatic,
  settings: { readonly prerenderRate?: Duration },
): void {
  const web = cdn.bucket!;
  workers.addEnvironment('WEB_BUCKET', web.bucketName);
  cdn.allowBrowserUploads();

  const rate = settings.prerenderRate ?? Duration.minutes(5);
  checkDuration(stack, 'prerenderRate', rate, Duration.minutes(1), Duration.days(1));
  if (rate.toMinutes({ integral: false }) % 1 !== 0) {
    throw new ScaleStagesError(
      `prerenderRate must be whole minutes (EventBridge Scheduler's rate unit); got ${rate.toHumanString()}.`,
      stack,
    );
  }
  workers.enqueueOnSchedule('Prerender', scheduler.ScheduleExpression.rate(rate), { type: 'prerender' });
  grantObjects(workers, web, ['s3:PutObject'], CdnStatic.PRERENDERED_PREFIX);

  new CfnOutput(stack, 'JobQueueUrl', {
    description: 'The job queue: uploads and pre-renders go here; workers take them',
    value: workers.queue.queueUrl,
  });
  new CfnOutput(stack, 'DeadLetterQueueUrl', {
    description: 'Jobs that failed every try; look here when a job did not happen',
    value: workers.deadLetterQueue.queueUrl,
  });
}
