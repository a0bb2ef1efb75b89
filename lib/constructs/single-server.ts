import {
  Aws,
  CfnCondition,
  Duration,
  Fn,
  Lazy,
  RemovalPolicy,
  Size,
  Stack,
  Token,
  Validations,
} from 'aws-cdk-lib/core';
import * as backup from 'aws-cdk-lib/aws-backup';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { AppSource } from '../app-source';
import { IAppTier } from '../app-tier';
import { AppEnvironment } from '../private/app-environment';
import { cloudFrontOriginFacing } from '../private/cloudfront-origin-facing';
import { compressedShellScript, readAsset } from '../private/assets';
import { downloadRdsCaCommand, RDS_CA_FILE } from '../private/rds-ca';
import { checkDays, checkGibibytes, checkWholeNumber, ScaleStagesError } from '../private/errors';
import { rotationFunction } from '../private/rotation-function';
import { markTier } from '../private/tiers';
import {
  acknowledgeSessionManagerPolicy,
  allowWebEgress,
  encryptedRootVolume,
  prepareServerCommands,
  serverImage,
  startAppCommands,
  checkInstanceType,
  bindApp,
} from '../private/servers';
import { releaseInPlace } from '../private/releases';
import { checkUserDataSize } from '../private/user-data-size';

/** Where the data volume is mounted on the server. */
const DATA_MOUNT = '/data';
/** The database the app uses, on the box and later in RDS. */
const DATABASE_NAME = 'app';
/**
 * The AWS-owned Run Command document the local database rotation runs its scripts with. AWS-owned
 * documents have no account in their ARN (aws-cdk-lib's CodePipeline EC2 deploy action builds
 * `arn:<partition>:ssm:<region>::document/AWS-RunShellScript` the same way).
 */
const RUN_SHELL_SCRIPT = 'AWS-RunShellScript';

/** Properties of a `SingleServer`. */
export interface SingleServerProps {
  /** The network; the server goes in its first public subnet. */
  readonly vpc: ec2.IVpc;
  /**
   * The app the server runs.
   *
   * @default - the demo app, `AppSource.demo()`
   */
  readonly app?: AppSource;
  /**
   * The server's instance type; Graviton (ARM) types cost about 20% less than x86 ones.
   *
   * @default - t4g.micro (2 vCPU, 1 GiB), about $6 a month
   */
  readonly instanceType?: ec2.InstanceType;
  /**
   * Whether PostgreSQL runs on the server, with its data on the data volume. Turn it off once the
   * database has moved to RDS (stage 10); the data volume stays either way.
   *
   * @default true
   */
  readonly localDatabase?: boolean;
  /**
   * How often the local database's password is rotated. A Secrets Manager rotation function,
   * outside the VPC, changes it on the server through SSM Run Command (no network path to the
   * database is needed), then makes the new password the secret's current value. Ignored without a
   * local database.
   *
   * @default Duration.days(30)
   */
  readonly localDatabaseRotationInterval?: Duration;
  /**
   * The PostgreSQL major version that runs on the server (the Amazon Linux 2023 package
   * `postgresql<N>-server`). Its tools also move the data into RDS at stage 10, so it must not be
   * newer than the RDS database's. Keep it for the life of the data volume: a new major cannot
   * start on an older major's data directory.
   *
   * @default 16
   */
  readonly postgresMajorVersion?: number;
  /**
   * The size of the encrypted gp3 data volume that holds PostgreSQL's data.
   *
   * @default Size.gibibytes(20)
   */
  readonly dataVolumeSize?: Size;
  /**
   * How long the daily AWS Backup snapshots of the data volume are kept.
   *
   * @default Duration.days(7)
   */
  readonly backupRetention?: Duration;
  /**
   * Extra environment variables for the app; `addEnvironment` adds more later.
   *
   * @default - only the variables the library sets (APP_PORT, AWS_REGION and, with a local
   * database, DATABASE_HOST, DATABASE_PORT, DATABASE_NAME and DATABASE_SECRET_ARN)
   */
  readonly environment?: { [name: string]: string };
}

