import { CfnOutput, Fn, Stack, StackProps } from 'aws-cdk-lib/core';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { AppSource } from '../app-source';
import { CachedTier } from '../constructs/cached-tier';
import { CrossRegionReplica } from '../constructs/cross-region-replica';
import { IDenormalizedStore } from '../constructs/denormalized-store';
import { LoadBalancedTier } from '../constructs/load-balanced-tier';
import { QueueWorkers } from '../constructs/queue-workers';
import { ServiceTier } from '../constructs/service-tier';
import { OutgrowThresholds, StageOperations } from '../constructs/stage-operations';
import { StageNetwork } from '../constructs/stage-network';
import { monthlyCost, templateOf } from '../private/cost-model';
import { checkWholeNumber, ScaleStagesError } from '../private/errors';
import { acknowledgeNist80053R5 } from '../private/nist-800-53-r5';
import { checkRegion } from '../private/regions';
import { MAX_SHARDS } from '../private/shards';
import { checkFleetSettings, fleetLayer } from './layers/compute';
import {
  cacheLayer,
  crossRegionReplicaLayer,
  crossRegionReplicaOutputs,
  PRIMARY_DATABASE_IDENTIFIER_OUTPUT,
  PRIMARY_DATABASE_SECRET_NAME_OUTPUT,
  shardReplicasLayer,
} from './layers/data';
import { PRIMARY_DISTRIBUTION_ID_OUTPUT } from './layers/edge';
import { operationsLayer } from './layers/operations';
import { regionMediaLayer, SECONDARY_OUTPUTS } from './layers/regions';
import { servicesLayer, StageService } from './layers/services';
import { regionStoreLayer } from './layers/store';
import { workersLayer } from './layers/workers';
import { sizingOf, STAGES } from './stage-table';
import { UserStage } from './user-stage';

/** Properties of a `SecondaryRegionStack`. */
export interface SecondaryRegionStackProps extends StackProps {
  /** The region this stack is deployed to; it must differ from `primaryRegion`. */
  readonly region: string;
  /**
   * The name of the primary stack (a `StageStack` at stage 1m or 10m), whose outputs this stack
   * reads at deploy time: `DatabaseInstanceIdentifier`, `DatabaseSecretNameWithSuffix` and
   * `DistributionId`.
   */
  readonly primaryStackName: string;
  /** The primary stack's region. */
  readonly primaryRegion: string;
  /**
   * The network's address range. Give every region its own range, so that the networks can be
   * peered later.
   *
   * @default '10.1.0.0/16'
   */
  readonly cidr?: string;
  /**
   * The app the servers run.
   *
   * @default - the demo app, `AppSource.demo()`
   */
  readonly app?: AppSource;
  /**
   * What the queue workers run.
   *
   * @default - the demo worker, `AppSource.demoWorker()`
   */
  readonly worker?: AppSource;
  /**
   * The app servers' instance type.
   *
   * @default - from the stage table: m7g.large
   */
  readonly serverInstanceType?: ec2.InstanceType;
  /**
   * The fewest servers of the region's fleet.
   *
   * @default - from the stage table: 2
   */
  readonly webMinCapacity?: number;
  /**
   * The most servers of the region's fleet.
   *
   * @default - from the stage table: 40
   */
  readonly webMaxCapacity?: number;
  /**
   * The load balancer's certificate, in this region (see `StageStackProps.loadBalancerCertificate`).
   *
   * @default - HTTP on 80 inside the VPC, with a warning
   */
  readonly loadBalancerCertificate?: acm.ICertificate;
  /**
   * The name `loadBalancerCertificate` covers, which CloudFront connects to.
   *
   * @default - CloudFront reaches the load balancer over HTTP
   */
  readonly loadBalancerDomainName?: string;
  /**
   * The cross-region database replica's instance class.
   *
   * @default - from the stage table: m7g.xlarge
   */
  readonly databaseReplicaInstanceType?: ec2.InstanceType;
  /**
   * The name of the app's database on the primary.
   *
   * @default 'app'
   */
  readonly databaseName?: string;
  /**
   * How many shards the primary's database is split into (its `databaseShards`): this region gets a
   * cross-region replica of each shard after the first, sized as `databaseReplicaInstanceType`, and its
   * app routes reads by the shard map as the primary's does. A shard added at the primary must be
   * deployed there before this region replicates it (README, "Sharding at stage 10m").
   *
   * @default - one database, not sharded
   */
  readonly databaseShards?: number;
  /**
   * The primary's services (its `services`): this region runs each on servers of its own, as the
   * primary does, and the primary's distribution routes each viewer's service paths to the nearest
   * region.
   *
   * @default - none
   */
  readonly services?: StageService[];
  /**
   * The cache's node type, without the `cache.` prefix.
   *
   * @default - from the stage table: m7g.large
   */
  readonly cacheNodeType?: ec2.InstanceType;
  /**
   * The queue workers' instance type.
   *
   * @default - from the stage table: m7g.medium
   */
  readonly workerInstanceType?: ec2.InstanceType;
  /**
   * The most queue workers; there are none while the queue is empty.
   *
   * @default - from the stage table: 20
   */
  readonly workerMaxCapacity?: number;
  /**
   * The region whose database takes the writes (see `StageStackProps.writerRegion`); the app gets
   * it as WRITER_REGION.
   *
   * @default - primaryRegion
   */
  readonly writerRegion?: string;
  /**
   * An e-mail address that gets this region's alarms, as the primary's get them.
   *
   * @default - the context key `alarmEmail`, as the primary reads it; without it, no subscription
   */
  readonly alarmEmail?: string;
  /**
   * When the "at capacity" alarm fires.
   *
   * @default - the defaults of `OutgrowThresholds`
   */
  readonly outgrowThresholds?: OutgrowThresholds;
}

