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
  'AWS::DynamoDB::GlobalTable',
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

/**
 * CloudFront VPC origins that an upgrade would change in place. CloudFront refuses to update a VPC
 * origin while a distribution uses it ("CannotUpdateEntityWhileInUse ... HTTP Status Code: 409",
 * https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_UpdateVpcOrigin.html), and a
 * replaced load balancer or instance gives its VPC origin a new ARN, which is such an update: give
 * the VPC origin a new logical id instead, so CloudFormation creates a new one.
 */
export function vpcOriginsUpdatedInPlace(oldTemplate: object, newTemplate: object): string[] {
  const diff = fullDiff(oldTemplate, newTemplate);
  const replaced = new Set<string>();
  const updated: string[] = [];
  diff.resources.forEachDifference((logicalId, change) => {
    if (
      change.changeImpact === ResourceImpact.WILL_REPLACE ||
      change.changeImpact === ResourceImpact.MAY_REPLACE
    ) {
      replaced.add(logicalId);
    }
    if (change.resourceType === 'AWS::CloudFront::VpcOrigin' && change.isUpdate) {
      updated.push(`${logicalId} is updated in place`);
    }
  });
  type VpcOrigin = { Type: string; Properties?: { VpcOriginEndpointConfig?: { Arn?: { Ref?: string } } } };
  const resources = (newTemplate as { Resources: Record<string, VpcOrigin> }).Resources;
  const origins = Object.entries(resources).filter(([, r]) => r.Type === 'AWS::CloudFront::VpcOrigin');
  const existed = (oldTemplate as { Resources: Record<string, unknown> }).Resources;
  for (const [id, origin] of origins) {
    const target = origin.Properties?.VpcOriginEndpointConfig?.Arn?.Ref;
    if (id in existed && target && replaced.has(target)) {
      updated.push(`${id} points at ${target}, which is replaced: its ARN changes under the VPC origin`);
    }
  }
  return updated;
}
