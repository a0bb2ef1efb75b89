import { Duration, Fn, RemovalPolicy, Stack } from 'aws-cdk-lib/core';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { checkWholeNumber, ScaleStagesError } from '../private/errors';
import { CachedTier } from './cached-tier';
import { IDenormalizedStore } from './denormalized-store';
import { CrossRegionReplica } from './cross-region-replica';
import { LoadBalancedTier } from './load-balanced-tier';
import { QueueWorkers } from './queue-workers';
import { ReplicatedDb } from './replicated-db';
import { SeparatedDb } from './separated-db';
import { ServiceTier } from './service-tier';
import { ShardedDb } from './sharded-db';
import { SingleServer } from './single-server';

/** Properties of `StageOperations`. */
export interface StageOperationsProps {
  /**
   * An e-mail address that gets the alarms (SNS sends a confirmation mail first).
   *
   * @default - no subscription; subscribe to the `AlarmTopicArn` output yourself
   */
  readonly alarmEmail?: string;
  /**
   * When a stage counts as outgrown.
   *
   * @default - the thresholds of `OutgrowThresholds`
   */
  readonly outgrowThresholds?: OutgrowThresholds;
}

/** The signals that a stage is outgrowing its architecture, each sustained for an hour. */
export interface OutgrowThresholds {
  /**
   * The average CPU of the single server or the database, in percent (10 to 100).
   *
   * @default 70
   */
  readonly cpuPercent?: number;
  /**
   * The cache's memory use, in percent (10 to 100).
   *
   * @default 80
   */
  readonly cacheMemoryPercent?: number;
}

/** What the "time for the next stage" alarm tells the team. */
export interface NextStageAdvice {
  /** The alarm's name, such as `ScaleStages-time-for-stage-10`. */
  readonly alarmName: string;
  /** Why, and what to run, such as `npx cdk deploy -c stage=10`; at most 1024 characters. */
  readonly description: string;
}

/** One alarm's settings. */
export interface StageAlarmProps {
  /** What to watch. */
  readonly metric: cloudwatch.IMetric;
  /** The value that raises the alarm. */
  readonly threshold: number;
  /** How the metric compares with the threshold. @default GREATER_THAN_OR_EQUAL_TO_THRESHOLD */
  readonly comparisonOperator?: cloudwatch.ComparisonOperator;
  /** How many periods in a row must breach. @default 3 */
  readonly evaluationPeriods?: number;
  /** What the alarm means and what to do. */
  readonly description: string;
}

/** The widest alarm description CloudWatch stores (PutMetricAlarm, AlarmDescription). */
const MAX_DESCRIPTION = 1024;
/** CloudWatch alarm names are at most 255 characters (PutMetricAlarm, AlarmName). */
const MAX_ALARM_NAME = 255;

/**
 * Operations for a stage: an encrypted SNS topic for alarms, a CloudWatch dashboard with the golden
 * signals of each tier it monitors, health alarms that notify the topic, and "outgrow" signals (the
 * stage's architecture is reaching its limits) combined in one composite alarm that names the next
 * stage and the command to deploy it.
 *
 * Usable alone on tiers of your own: call the `monitor*` methods for each tier, then `adviseNextStage`.
 */
export class StageOperations extends Construct {
  /** Where alarms go; encrypted with a key CloudWatch may use. */
  public readonly topic: sns.Topic;
  /** The dashboard. */
  public readonly dashboard: cloudwatch.Dashboard;
  /** Alarms that something is broken now. */
  public readonly healthAlarms: cloudwatch.Alarm[] = [];
  /** Alarms that the stage is outgrowing its architecture. */
  public readonly outgrowAlarms: cloudwatch.Alarm[] = [];
  /** The composite "time for the next stage" alarm, once `adviseNextStage` has added it. */
  public nextStageAlarm?: cloudwatch.CompositeAlarm;

  private readonly action: cloudwatch.IAlarmAction;
  private readonly cpuPercent: number;
  private readonly cacheMemoryPercent: number;

