import { Annotations, CfnOutput, Duration, Size, Stack, StackProps, Token } from 'aws-cdk-lib/core';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as route53 from 'aws-cdk-lib/aws-route53';
import { Construct, IConstruct } from 'constructs';
import { AppSource } from '../app-source';
import { IAppTier } from '../app-tier';
import { CachedTier } from '../constructs/cached-tier';
import { CdnStatic } from '../constructs/cdn-static';
import { LoadBalancedTier } from '../constructs/load-balanced-tier';
import { ReplicatedDb } from '../constructs/replicated-db';
import { SeparatedDb } from '../constructs/separated-db';
import { QueueWorkers } from '../constructs/queue-workers';
import { DenormalizedStore } from '../constructs/denormalized-store';
import { ServiceTier } from '../constructs/service-tier';
import { ShardedDb } from '../constructs/sharded-db';
import { SingleServer } from '../constructs/single-server';
import { OutgrowThresholds, StageOperations } from '../constructs/stage-operations';
import { StageNetwork } from '../constructs/stage-network';
import { monthlyCost, templateOf } from '../private/cost-model';
import { ScaleStagesError } from '../private/errors';
import { acknowledgeNist80053R5 } from '../private/nist-800-53-r5';
import { CONTEXT_KEYS, readDatabaseShards, readString } from './context';
import { checkFleetSettings, fleetLayer, serverLayer } from './layers/compute';
import { cacheLayer, cacheOutputs, databaseLayer, readReplicasLayer, shardsLayer } from './layers/data';
import { networkLayer } from './layers/network';
import { appOutputs, cdnLayer, mediaLayer } from './layers/edge';
import { operationsLayer } from './layers/operations';
import { PrimaryRegions } from './layers/regions';
import { storeLayer } from './layers/store';
import { serviceBehaviorsLayer, servicesLayer, StageService } from './layers/services';
import { prerenderLayer, workersLayer } from './layers/workers';
import { SecondaryRegionStack } from './secondary-region-stack';
import { StageGuard } from './stage-guard';
import {
  layersAt,
  nextStageAdvice,
  sizingOf,
  STAGE_SPECIFIC_SETTINGS,
  STAGES,
  StageDefinition,
  unusedAtStage,
} from './stage-table';
import { UserStage } from './user-stage';

