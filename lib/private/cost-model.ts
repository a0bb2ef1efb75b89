/**
 * What a synthesized template costs a month before any traffic, at on-demand list prices in
 * us-east-1 (730 hours a month), as the README's cost notes add them up. Every resource type must
 * be priced or named as free before traffic, so a new chargeable resource cannot slip in unpriced.
 *
 * The one price table of the library. Sources: the AWS pricing pages of EC2, EBS, VPC (public IPv4,
 * NAT gateway, interface endpoints), Elastic Load Balancing, RDS for PostgreSQL, ElastiCache,
 * Secrets Manager, KMS, AWS WAF and CloudWatch, us-east-1 on-demand, as of 2026-11 (recorded here
 * offline, from the prices these pages listed when the stages were sized; check them before you
 * budget). `StageStack.estimatedMonthlyCost` and the README's stage table (`npm run cost-table`) use it.
 */

import { CfnResource, Stack, Stage } from 'aws-cdk-lib/core';
import { IConstruct } from 'constructs';
import { ScaleStagesError } from './errors';

const HOURS = 730;

/** EC2 on-demand, Linux, per hour. */
const EC2_HOURLY: Record<string, number> = {
  't4g.nano': 0.0042,
  't4g.micro': 0.0084,
  't4g.small': 0.0168,
  't4g.medium': 0.0336,
  'm7g.medium': 0.0408,
  'm7g.large': 0.0816,
};
/** RDS for PostgreSQL single-AZ, per hour (Multi-AZ doubles it). */
const RDS_HOURLY: Record<string, number> = {
  'db.t4g.micro': 0.016,
  'db.t4g.small': 0.032,
  'db.t4g.medium': 0.065,
  'db.m7g.large': 0.168,
  'db.m7g.xlarge': 0.336,
};
/** ElastiCache for Valkey, per node-hour (20% below Redis OSS's $0.065 and $0.158). */
const CACHE_HOURLY: Record<string, number> = { 'cache.t4g.medium': 0.052, 'cache.m7g.large': 0.1264 };
/** CloudWatch, per standard-resolution alarm metric a month (a metric math alarm counts each metric). */
const ALARM_METRIC = 0.1;
/**
 * CloudWatch, per composite alarm a month. A dashboard is $3 a month beyond the 3 that CloudWatch's
 * always-free tier gives every account, so one stage's dashboard counts as free.
 */
const COMPOSITE_ALARM = 0.5;
const GP3_PER_GIB = 0.08;
const RDS_GP3_PER_GIB = 0.115;
const PUBLIC_IPV4 = 0.005 * HOURS;
const ROOT_VOLUME_GIB = 8;