  constructor(scope: Construct, id: string, props: StageOperationsProps = {}) {
    super(scope, id);
    if (props.alarmEmail !== undefined && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(props.alarmEmail)) {
      throw new ScaleStagesError(
        `alarmEmail must be an e-mail address such as ops@example.com; got '${props.alarmEmail}'.`,
        this,
      );
    }
    this.cpuPercent = props.outgrowThresholds?.cpuPercent ?? 70;
    this.cacheMemoryPercent = props.outgrowThresholds?.cacheMemoryPercent ?? 80;
    checkWholeNumber(this, 'outgrowThresholds.cpuPercent', this.cpuPercent, 10, 100);
    checkWholeNumber(this, 'outgrowThresholds.cacheMemoryPercent', this.cacheMemoryPercent, 10, 100);
    // CloudWatch can publish to an encrypted topic only with a customer managed key whose policy
    // lets it use the key; the AWS managed key for SNS cannot be changed to allow that.
    const key = new kms.Key(this, 'AlarmTopicKey', {
      description: 'cdk-scale-stages: encrypts the alarm topic; CloudWatch may use it to publish',
      enableKeyRotation: true,
      // It guards alarm messages in flight, nothing kept: deleted with the stack, after its waiting period.
      removalPolicy: RemovalPolicy.DESTROY,
    });
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
        conditions: { StringEquals: { 'aws:SourceAccount': Stack.of(this).account } },
      }),
    );
    this.topic = new sns.Topic(this, 'AlarmTopic', {
      displayName: 'cdk-scale-stages alarms',
      masterKey: key,
      enforceSSL: true,
    });
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
        conditions: { StringEquals: { 'aws:SourceAccount': Stack.of(this).account } },
      }),
    );
    if (props.alarmEmail) this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    this.action = new cwActions.SnsAction(this.topic);
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      defaultInterval: Duration.days(1),
    });
  }

  /** An alarm that something is broken now; it notifies the topic when it fires and when it clears. */
  public addHealthAlarm(id: string, props: StageAlarmProps): cloudwatch.Alarm {
    const alarm = this.alarm(id, props);
    alarm.addAlarmAction(this.action);
    alarm.addOkAction(this.action);
    this.healthAlarms.push(alarm);
    return alarm;
  }

  /** A sign that the stage is outgrowing its architecture; `adviseNextStage` combines them. */
  public addOutgrowSignal(id: string, props: StageAlarmProps): cloudwatch.Alarm {
    const alarm = this.alarm(id, props);
    this.outgrowAlarms.push(alarm);
    return alarm;
  }

  /**
   * One composite alarm over the outgrow signals, notifying the topic: its name and description say
   * which stage comes next, why, and the command to run.
   */
  public adviseNextStage(advice: NextStageAdvice): cloudwatch.CompositeAlarm {
    if (this.outgrowAlarms.length === 0) {
      throw new ScaleStagesError('adviseNextStage needs outgrow signals: add them first.', this);
    }
    if (advice.alarmName.length > MAX_ALARM_NAME) {
      throw new ScaleStagesError(
        `the next-stage alarm name must be at most ${MAX_ALARM_NAME} characters (a CloudWatch limit); got ${advice.alarmName.length}.`,
        this,
      );
    }
    this.nextStageAlarm = new cloudwatch.CompositeAlarm(this, 'NextStage', {
      compositeAlarmName: advice.alarmName,
      alarmDescription: checkDescription(this, advice.description),
      alarmRule: cloudwatch.AlarmRule.anyOf(...this.outgrowAlarms),
    });
    this.nextStageAlarm.addAlarmAction(this.action);
    this.dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({
        title: 'Health, and time for the next stage',
        alarms: [...this.healthAlarms, ...this.outgrowAlarms, this.nextStageAlarm],
        width: 24,
      }),
    );
    return this.nextStageAlarm;
  }

  /** The single server (stages 1 to 100): its status checks, its CPU credits, and its CPU. */
  public monitorServer(server: SingleServer): void {
    const metric = (metricName: string, statistic: string) =>
      new cloudwatch.Metric({
        namespace: 'AWS/EC2',
        metricName,
        dimensionsMap: { InstanceId: server.instance.instanceId },
        statistic,
        period: Duration.minutes(5),
      });
    this.addHealthAlarm('ServerSystemCheck', {
      metric: metric('StatusCheckFailed_System', 'Maximum'),
      threshold: 1,
      evaluationPeriods: 2,
      description:
        "The server's host fails its EC2 system status check: stop and start the server to move it.",
    });
    this.addHealthAlarm('ServerInstanceCheck', {
      metric: metric('StatusCheckFailed_Instance', 'Maximum'),
      threshold: 1,
      evaluationPeriods: 2,
      description:
        'The server fails its EC2 instance status check (out of memory, a full disk, a kernel problem): reboot it.',
    });
    const type = server.instance.instance.instanceType;
    if (typeof type === 'string' && type.startsWith('t')) {
      this.addHealthAlarm('ServerCpuCredits', {
        metric: metric('CPUCreditBalance', 'Minimum'),
        threshold: 10,
        comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        evaluationPeriods: 3,
        description:
          'The burstable server has almost no CPU credits left and will be throttled to its baseline.',
      });
    }
    this.addOutgrowSignal('ServerCpu', {
      metric: metric('CPUUtilization', 'Average'),
      threshold: this.cpuPercent,
      evaluationPeriods: 12,
      description: `The single server has averaged ${this.cpuPercent}% CPU or more for an hour.`,
    });
    this.dashboard.addWidgets(
      graph('Server CPU (%)', [metric('CPUUtilization', 'Average')]),
      graph('Server CPU credits', [metric('CPUCreditBalance', 'Minimum')]),
    );
  }

  /** The load-balanced fleet: 5xx, unhealthy servers, latency p50/p99, requests, CPU. */
  public monitorFleet(web: LoadBalancedTier): void {
    const maxCapacity = web.maxCapacity;
    const lb = web.loadBalancer.metrics;
    const five = Duration.minutes(5);
    const errors = lb.httpCodeTarget(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, {
      period: five,
      statistic: 'Sum',
    });
    const unhealthy = web.targetGroup.metrics.unhealthyHostCount({
      period: Duration.minutes(1),
      statistic: 'Maximum',
    });
    const { cpu, servers } = groupMetrics(web.autoScalingGroup);
    const fiveXx = this.addHealthAlarm('Fleet5xx', {
      metric: errors,
      threshold: 10,
      evaluationPeriods: 2,
      description: 'The app answered 10 or more 5xx errors in each of two 5-minute periods.',
    });
    const p99 = lb.targetResponseTime({ period: five, statistic: 'p99' });
    this.addHealthAlarm('FleetLatency', {
      metric: p99,
      threshold: 2,
      evaluationPeriods: 3,
      description: 'The slowest 1% of requests have taken 2 seconds or more for 15 minutes.',
    });
    const unhealthyHosts = this.addHealthAlarm('FleetUnhealthy', {
      metric: unhealthy,
      threshold: 1,
      evaluationPeriods: 5,
      description: 'A server has failed its load balancer health check for 5 minutes.',
    });
    // A release whose new servers make either go off rolls back (LoadBalancedTier releaseBakeTime).
    web.watchDuringReleases(fiveXx, unhealthyHosts);
    this.addOutgrowSignal('FleetAtMax', {
      metric: servers,
      threshold: maxCapacity,
      evaluationPeriods: 12,
      description: `The fleet has wanted its maximum of ${maxCapacity} servers for an hour.`,
    });
    this.dashboard.addWidgets(
      graph('Requests', [lb.requestCount({ period: five, statistic: 'Sum' })]),
      graph('5xx errors', [errors]),
      graph('Latency (seconds)', [lb.targetResponseTime({ period: five, statistic: 'p50' }), p99]),
      graph('Servers', [servers, unhealthy]),
      graph('Fleet CPU (%)', [cpu]),
    );
  }

  /**
   * A service split off the app (`ServiceTier`): its own 5xx and unhealthy servers (health alarms its
   * releases also watch), and a signal when it wants its most servers for an hour; widgets for its
   * requests (WebSocket connections count once, when they open), errors, servers and CPU. Ids and titles
   * start with `Service` and the service's name.
   */
  public monitorService(service: ServiceTier): void {
    const name = service.node.id;
    const id = `Service${name.replace(/(^|-)([a-z0-9])/g, (_m, _dash: string, c: string) => c.toUpperCase())}`;
    const five = Duration.minutes(5);
    const tg = service.targetGroup.metrics;
    const errors = tg.httpCodeTarget(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, {
      period: five,
      statistic: 'Sum',
    });
    const unhealthy = tg.unhealthyHostCount({ period: Duration.minutes(1), statistic: 'Maximum' });
    const { cpu, servers } = groupMetrics(service.autoScalingGroup);
    const fiveXx = this.addHealthAlarm(`${id}5xx`, {
      metric: errors,
      threshold: 10,
      evaluationPeriods: 2,
      description: `Service ${name} answered 10 or more 5xx errors in each of two 5-minute periods.`,
    });
    const unhealthyHosts = this.addHealthAlarm(`${id}Unhealthy`, {
      metric: unhealthy,
      threshold: 1,
      evaluationPeriods: 5,
      description: `A server of service ${name} has failed its load balancer health check for 5 minutes.`,
    });
    service.watchDuringReleases(fiveXx, unhealthyHosts);
    this.addOutgrowSignal(`${id}AtMax`, {
      metric: servers,
      threshold: service.maxCapacity,
      evaluationPeriods: 12,
      description: `Service ${name} has wanted its maximum of ${service.maxCapacity} servers for an hour.`,
    });
    this.dashboard.addWidgets(
      graph(`Service ${name}: requests and 5xx`, [
        tg.requestCount({ period: five, statistic: 'Sum' }),
        errors,
      ]),
      graph(`Service ${name}: servers`, [servers, unhealthy]),
      graph(`Service ${name}: CPU (%)`, [cpu]),
    );
  }

  /** The RDS database: CPU, free storage, connections. */
  public monitorDatabase(database: SeparatedDb): void {
    this.watchDatabase(database, 'Database', 'The database', 'Database');
  }

  /**
   * The shards after the first (which `monitorDatabase` watches): each one's CPU, free storage and
   * connections, as the first's. A shard outgrowing its CPU says that it needs a bigger class or that
   * the users need one more shard.
   */
  public monitorShards(sharded: ShardedDb): void {
    sharded.shards.slice(1).forEach((shard, i) => {
      const name = `Shard ${i + 1}`;
      this.watchDatabase(shard, `Shard${i + 1}`, name, name);
    });
  }

  /**
   * A database's alarms and widgets: ids that start with `id`, descriptions with `name`, widget titles
   * with `title`.
   */
  private watchDatabase(database: SeparatedDb, id: string, name: string, title: string): void {
    const db = database.database;
    const cpu = db.metricCPUUtilization({ period: Duration.minutes(5) });
    const free = db.metricFreeStorageSpace({ period: Duration.minutes(5), statistic: 'Minimum' });
    this.addHealthAlarm(`${id}Storage`, {
      metric: free,
      threshold: 2 * 1024 ** 3,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: 1,
      description: `${name} has less than 2 GiB of free storage (storage autoscaling grows it up to its maximum).`,
    });
    this.addOutgrowSignal(`${id}Cpu`, {
      metric: cpu,
      threshold: this.cpuPercent,
      evaluationPeriods: 12,
      description: `${name} has averaged ${this.cpuPercent}% CPU or more for an hour.`,
    });
    this.dashboard.addWidgets(
      graph(`${title} CPU (%)`, [cpu]),
      graph(`${title} connections`, [db.metricDatabaseConnections({ period: Duration.minutes(5) })]),
      graph(`${title} free storage (bytes)`, [free]),
    );
  }

  /** The read replicas: how far each lags behind the primary. */
  public monitorReplicas(replicas: ReplicatedDb): void {
    replicas.replicas.forEach((replica, i) => {
      const lag = replica.metric('ReplicaLag', { period: Duration.minutes(1), statistic: 'Maximum' });
      this.addHealthAlarm(`Replica${i + 1}Lag`, {
        metric: lag,
        threshold: 60,
        evaluationPeriods: 5,
        description: `Read replica ${i + 1} has lagged 60 seconds or more behind the primary for 5 minutes.`,
      });
      this.dashboard.addWidgets(graph(`Replica ${i + 1} lag (seconds)`, [lag]));
    });
  }

  /**
   * The cross-region replica of a secondary region (stage 10m): how far it lags behind the source
   * in the primary region, which is the data a promotion would lose.
   */
  public monitorCrossRegionReplica(replica: CrossRegionReplica): void {
    this.watchReplicaLag(
      replica,
      'CrossRegionReplicaLag',
      'The cross-region replica',
      'Cross-region replica',
    );
  }

  /**
   * A secondary region's replicas of the primary's shards after the first (`monitorCrossRegionReplica`
   * watches shard 0's): how far each lags, as the database's replica.
   */
  public monitorShardReplicas(replicas: CrossRegionReplica[]): void {
    replicas.forEach((replica, i) => {
      this.watchReplicaLag(
        replica,
        `Shard${i + 1}ReplicaLag`,
        `Shard ${i + 1}'s cross-region replica`,
        `Shard ${i + 1} replica`,
      );
    });
  }

  /** A cross-region replica's lag alarm and widget: the alarm's id, its description's subject, the title. */
  private watchReplicaLag(replica: CrossRegionReplica, id: string, name: string, title: string): void {
    const lag = replica.metricReplicaLag();
    this.addHealthAlarm(id, {
      metric: lag,
      threshold: 300,
      evaluationPeriods: 5,
      description: `${name} has lagged 5 minutes or more behind the primary region for 5 minutes: a promotion now would lose that much data.`,
    });
    this.dashboard.addWidgets(graph(`${title} lag (seconds)`, [lag]));
  }

  /** The cache's primary node: evictions, memory, engine CPU. */
  public monitorCache(cache: CachedTier): void {
    const metric = (metricName: string, statistic: string) =>
      new cloudwatch.Metric({
        namespace: 'AWS/ElastiCache',
        metricName,
        // The primary node of a replication group without cluster mode.
        dimensionsMap: { CacheClusterId: Fn.join('-', [cache.replicationGroup.ref, '001']) },
        statistic,
        period: Duration.minutes(5),
      });
    const evictions = metric('Evictions', 'Sum');
    const memory = metric('DatabaseMemoryUsagePercentage', 'Maximum');
    this.addHealthAlarm('CacheEvictions', {
      metric: evictions,
      threshold: 1,
      evaluationPeriods: 3,
      description: 'The cache evicts keys: it is full, and sessions or cached objects are being lost.',
    });
    this.addOutgrowSignal('CacheMemory', {
      metric: memory,
      threshold: this.cacheMemoryPercent,
      evaluationPeriods: 12,
      description: `The cache has used ${this.cacheMemoryPercent}% of its memory or more for an hour.`,
    });
    this.dashboard.addWidgets(
      graph('Cache evictions', [evictions]),
      graph('Cache memory (%)', [memory]),
      graph('Cache engine CPU (%)', [metric('EngineCPUUtilization', 'Average')]),
    );
  }

  /**
   * The denormalized store: requests DynamoDB throttled, and its own errors (HTTP 500), each a health
   * alarm; on demand, throttles mean traffic outgrew the table's partitions or a hot key.
   */
  public monitorStore(store: IDenormalizedStore): void {
    const five = Duration.minutes(5);
    const throttles = new cloudwatch.MathExpression({
      expression: 'reads + writes',
      usingMetrics: {
        reads: store.localTable.metric('ReadThrottleEvents', { statistic: 'Sum', period: five }),
        writes: store.localTable.metric('WriteThrottleEvents', { statistic: 'Sum', period: five }),
      },
      label: 'Throttled reads and writes',
      period: five,
    });
    // The operations an app uses: an alarm's math expression takes at most 10 metrics.
    const { Operation } = dynamodb;
    const errors = store.localTable.metricSystemErrorsForOperations({
      operations: [
        Operation.GET_ITEM,
        Operation.BATCH_GET_ITEM,
        Operation.QUERY,
        Operation.PUT_ITEM,
        Operation.UPDATE_ITEM,
        Operation.DELETE_ITEM,
        Operation.BATCH_WRITE_ITEM,
      ],
      period: five,
      statistic: 'Sum',
    });
    this.addHealthAlarm('StoreThrottles', {
      metric: throttles,
      threshold: 10,
      evaluationPeriods: 2,
      description:
        'DynamoDB throttled 10 or more reads and writes of the store in each of two 5-minute periods.',
    });
    this.addHealthAlarm('StoreErrors', {
      metric: errors,
      threshold: 1,
      evaluationPeriods: 1,
      description: 'DynamoDB answered a request to the store with an internal error (HTTP 500).',
    });
    this.dashboard.addWidgets(graph('Store throttles and errors', [throttles, errors]));
  }

  /** The job queue: oldest job's age, jobs waiting, failed jobs in the dead-letter queue. */
  public monitorQueue(workers: QueueWorkers): void {
    const five = Duration.minutes(5);
    const age = workers.queue.metricApproximateAgeOfOldestMessage({ period: five, statistic: 'Maximum' });
    const failed = workers.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
      period: five,
      statistic: 'Maximum',
    });
    this.addHealthAlarm('DeadLetters', {
      metric: failed,
      threshold: 1,
      evaluationPeriods: 1,
      description: 'Jobs failed every try and wait in the dead-letter queue.',
    });
    this.addHealthAlarm('OldestJob', {
      metric: age,
      threshold: 900,
      evaluationPeriods: 3,
      description: 'A job has waited 15 minutes or more: the workers do not keep up, or none runs.',
    });
    this.dashboard.addWidgets(
      graph('Jobs waiting', [workers.queue.metricApproximateNumberOfMessagesVisible({ period: five })]),
      graph('Oldest job (seconds)', [age]),
      graph('Failed jobs (dead-letter queue)', [failed]),
    );
  }

  /** CloudFront's error rate, from us-east-1, where CloudFront publishes its metrics. */
  public monitorDistribution(distributionId: string): void {
    const rate = new cloudwatch.Metric({
      namespace: 'AWS/CloudFront',
      metricName: '5xxErrorRate',
      dimensionsMap: { DistributionId: distributionId, Region: 'Global' },
      statistic: 'Average',
      period: Duration.minutes(5),
      region: 'us-east-1',
    });
    this.dashboard.addWidgets(graph('CloudFront 5xx error rate (%)', [rate]));
  }

  private alarm(id: string, props: StageAlarmProps): cloudwatch.Alarm {
    // CloudWatch evaluates at most a day of periods; the alarms here use 1- to 5-minute ones.
    checkWholeNumber(this, `alarm ${id} evaluationPeriods`, props.evaluationPeriods, 1, 288);
    if (!Number.isFinite(props.threshold)) {
      throw new ScaleStagesError(
        `alarm ${id} threshold must be a finite number; got ${props.threshold}.`,
        this,
      );
    }
    return new cloudwatch.Alarm(this, id, {
      metric: props.metric,
      threshold: props.threshold,
      comparisonOperator:
        props.comparisonOperator ?? cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: props.evaluationPeriods ?? 3,
      alarmDescription: checkDescription(this, props.description),
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
  }
}

/** An Auto Scaling group's average CPU and how many servers it wants, per 5 minutes. */
function groupMetrics(group: autoscaling.IAutoScalingGroup): {
  cpu: cloudwatch.Metric;
  servers: cloudwatch.Metric;
} {
  const metric = (namespace: string, metricName: string, statistic: string) =>
    new cloudwatch.Metric({
      namespace,
      metricName,
      dimensionsMap: { AutoScalingGroupName: group.autoScalingGroupName },
      statistic,
      period: Duration.minutes(5),
    });
  return {
    cpu: metric('AWS/EC2', 'CPUUtilization', 'Average'),
    servers: metric('AWS/AutoScaling', 'GroupDesiredCapacity', 'Maximum'),
  };
}

function graph(title: string, metrics: cloudwatch.IMetric[]): cloudwatch.GraphWidget {
  return new cloudwatch.GraphWidget({ title, left: metrics, width: 8, height: 6 });
}

function checkDescription(scope: Construct, description: string): string {
  if (description.length > MAX_DESCRIPTION) {
    throw new ScaleStagesError(
      `an alarm description must be at most ${MAX_DESCRIPTION} characters (a CloudWatch limit); got ${description.length}.`,
      scope,
    );
  }
  return description;
}