/** Properties of a `StageStack`. */
export interface StageStackProps extends StackProps {
  /**
   * The stage to build. Deploying the next stage to the same stack upgrades it in place; a deploy
   * that goes down a stage or skips one is refused at deploy time, before anything changes, unless
   * `allowStageChange` names it.
   */
  readonly stage: UserStage;
  /**
   * A stage change the deploy may make although it goes down or skips stages, as
   * `<deployed stage>-><stage>`, such as `1k->1`. Anything else the stage guard refuses.
   *
   * @default - the context key `allowStageChange`; without it, only the same stage or the next one
   */
  readonly allowStageChange?: string;
  /**
   * The app the servers run.
   *
   * @default - the demo app, `AppSource.demo()`
   */
  readonly app?: AppSource;
  /**
   * The domain viewers use, such as `www.example.com`, instead of the distribution's
   * `*.cloudfront.net` name; give `certificate` with it.
   *
   * @default - the context key `domainName`; without it, the `*.cloudfront.net` name
   */
  readonly domainName?: string;
  /**
   * The ACM certificate that covers `domainName`; it must be in us-east-1, where CloudFront takes
   * certificates from. Viewers then need TLS 1.2 or newer (`TLSv1.2_2021`).
   *
   * @default - the context key `certificateArn`
   */
  readonly certificate?: acm.ICertificate;
  /**
   * The Route 53 hosted zone that gets `domainName`'s alias records (A and AAAA) to the
   * distribution.
   *
   * @default - the context key `hostedZoneId`; without it, no records (point the name at the
   * distribution in your DNS)
   */
  readonly hostedZone?: route53.IHostedZone;
  /**
   * The ARN of a CLOUDFRONT-scope AWS WAF web ACL (in us-east-1) for the distribution. `StageStacks`
   * gives the one its `<name>-Edge` stack builds, from stage 1k.
   *
   * @default - no web ACL
   */
  readonly webAclArn?: string;
  /**
   * The folder with the built web client, served by CloudFront from stage 100.
   *
   * @default - the small example client shipped with this library
   */
  readonly webClientPath?: string;
  /**
   * An existing VPC to build the stage in, instead of the network the stack builds (keep the choice
   * from the first deploy: moving between VPCs replaces every tier). It must have the subnets the
   * stage's layers take, by type: a public subnet for the server of stages 1 to 100; private subnets
   * with a NAT route in two availability zones for the fleet and the workers from stage 1k; isolated
   * subnets (else private ones) in two zones for the database from stage 10 and the cache. Synth fails
   * naming what is missing. Its NAT, routes and flow logs stay its owner's; the stack adds security
   * groups, a Secrets Manager endpoint in the data subnets from stage 10, and the tiers.
   *
   * @default - a new VPC (`StageNetwork`)
   */
  readonly vpc?: ec2.IVpc;
  /**
   * The app servers' instance type.
   *
   * @default - from the stage table: t4g.micro to stage 100, t4g.small at 1k, t4g.medium at 10k,
   * m7g.large at 100k
   */
  readonly serverInstanceType?: ec2.InstanceType;
  /**
   * The fewest servers of the load-balanced fleet (stage 1k onwards).
   *
   * @default - from the stage table: 2 at stage 1k
   */
  readonly webMinCapacity?: number;
  /**
   * The most servers of the load-balanced fleet (stage 1k onwards).
   *
   * @default - from the stage table: 6 at stage 1k, 10 at 10k, 20 at 100k
   */
  readonly webMaxCapacity?: number;
  /**
   * The load balancer's certificate (stage 1k onwards), in the stack's region: the internal load
   * balancer then serves HTTPS on 443 only, and CloudFront's VPC origin reaches it over HTTPS too.
   *
   * @default - HTTP on 80 inside the VPC, with a warning (viewers still get HTTPS at CloudFront)
   */
  readonly loadBalancerCertificate?: acm.ICertificate;
  /**
   * The name `loadBalancerCertificate` covers (stage 1k onwards): CloudFront's VPC origin connects
   * to the load balancer with this name and checks the certificate against it (a mismatch is a 502
   * for viewers). Required with a certificate, since the load balancer's own DNS name is in none.
   *
   * @default - CloudFront reaches the load balancer over HTTP
   */
  readonly loadBalancerDomainName?: string;
  /**
   * A NAT instance type to use instead of a NAT gateway (stage 1k onwards): a t4g.nano costs about
   * $3 a month against a gateway's $33, but it is one instance without automatic failover.
   *
   * @default - one NAT gateway
   */
  readonly natInstanceType?: ec2.InstanceType;
  /**
   * The size of the stage-1 data volume.
   *
   * @default - from the stage table: 20 GiB
   */
  readonly dataVolumeSize?: Size;
  /**
   * The RDS instance class (stage 10 onwards).
   *
   * @default - from the stage table: t4g.micro at stages 10 and 100, then Multi-AZ t4g.small at 1k,
   * t4g.medium at 10k, m7g.large at 100k
   */
  readonly databaseInstanceType?: ec2.InstanceType;
  /**
   * The storage allocated to the RDS database at creation (stage 10 onwards).
   *
   * @default - from the stage table: 20 GiB at stage 10
   */
  readonly databaseAllocatedStorage?: Size;
  /**
   * How many read replicas the RDS database has (stage 100k onwards).
   *
   * @default - from the stage table: 1 at stage 100k
   */
  readonly databaseReadReplicas?: number;
  /**
   * The read replicas' instance class (stage 100k onwards).
   *
   * @default - from the stage table: m7g.large at stage 100k
   */
  readonly databaseReplicaInstanceType?: ec2.InstanceType;
  /**
   * The cache's node type, without the `cache.` prefix (stage 100k onwards).
   *
   * @default - from the stage table: t4g.medium at stage 100k
   */
  readonly cacheNodeType?: ec2.InstanceType;
  /**
   * How many replicas follow the cache's primary node (stage 100k onwards).
   *
   * @default - from the stage table: 1 at stage 100k
   */
  readonly cacheReplicas?: number;
  /**
   * What the queue workers run (stage 1m onwards).
   *
   * @default - the demo worker, `AppSource.demoWorker()`
   */
  readonly worker?: AppSource;
  /**
   * The queue workers' instance type (stage 1m onwards).
   *
   * @default - from the stage table: m7g.medium at stage 1m
   */
  readonly workerInstanceType?: ec2.InstanceType;
  /**
   * The most queue workers (stage 1m onwards); there are none while the queue is empty.
   *
   * @default - from the stage table: 20 at stage 1m
   */
  readonly workerMaxCapacity?: number;
  /**
   * How often a pre-render job goes on the queue (stage 1m onwards): the demo worker renders the
   * feed to `/prerendered/feed.json`. Whole minutes, at least 1.
   *
   * @default Duration.minutes(5)
   */
  readonly prerenderRate?: Duration;
  /**
   * How many PostgreSQL shards hold the users' data (stages 1m and 10m), the database included as
   * shard 0: 2 to 12 (`ShardedDb`). Turn it on when the database is outgrowing one writer (its CPU signal
   * fires at stage 1m): each shard is a database sized as the first, and the app routes each user to one.
   * Raising it is a deploy that adds an empty shard, then `reshard apply` moves its share of the users
   * (docs/resharding.md); lowering it is refused at deploy time (deletion protection). At stage 10m each
   * secondary region gets a cross-region replica of every shard (`SecondaryRegionStack.databaseShards`).
   *
   * @default - the context key `databaseShards`; without it, one database
   */
  readonly databaseShards?: number;
  /**
   * Services split off the app (stage 1m onwards), each on servers of its own behind the fleet's load
   * balancer, at a path of its own (`/ws/*`), scaled, alarmed and released on its own, with the app's
   * environment and grants (database, cache, queue, media, store, shards). Add new services at the end
   * of the list: each one's listener rule priority is its place in it.
   *
   * @default - none: the fleet serves every path
   */
  readonly services?: StageService[];
  /**
   * An e-mail address that gets the stage's alarms (SNS sends a confirmation mail first).
   *
   * @default - the context key `alarmEmail`; without it, no subscription
   */
  readonly alarmEmail?: string;
  /**
   * When the "time for the next stage" alarm fires.
   *
   * @default - the defaults of `OutgrowThresholds`: 70% CPU, 80% cache memory, for an hour
   */
  readonly outgrowThresholds?: OutgrowThresholds;
  /**
   * The secondary regions of stage 10m, whose stacks name this one as their primary. This stack
   * replicates its database secret and its media into them, and its distribution sends each viewer's
   * reads to the nearest region. `MultiRegion` builds them from the `regions` context key.
   *
   * @default - none; stage 10m needs at least one
   */
  readonly secondaryRegions?: SecondaryRegionStack[];
  /**
   * Stage 10m: the region whose database takes the writes. The primary region, until its database
   * is lost and a secondary region's replica is promoted (the README's promotion runbook); naming
   * that region then makes CloudFront send it every request.
   *
   * @default - the context key `writerRegion`; without it, the primary region
   */
  readonly writerRegion?: string;
}