/**
 * One secondary region of stage 10m: the 1m blueprint with a cross-region replica of the primary's
 * database in place of a database of its own. It serves reads near its viewers (CloudFront sends
 * it the GET and HEAD requests of viewers closer to it than to the primary) and takes over the
 * writes when its replica is promoted (see the README's promotion runbook).
 *
 * It reads the primary stack's outputs at deploy time (`Fn::GetStackOutput`), and the primary reads
 * this stack's outputs (the load balancer's, `MediaBucketName`) for its routing and its media
 * replication: deploy this stack before the primary's stage-10m update (`MultiRegion`
 * makes the primary depend on it, so `cdk deploy --all` does).
 */
export class SecondaryRegionStack extends Stack {
  /**
   * The primary stack's output this stack reads for its replica's source: the database's instance
   * identifier. Whole values, because `Fn::GetStackOutput` may not stand inside `Fn::Split`.
   */
  public static readonly PRIMARY_DATABASE_IDENTIFIER_OUTPUT = PRIMARY_DATABASE_IDENTIFIER_OUTPUT;
  /** The primary stack's output this stack reads for the replica secret: the secret's name with its suffix. */
  public static readonly PRIMARY_DATABASE_SECRET_NAME_OUTPUT = PRIMARY_DATABASE_SECRET_NAME_OUTPUT;
  /** The primary stack's output this stack reads for its media bucket's policy: the distribution's id. */
  public static readonly PRIMARY_DISTRIBUTION_ID_OUTPUT = PRIMARY_DISTRIBUTION_ID_OUTPUT;
  /** The output with the load balancer's ARN, read by the primary's distribution. */
  public static readonly LOAD_BALANCER_ARN_OUTPUT = SECONDARY_OUTPUTS.loadBalancerArn;
  /** The output with the load balancer's DNS name, read by the primary's distribution. */
  public static readonly LOAD_BALANCER_DNS_NAME_OUTPUT = SECONDARY_OUTPUTS.loadBalancerDnsName;
  /** The output with the load balancer's security group, read by the primary's distribution. */
  public static readonly LOAD_BALANCER_SECURITY_GROUP_OUTPUT = SECONDARY_OUTPUTS.loadBalancerSecurityGroup;
  /** The output with the media bucket's name, the primary's media replication destination. */
  public static readonly MEDIA_BUCKET_NAME_OUTPUT = SECONDARY_OUTPUTS.mediaBucketName;