/** Types that cost nothing until they are used (requests, bytes, invocations, snapshots). */
const FREE_BEFORE_TRAFFIC = new Set([
  'AWS::AutoScaling::ScalingPolicy',
  'AWS::AutoScaling::ScheduledAction',
  'AWS::Backup::BackupPlan',
  'AWS::Backup::BackupSelection',
  'AWS::Backup::BackupVault',
  'AWS::CDK::Metadata',
  // A release's wait condition: a CloudFormation resource with no charge of its own.
  'AWS::CloudFormation::WaitCondition',
  'AWS::CloudFormation::WaitConditionHandle',
  'AWS::CloudFront::Distribution',
  'AWS::CloudFront::Function',
  // Billed per read from a function and per API call; nothing while idle.
  'AWS::CloudFront::KeyValueStore',
  'AWS::CloudFront::OriginAccessControl',
  'AWS::CloudFront::VpcOrigin',
  'AWS::CloudWatch::Dashboard',
  // On demand: billed per request, per GB stored and per GB of point-in-time backup; nothing while empty.
  'AWS::DynamoDB::GlobalTable',
  'AWS::EC2::FlowLog',
  'AWS::EC2::InternetGateway',
  'AWS::EC2::LaunchTemplate',
  'AWS::EC2::Route',
  'AWS::EC2::RouteTable',
  'AWS::EC2::SecurityGroup',
  'AWS::EC2::SecurityGroupEgress',
  'AWS::EC2::SecurityGroupIngress',
  'AWS::EC2::Subnet',
  'AWS::EC2::SubnetRouteTableAssociation',
  'AWS::EC2::VPC',
  'AWS::EC2::VPCGatewayAttachment',
  'AWS::EC2::VolumeAttachment',
  'AWS::ElastiCache::ParameterGroup',
  'AWS::ElastiCache::SubnetGroup',
  'AWS::ElasticLoadBalancingV2::Listener',
  'AWS::ElasticLoadBalancingV2::ListenerRule',
  'AWS::ElasticLoadBalancingV2::TargetGroup',
  'AWS::IAM::InstanceProfile',
  'AWS::IAM::Policy',
  'AWS::IAM::Role',
  'AWS::Lambda::Function',
  'AWS::Lambda::LayerVersion',
  'AWS::Lambda::Permission',
  'AWS::Logs::LogGroup',
  'AWS::RDS::DBParameterGroup',
  'AWS::RDS::DBSubnetGroup',
  'AWS::Route53::RecordSet',
  'AWS::S3::Bucket',
  'AWS::S3::BucketPolicy',
  'AWS::SNS::Subscription',
  'AWS::SNS::Topic',
  'AWS::SNS::TopicPolicy',
  'AWS::SQS::Queue',
  'AWS::SQS::QueuePolicy',
  // A standard parameter: no charge to store it or for standard throughput.
  'AWS::SSM::Parameter',
  // A Run Command document: no charge to store it; commands on EC2 instances cost nothing either.
  'AWS::SSM::Document',
  'AWS::Scheduler::Schedule',
  'AWS::SecretsManager::ResourcePolicy',
  'AWS::SecretsManager::RotationSchedule',
  'AWS::SecretsManager::SecretTargetAttachment',
  'AWS::Serverless::Application',
  'AWS::WAFv2::LoggingConfiguration',
  'Custom::AWS',
  'Custom::CDKBucketDeployment',
  'Custom::LogRetention',
  'Custom::S3BucketNotifications',
  'Custom::StageGuard',
  'Custom::VpcRestrictDefaultSG',
]);

interface Resource {
  readonly Type: string;
  readonly Properties?: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
}
export interface PricedTemplate {
  readonly Resources: Record<string, Resource>;
}

/**
 * EC2's normalization factor of each instance size: within a family, on-demand Linux prices are in
 * these proportions (EC2 User Guide, "Instance size flexibility for Reserved Instances"), so one listed
 * size of a family prices the others. RDS and ElastiCache sizes follow the same ladder.
 */
const SIZE_FACTOR: Record<string, number> = {
  nano: 0.25,
  micro: 0.5,
  small: 1,
  medium: 2,
  large: 4,
  xlarge: 8,
  '2xlarge': 16,
  '4xlarge': 32,
  '8xlarge': 64,
  '12xlarge': 96,
  '16xlarge': 128,
  '24xlarge': 192,
  '48xlarge': 384,
};

/**
 * The hourly price of `type` (such as `m7g.xlarge` or `db.m7g.2xlarge`): listed, or scaled from a
 * listed size of its family. Fails with the type and the families it prices otherwise.
 */
function hourly(table: Record<string, number>, type: string, what: string): number {
  if (type in table) return table[type];
  const family = type.slice(0, type.lastIndexOf('.'));
  const factor = SIZE_FACTOR[type.slice(type.lastIndexOf('.') + 1)];
  const listed = Object.keys(table).find((t) => t.startsWith(`${family}.`));
  if (listed && factor) return (table[listed] / SIZE_FACTOR[listed.slice(family.length + 1)]) * factor;
  const families = [...new Set(Object.keys(table).map((t) => t.slice(0, t.lastIndexOf('.'))))];
  throw new ScaleStagesError(
    `the cost estimate has no list price for ${what} '${type}': it prices the families ${families.join(', ')} in sizes ${Object.keys(SIZE_FACTOR).join(', ')}. Look the type up on the AWS pricing page, or pick a priced family for the estimate.`,
  );
}