/**
 * The whole single-region blueprint of one stage in one stack.
 *
 * The construct tree only grows from stage to stage: the network, the stage-1 server and the
 * database keep their ids (and so their logical ids), so deploying the next stage to the same stack
 * updates it in place and replaces no stateful resource.
 */
export class StageStack extends Stack {
  /** The stage this stack builds. */
  public readonly stage: UserStage;
  /** The network. */
  public readonly network: StageNetwork;
  /** The stage-1 server (stages 1 to 100). */
  public readonly server?: SingleServer;
  /** The load-balanced fleet (stage 1k onwards). */
  public readonly web?: LoadBalancedTier;
  /** The RDS database (stage 10 onwards). */
  public readonly database?: SeparatedDb;
  /** The read replicas of the RDS database (stage 100k onwards). */
  public readonly readReplicas?: ReplicatedDb;
  /** The Valkey cache for sessions and cached objects (stage 100k onwards). */
  public readonly cache?: CachedTier;
  /** The job queue and its workers: uploads and pre-renders (stage 1m onwards). */
  public readonly workers?: QueueWorkers;
  /**
   * The DynamoDB store of denormalized read models, the feed (stage 1m onwards); at stage 10m a global
   * table with a replica in each secondary region.
   */
  public readonly store?: DenormalizedStore;
  /** The services split off the app (`services`, stage 1m onwards), each on servers of its own. */
  public readonly services: ServiceTier[];
  /** The database's shards when `databaseShards` asks for them (stages 1m and 10m); the database is shard 0. */
  public readonly shards?: ShardedDb;
  /** The alarm topic, the dashboard, the health alarms and the "time for the next stage" alarm. */
  public readonly operations: StageOperations;
  /**
   * The CloudFront distribution in front of the app, and from stage 100 the web client on S3 with
   * the API behind the same distribution.
   */
  public readonly cdn: CdnStatic;

