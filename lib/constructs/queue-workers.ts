import { Duration, RemovalPolicy, Tags, Validations } from 'aws-cdk-lib/core';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3n from 'aws-cdk-lib/aws-s3-notifications';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as schedulerTargets from 'aws-cdk-lib/aws-scheduler-targets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { AppSource } from '../app-source';
import { IAppTier } from '../app-tier';
import { acknowledgeAwsCdkHandler, BASIC_EXECUTION_ROLE } from '../private/aws-cdk-handlers';
import { checkDuration, checkWholeNumber, ScaleStagesError } from '../private/errors';
import { checkEgress, serverFleet } from '../private/fleet';
import { checkInstanceType } from '../private/servers';
import { markTier } from '../private/tiers';
import { StageNetwork } from './stage-network';

/** Properties of `QueueWorkers`. */
export interface QueueWorkersProps {
  /** The VPC of the workers. */
  readonly vpc: ec2.IVpc;
  /**
   * The workers' subnets; they need a way out (a NAT) to install the worker and call SQS.
   *
   * @default - the `App` subnets of a `StageNetwork`
   */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /**
   * What the workers run. Like a web app it answers its health path on `APP_PORT` (the boot
   * waits for it), and it reads the job queue's URL from `JOB_QUEUE_URL`.
   *
   * @default - the demo worker, `AppSource.demoWorker()`
   */
  readonly worker?: AppSource;
  /**
   * The workers' instance type.
   *
   * @default - t4g.small
   */
  readonly instanceType?: ec2.InstanceType;
  /**
   * The fewest workers. 0 costs nothing while the queue is empty; the first job then waits for a
   * worker to boot (a few minutes).
   *
   * @default 0
   */
  readonly minCapacity?: number;
  /**
   * The most workers.
   *
   * @default 10
   */
  readonly maxCapacity?: number;
  /**
   * The longest a job may take. It is the queue's visibility timeout: a job not finished (and
   * deleted) by then is handed to another worker. At most 12 hours, SQS's limit.
   *
   * @default Duration.minutes(5)
   */
  readonly maxJobDuration?: Duration;
  /**
   * How long a typical job takes; with `acceptableLatency` it sets how many waiting jobs one
   * worker may have before the fleet grows.
   *
   * @default Duration.seconds(10)
   */
  readonly jobDuration?: Duration;
  /**
   * How long a job may wait in the queue before a worker takes it. The fleet tracks a backlog per
   * worker of `acceptableLatency / jobDuration` messages.
   *
   * @default Duration.minutes(2)
   */
  readonly acceptableLatency?: Duration;
  /**
   * How long the queue keeps a job nobody took: 1 minute to 14 days.
   *
   * @default Duration.days(4)
   */
  readonly retentionPeriod?: Duration;
  /**
   * How long the dead-letter queue keeps a failed job; longer than `retentionPeriod`, since a
   * message keeps its first enqueue time when it moves there.
   *
   * @default Duration.days(14)
   */
  readonly deadLetterRetentionPeriod?: Duration;
  /**
   * How many times a job is tried before it moves to the dead-letter queue: 1 to 1000.
   *
   * @default 5
   */
  readonly maxReceiveCount?: number;
  /**
   * More environment variables for the workers.
   *
   * @default - none
   */
  readonly environment?: { [name: string]: string };
}

/** SQS's longest visibility timeout (SQS Developer Guide, "Amazon SQS visibility timeout"). */
const MAX_VISIBILITY = Duration.hours(12);
/** SQS's message retention range (SetQueueAttributes, MessageRetentionPeriod). */
const MIN_RETENTION = Duration.minutes(1);
const MAX_RETENTION = Duration.days(14);
/** The tag that lets a worker protect itself, and only its own group, from scale-in. */
const WORKERS_TAG = 'cdk-scale-stages:workers';

