import { Fn } from 'aws-cdk-lib/core';
import type { IAppTier } from '../app-tier';

/**
 * The most shards a sharded database has. Each is a database of its own, billed as one, and adds 22
 * resources to its stack (the database, its secret, rotation and network rules, alarms, outputs): 12 keep
 * stage 10m's primary at about 430 of CloudFormation's 500 resources per stack, with room for the app's
 * own.
 */
export const MAX_SHARDS = 12;

/** How long app servers cache the shard map; reshard.sh waits as long, plus a margin, after each change. */
export const SHARD_MAP_TTL_SECONDS = 10;

/** Where an app tier reaches one shard: a `SeparatedDb`, or a cross-region replica of one. */
export interface ShardEndpoint {
  readonly host: string;
  readonly port: string;
  readonly secretArn: string;
}

/**
 * Hands the app tier every shard in shard order, comma-separated (the app environment refuses quotes,
 * so no JSON): DATABASE_SHARD_HOSTS, DATABASE_SHARD_PORTS and DATABASE_SHARD_SECRET_ARNS, and how long it
 * may cache the shard map, SHARD_MAP_TTL_SECONDS. The same names in every region, so that the app
 * routes alike wherever it runs.
 */
export function addShardEnvironment(appTier: IAppTier, shards: ShardEndpoint[]): void {
  const list = (of: (shard: ShardEndpoint) => string) => Fn.join(',', shards.map(of));
  appTier.addEnvironment(
    'DATABASE_SHARD_HOSTS',
    list((s) => s.host),
  );
  appTier.addEnvironment(
    'DATABASE_SHARD_PORTS',
    list((s) => s.port),
  );
  appTier.addEnvironment(
    'DATABASE_SHARD_SECRET_ARNS',
    list((s) => s.secretArn),
  );
  appTier.addEnvironment('SHARD_MAP_TTL_SECONDS', String(SHARD_MAP_TTL_SECONDS));
}