  constructor(scope: Construct, id: string, props: StageStackProps) {
    const row = checkProps(id, props);
    super(scope, id, {
      description: `cdk-scale-stages: the ${row.users.toLocaleString('en-US')}-user stage`,
      ...props,
    });
    this.stage = props.stage;
    this.warnUnusedSettings(props);
    new StageGuard(this, 'StageGuard', {
      stage: this.stage,
      allowStageChange: props.allowStageChange ?? readString(this.node, 'allowStageChange'),
    });
    // The stage's layers (the stage table's rows say which stage adds each), in an order that keeps
    // construct ids, and so logical ids and CloudFront origin ids, from one stage to the next.
    const layers = layersAt(this.stage);
    this.network = networkLayer(this, this.stage, layers, row.sizing, props);
    if (layers.has('server')) {
      this.server = serverLayer(this, this.network, sizingOf(row, 'server'), props, !layers.has('database'));
    }
    if (layers.has('fleet')) this.web = fleetLayer(this, this.network, sizingOf(row, 'web'), props);
    const appTier: IAppTier & IConstruct = this.server ?? this.web!;
    this.services =
      props.services && !unusedAtStage('services', this.stage)
        ? servicesLayer(this, this.web!, sizingOf(row, 'web'), props.services)
        : [];
    // Every layer after this one connects the services as it connects the fleet.
    const appTiers: (IAppTier & IConstruct)[] = [appTier, ...this.services];
    if (layers.has('database')) {
      this.database = databaseLayer(this, this.network, sizingOf(row, 'database'), props, appTiers);
    }
    if (layers.has('readReplicas')) {
      this.readReplicas = readReplicasLayer(
        this,
        this.database!,
        sizingOf(row, 'readReplicas'),
        props,
        appTiers,
      );
    }
    if (layers.has('cache')) {
      this.cache = cacheLayer(this, this.network, sizingOf(row, 'cache'), props, appTiers);
      cacheOutputs(this, this.cache);
    }
    const regions = layers.has('regions') ? new PrimaryRegions(this, props.secondaryRegions!) : undefined;
    const { cdn, appOrigin } = cdnLayer(
      this,
      props,
      { server: this.server, web: this.web },
      {
        webClient: layers.has('webClient'),
        routedOriginId: regions?.appOriginId,
      },
    );
    this.cdn = cdn;
    regions?.routeApi(cdn, appOrigin, props.writerRegion);
    const media = layers.has('media') ? mediaLayer(this, cdn, appTiers, regions?.mediaFallback()) : undefined;
    if (layers.has('workers')) {
      this.workers = workersLayer(this, this.network, sizingOf(row, 'workers'), props, {
        appTiers,
        database: this.database,
        media: media!,
      });
      prerenderLayer(this, this.workers, cdn, props);
    }
    if (layers.has('store'))
      this.store = storeLayer(this, [...appTiers, this.workers!], regions?.primaryRegion);
    const shardCount = databaseShards(this, props);
    checkSecondariesMatch(props.secondaryRegions ?? [], shardCount, this.services);
    if (shardCount !== undefined) {
      this.shards = shardsLayer(
        this,
        this.network,
        sizingOf(row, 'database'),
        props,
        this.database!,
        shardCount,
        [...appTiers, this.workers!],
      );
    }
    regions?.pinAndReplicate(cdn, this.database!, this.store!, this.shards);
    serviceBehaviorsLayer(cdn, appOrigin, this.services, regions?.routingAssociation);
    this.operations = this.addOperations(props);
    appOutputs(this, cdn, layers.has('webClient'));
    acknowledgeNist80053R5(this);
  }