/**
 * One Graviton server that runs the app and, at first, PostgreSQL: the whole of stage 1.
 *
 * The server sits in a public subnet behind an Elastic IP, for its own outbound traffic (packages,
 * AWS APIs) without a NAT; its app port admits only CloudFront's origin-facing servers, so viewers
 * reach it through a CloudFront distribution (`CdnStatic`) over HTTPS. Nothing else is open; shell
 * access is through SSM Session Manager. PostgreSQL's data lives on its own encrypted volume
 * that is kept when the stack or this construct is deleted (DeletionPolicy Retain) and is backed up
 * daily; the app role's password, in Secrets Manager, is rotated every 30 days by a function that
 * changes it on the server through SSM Run Command. User data runs at every boot and is idempotent,
 * so an upgrade that changes it (stage 1 to 10 turns the local database off) is applied by a stop
 * and start, without replacing the server.
 */
export class SingleServer extends Construct implements IAppTier {
  /** The EC2 instance. */
  public readonly instance: ec2.Instance;
  /** The encrypted data volume (retained on delete) that holds PostgreSQL's data. */
  public readonly dataVolume: ec2.Volume;
  /** The server's fixed public IPv4 address. */
  public readonly elasticIp: ec2.CfnEIP;
  /** The daily backup plan of the data volume. */
  public readonly backupPlan: backup.BackupPlan;
  /** The secret that holds the local database's app credentials; undefined without a local database. */
  public readonly localDatabaseSecret?: secretsmanager.ISecret;
  /**
   * The rotation schedule of `localDatabaseSecret`; its function is `localDatabaseRotationFunction`.
   * Undefined without a local database.
   */
  public readonly localDatabaseRotation?: secretsmanager.RotationSchedule;
  /** The function that rotates the local database's password; undefined without a local database. */
  public readonly localDatabaseRotationFunction?: lambda.IFunction;
  /** The app the server runs. */
  public readonly app: AppSource;
  /** The server's security group. */
  public readonly connections: ec2.Connections;
  /** The server's IAM role. */
  public readonly grantPrincipal: iam.IPrincipal;

  private readonly environment: AppEnvironment;

