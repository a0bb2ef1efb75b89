/**
 * The operations layer of every stack: alarms that something is broken, a dashboard, and the signals
 * that the stack is outgrowing its architecture.
 */
import { Construct } from 'constructs';
import { CachedTier } from '../../constructs/cached-tier';
import { IDenormalizedStore } from '../../constructs/denormalized-store';
import { LoadBalancedTier } from '../../constructs/load-balanced-tier';
import { QueueWorkers } from '../../constructs/queue-workers';
import { ServiceTier } from '../../constructs/service-tier';
import { ShardedDb } from '../../constructs/sharded-db';
import { NextStageAdvice, OutgrowThresholds, StageOperations } from '../../constructs/stage-operations';
import { readString } from '../context';

/** What the operations layer watches: whichever tiers the stack has. */
export interface MonitoredTiers {
  readonly server?: Parameters<StageOperations['monitorServer']>[0];
  readonly web?: LoadBalancedTier;
  readonly database?: Parameters<StageOperations['monitorDatabase']>[0];
  readonly readReplicas?: Parameters<StageOperations['monitorReplicas']>[0];
  readonly crossRegionReplica?: Parameters<StageOperations['monitorCrossRegionReplica']>[0];
  readonly shardReplicas?: Parameters<StageOperations['monitorShardReplicas']>[0];
  readonly cache?: CachedTier;
  readonly workers?: QueueWorkers;
  readonly store?: IDenormalizedStore;
  readonly shards?: ShardedDb;
  readonly services?: ServiceTier[];
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
  if (tiers.shardReplicas) operations.monitorShardReplicas(tiers.shardReplicas);
  if (tiers.cache) operations.monitorCache(tiers.cache);
  if (tiers.workers) operations.monitorQueue(tiers.workers);
  if (tiers.store) operations.monitorStore(tiers.store);
  if (tiers.shards) operations.monitorShards(tiers.shards);
  tiers.services?.forEach((service) => operations.monitorService(service));
  if (tiers.distributionId) operations.monitorDistribution(tiers.distributionId);
  operations.adviseNextStage(advice);
  return operations;
}