  /**
   * The stack's estimated monthly cost before traffic, in US dollars: on-demand list prices in
   * us-east-1 for what runs all the time (servers, databases, cache nodes, NAT, load balancer,
   * endpoints, secrets, keys, alarms); requests, bytes and backups come on top. Synthesizes the app
   * when it has not been synthesized yet.
   */
  public estimatedMonthlyCost(): number {
    return monthlyCost(templateOf(this));
  }

  /**
   * One warning for each stage-specific setting given to a stage that does not use it (a prop, or the
   * context keys `regions` and `writerRegion`): the same rule for all of them (STAGE_SPECIFIC_SETTINGS).
   */
  private warnUnusedSettings(props: StageStackProps): void {
    const given = props as unknown as Record<string, unknown>;
    for (const setting of Object.keys(STAGE_SPECIFIC_SETTINGS)) {
      const fromContext =
        (CONTEXT_KEYS as readonly string[]).includes(setting) && readString(this.node, setting);
      const unused = (given[setting] !== undefined || fromContext) && unusedAtStage(setting, this.stage);
      if (unused) Annotations.of(this).addWarningV2('cdk-scale-stages:settingUnusedAtThisStage', unused);
    }
  }

  /**
   * Every stage: alarms that something is broken, a dashboard, and the signals that the stage is
   * outgrowing its architecture, combined into one alarm that names the next stage.
   */
  private addOperations(props: StageStackProps): StageOperations {
    const operations = operationsLayer(
      this,
      props,
      {
        server: this.server,
        web: this.web,
        database: this.database,
        readReplicas: this.readReplicas,
        cache: this.cache,
        workers: this.workers,
        store: this.store,
        shards: this.shards,
        services: this.services,
        distributionId: this.cdn.distribution.distributionId,
      },
      nextStageAdvice(this.stackName, this.stage),
    );
    new CfnOutput(this, 'AlarmTopicArn', {
      description: 'Alarms go here: subscribe an e-mail address, a chat webhook or a pager',
      value: operations.topic.topicArn,
    });
    new CfnOutput(this, 'DashboardName', {
      description: 'The CloudWatch dashboard of this stage',
      value: operations.dashboard.dashboardName,
    });
    return operations;
  }
}

