import { fullDiff, ResourceImpact } from '@aws-cdk/cloudformation-diff';

/** Resource types that hold data (or, replaced, take data with them). */
export const STATEFUL_TYPES = new Set([
  'AWS::RDS::DBInstance',
  'AWS::RDS::DBCluster',
  'AWS::RDS::DBSubnetGroup',
  'AWS::EC2::Volume',
  'AWS::EC2::Subnet',
  'AWS::S3::Bucket',
  'AWS::SQS::Queue',
  'AWS::ElastiCache::ReplicationGroup',
  'AWS::SecretsManager::Secret',
  'AWS::Backup::BackupVault',
  'AWS::Logs::LogGroup',
  'AWS::KMS::Key',
  'AWS::DynamoDB::Table',
  'AWS::EFS::FileSystem',
]);

/**
 * Properties whose change CloudFormation documents as an in-place update even though the diff
 * engine reports a possible replacement, keyed by resource type.
 */
const IN_PLACE_PROPERTIES: Record<string, string[]> = {
  'AWS::RDS::DBInstance': ['MultiAZ', 'DBInstanceClass', 'AllocatedStorage'],
};

/** One way an upgrade would lose data. */
export interface DataLoss {
  readonly logicalId: string;
  readonly type: string;
  readonly impact: string;
  readonly properties: string[];
}

/**
 * What an upgrade from `oldTemplate` to `newTemplate` would replace or delete among stateful
 * resources. A stateful resource may be removed only if it is retained (DeletionPolicy Retain).
 */
export function dataLossOnUpgrade(oldTemplate: object, newTemplate: object): DataLoss[] {
  const diff = fullDiff(oldTemplate, newTemplate);
  const losses: DataLoss[] = [];
  diff.resources.forEachDifference((logicalId, change) => {
    const type = change.resourceType ?? '';
    if (!STATEFUL_TYPES.has(type)) return;
    if (change.isRemoval) {
      if (change.oldValue?.DeletionPolicy !== 'Retain') {
        losses.push({ logicalId, type, impact: change.changeImpact, properties: [] });
      }
      return;
    }
    if (change.resourceTypeChanged) {
      losses.push({ logicalId, type, impact: change.changeImpact, properties: ['Type'] });
      return;
    }
    const replacing = Object.entries(change.propertyUpdates)
      .filter(
        ([, update]) =>
          update.changeImpact === ResourceImpact.WILL_REPLACE ||
          update.changeImpact === ResourceImpact.MAY_REPLACE,
      )
      .map(([name]) => name)
      .filter((name) => !(IN_PLACE_PROPERTIES[type] ?? []).includes(name));
    if (replacing.length > 0) {
      losses.push({ logicalId, type, impact: change.changeImpact, properties: replacing });
    }
  });
  return losses;
}