/**
 * Slow work off the web request: an SQS job queue with a dead-letter queue, consumed by an Auto
 * Scaling group of workers in the app subnets.
 *
 * The fleet scales on backlog per worker (visible jobs divided by workers in service), with a
 * target of `acceptableLatency / jobDuration` jobs, the signal AWS recommends for queue workers
 * instead of raw queue depth; from zero workers, the first job starts one. A worker protects
 * itself from scale-in while it works (the demo worker does, with the rights this construct
 * grants), and a worker stopped mid-job leaves its job in the queue, visible again after
 * `maxJobDuration`, so nothing is lost.
 */
export class QueueWorkers extends Construct implements IAppTier {
  /** The job queue. */
  public readonly queue: sqs.Queue;
  /** Jobs that failed `maxReceiveCount` times; retained when the stack is deleted. */
  public readonly deadLetterQueue: sqs.Queue;
  /** The workers. */
  public readonly autoScalingGroup: autoscaling.AutoScalingGroup;
  /** What the workers run. */
  public readonly worker: AppSource;
  /** The workers' security group. */
  public readonly connections: ec2.Connections;
  /** The workers' role. */
  public readonly grantPrincipal: iam.IPrincipal;
  /** The backlog per worker the fleet tracks. */
  public readonly targetBacklogPerWorker: number;

  private readonly environment: ReturnType<typeof serverFleet>['environment'];