/** The stage's row of the stage table, once the props that must agree with each other do. */
function checkProps(id: string, props: StageStackProps): StageDefinition {
  const row = STAGES.find((s) => s.stage === props.stage);
  if (!row) {
    throw new ScaleStagesError(
      `StageStack stage must be one of ${STAGES.map((s) => `'${s.stage}'`).join(', ')}; got '${props.stage}'.`,
    );
  }
  checkFleetSettings(props);
  checkSecondaries(props.stage, props.stackName ?? id, props.secondaryRegions ?? []);
  // aws-cdk-lib would quietly shorten a longer id into a name with a hash: not the stack the user
  // named, and a second deploy under the intended name would build a second stack.
  const stackName = props.stackName ?? id;
  if (!Token.isUnresolved(stackName) && stackName.length > 128) {
    throw new ScaleStagesError(
      `the stack name must be 128 characters at most (a CloudFormation limit); got ${stackName.length} characters ('${stackName.slice(0, 40)}...'). Give a shorter id or stackName.`,
    );
  }
  return row;
}

/**
 * The number of shards `databaseShards` (prop, else context key) asks for, or undefined for one
 * database: stages 1m and 10m only (below them the setting warns as unused).
 */
function databaseShards(stack: StageStack, props: StageStackProps): number | undefined {
  if (unusedAtStage('databaseShards', stack.stage)) return undefined;
  return readDatabaseShards(stack.node, props.databaseShards);
}

/**
 * Each secondary region replicates as many shards as the primary has, and runs the same services at the
 * same paths: a region that knew fewer shards would send the users of the others to the wrong database,
 * and one without a service would answer its paths with the app.
 */
function checkSecondariesMatch(
  secondaries: SecondaryRegionStack[],
  shards: number | undefined,
  services: ServiceTier[],
): void {
  const shown = (n: number) => (n === 1 ? 'no databaseShards' : `databaseShards ${n}`);
  const routes = (tiers: ServiceTier[]) => JSON.stringify(tiers.map((t) => [t.node.id, t.pathPatterns]));
  for (const secondary of secondaries) {
    const replicated = secondary.shardReplicas.length + 1;
    if (replicated !== (shards ?? 1)) {
      throw new ScaleStagesError(
        `SecondaryRegionStack ${secondary.stackName} has ${shown(replicated)}, but its primary has ${shown(shards ?? 1)}: give every region the primary's databaseShards.`,
      );
    }
    if (routes(secondary.services) !== routes(services)) {
      throw new ScaleStagesError(
        `SecondaryRegionStack ${secondary.stackName} has services ${routes(secondary.services)}, but its primary has ${routes(services)} (names and paths): give every region the primary's services.`,
      );
    }
  }
}

/** Stage 10m has secondary regions, at least one, all of this primary; other stages have none. */
function checkSecondaries(stage: UserStage, stackName: string, secondaries: SecondaryRegionStack[]): void {
  const multiRegion = layersAt(stage).has('regions');
  if (multiRegion && secondaries.length === 0) {
    throw new ScaleStagesError(
      `stage '10m' runs in several regions and needs secondaryRegions (at least one SecondaryRegionStack); got none. MultiRegion builds them from the regions context key.`,
    );
  }
  if (!multiRegion && secondaries.length > 0) {
    throw new ScaleStagesError(
      `secondaryRegions apply to stage '10m' only; got ${secondaries.length} at stage '${stage}'. Leave them out.`,
    );
  }
  for (const secondary of secondaries) {
    if (
      secondary.primaryStackName !== stackName ||
      secondary.primaryRegion !== secondaries[0].primaryRegion
    ) {
      throw new ScaleStagesError(
        `every secondary region must name this stack as its primary: stack '${secondary.stackName}' names '${secondary.primaryStackName}' in ${secondary.primaryRegion}, this stack is '${stackName}'${secondary === secondaries[0] ? '' : ` in ${secondaries[0].primaryRegion}`}.`,
      );
    }
  }
  const regions = secondaries.map((s) => s.region);
  const repeated = regions.find((r, i) => regions.indexOf(r) !== i);
  if (repeated) {
    throw new ScaleStagesError(`secondaryRegions must be in different regions; got '${repeated}' twice.`);
  }
}
