/**
 * The data layers: the RDS database and its read replicas, stage 10m's cross-region replica of it, and
 * the cache; each in the data subnets and connected to the app tiers.
 */
import { CfnOutput, Fn, Size, Stack } from 'aws-cdk-lib/core';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct, IConstruct } from 'constructs';
import { IAppTier } from '../../app-tier';
import { CachedTier } from '../../constructs/cached-tier';
import { CrossRegionReplica } from '../../constructs/cross-region-replica';
import { ReplicatedDb } from '../../constructs/replicated-db';
import { SeparatedDb } from '../../constructs/separated-db';
import { ShardedDb } from '../../constructs/sharded-db';
import { StageNetwork } from '../../constructs/stage-network';
import { addShardEnvironment } from '../../private/shards';
import { POSTGRES_VERSIONS, SecondaryRegionSizing, StageSizing } from '../stage-table';

/** The primary's output with its database's instance identifier (`SecondaryRegionStack` reads it). */
export const PRIMARY_DATABASE_IDENTIFIER_OUTPUT = 'DatabaseInstanceIdentifier';
/** The primary's output with its database secret's name and suffix (`SecondaryRegionStack` reads it). */
export const PRIMARY_DATABASE_SECRET_NAME_OUTPUT = 'DatabaseSecretNameWithSuffix';

/**
 * The RDS database in the data subnets, connected to the app tiers, with the outputs that say where it
 * is (stage 10m's regions read two of them whole).
 */
