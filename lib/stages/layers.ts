/**
 * The layers a stack of a stage is built from, each a small function with one job. `StageStack` and
 * `SecondaryRegionStack` build their fleet, cache, workers and operations with the same functions, so
 * that a region cannot forget what another region does.
 */
import { CfnOutput, Fn, Size, Stack } from 'aws-cdk-lib/core';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as route53 from 'aws-cdk-lib/aws-route53';
import * as route53Targets from 'aws-cdk-lib/aws-route53-targets';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct, IConstruct } from 'constructs';
import { AppSource } from '../app-source';
import { IAppTier } from '../app-tier';
import { CachedTier } from '../constructs/cached-tier';
import { CdnStatic } from '../constructs/cdn-static';
import { LoadBalancedTier } from '../constructs/load-balanced-tier';
import { QueueWorkers } from '../constructs/queue-workers';
import { ReplicatedDb } from '../constructs/replicated-db';
import { SeparatedDb } from '../constructs/separated-db';
import { NextStageAdvice, OutgrowThresholds, StageOperations } from '../constructs/stage-operations';
import { StageNetwork } from '../constructs/stage-network';
import { ScaleStagesError } from '../private/errors';
import { readString } from './context';
import { POSTGRES_VERSIONS } from './stage-table';
import { processUploads } from './uploads';

/** The settings of the fleet layer, named as both stacks' props name them. */
export interface FleetSettings {
  readonly app?: AppSource;
  readonly serverInstanceType?: ec2.InstanceType;
  readonly webMinCapacity?: number;
  readonly webMaxCapacity?: number;
  readonly loadBalancerCertificate?: acm.ICertificate;
  readonly loadBalancerDomainName?: string;
}

/** The certificate and the name it covers go together: CloudFront reaches HTTPS at that name. */
export function checkFleetSettings(settings: FleetSettings): void {
  if (Boolean(settings.loadBalancerCertificate) !== Boolean(settings.loadBalancerDomainName)) {
    throw new ScaleStagesError(
      'loadBalancerCertificate and loadBalancerDomainName go together: CloudFront reaches an HTTPS load balancer at the name its certificate covers. Give both, or neither for HTTP.',
    );
  }
}

/**
 * The load-balanced fleet: an internal load balancer reached through a CloudFront VPC origin, in the
 * network's VPC-origin subnets (zones VPC origins reach in every account), with its servers.
 */
export function fleetLayer(
  scope: Construct,
  network: StageNetwork,
  sizing: { readonly instanceType: string; readonly minCapacity: number; readonly maxCapacity: number },
  settings: FleetSettings,
): LoadBalancedTier {
  return new LoadBalancedTier(scope, 'Web', {
    vpc: network.vpc,
    vpcSubnets: network.addVpcOriginSubnets(),
    app: settings.app,
    instanceType: settings.serverInstanceType ?? new ec2.InstanceType(sizing.instanceType),
    minCapacity: settings.webMinCapacity ?? sizing.minCapacity,
    maxCapacity: settings.webMaxCapacity ?? sizing.maxCapacity,
    certificate: settings.loadBalancerCertificate,
  });
}

/** The primary's output with its database's instance identifier (`SecondaryRegionStack` reads it). */
export const PRIMARY_DATABASE_IDENTIFIER_OUTPUT = 'DatabaseInstanceIdentifier';
/** The primary's output with its database secret's name and suffix (`SecondaryRegionStack` reads it). */
export const PRIMARY_DATABASE_SECRET_NAME_OUTPUT = 'DatabaseSecretNameWithSuffix';
/** The primary's output with its distribution's id (`SecondaryRegionStack` reads it). */
export const PRIMARY_DISTRIBUTION_ID_OUTPUT = 'DistributionId';

/**
 * The RDS database in the data subnets, connected to the app tier, with the outputs that say where it
 * is (stage 10m's regions read two of them whole).
 */
export function databaseLayer(
  stack: Stack,
  network: StageNetwork,
  sizing: { readonly instanceType: string; readonly storageGiB: number; readonly multiAz: boolean },
  settings: { readonly databaseInstanceType?: ec2.InstanceType; readonly databaseAllocatedStorage?: Size },
  appTier: IAppTier,
): SeparatedDb {
  const database = new SeparatedDb(stack, 'Database', {
    vpc: network.vpc,
    vpcSubnets: network.dataSubnets,
    instanceType: settings.databaseInstanceType ?? new ec2.InstanceType(sizing.instanceType),
    allocatedStorage: settings.databaseAllocatedStorage ?? Size.gibibytes(sizing.storageGiB),
    multiAz: sizing.multiAz,
    engineVersion: POSTGRES_VERSIONS.rds,
    // The rotation function runs in the isolated data subnets, which have no NAT at any stage.
    secretsManagerEndpoint: network.addSecretsManagerEndpoint(sizing.multiAz ? 2 : 1),
  });
  database.connectApp(appTier);
  new CfnOutput(stack, 'DatabaseEndpoint', {
    description: 'The RDS PostgreSQL endpoint (reachable only from the app servers)',
    value: database.database.dbInstanceEndpointAddress,
  });
  new CfnOutput(stack, 'DatabaseSecretArn', {
    description: 'The secret with the database master credentials, rotated every 30 days',
    value: database.secret.secretArn,
  });
  // Stage 10m's regions read these two whole (Fn::GetStackOutput may not stand inside Fn::Split);
  // they exist from stage 10 so that a 1m stack has them before its regions deploy.
  new CfnOutput(stack, PRIMARY_DATABASE_IDENTIFIER_OUTPUT, {
    description: "The database's instance identifier, the source of stage 10m's cross-region replicas",
    value: database.database.instanceIdentifier,
  });
  new CfnOutput(stack, PRIMARY_DATABASE_SECRET_NAME_OUTPUT, {
    description: "The last part of DatabaseSecretArn, from which stage 10m's regions name the replica secret",
    value: Fn.select(6, Fn.split(':', database.secret.secretArn)),
  });
  return database;
}

