import { CfnResource, Stack, Token, Validations } from 'aws-cdk-lib/core';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elasticache from 'aws-cdk-lib/aws-elasticache';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';

/**
 * The library's position on cdk-nag's NIST 800-53 rev 5 pack, in one place: every finding the
 * pack reports on what the library builds, with the reason it is left as it is. The compliance notes
 * (docs/compliance.md) list the same rules; a test keeps the two in step.
 *
 * Never acknowledged, because the library fixes them at every stage: unrotated secrets
 * (SecretsManagerRotationEnabled), missing RDS log exports (RDSLoggingEnabled), load balancers
 * without deletion protection (ELBDeletionProtectionEnabled). The HTTP and certificate rules of
 * load balancers are acknowledged only for internal ones, and the WAF rule only where an edge web
 * ACL guards the distribution that is the load balancer's only way in.
 */
export interface NistAcknowledgement {
  /** The rule, without the `NIST.800.53.R5-` prefix. */
  readonly rule: string;
  /** Why the finding stays. */
  readonly reason: string;
  /** Which resources it covers. */
  readonly appliesTo: (resource: CfnResource, stack: Stack) => boolean;
}

const isInternalLoadBalancer = (r: CfnResource) =>
  r instanceof elbv2.CfnLoadBalancer && r.scheme === 'internal';
/** A listener of an internal load balancer of the same stack. */
const isInternalListener = (r: CfnResource, stack: Stack) => {
  if (!(r instanceof elbv2.CfnListener)) return false;
  const { Ref: loadBalancerId } = stack.resolve(r.loadBalancerArn) as { Ref?: string };
  return stack.node
    .findAll()
    .some(
      (c) =>
        isInternalLoadBalancer(c as CfnResource) && stack.getLogicalId(c as CfnResource) === loadBalancerId,
    );
};
const isReadReplica = (r: CfnResource) =>
  r instanceof rds.CfnDBInstance && r.sourceDbInstanceIdentifier !== undefined;
/** A bucket that receives access logs: it logs nowhere itself. */
const isLogBucket = (r: CfnResource) => r instanceof s3.CfnBucket && r.loggingConfiguration === undefined;
/** A function of a deploy-time handler (aws-cdk-lib's) or a rotation function, never on the request path. */
const isLambda = (r: CfnResource) => r instanceof lambda.CfnFunction;