/** The monthly cost of one resource before traffic, in US dollars. */
function monthly(id: string, r: Resource, template: PricedTemplate): number {
  const p = r.Properties ?? {};
  switch (r.Type) {
    case 'AWS::EC2::Instance':
      return hourly(EC2_HOURLY, p.InstanceType, 'instance type') * HOURS + ROOT_VOLUME_GIB * GP3_PER_GIB;
    case 'AWS::AutoScaling::AutoScalingGroup': {
      const launchTemplate = template.Resources[p.LaunchTemplate.LaunchTemplateId.Ref];
      const type = launchTemplate.Properties!.LaunchTemplateData.InstanceType;
      const server = hourly(EC2_HOURLY, type, 'instance type') * HOURS + ROOT_VOLUME_GIB * GP3_PER_GIB;
      return Number(p.MinSize) * server;
    }
    case 'AWS::EC2::Volume':
      return p.Size * GP3_PER_GIB;
    case 'AWS::EC2::EIP':
      return PUBLIC_IPV4;
    case 'AWS::EC2::NatGateway':
      return 0.045 * HOURS;
    case 'AWS::EC2::VPCEndpoint':
      return p.VpcEndpointType === 'Interface' ? 0.01 * HOURS * p.SubnetIds.length : 0;
    case 'AWS::ElasticLoadBalancingV2::LoadBalancer':
      return 0.0225 * HOURS + (p.Scheme === 'internal' ? 0 : PUBLIC_IPV4 * p.Subnets.length);
    case 'AWS::RDS::DBInstance': {
      const copies = p.MultiAZ ? 2 : 1;
      const storage = Number(p.AllocatedStorage ?? 20) * RDS_GP3_PER_GIB;
      return copies * (hourly(RDS_HOURLY, p.DBInstanceClass, 'database class') * HOURS + storage);
    }
    case 'AWS::ElastiCache::ReplicationGroup':
      return hourly(CACHE_HOURLY, p.CacheNodeType, 'cache node type') * HOURS * p.NumCacheClusters;
    case 'AWS::SecretsManager::Secret':
      // A replica secret in another region is billed as a secret of its own.
      return 0.4 * (1 + (p.ReplicaRegions?.length ?? 0));
    case 'AWS::WAFv2::WebACL':
      return 5 + 1 * p.Rules.length;
    case 'AWS::KMS::Key':
      return 1;
    case 'AWS::CloudWatch::CompositeAlarm':
      return COMPOSITE_ALARM;
    case 'AWS::CloudWatch::Alarm':
      return (
        ALARM_METRIC *
        (p.Metrics ? p.Metrics.filter((m: { MetricStat?: unknown }) => m.MetricStat).length : 1)
      );
    default:
      if (FREE_BEFORE_TRAFFIC.has(r.Type)) return 0;
      // A library bug, not a user's: every type the library creates is priced or named free here.
      throw new Error(
        `${id}: no price for ${r.Type}; price it or name it free before traffic in lib/private/cost-model.ts`,
      );
  }
}

/** The monthly cost of templates (a stage's stacks) before traffic, in US dollars. */
export function monthlyCost(...templates: PricedTemplate[]): number {
  let total = 0;
  for (const template of templates) {
    for (const [id, r] of Object.entries(template.Resources)) total += monthly(id, r, template);
  }
  return Math.round(total * 100) / 100;
}

/** A stack's synthesized template (the app is synthesized once, then the assembly is reused). */
export function templateOf(stack: Stack): PricedTemplate {
  const stage = Stage.of(stack);
  if (!stage) throw new ScaleStagesError('the stack is not in an app, so it cannot be synthesized.');
  return stage.synth().getStackArtifact(stack.artifactId).template as PricedTemplate;
}

/** The resources of a construct's subtree, priced in its synthesized stack. */
export function subtreeCost(scope: IConstruct): number {
  const stack = Stack.of(scope);
  const template = templateOf(stack);
  let total = 0;
  for (const resource of scope.node.findAll().filter((c): c is CfnResource => CfnResource.isCfnResource(c))) {
    const id = stack.resolve(resource.logicalId) as string; // with any override of the logical id
    // The whole template goes along: an Auto Scaling group is priced by its launch template.
    if (template.Resources[id]) total += monthly(id, template.Resources[id], template);
  }
  return Math.round(total * 100) / 100;
}