export function databaseLayer(
  stack: Stack,
  network: StageNetwork,
  sizing: NonNullable<StageSizing['database']>,
  settings: { readonly databaseInstanceType?: ec2.InstanceType; readonly databaseAllocatedStorage?: Size },
  appTiers: IAppTier[],
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
  appTiers.forEach((tier) => database.connectApp(tier));
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

/** Read replicas of the database, connected to the app tiers as their readers. */
export function readReplicasLayer(
  stack: Stack,
  database: SeparatedDb,
  sizing: NonNullable<StageSizing['readReplicas']>,
  settings: {
    readonly databaseReadReplicas?: number;
    readonly databaseReplicaInstanceType?: ec2.InstanceType;
  },
  appTiers: IAppTier[],
): ReplicatedDb {
  const readReplicas = new ReplicatedDb(stack, 'ReadReplicas', {
    primary: database,
    replicas: settings.databaseReadReplicas ?? sizing.count,
    instanceType: settings.databaseReplicaInstanceType ?? new ec2.InstanceType(sizing.instanceType),
  });
  appTiers.forEach((tier) => readReplicas.connectApp(tier));
  new CfnOutput(stack, 'DatabaseReaderEndpoints', {
    description: 'The read replicas, separated by commas (reachable only from the app servers)',
    value: Fn.join(',', readReplicas.readerEndpoints),
  });
  return readReplicas;
}

/** What a secondary region's replicas are built from: its settings and the primary's outputs. */
interface RegionReplicaSource {
  readonly network: StageNetwork;
  readonly sizing: SecondaryRegionSizing['databaseReplica'];
  readonly settings: {
    readonly primaryRegion: string;
    readonly databaseReplicaInstanceType?: ec2.InstanceType;
    readonly databaseName?: string;
  };
  /** Reads one of the primary stack's outputs. */
  readonly primaryOutput: (name: string) => string;
}

/** A cross-region replica of the primary's database named by two of the primary's outputs. */
function regionReplica(
  stack: Stack,
  id: string,
  source: RegionReplicaSource,
  outputs: { readonly identifier: string; readonly secretName: string },
): CrossRegionReplica {
  return new CrossRegionReplica(stack, id, {
    vpc: source.network.vpc,
    vpcSubnets: source.network.dataSubnets,
    sourceInstanceIdentifier: source.primaryOutput(outputs.identifier),
    sourceSecretNameWithSuffix: source.primaryOutput(outputs.secretName),
    sourceRegion: source.settings.primaryRegion,
    engineVersion: POSTGRES_VERSIONS.rds,
    instanceType:
      source.settings.databaseReplicaInstanceType ?? new ec2.InstanceType(source.sizing.instanceType),
    databaseName: source.settings.databaseName,
  });
}

/**
 * Stage 10m's secondary regions: a replica of the primary's database in this region's data subnets,
 * connected to the app tiers.
 */
export function crossRegionReplicaLayer(
  stack: Stack,
  source: RegionReplicaSource,
  appTiers: IAppTier[],
): CrossRegionReplica {
  const replica = regionReplica(stack, 'DatabaseReplica', source, {
    identifier: PRIMARY_DATABASE_IDENTIFIER_OUTPUT,
    secretName: PRIMARY_DATABASE_SECRET_NAME_OUTPUT,
  });
  appTiers.forEach((tier) => replica.connectApp(tier));
  return replica;
}

/**
 * Stage 10m's secondary regions when the primary's database is sharded: a cross-region replica of each
 * shard after the first (the region's `DatabaseReplica` is shard 0's), sized as that replica, and the
 * app tiers given every shard's replica in shard order, as the primary's tiers get the shards.
 */
export function shardReplicasLayer(
  stack: Stack,
  source: RegionReplicaSource,
  firstShard: CrossRegionReplica,
  shards: number,
  tiers: IAppTier[],
): CrossRegionReplica[] {
  const replicas = [firstShard];
  for (let shard = 1; shard < shards; shard++) {
    replicas.push(regionReplica(stack, `Shard${shard}Replica`, source, shardOutputs(shard)));
  }
  for (const tier of tiers) {
    replicas.slice(1).forEach((replica) => replica.allowApp(tier));
    addShardEnvironment(
      tier,
      replicas.map((r) => ({ host: r.endpointAddress, port: r.endpointPort, secretArn: r.secret.secretArn })),
    );
  }
  new CfnOutput(stack, 'ShardReplicaIds', {
    description: 'The replicas of shards 1 and up, comma-separated; the promotion runbook promotes each',
    value: Fn.join(
      ',',
      replicas.slice(1).map((r) => r.instance.ref),
    ),
  });
  new CfnOutput(stack, 'ShardSecretArns', {
    description: 'The replica secrets of shards 1 and up, comma-separated; the runbook makes each standalone',
    value: Fn.join(
      ',',
      replicas.slice(1).map((r) => r.secret.secretArn),
    ),
  });
  return replicas.slice(1);
}

/** What the promotion runbook needs of the cross-region replica. */
export function crossRegionReplicaOutputs(stack: Stack, replica: CrossRegionReplica): void {
  new CfnOutput(stack, 'DatabaseReplicaEndpoint', {
    description: 'The cross-region read replica of the primary database; promote it to take the writes',
    value: replica.endpointAddress,
  });
  new CfnOutput(stack, 'DatabaseReplicaId', {
    description: 'aws rds promote-read-replica --db-instance-identifier <this id> (see the runbook)',
    value: replica.instance.ref,
  });
  new CfnOutput(stack, 'DatabaseSecretArn', {
    description: "The replica of the primary's database secret; the runbook makes it standalone",
    value: replica.secret.secretArn,
  });
}

/** The cache in the data subnets, connected to the app tiers. */
export function cacheLayer(
  scope: Construct,
  network: StageNetwork,
  sizing: NonNullable<StageSizing['cache']>,
  settings: { readonly cacheNodeType?: ec2.InstanceType; readonly cacheReplicas?: number },
  appTiers: IAppTier[],
): CachedTier {
  const cache = new CachedTier(scope, 'Cache', {
    vpc: network.vpc,
    vpcSubnets: network.dataSubnets,
    nodeType: settings.cacheNodeType ?? new ec2.InstanceType(sizing.nodeType),
    replicas: settings.cacheReplicas ?? sizing.replicas,
  });
  appTiers.forEach((tier) => cache.connectApp(tier));
  return cache;
}

/** Where the cache is and its AUTH token, for a team's own tools. */
export function cacheOutputs(stack: Stack, cache: CachedTier): void {
  new CfnOutput(stack, 'CacheEndpoint', {
    description:
      'The Valkey primary endpoint, TLS and AUTH token required (reachable only from the app servers)',
    value: cache.primaryEndpointAddress,
  });
  new CfnOutput(stack, 'CacheSecretArn', {
    description: 'The secret with the cache AUTH token',
    value: cache.authSecret.secretArn,
  });
}

/**
 * The primary's outputs with shard `shard`'s instance identifier and secret name (shard 0's are the
 * database's own), which stage 10m's regions read for their replicas of the shard.
 */
export function shardOutputs(shard: number): { identifier: string; secretName: string } {
  return {
    identifier: `Shard${shard}InstanceIdentifier`,
    secretName: `Shard${shard}SecretNameWithSuffix`,
  };
}

/** A database an app tier connects to: a `SeparatedDb`, or a `CrossRegionReplica` of one. */
export interface IDatabaseLayer {
  connectApp(appTier: IAppTier): void;
}

/**
 * The database split into `shards` (stages 1m and 10m, opt-in): the database stays shard 0, the others
 * are sized as it is (the same class, storage and Multi-AZ), every app tier routes its users' data by the
 * shard map, and the reshard document's name is an output (docs/resharding.md).
 */
export function shardsLayer(
  stack: Stack,
  network: StageNetwork,
  sizing: NonNullable<StageSizing['database']>,
  settings: { readonly databaseAllocatedStorage?: Size },
  database: SeparatedDb,
  shards: number,
  tiers: (IAppTier & IConstruct)[],
): ShardedDb {
  const sharded = new ShardedDb(stack, 'Shards', {
    firstShard: database,
    shards,
    allocatedStorage: settings.databaseAllocatedStorage ?? Size.gibibytes(sizing.storageGiB),
    multiAz: sizing.multiAz,
    secretsManagerEndpoint: network.addSecretsManagerEndpoint(sizing.multiAz ? 2 : 1),
  });
  tiers.forEach((tier) => sharded.connectApp(tier));
  // From the first sharded deploy, so that stage 10m's regions find them before the primary's update.
  sharded.shards.slice(1).forEach((shard, i) => {
    const names = shardOutputs(i + 1);
    new CfnOutput(stack, names.identifier, {
      description: `Shard ${i + 1}'s instance identifier, the source of its cross-region replicas at stage 10m`,
      value: shard.database.instanceIdentifier,
    });
    new CfnOutput(stack, names.secretName, {
      description: `The last part of shard ${i + 1}'s secret ARN, from which stage 10m's regions name its replica secret`,
      value: Fn.select(6, Fn.split(':', shard.secret.secretArn)),
    });
  });
  new CfnOutput(stack, 'ReshardDocumentName', {
    description:
      'The SSM document that runs reshard.sh on an app server: aws ssm send-command --document-name <this>',
    value: sharded.reshardDocument.ref,
  });
  return sharded;
}