export const NIST_800_53_R5_ACKNOWLEDGEMENTS: readonly NistAcknowledgement[] = [
  {
    rule: 'VPCDefaultSecurityGroupClosed',
    reason:
      "aws-cdk-lib's restrictDefaultSecurityGroup custom resource removes the default security group's rules at deploy time; the rule reads only the template.",
    appliesTo: (r) => r instanceof ec2.CfnVPC,
  },
  {
    rule: 'VPCSubnetAutoAssignPublicIpDisabled',
    reason:
      'Only the public subnets map public addresses; they hold the NAT and, at stages 1 to 100, the single server (which has an Elastic IP). The app and data subnets never do.',
    appliesTo: (r) => r instanceof ec2.CfnSubnet && r.mapPublicIpOnLaunch === true,
  },
  {
    rule: 'VPCNoUnrestrictedRouteToIGW',
    reason:
      "The public subnets' default route to the internet gateway is what makes them public: the NAT's and the stage-1 server's outbound traffic uses it. No app port is open to the world.",
    appliesTo: (r) => r instanceof ec2.CfnRoute && r.gatewayId !== undefined,
  },
  {
    rule: 'IAMNoInlinePolicy',
    reason:
      "aws-cdk-lib's grants write least-privilege inline policies scoped to one role each; a managed policy would be reusable by roles it was not written for.",
    appliesTo: (r) => r instanceof iam.CfnPolicy || (r instanceof iam.CfnRole && r.policies !== undefined),
  },
  {
    rule: 'CloudWatchLogGroupEncrypted',
    reason:
      'CloudWatch Logs encrypts every log group at rest with keys it manages; a customer-managed KMS key would add $1 a month per key and key administration.',
    appliesTo: (r) => r instanceof logs.CfnLogGroup,
  },
  {
    rule: 'SecretsManagerUsingKMSKey',
    reason:
      'Secrets are encrypted with the AWS-managed aws/secretsmanager key; a customer-managed key adds $1 a month and a key policy to keep right.',
    appliesTo: (r) => r instanceof secretsmanager.CfnSecret,
  },
  {
    rule: 'LambdaConcurrency',
    reason:
      'The functions run at deploy time (aws-cdk-lib handlers) or once per rotation; reserving concurrency would take it from the account without protecting anything.',
    appliesTo: isLambda,
  },
  {
    rule: 'LambdaDLQ',
    reason:
      'CloudFormation and Secrets Manager invoke these functions synchronously and report their failures themselves (a failed deploy step, a failed rotation); a dead-letter queue would hold nothing.',
    appliesTo: isLambda,
  },
  {
    rule: 'LambdaInsideVPC',
    reason:
      'The functions call AWS APIs only (S3, EC2, CloudWatch Logs, Secrets Manager, ElastiCache, SSM); outside the VPC they need no NAT or interface endpoints. The RDS rotation function, which connects to the database, runs in its subnets.',
    appliesTo: isLambda,
  },
  {
    rule: 'S3BucketLoggingEnabled',
    reason: 'A bucket that receives access logs does not log its own access: that would log the logging.',
    appliesTo: isLogBucket,
  },
  {
    rule: 'S3BucketVersioningEnabled',
    reason:
      'Access logs are written once and expire by lifecycle rule; versions would only keep deleted logs.',
    appliesTo: isLogBucket,
  },
  {
    rule: 'S3BucketReplicationEnabled',
    reason:
      'Cross-region replication of buckets is the multi-region stage (10m); until then buckets are versioned and retained.',
    appliesTo: (r) => r instanceof s3.CfnBucket,
  },
  {
    rule: 'S3DefaultEncryptionKMS',
    reason:
      'SSE-S3 encrypts every object; load balancer access logs accept no other encryption, and CloudFront reads the web and media buckets through origin access control without a KMS key policy.',
    appliesTo: (r) => r instanceof s3.CfnBucket,
  },
  {
    rule: 'EC2RestrictedCommonPorts',
    reason:
      "The database's port is a deploy-time value (the endpoint's port, 5432) that the rule cannot read; it is open only to the app tier's security groups, never to an address range.",
    appliesTo: (r) => r instanceof ec2.CfnSecurityGroupIngress && Token.isUnresolved(r.fromPort),
  },
  {
    rule: 'EC2RestrictedSSH',
    reason:
      "The database's port is a deploy-time value (the endpoint's port, 5432) that the rule cannot read; no security group opens SSH (22), and Session Manager replaces it.",
    appliesTo: (r) => r instanceof ec2.CfnSecurityGroupIngress && Token.isUnresolved(r.fromPort),
  },
  {
    rule: 'RDSEnhancedMonitoringEnabled',
    reason:
      "RDS's standard CloudWatch metrics cover CPU, memory, storage and connections; enhanced monitoring (per-second OS metrics) costs log ingestion and can be turned on through the database escape hatch.",
    appliesTo: (r) => r instanceof rds.CfnDBInstance,
  },
  {
    rule: 'RDSInBackupPlan',
    reason:
      'RDS automated backups (7 to 35 days of point-in-time recovery) and a final snapshot on deletion protect the data; an AWS Backup plan would copy what RDS already keeps.',
    appliesTo: (r) => r instanceof rds.CfnDBInstance,
  },
  {
    rule: 'RDSMultiAZSupport',
    reason:
      'Single-AZ is the cost-sane choice for stages 10 and 100; the database becomes Multi-AZ in place at stage 1k. A read replica is never Multi-AZ: replicas are spread over the zones instead.',
    appliesTo: (r) => r instanceof rds.CfnDBInstance && r.multiAz !== true,
  },
  {
    rule: 'RDSInstanceDeletionProtectionEnabled',
    reason:
      'A read replica holds no data of its own; without deletion protection a lower replica count can remove it.',
    appliesTo: isReadReplica,
  },
  {
    rule: 'RDSStorageEncrypted',
    reason:
      'A read replica inherits the storage encryption and key of its encrypted primary; CloudFormation rejects StorageEncrypted beside SourceDBInstanceIdentifier.',
    appliesTo: isReadReplica,
  },
  {
    rule: 'ElastiCacheRedisClusterAutomaticBackup',
    reason:
      'The cache holds sessions and cached copies that the database can rebuild; it keeps 3 days of daily snapshots by default (snapshotRetention, up to 35), and 15 days would only cost more.',
    appliesTo: (r) => r instanceof elasticache.CfnReplicationGroup,
  },
  {
    rule: 'ALBHttpToHttpsRedirection',
    reason:
      'The load balancer is internal: viewers reach CloudFront over HTTPS, and CloudFront reaches the load balancer through a VPC origin inside the AWS network. Give loadBalancerCertificate and loadBalancerDomainName for HTTPS on that hop too.',
    appliesTo: isInternalListener,
  },
  {
    rule: 'ELBv2ACMCertificateRequired',
    reason:
      'The load balancer is internal: viewers get HTTPS with a certificate at CloudFront, which reaches the load balancer through a VPC origin. Give loadBalancerCertificate for a certificate on that hop too.',
    appliesTo: isInternalListener,
  },
  {
    rule: 'ALBWAFEnabled',
    reason:
      'The load balancer is internal and reached only through CloudFront, whose edge web ACL (EdgeFirewall) inspects every request first; a regional web ACL would inspect the same requests again for $5 a month more.',
    appliesTo: (r, stack) => isInternalLoadBalancer(r) && hasEdgeWebAcl(stack),
  },
  {
    rule: 'CloudWatchAlarmAction',
    reason:
      'An outgrow signal notifies no one by itself: the composite "time for the next stage" alarm it feeds does, once, whichever signal fires.',
    appliesTo: (r, stack) => r instanceof cloudwatch.CfnAlarm && feedsCompositeAlarm(r, stack),
  },
];