  constructor(scope: Construct, id: string, props: QueueWorkersProps) {
    super(scope, id);
    this.worker = props.worker ?? AppSource.demoWorker();
    const instanceType =
      props.instanceType ?? ec2.InstanceType.of(ec2.InstanceClass.T4G, ec2.InstanceSize.SMALL);
    const minCapacity = props.minCapacity ?? 0;
    const maxCapacity = props.maxCapacity ?? 10;
    checkWholeNumber(this, 'maxCapacity', maxCapacity, 1, 500);
    checkWholeNumber(this, 'minCapacity', minCapacity, 0, maxCapacity, 'at most maxCapacity');
    const maxJobDuration = props.maxJobDuration ?? Duration.minutes(5);
    const maxJobSeconds = checkDuration(
      this,
      'maxJobDuration',
      maxJobDuration,
      Duration.seconds(1),
      MAX_VISIBILITY,
      "SQS's longest visibility timeout",
    );
    const jobSeconds = checkDuration(
      this,
      'jobDuration',
      props.jobDuration ?? Duration.seconds(10),
      Duration.seconds(1),
      maxJobDuration,
      'at most maxJobDuration',
    );
    const latencySeconds = checkDuration(
      this,
      'acceptableLatency',
      props.acceptableLatency ?? Duration.minutes(2),
      Duration.seconds(jobSeconds),
      Duration.days(1),
      'at least jobDuration',
    );
    const retention = props.retentionPeriod ?? Duration.days(4);
    const retentionSeconds = checkDuration(this, 'retentionPeriod', retention, MIN_RETENTION, MAX_RETENTION);
    const deadLetterRetention = props.deadLetterRetentionPeriod ?? Duration.days(14);
    const deadLetterSeconds = checkDuration(
      this,
      'deadLetterRetentionPeriod',
      deadLetterRetention,
      MIN_RETENTION,
      MAX_RETENTION,
    );
    if (deadLetterSeconds <= retentionSeconds) {
      throw new ScaleStagesError(
        `deadLetterRetentionPeriod must be longer than retentionPeriod: a message keeps its first enqueue time when it moves to the dead-letter queue, so a shorter retention there deletes failed jobs before anyone looks; got ${deadLetterRetention.toHumanString()} against ${retention.toHumanString()}.`,
        this,
      );
    }
    const maxReceiveCount = props.maxReceiveCount ?? 5;
    checkWholeNumber(this, 'maxReceiveCount', maxReceiveCount, 1, 1000);
    checkInstanceType(this, instanceType);
    const vpcSubnets = props.vpcSubnets ?? { subnetGroupName: StageNetwork.APP_SUBNETS };
    checkEgress(this, props.vpc, vpcSubnets);

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: deadLetterRetention,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.queue = new sqs.Queue(this, 'Queue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: retention,
      visibilityTimeout: maxJobDuration,
      receiveMessageWaitTime: Duration.seconds(20),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount },
    });
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: 'This is the dead-letter queue of the job queue.',
    });
    markTier(this.queue, 'queue', this.deadLetterQueue);

    const fleet = serverFleet(this, {
      vpc: props.vpc,
      vpcSubnets,
      instanceType,
      app: this.worker,
      minCapacity,
      maxCapacity,
      securityGroupDescription: 'QueueWorkers: no inbound traffic; the workers poll the queue',
      minInstancesInService: 0,
      groupMetrics: [
        new autoscaling.GroupMetrics(
          autoscaling.GroupMetric.IN_SERVICE_INSTANCES,
          autoscaling.GroupMetric.DESIRED_CAPACITY,
        ),
      ],
    });
    this.autoScalingGroup = fleet.autoScalingGroup;
    this.environment = fleet.environment;
    this.connections = fleet.autoScalingGroup.connections;
    this.grantPrincipal = fleet.role;

    this.queue.grantConsumeMessages(fleet.role);
    this.environment.add('JOB_QUEUE_URL', this.queue.queueUrl);
    this.environment.add('JOB_VISIBILITY_TIMEOUT_SECONDS', String(maxJobSeconds));
    this.environment.addAll(props.environment ?? {});
    this.allowScaleInProtection(fleet.role);

    this.targetBacklogPerWorker = Math.max(1, Math.floor(latencySeconds / jobSeconds));
    this.scaleOnBacklog();
  }

  /** Adds a variable to the workers' environment. */
  public addEnvironment(name: string, value: string): void {
    this.environment.add(name, value);
  }

  /**
   * Lets an app tier put jobs on the queue (send only) and tells it where: `JOB_QUEUE_URL`.
   */
  public connectProducer(tier: IAppTier): void {
    this.queue.grantSendMessages(tier);
    tier.addEnvironment('JOB_QUEUE_URL', this.queue.queueUrl);
  }

  /** Puts a job on the queue for every object created in `bucket` under `prefix` (an S3 event notification). */
  public enqueueObjectsCreated(bucket: s3.IBucket, prefix: string): void {
    bucket.addEventNotification(s3.EventType.OBJECT_CREATED, new s3n.SqsDestination(this.queue), { prefix });
    acknowledgeAwsCdkHandler(
      this,
      'BucketNotificationsHandler050a0587b7544547bf325f094a3db834',
      "aws-cdk-lib's handler that writes the bucket's notification configuration logs with the AWS-managed basic execution role.",
      [BASIC_EXECUTION_ROLE],
    );
  }

  /**
   * Puts `message` on the queue on a schedule (an EventBridge Scheduler schedule), such as
   * `scheduler.ScheduleExpression.rate(Duration.minutes(5))`.
   */
  public enqueueOnSchedule(
    id: string,
    schedule: scheduler.ScheduleExpression,
    message: { [key: string]: unknown },
  ): scheduler.Schedule {
    const job = new scheduler.Schedule(this, id, {
      schedule,
      description: `cdk-scale-stages: puts ${JSON.stringify(message)} on the job queue`,
      target: new schedulerTargets.SqsSendMessage(this.queue, {
        input: scheduler.ScheduleTargetInput.fromObject(message),
        retryAttempts: 3,
      }),
    });
    markTier(job, 'schedule');
    return job;
  }

  /**
   * A worker may set scale-in protection on its own group only (the tag names this construct),
   * and look up its group's name from its instance id.
   */
  private allowScaleInProtection(role: iam.Role): void {
    Tags.of(this.autoScalingGroup).add(WORKERS_TAG, this.node.addr);
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['autoscaling:SetInstanceProtection'],
        resources: ['*'],
        conditions: { StringEquals: { [`autoscaling:ResourceTag/${WORKERS_TAG}`]: this.node.addr } },
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['autoscaling:DescribeAutoScalingInstances'], resources: ['*'] }),
    );
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        "A worker protects its own instance from scale-in: SetInstanceProtection is limited to the group with this construct's tag, and DescribeAutoScalingInstances has no resource-level permissions.",
    });
  }

  /**
   * Target tracking on visible jobs per worker in service (metric math, which aws-cdk-lib's
   * target tracking L2 does not take, so the L1 policy), and a step policy that starts the first
   * worker when jobs wait and no worker is wanted: target tracking multiplies the current capacity,
   * which stays 0 from 0.
   */
  private scaleOnBacklog(): void {
    const queueName = this.queue.queueName;
    const groupName = this.autoScalingGroup.autoScalingGroupName;
    const visible = {
      namespace: 'AWS/SQS',
      metricName: 'ApproximateNumberOfMessagesVisible',
      dimensions: [{ name: 'QueueName', value: queueName }],
    };
    const inService = {
      namespace: 'AWS/AutoScaling',
      metricName: 'GroupInServiceInstances',
      dimensions: [{ name: 'AutoScalingGroupName', value: groupName }],
    };
    new autoscaling.CfnScalingPolicy(this, 'BacklogPerWorker', {
      autoScalingGroupName: groupName,
      policyType: 'TargetTrackingScaling',
      estimatedInstanceWarmup: 300,
      targetTrackingConfiguration: {
        targetValue: this.targetBacklogPerWorker,
        customizedMetricSpecification: {
          metrics: [
            { id: 'visible', metricStat: { metric: visible, stat: 'Sum' }, returnData: false },
            { id: 'workers', metricStat: { metric: inService, stat: 'Average' }, returnData: false },
            {
              id: 'backlog',
              label: 'Visible jobs per worker in service',
              expression: 'visible / IF(workers > 0, workers, 1)',
              returnData: true,
            },
          ],
        },
      },
    });

    const jobsWaitingWithoutWorkers = new cloudwatch.MathExpression({
      label: 'Jobs waiting while no worker is wanted',
      expression: 'IF(visible > 0 AND desired == 0, 1, 0)',
      usingMetrics: {
        visible: new cloudwatch.Metric({ ...toMetricProps(visible), statistic: 'Sum' }),
        desired: new cloudwatch.Metric({
          namespace: 'AWS/AutoScaling',
          metricName: 'GroupDesiredCapacity',
          dimensionsMap: { AutoScalingGroupName: groupName },
          statistic: 'Average',
        }),
      },
      period: Duration.minutes(1),
    });
    // A step policy in L1, with its alarm: aws-cdk-lib's scaleOnMetric prints a deprecation
    // warning on every synth (it passes the step action a cooldown, set or not).
    const startFromZero = new autoscaling.CfnScalingPolicy(this, 'StartFromZero', {
      autoScalingGroupName: groupName,
      policyType: 'StepScaling',
      adjustmentType: 'ChangeInCapacity',
      metricAggregationType: 'Maximum',
      estimatedInstanceWarmup: 300,
      stepAdjustments: [{ metricIntervalLowerBound: 0, scalingAdjustment: 1 }],
    });
    const alarm = new cloudwatch.Alarm(this, 'JobsWaitingWithoutWorkers', {
      alarmDescription:
        'Jobs wait and no worker is wanted: start one (target tracking cannot grow from zero).',
      metric: jobsWaitingWithoutWorkers,
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    alarm.addAlarmAction({ bind: () => ({ alarmActionArn: startFromZero.attrArn }) });
  }
}

function toMetricProps(metric: {
  namespace: string;
  metricName: string;
  dimensions: { name: string; value: string }[];
}): { namespace: string; metricName: string; dimensionsMap: Record<string, string> } {
  return {
    namespace: metric.namespace,
    metricName: metric.metricName,
    dimensionsMap: Object.fromEntries(metric.dimensions.map((d) => [d.name, d.value])),
  };
}
