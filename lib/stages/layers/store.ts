/**
 * The store layer of stage 1m onwards: the denormalized read models (the demo app's feed) in DynamoDB,
 * read and written by the fleet and the workers. At stage 10m it is a global table with a replica in
 * every region, so that each region reads and writes it locally.
 */
import { CfnOutput, Stack } from 'aws-cdk-lib/core';
import { IConstruct } from 'constructs';
import { IAppTier } from '../../app-tier';
import { DenormalizedStore, IDenormalizedStore } from '../../constructs/denormalized-store';

/**
 * The store's table name: the primary stack's name and `-store`, so that each region's stack finds its
 * replica by name, with no reference to the primary (which deploys after the regions).
 */
export function storeTableName(primaryStackName: string): string {
  return `${primaryStackName}-store`;
}

/**
 * The store, connected to the app tiers that use it, and its name as an output. `homeRegion`, at stage
 * 10m, is the primary region, which the region-agnostic stack must then deploy to.
 */
export function storeLayer(
  stack: Stack,
  tiers: (IAppTier & IConstruct)[],
  homeRegion?: string,
): DenormalizedStore {
  const store = new DenormalizedStore(stack, 'Store', {
    tableName: storeTableName(stack.stackName),
    homeRegion,
  });
  tiers.forEach((tier) => store.connectApp(tier));
  new CfnOutput(stack, 'StoreTableName', {
    description:
      'The DynamoDB store of denormalized read models (the feed), with a replica in each region at stage 10m',
    value: store.table.tableName,
  });
  return store;
}

/**
 * A secondary region's part of the store layer: the replica the primary's global table keeps in this
 * region, connected to the region's app tiers.
 */
export function regionStoreLayer(
  stack: Stack,
  primaryStackName: string,
  tiers: (IAppTier & IConstruct)[],
): IDenormalizedStore {
  const store = DenormalizedStore.fromTableName(stack, 'Store', storeTableName(primaryStackName));
  tiers.forEach((tier) => store.connectApp(tier));
  return store;
}