/** Whether a composite alarm of the stack names this alarm in its rule. */
function feedsCompositeAlarm(alarm: CfnResource, stack: Stack): boolean {
  const id = stack.getLogicalId(alarm);
  return stack.node
    .findAll()
    .some(
      (c) =>
        c instanceof cloudwatch.CfnCompositeAlarm &&
        JSON.stringify(stack.resolve(c.alarmRule)).includes(`"${id}"`),
    );
}

/** Whether a distribution of the stack has a web ACL. */
function hasEdgeWebAcl(stack: Stack): boolean {
  return stack.node
    .findAll()
    .some(
      (c) =>
        c instanceof cloudfront.CfnDistribution &&
        (stack.resolve(c.distributionConfig) as { webAclId?: unknown }).webAclId !== undefined,
    );
}

/**
 * Acknowledges, on each resource the stack holds now, the NIST 800-53 R5 findings the library
 * leaves with its reason. Resources added later (by the user) are not covered.
 */
export function acknowledgeNist80053R5(stack: Stack): void {
  for (const construct of stack.node.findAll()) {
    // A stack's own resources: not those of stacks nested in it (a pipeline's stage), which acknowledge theirs.
    if (!CfnResource.isCfnResource(construct) || Stack.of(construct) !== stack) continue;
    for (const { rule, reason, appliesTo } of NIST_800_53_R5_ACKNOWLEDGEMENTS) {
      if (appliesTo(construct, stack)) {
        Validations.of(construct).acknowledge({ id: `NIST.800.53.R5-${rule}`, reason });
      }
    }
  }
}