  constructor(scope: Construct, id: string, props: SingleServerProps) {
    super(scope, id);
    this.app = props.app ?? AppSource.demo();
    const instanceType =
      props.instanceType ?? ec2.InstanceType.of(ec2.InstanceClass.T4G, ec2.InstanceSize.MICRO);
    const dataVolumeSize = props.dataVolumeSize ?? Size.gibibytes(20);
    const backupRetention = props.backupRetention ?? Duration.days(7);
    const localDatabase = props.localDatabase ?? true;
    const postgresMajor = props.postgresMajorVersion ?? 16;
    checkWholeNumber(this, 'postgresMajorVersion', postgresMajor, 13, 99, 'a PostgreSQL major version');
    const rotationInterval = props.localDatabaseRotationInterval ?? Duration.days(30);

    const dataVolumeGiB = checkGibibytes(
      this,
      'dataVolumeSize',
      dataVolumeSize,
      1,
      16384,
      'gp3 volume sizes',
    );
    checkDays(this, 'backupRetention', backupRetention, 1, 3650);
    checkDays(this, 'localDatabaseRotationInterval', rotationInterval, 1, 365);
    if (this.app.port === 22) {
      throw new ScaleStagesError(
        'app port 22 is SSH, which SingleServer never opens to the world; use SSM Session Manager for shell access and serve the app on 80, 443 or another port.',
        this,
      );
    }
    const subnet = props.vpc.publicSubnets[0];
    if (!subnet) {
      throw new ScaleStagesError(
        'vpc has no public subnets; SingleServer needs one for its Elastic IP. Use StageNetwork or add a PUBLIC subnet group.',
        this,
      );
    }
    checkInstanceType(this, instanceType);

    const securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      // Create-only: a new description would replace the group (and the rules that name it).
      description: 'SingleServer: the app port and HTTPS from anywhere; no SSH (SSM Session Manager instead)',
      allowAllOutbound: false,
    });
    allowWebEgress(securityGroup);
    // Viewers reach the app through CloudFront (HTTPS); the app port admits CloudFront's
    // origin-facing servers and nothing else.
    securityGroup.addIngressRule(
      cloudFrontOriginFacing(this),
      ec2.Port.tcp(this.app.port),
      `the app port from CloudFront's origin-facing servers`,
    );

    this.dataVolume = new ec2.Volume(this, 'DataVolume', {
      availabilityZone: subnet.availabilityZone,
      size: Size.gibibytes(dataVolumeGiB),
      volumeType: ec2.EbsDeviceVolumeType.GP3,
      encrypted: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.environment = new AppEnvironment(this);
    const script = ec2.UserData.forLinux();
    const machineExports = `export AWS_REGION='${Stack.of(this).region}' DATA_MOUNT='${DATA_MOUNT}' DATA_VOLUME_ID='${this.dataVolume.volumeId}'`;
    script.addCommands(...prepareServerCommands(), machineExports, readAsset('scripts/mount-data-volume.sh'));
    this.instance = new ec2.Instance(this, 'Instance', {
      vpc: props.vpc,
      vpcSubnets: { subnets: [subnet] },
      instanceType,
      machineImage: serverImage(instanceType),
      userData: runAtEveryBoot(script),
      securityGroup,
      requireImdsv2: true,
      resourceSignalTimeout: Duration.minutes(15),
      ssmSessionPermissions: true,
      blockDevices: [encryptedRootVolume()],
    });
    this.connections = this.instance.connections;
    this.grantPrincipal = this.instance.grantPrincipal;
    Validations.of(this.instance).acknowledge({
      id: 'CloudFormation-Validate::E1152',
      reason:
        "ImageId is 'resolve:ssm:<parameter>', which EC2 resolves at launch (aws-cdk PR 26273); the linter only knows 'ami-' ids. It keeps a new AMI release from replacing the server on the next deploy.",
    });
    acknowledgeSessionManagerPolicy(this.instance.role);
    Validations.of(this.instance).acknowledge({
      id: 'AwsSolutions-EC28',
      reason:
        'Detailed (1-minute) monitoring costs more than the stage-1 budget allows; basic 5-minute metrics are kept.',
    });
    Validations.of(this.instance).acknowledge({
      id: 'AwsSolutions-EC29',
      reason:
        'The server holds no data of its own (the data volume is retained); termination protection would block the stage-1k upgrade that removes it.',
    });

    const attachment = new ec2.CfnVolumeAttachment(this, 'DataVolumeAttachment', {
      instanceId: this.instance.instanceId,
      volumeId: this.dataVolume.volumeId,
      device: '/dev/sdf',
    });
    this.elasticIp = new ec2.CfnEIP(this, 'ElasticIp', {
      domain: 'vpc',
      instanceId: this.instance.instanceId,
    });
    // CloudFront reaches the server at its Elastic IP's name, so the address is drawn in the server;
    // the attachment, drawn in the volume, places it beside the server.
    markTier(this.instance, 'server', this.elasticIp);
    markTier(this.dataVolume, 'volume', attachment);

    const vault = new backup.BackupVault(this, 'BackupVault', { removalPolicy: RemovalPolicy.RETAIN });
    this.backupPlan = new backup.BackupPlan(this, 'BackupPlan', {
      backupVault: vault,
      backupPlanRules: [
        new backup.BackupPlanRule({
          ruleName: 'Daily',
          scheduleExpression: events.Schedule.cron({ hour: '5', minute: '0' }),
          deleteAfter: backupRetention,
        }),
      ],
    });
    const selection = this.backupPlan.addSelection('DataVolume', {
      resources: [
        backup.BackupResource.fromArn(
          Stack.of(this).formatArn({
            service: 'ec2',
            resource: 'volume',
            resourceName: this.dataVolume.volumeId,
          }),
        ),
      ],
    });
    Validations.of(selection).acknowledge({
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup]',
      reason:
        'The AWS-maintained AWS Backup service role policy is the documented least privilege for taking EBS snapshots.',
    });

    this.environment.add('APP_PORT', String(this.app.port));
    this.environment.add('AWS_REGION', Stack.of(this).region);
    if (localDatabase) {
      const secret = new secretsmanager.Secret(this, 'LocalDatabaseSecret', {
        description: 'Credentials of the app role in the PostgreSQL that runs on the SingleServer',
        generateSecretString: {
          secretStringTemplate: JSON.stringify({ username: DATABASE_NAME }),
          generateStringKey: 'password',
          excludePunctuation: true,
          passwordLength: 32,
        },
        removalPolicy: RemovalPolicy.RETAIN,
      });
      // The instance reads every version, AWSCURRENT at boot and AWSPENDING while the rotation
      // sets and tests it (no secretsmanager:VersionStage condition).
      secret.grantRead(this.instance);
      this.localDatabaseSecret = secret;
      const rotation = this.rotateLocalDatabase(secret, rotationInterval);
      this.localDatabaseRotation = rotation.schedule;
      this.localDatabaseRotationFunction = rotation.fn;
      script.addCommands(
        `export PG_MAJOR='${postgresMajor}' DB_NAME='${DATABASE_NAME}' DB_SECRET_ARN='${secret.secretArn}'`,
        readAsset('scripts/local-postgres.sh'),
      );
      this.environment.addAll({
        DATABASE_HOST: '127.0.0.1',
        DATABASE_PORT: '5432',
        DATABASE_NAME,
        DATABASE_SECRET_ARN: secret.secretArn,
      });
    }
    this.environment.addAll(props.environment ?? {});
    bindApp(this, this.app, this.environment, this.instance);
    checkUserDataSize(this.instance, this.instance.userData);
    // The app is a release in the instance's metadata, swapped in place: a new release restarts the
    // app, not the machine, and the deploy waits until it is healthy.
    const release = ec2.UserData.forLinux();
    release.addCommands(
      'set -euo pipefail',
      machineExports,
      ...startAppCommands(
        this.environment,
        this.app,
        localDatabase ? [] : moveLocalDatabaseCommands(postgresMajor),
      ),
    );
    script.addCommands(...releaseInPlace(this.instance, this.app.releaseId, release));
    // The first boot reports its result to CloudFormation, so a server whose app never becomes
    // healthy fails the deploy instead of leaving a broken stack that looks fine.
    script.addSignalOnExitCommand(this.instance);
  }

  /**
   * The rotation of the local database's password. No Lambda can reach this database: it listens
   * on 127.0.0.1 on a server whose security group admits only CloudFront, in a VPC without NAT or
   * endpoints at stage 1 (an interface endpoint costs $7.30 a month). So the function runs outside
   * the VPC and sends shell scripts (assets/rotation/local-database) to this one instance with SSM
   * Run Command, through the SSM agent that Session Manager already uses; the scripts read the
   * pending password from Secrets Manager on the server, so it never travels in the command.
   */
  private rotateLocalDatabase(
    secret: secretsmanager.Secret,
    interval: Duration,
  ): { schedule: secretsmanager.RotationSchedule; fn: lambda.Function } {
    const stack = Stack.of(this);
    const fn = rotationFunction(this, 'LocalDatabaseRotation', {
      description:
        'Rotates the password of the app role in the PostgreSQL on the SingleServer, through SSM Run Command',
      handler: 'local-database/index.handler',
      environment: { INSTANCE_ID: this.instance.instanceId, DATABASE_NAME },
      // A step waits for one command: up to 60 s for delivery and 120 s to run (index.js).
      timeout: Duration.minutes(5),
    });
    // Service Authorization Reference, "Actions, resources, and condition keys for AWS Systems
    // Manager" (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssystemsmanager.html):
    // SendCommand takes the resource types document (required), instance and managed-instance, so
    // it is limited to this instance and the one document; GetCommandInvocation lists no resource
    // type, and "If there is no value for this column, you must specify all resources ("*")".
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['ssm:SendCommand'],
        resources: [
          stack.formatArn({ service: 'ec2', resource: 'instance', resourceName: this.instance.instanceId }),
          stack.formatArn({
            service: 'ssm',
            account: '',
            resource: 'document',
            resourceName: RUN_SHELL_SCRIPT,
          }),
        ],
      }),
    );
    fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['ssm:GetCommandInvocation'], resources: ['*'] }));
    Validations.of(fn).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'ssm:GetCommandInvocation and secretsmanager:GetRandomPassword have no resource-level permissions (Service Authorization Reference); ssm:SendCommand is limited to this instance and AWS-RunShellScript.',
    });
    // Secret.addRotationSchedule grants the function the secret (DescribeSecret, GetSecretValue,
    // PutSecretValue, UpdateSecretVersionStage), GetRandomPassword, and Secrets Manager the invoke.
    const schedule = secret.addRotationSchedule('Rotation', {
      rotationLambda: fn,
      automaticallyAfter: interval,
    });
    return { schedule, fn };
  }

  /** Hands one environment variable to the app. */
  public addEnvironment(name: string, value: string): void {
    this.environment.add(name, value);
  }

  /** The server's public IPv4 address. */
  public get publicIp(): string {
    return Token.asString(this.elasticIp.ref);
  }

  /**
   * The public DNS name of the server's Elastic IP, for what needs a name rather than an address
   * (a CloudFront origin). EC2 names it `ec2-1-2-3-4.compute-1.amazonaws.com` in us-east-1 and
   * `ec2-1-2-3-4.<region>.compute.amazonaws.com` elsewhere.
   */
  public get publicDnsName(): string {
    const stack = Stack.of(this);
    const dashed = Fn.join('-', Fn.split('.', this.publicIp));
    const suffix = (region: string) =>
      region === 'us-east-1' ? 'compute-1.amazonaws.com' : `${region}.compute.amazonaws.com`;
    if (!Token.isUnresolved(stack.region)) {
      return `ec2-${dashed}.${suffix(stack.region)}`;
    }
    const inUsEast1 =
      (this.node.tryFindChild('InUsEast1') as CfnCondition | undefined) ??
      new CfnCondition(this, 'InUsEast1', { expression: Fn.conditionEquals(Aws.REGION, 'us-east-1') });
    const regionalSuffix = Fn.conditionIf(inUsEast1.logicalId, suffix('us-east-1'), suffix(Aws.REGION));
    return `ec2-${dashed}.${Token.asString(regionalSuffix)}`;
  }
}

