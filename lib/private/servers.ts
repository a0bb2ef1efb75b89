import { Annotations, Validations } from 'aws-cdk-lib/core';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import { IConstruct } from 'constructs';
import type { AppSource } from '../app-source';
import { AppEnvironment, ENV_FILE } from './app-environment';
import { compressedShellScript, readAsset } from './assets';
import { downloadRdsCaCommand, RDS_CA_FILE } from './rds-ca';
import { RELEASE_DIR } from './releases';
import { ScaleStagesError } from './errors';

/** Whether an instance type runs on AWS Graviton (ARM). */
export function graviton(instanceType: ec2.InstanceType): boolean {
  return instanceType.architecture === ec2.InstanceArchitecture.ARM_64;
}

/**
 * Checks that an EC2, RDS or ElastiCache instance type is a known family and size of aws-cdk-lib's
 * `InstanceClass` and `InstanceSize` (written without the service's `db.` or `cache.` prefix), then
 * warns when it is not Graviton.
 */
export function checkInstanceType(
  scope: IConstruct,
  instanceType: ec2.InstanceType,
  prop = 'instanceType',
): void {
  const name = instanceType.toString();
  const prefix = /^(db|cache)\./.exec(name)?.[1];
  if (prefix) {
    throw new ScaleStagesError(
      `${prop} takes the instance class without the '${prefix}.' prefix (the construct adds it); got '${name}', give '${name.slice(prefix.length + 1)}'.`,
      scope,
    );
  }
  const [family, size, extra] = name.split('.');
  const families = Object.values(ec2.InstanceClass) as string[];
  const sizes = Object.values(ec2.InstanceSize) as string[];
  if (extra !== undefined || !families.includes(family) || !sizes.includes(size)) {
    throw new ScaleStagesError(
      `${prop} must be an instance type '<family>.<size>' that EC2 knows, such as 't4g.micro' or 'm7g.large'; got '${name}' (${
        families.includes(family) ? `sizes: ${sizes.join(', ')}` : `'${family}' is not an instance family`
      }).`,
      scope,
    );
  }
  if (!graviton(instanceType)) {
    Annotations.of(scope).addWarningV2(
      'cdk-scale-stages:notGraviton',
      `${prop} ${instanceType} is not Graviton; a t4g or m7g type costs about 20% less for the same work.`,
    );
  }
}

/**
 * The latest Amazon Linux 2023 image for the instance type's architecture, looked up by EC2 when the
 * server launches (`resolve:ssm:`). The template holds the parameter name, not an AMI id, so a new
 * AMI release never replaces a running server on the next deploy.
 */
export function serverImage(instanceType: ec2.InstanceType): ec2.IMachineImage {
  const arch = graviton(instanceType) ? 'arm64' : 'x86_64';
  return ec2.MachineImage.resolveSsmParameterAtLaunch(
    `/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-${arch}`,
  );
}

/** An encrypted 8 GiB gp3 root volume: app servers keep nothing on it. */
export function encryptedRootVolume(): ec2.BlockDevice {
  return {
    deviceName: '/dev/xvda',
    volume: ec2.BlockDeviceVolume.ebs(8, { encrypted: true, volumeType: ec2.EbsDeviceVolumeType.GP3 }),
  };
}

/**
 * Limits an app server's outbound traffic to HTTPS (AWS APIs, packages, CloudFormation signals)
 * and HTTP (package mirrors); data tiers open their own ports.
 */
export function allowWebEgress(securityGroup: ec2.SecurityGroup): void {
  securityGroup.addEgressRule(
    ec2.Peer.anyIpv4(),
    ec2.Port.tcp(443),
    'HTTPS to AWS APIs and package repositories',
  );
  securityGroup.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(80), 'HTTP to package mirrors');
}

/**
 * The first commands of every server's user data: stop at the first failure, and install the
 * CloudFormation helper scripts (`cfn-signal`), which the Amazon Linux 2023 AMI does not carry
 * (amazonlinux/amazon-linux-2023 issue 768). The install is retried for about a minute: until it
 * succeeds, the exit trap has no `cfn-signal` to report a failure with, and CloudFormation would
 * wait out its whole timeout for a passing repository glitch.
 */