/** Read replicas of the database, connected to the app tier as its readers. */
export function readReplicasLayer(
  stack: Stack,
  database: SeparatedDb,
  sizing: { readonly count: number; readonly instanceType: string },
  settings: {
    readonly databaseReadReplicas?: number;
    readonly databaseReplicaInstanceType?: ec2.InstanceType;
  },
  appTier: IAppTier,
): ReplicatedDb {
  const readReplicas = new ReplicatedDb(stack, 'ReadReplicas', {
    primary: database,
    replicas: settings.databaseReadReplicas ?? sizing.count,
    instanceType: settings.databaseReplicaInstanceType ?? new ec2.InstanceType(sizing.instanceType),
  });
  readReplicas.connectApp(appTier);
  new CfnOutput(stack, 'DatabaseReaderEndpoints', {
    description: 'The read replicas, separated by commas (reachable only from the app servers)',
    value: Fn.join(',', readReplicas.readerEndpoints),
  });
  return readReplicas;
}

/** The A and AAAA alias records that point the viewers' domain at the distribution. */
export function aliasRecordsLayer(
  stack: Stack,
  zone: route53.IHostedZone,
  domainName: string,
  cdn: CdnStatic,
): void {
  const target = route53.RecordTarget.fromAlias(new route53Targets.CloudFrontTarget(cdn.distribution));
  // A fully qualified name (trailing dot), so an imported zone needs no zone name.
  const recordName = `${domainName}.`;
  new route53.ARecord(stack, 'AliasRecord', { zone, recordName, target });
  new route53.AaaaRecord(stack, 'AliasRecordIpv6', { zone, recordName, target });
}

/** The cache in the data subnets, connected to the app tier. */
export function cacheLayer(
  scope: Construct,
  network: StageNetwork,
  sizing: { readonly nodeType: string; readonly replicas: number },
  settings: { readonly cacheNodeType?: ec2.InstanceType; readonly cacheReplicas?: number },
  appTier: IAppTier,
): CachedTier {
  const cache = new CachedTier(scope, 'Cache', {
    vpc: network.vpc,
    vpcSubnets: network.dataSubnets,
    nodeType: settings.cacheNodeType ?? new ec2.InstanceType(sizing.nodeType),
    replicas: settings.cacheReplicas ?? sizing.replicas,
  });
  cache.connectApp(appTier);
  return cache;
}

/** A database an app tier connects to: a `SeparatedDb`, or a `CrossRegionReplica` of one. */
export interface IDatabaseLayer {
  connectApp(appTier: IAppTier): void;
}

/**
 * The job queue and its workers in the app subnets: the app tier puts jobs on the queue, the workers
 * reach the database and the media bucket, and each upload to the bucket becomes a job.
 */
export function workersLayer(
  scope: Construct,
  network: StageNetwork,
  sizing: { readonly instanceType: string; readonly maxCapacity: number },
  settings: {
    readonly worker?: AppSource;
    readonly workerInstanceType?: ec2.InstanceType;
    readonly workerMaxCapacity?: number;
  },
  connect: {
    readonly appTier: IAppTier & IConstruct;
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
  workers.connectProducer(connect.appTier);
  connect.database?.connectApp(workers);
  workers.addEnvironment('MEDIA_BUCKET', connect.media.bucketName);
  processUploads(workers, connect.appTier, connect.media);
  return workers;
}

/** What the operations layer watches: whichever tiers the stack has. */
export interface MonitoredTiers {
  readonly server?: Parameters<StageOperations['monitorServer']>[0];
  readonly web?: LoadBalancedTier;
  readonly database?: Parameters<StageOperations['monitorDatabase']>[0];
  readonly readReplicas?: Parameters<StageOperations['monitorReplicas']>[0];
  readonly crossRegionReplica?: Parameters<StageOperations['monitorCrossRegionReplica']>[0];
  readonly cache?: CachedTier;
  readonly workers?: QueueWorkers;
  readonly distributionId?: string;
}

/**
 * Alarms that something is broken, a dashboard, and the signals that the stack is outgrowing its
 * architecture, combined into one alarm with `advice`. The alarm address is the prop, else the
 * context key `alarmEmail`, in every stack alike.
 */
export function operationsLayer(
  scope: Construct,
  settings: { readonly alarmEmail?: string; readonly outgrowThresholds?: OutgrowThresholds },
  tiers: MonitoredTiers,
  advice: NextStageAdvice,
): StageOperations {
  const operations = new StageOperations(scope, 'Operations', {
    alarmEmail: settings.alarmEmail ?? readString(scope.node, 'alarmEmail'),
    outgrowThresholds: settings.outgrowThresholds,
  });
  if (tiers.server) operations.monitorServer(tiers.server);
  if (tiers.web) operations.monitorFleet(tiers.web);
  if (tiers.database) operations.monitorDatabase(tiers.database);
  if (tiers.readReplicas) operations.monitorReplicas(tiers.readReplicas);
  if (tiers.crossRegionReplica) operations.monitorCrossRegionReplica(tiers.crossRegionReplica);
  if (tiers.cache) operations.monitorCache(tiers.cache);
  if (tiers.workers) operations.monitorQueue(tiers.workers);
  if (tiers.distributionId) operations.monitorDistribution(tiers.distributionId);
  operations.adviseNextStage(advice);
  return operations;
}