  /** The network. */
  public readonly network: StageNetwork;
  /** The region's load-balanced fleet. */
  public readonly web: LoadBalancedTier;
  /** The cross-region replica of the primary database. */
  public readonly databaseReplica: CrossRegionReplica;
  /** The replicas of the primary's shards after the first (`databaseReplica` is shard 0's); empty without shards. */
  public readonly shardReplicas: CrossRegionReplica[];
  /** The region's services, as the primary's (`services`). */
  public readonly services: ServiceTier[];
  /** The region's cache. */
  public readonly cache: CachedTier;
  /** The region's job queue and workers. */
  public readonly workers: QueueWorkers;
  /** This region's replica of the primary's store, which the primary's global table keeps. */
  public readonly store: IDenormalizedStore;
  /** The copy of the primary's media (`media/`), and uploads once this region takes the writes. */
  public readonly mediaBucket: s3.Bucket;
  /** The region's alarms and dashboard. */
  public readonly operations: StageOperations;
  /** The primary stack's name. */
  public readonly primaryStackName: string;
  /** The primary stack's region. */
  public readonly primaryRegion: string;
  /** The name CloudFront connects to the load balancer with over HTTPS; undefined for HTTP. */
  public readonly loadBalancerDomainName?: string;

  constructor(scope: Construct, id: string, props: SecondaryRegionStackProps) {
    checkProps(props);
    super(scope, id, {
      description: `cdk-scale-stages: the 10,000,000-user stage, secondary region ${props.region}`,
      ...props,
      env: { ...props.env, region: props.region },
    });
    const sizing = sizingOf(
      STAGES.find((s) => s.stage === UserStage.USERS_10M)!,
      'secondaryRegion',
    );
    this.primaryStackName = props.primaryStackName;
    this.primaryRegion = props.primaryRegion;
    // Each of the primary's outputs this region reads is kept in a parameter of its own: the one place
    // Fn::GetStackOutput stands is a direct property value, as the CloudFormation documentation places
    // it, and user data (Fn::Base64), policies and outputs read the parameter's value instead.
    const primaryOutput = (name: string) =>
      new ssm.StringParameter(this, `Primary${name}`, {
        description: `The ${name} output of stack ${props.primaryStackName} in ${props.primaryRegion}`,
        stringValue: Fn.getStackOutput(props.primaryStackName, name, props.primaryRegion),
      }).stringValue;

    this.network = new StageNetwork(this, 'Network', {
      natGateways: sizing.natGateways,
      cidr: props.cidr ?? '10.1.0.0/16',
    });
    this.web = fleetLayer(this, this.network, sizing.web, props);
    this.loadBalancerDomainName = props.loadBalancerDomainName;
    this.services = props.services ? servicesLayer(this, this.web, sizing.web, props.services) : [];
    // Every layer after this one connects the services as it connects the fleet.
    const appTiers = [this.web, ...this.services];
    appTiers.forEach((tier) =>
      tier.addEnvironment('WRITER_REGION', props.writerRegion ?? props.primaryRegion),
    );
    const replicaSource = {
      network: this.network,
      sizing: sizing.databaseReplica,
      settings: props,
      primaryOutput,
    };
    this.databaseReplica = crossRegionReplicaLayer(this, replicaSource, appTiers);
    this.cache = cacheLayer(this, this.network, sizing.cache, props, appTiers);
    this.mediaBucket = regionMediaLayer(this, primaryOutput, appTiers);
    this.workers = workersLayer(this, this.network, sizing.workers, props, {
      appTiers,
      database: this.databaseReplica,
      media: this.mediaBucket,
    });
    this.store = regionStoreLayer(this, props.primaryStackName, [...appTiers, this.workers]);
    this.shardReplicas =
      props.databaseShards === undefined
        ? []
        : shardReplicasLayer(this, replicaSource, this.databaseReplica, props.databaseShards, [
            ...appTiers,
            this.workers,
          ]);
    this.operations = operationsLayer(
      this,
      props,
      {
        web: this.web,
        crossRegionReplica: this.databaseReplica,
        shardReplicas: this.shardReplicas,
        services: this.services,
        cache: this.cache,
        workers: this.workers,
        store: this.store,
      },
      {
        alarmName: `${this.stackName}-stage-10m-at-capacity`,
        description:
          `Region ${props.region} of stage 10m is at capacity (see which signal fired). Scale within the region: raise ` +
          'webMaxCapacity, cacheNodeType or workerMaxCapacity of its SecondaryRegionStack, or add a region to the regions ' +
          'context key, then npx cdk deploy --all.',
      },
    );
    this.addOutputs();
    acknowledgeNist80053R5(this);
  }