/**
 * Once the database has moved to RDS (stage 10): before the app starts, the stage-1 database on the
 * data volume is copied into the RDS database the server is connected to, once (a marker on the
 * volume and in RDS), and the local PostgreSQL stops for good. Without a connected database there
 * is nowhere to move it, so it only stops.
 */
function moveLocalDatabaseCommands(postgresMajor: number): string[] {
  return [
    // An app enabled at an earlier boot may already be running, on the old settings: nothing may
    // write while the data moves.
    'systemctl stop scale-stages-app 2>/dev/null || true; docker stop app 2>/dev/null || true',
    downloadRdsCaCommand('database migration'),
    [
      `(set -a; . ${AppSource.ENVIRONMENT_FILE}; set +a`,
      `export PG_MAJOR='${postgresMajor}' DATABASE_CA_FILE='${RDS_CA_FILE}'`,
      'if [ -z "${DATABASE_SECRET_ARN:-}" ]; then systemctl disable --now postgresql 2>/dev/null || true; exit 0; fi',
      // Compressed: stage 10's user data would pass EC2's 16 KB with the script as text.
      compressedShellScript('scripts/migrate-local-database.sh'),
      ')',
    ].join('\n'),
  ];
}

/**
 * Wraps a shell script so cloud-init runs it at every boot, not only the first: an in-place update
 * of the user data (stop, change, start) then takes effect without replacing the instance.
 */
function runAtEveryBoot(script: ec2.UserData): ec2.UserData {
  const userData = new ec2.MultipartUserData();
  userData.addPart(
    ec2.MultipartBody.fromRawBody({
      contentType: 'text/cloud-config; charset="utf-8"',
      body: '#cloud-config\ncloud_final_modules:\n- [scripts-user, always]\n',
    }),
  );
  // A plain-text part, not the base64 part `addUserDataPart` makes: EC2's 16 KB limit counts the
  // MIME document as sent, and base64 would add a third to the script.
  userData.addPart(
    ec2.MultipartBody.fromRawBody({
      contentType: ec2.MultipartBody.SHELL_SCRIPT,
      body: Lazy.string({ produce: () => script.render() }),
    }),
  );
  return userData;
}