export function prepareServerCommands(): string[] {
  return [
    'set -euo pipefail',
    'for attempt in 1 2 3 4 5; do dnf install -y aws-cfn-bootstrap && break; [ "$attempt" -lt 5 ] || exit 1; sleep 15; done',
  ];
}

/**
 * Writes the environment file, runs `beforeApp` (which may read it), starts the app, and exits
 * non-zero unless it becomes healthy.
 */
export function startAppCommands(
  environment: AppEnvironment,
  app: AppSource,
  beforeApp: string[] = [],
): string[] {
  return [
    ...environment.writeCommands(),
    ...beforeApp,
    ...releasePhaseCommands(app),
    ...app.startCommands,
    `export APP_HEALTH_URL='http://127.0.0.1:${app.port}${app.healthCheckPath}'`,
    // In a subshell: its `exit` ends the wait, not the commands that follow.
    `(\n${readAsset('scripts/wait-for-app.sh')})`,
  ];
}

/** Where a server keeps the release phase's commands (`AppSource` `migrations`), beside its releases. */
export const MIGRATE_SCRIPT = `${RELEASE_DIR}/migrate.sh`;

/**
 * The release phase (`AppSource` `migrations`): the PostgreSQL client, then the migrations, run once
 * per release by whichever server of the release gets there first (assets/scripts/run-migrations.sh).
 * Nothing without migrations.
 */
function releasePhaseCommands(app: AppSource): string[] {
  if (app.migrations.length === 0) return [];
  return [
    'dnf install -y -q postgresql16',
    downloadRdsCaCommand('release phase'),
    `mkdir -p ${RELEASE_DIR}`,
    `cat > ${MIGRATE_SCRIPT} <<'MIGRATE'\n${app.migrations.join('\n')}\nMIGRATE`,
    [
      `(set -a; . ${ENV_FILE}; set +a`,
      `export RELEASE_ID='${app.releaseId}' MIGRATE_SCRIPT='${MIGRATE_SCRIPT}' DATABASE_CA_FILE='${RDS_CA_FILE}'`,
      compressedShellScript('scripts/run-migrations.sh'),
      ')',
    ].join('\n'),
  ];
}

/** SSM Session Manager access, the acknowledged way. */
export function acknowledgeSessionManagerPolicy(role: iam.IRole): void {
  Validations.of(role).acknowledge({
    id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]',
    reason:
      'The AWS-maintained policy is the documented least privilege for SSM Session Manager, which replaces SSH.',
  });
}

/**
 * What a tier does with its app before the servers boot: ships an app of `AppSource.fromAsset` as an
 * S3 asset, readable by `grantee`, at APP_ASSET_URL in their environment; and warns of a container
 * image named by a tag that can move (`latest`, or none), which a template cannot follow.
 */
export function bindApp(
  scope: IConstruct,
  app: AppSource,
  environment: AppEnvironment,
  grantee: iam.IGrantable,
): void {
  const movingTag = app.containerImage && mutableTag(app.containerImage);
  if (movingTag) {
    Annotations.of(scope).addWarningV2(
      'cdk-scale-stages:mutableImageTag',
      `container image '${app.containerImage}' is named by a tag that can move ('${movingTag}'): pushing it again changes no template, so running servers keep the old image and only servers launched later get the new one. Name it by digest ('<repository>@sha256:<digest>') or by a tag you never push again ('shop:1.4.2').`,
    );
  }
  if (!app.assetPath) return;
  const asset = new s3assets.Asset(scope, 'AppAsset', { path: app.assetPath });
  // The one object, which `aws s3 cp` reads (HeadObject and GetObject both need s3:GetObject), rather
  // than grantRead's wildcards on the whole asset bucket.
  grantee.grantPrincipal.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: ['s3:GetObject'],
      resources: [asset.bucket.arnForObjects(asset.s3ObjectKey)],
    }),
  );
  environment.add('APP_ASSET_URL', asset.s3ObjectUrl);
}

/** The tag of an image reference when it can move: `latest`, or `latest` implied by no tag; no digest. */
function mutableTag(image: string): string | undefined {
  if (image.includes('@')) return undefined;
  const lastPart = image.slice(image.lastIndexOf('/') + 1);
  const tag = lastPart.includes(':') ? lastPart.slice(lastPart.indexOf(':') + 1) : undefined;
  if (tag === undefined) return 'latest, by default';
  return tag === 'latest' ? tag : undefined;
}