  /**
   * The stack's estimated monthly cost before traffic, in US dollars, at us-east-1 list prices
   * (see `StageStack.estimatedMonthlyCost`).
   */
  public estimatedMonthlyCost(): number {
    return monthlyCost(templateOf(this));
  }

  /** What the primary reads from this region, and what the promotion runbook and the team need. */
  private addOutputs(): void {
    new CfnOutput(this, SecondaryRegionStack.LOAD_BALANCER_ARN_OUTPUT, {
      description:
        "The internal load balancer, which the primary's distribution reaches through a VPC origin",
      value: this.web.loadBalancer.loadBalancerArn,
    });
    new CfnOutput(this, SecondaryRegionStack.LOAD_BALANCER_DNS_NAME_OUTPUT, {
      description: "The internal load balancer's DNS name, read by the primary stack",
      value: this.web.loadBalancer.loadBalancerDnsName,
    });
    new CfnOutput(this, SecondaryRegionStack.LOAD_BALANCER_SECURITY_GROUP_OUTPUT, {
      description: "The internal load balancer's security group, read by the primary stack",
      value: this.web.loadBalancer.connections.securityGroups[0].securityGroupId,
    });
    new CfnOutput(this, SecondaryRegionStack.MEDIA_BUCKET_NAME_OUTPUT, {
      description: "The copy of the primary's media bucket; the primary replicates into it",
      value: this.mediaBucket.bucketName,
    });
    crossRegionReplicaOutputs(this, this.databaseReplica);
    new CfnOutput(this, 'JobQueueUrl', {
      description: "This region's job queue",
      value: this.workers.queue.queueUrl,
    });
    new CfnOutput(this, 'AlarmTopicArn', {
      description: "This region's alarms go here",
      value: this.operations.topic.topicArn,
    });
  }
}

/** The props that must agree with each other: regions known and different, and the fleet's HTTPS pair. */
function checkProps(props: SecondaryRegionStackProps): void {
  checkRegion('SecondaryRegionStack region', props.region);
  checkRegion('SecondaryRegionStack primaryRegion', props.primaryRegion);
  if (props.writerRegion !== undefined) checkRegion('SecondaryRegionStack writerRegion', props.writerRegion);
  if (props.region === props.primaryRegion) {
    throw new ScaleStagesError(
      `SecondaryRegionStack region must differ from primaryRegion; got '${props.region}' for both.`,
    );
  }
  if (props.env?.region !== undefined && props.env.region !== props.region) {
    throw new ScaleStagesError(
      `SecondaryRegionStack env.region must be left out or equal region; got env.region '${props.env.region}' and region '${props.region}'.`,
    );
  }
  checkWholeNumber(undefined, 'SecondaryRegionStack databaseShards', props.databaseShards, 2, MAX_SHARDS);
  checkFleetSettings(props);
}
