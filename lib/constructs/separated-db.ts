import {
  Annotations,
  Duration,
  RemovalPolicy,
  Size,
  SizeRoundingBehavior,
  Token,
  Validations,
} from 'aws-cdk-lib/core';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { RegionInfo } from 'aws-cdk-lib/region-info';
import { Construct } from 'constructs';
import { IAppTier } from '../app-tier';
import { acknowledgeLogRetentionHandler, DATABASE_LOG_EXPORTS } from '../private/database-logs';
import { checkDays, checkGibibytes, ScaleStagesError } from '../private/errors';
import { checkInstanceType } from '../private/servers';
import { checkDatabaseName, postgresParameters, slowStatementMillis } from '../private/postgres';
import { checkSubnets } from '../private/subnets';
import { markTier } from '../private/tiers';
import { StageNetwork } from './stage-network';

/** The master user of the database (create-only: changing it would replace the database). */
const MASTER_USERNAME = 'postgres';

/** Properties of a `SeparatedDb`. */
export interface SeparatedDbProps {
  /** The network; the database goes in its isolated subnets. */
  readonly vpc: ec2.IVpc;
  /**
   * Where the database goes. Create-only: moving it replaces the subnet group and the database.
   *
   * @default - the subnet group named 'Data': the isolated data tier of a `StageNetwork`
   */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /**
   * The database instance class (without the `db.` prefix).
   *
   * @default - t4g.micro (2 vCPU, 1 GiB), about $12 a month single-AZ
   */
  readonly instanceType?: ec2.InstanceType;
  /**
   * The PostgreSQL version. Pin a major version (`VER_17`) and RDS applies minor versions in the
   * maintenance window.
   *
   * @default rds.PostgresEngineVersion.VER_17
   */
  readonly engineVersion?: rds.PostgresEngineVersion;
  /**
   * Whether RDS keeps a synchronous standby in a second availability zone and fails over to it.
   * Turning it on later is an in-place change.
   *
   * @default false
   */
  readonly multiAz?: boolean;
  /**
   * The gp3 storage allocated at creation.
   *
   * @default Size.gibibytes(20)
   */
  readonly allocatedStorage?: Size;
  /**
   * The ceiling of storage autoscaling: RDS grows the storage up to this size when it runs low. RDS
   * wants it at least 10% above `allocatedStorage`.
   *
   * @default - 100 GiB, or half again allocatedStorage when that is larger
   */
  readonly maxAllocatedStorage?: Size;
  /**
   * How long automated backups (point-in-time recovery) are kept; 7 to 35 days.
   *
   * @default Duration.days(7)
   */
  readonly backupRetention?: Duration;
  /**
   * The name of the database created for the app.
   *
   * @default 'app'
   */
  readonly databaseName?: string;
  /**
   * Whether the database refuses to be deleted. Turning it off lets a stack deletion remove it
   * (after a final snapshot).
   *
   * @default true
   */
  readonly deletionProtection?: boolean;
  /**
   * How often the master password is rotated by a Secrets Manager rotation function that runs in
   * the database's subnets; 1 to 365 days.
   *
   * @default Duration.days(30)
   */
  readonly rotationInterval?: Duration;
  /**
   * The Secrets Manager interface endpoint the rotation function calls. Give one when the
   * database's subnets have no route to the internet (isolated subnets, no NAT gateway): without
   * it the rotation function cannot reach Secrets Manager and every rotation fails.
   *
   * @default - the rotation function reaches Secrets Manager through its subnets' own route
   */
  readonly secretsManagerEndpoint?: ec2.IInterfaceVpcEndpoint;
  /**
   * Statements that run at least this long are written to the PostgreSQL log, with their text and
   * duration (`log_min_duration_statement`); `Duration.millis(0)` logs every statement.
   *
   * @default Duration.seconds(1)
   */
  readonly slowStatementThreshold?: Duration;
  /**
   * How long CloudWatch Logs keeps the exported `postgresql` and `upgrade` logs.
   *
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * Managed PostgreSQL on RDS in the isolated subnets: the database of stage 10 onwards.
 *
 * Encrypted storage that grows by itself, a week of point-in-time backups, deletion protection and
 * a final snapshot on deletion or replacement. Only app tiers passed to `connectApp` can reach it.
 * The PostgreSQL log (failed logins, errors, slow statements) and the upgrade log go to CloudWatch
 * Logs, so the team can search them.
 *
 * The master credentials live in a Secrets Manager secret that the stack generates (retained on
 * delete) and that a rotation function in the database's subnets rotates on a schedule. The stack
 * owns the secret, not RDS, because RDS does not create read replicas of an instance that manages
 * its own master password (RDS User Guide, "Password management with Amazon RDS and AWS Secrets
 * Manager", Limitations), and `ReplicatedDb` adds replicas to this instance.
 */
export class SeparatedDb extends Construct implements ec2.IConnectable {
  /** The RDS instance. */
  public readonly database: rds.DatabaseInstance;
  /**
   * The secret with the master credentials (`username`, `password`, `host`, `port`, `dbname`),
   * rotated on a schedule.
   */
  public readonly secret: secretsmanager.ISecret;
  /** The schedule and function that rotate the master password. */
  public readonly rotation: secretsmanager.SecretRotation;
  /** The database's security group. */
  public readonly connections: ec2.Connections;
  /** The name of the app's database. */
  public readonly databaseName: string;
  /** The database instance class. */
  public readonly instanceType: ec2.InstanceType;
  /** The network the database is in. */
  public readonly vpc: ec2.IVpc;
  /** The subnets the database is in. */
  public readonly vpcSubnets: ec2.SubnetSelection;
  /** The parameter group (TLS required, slow statements logged); read replicas use it too. */
  public readonly parameterGroup: rds.ParameterGroup;
  /** How long CloudWatch Logs keeps the exported database logs; read replicas use it too. */
  public readonly logRetention: logs.RetentionDays;

  constructor(scope: Construct, id: string, props: SeparatedDbProps) {
    super(scope, id);
    const instanceType =
      props.instanceType ?? ec2.InstanceType.of(ec2.InstanceClass.T4G, ec2.InstanceSize.MICRO);
    this.instanceType = instanceType;
    this.vpc = props.vpc;
    const allocatedStorage = props.allocatedStorage ?? Size.gibibytes(20);
    // Above the allocated storage: a default below it would reject allocatedStorage with an error
    // about a prop the user never set.
    const maxAllocatedStorage =
      props.maxAllocatedStorage ??
      Size.gibibytes(
        Math.max(100, Math.ceil(allocatedStorage.toGibibytes({ rounding: SizeRoundingBehavior.NONE }) * 1.5)),
      );
    const backupRetention = props.backupRetention ?? Duration.days(7);
    const multiAz = props.multiAz ?? false;
    const deletionProtection = props.deletionProtection ?? true;
    const rotationInterval = props.rotationInterval ?? Duration.days(30);
    const slowStatementThreshold = props.slowStatementThreshold ?? Duration.seconds(1);
    this.logRetention = props.logRetention ?? logs.RetentionDays.THREE_MONTHS;
    this.databaseName = props.databaseName ?? 'app';

    const allocatedGiB = checkGibibytes(this, 'allocatedStorage', allocatedStorage, 20, 65536, 'gp3 on RDS');
    const maxAllocatedGiB = checkGibibytes(
      this,
      'maxAllocatedStorage',
      maxAllocatedStorage,
      // RDS User Guide, "Managing capacity automatically with Amazon RDS storage autoscaling": "You
      // must set the maximum storage threshold to at least 10% more than the current allocated
      // storage."
      Math.ceil((allocatedGiB * 11) / 10),
      65536,
      'RDS wants it at least 10% above allocatedStorage',
    );
    checkDays(this, 'backupRetention', backupRetention, 7, 35);
    checkDays(this, 'rotationInterval', rotationInterval, 1, 365);
    const slowMillis = slowStatementMillis(this, slowStatementThreshold);
    checkDatabaseName(this, this.databaseName);
    checkInstanceType(this, instanceType);
    if (!deletionProtection) {
      Annotations.of(this).addWarningV2(
        'cdk-scale-stages:noDeletionProtection',
        'deletionProtection is off: deleting the stack deletes the database (a final snapshot is kept).',
      );
    }

    const vpcSubnets = props.vpcSubnets ?? { subnetGroupName: StageNetwork.DATA_SUBNETS };
    this.vpcSubnets = vpcSubnets;
    checkSubnets(this, props.vpc, vpcSubnets);

    const engineVersion = props.engineVersion ?? rds.PostgresEngineVersion.VER_17;
    const engine = rds.DatabaseInstanceEngine.postgres({ version: engineVersion });
    const securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description: 'SeparatedDb: PostgreSQL from connected app tiers only; no outbound traffic',
      allowAllOutbound: false,
    });
    this.parameterGroup = postgresParameters(
      this,
      engineVersion,
      'SeparatedDb: TLS required for every connection',
      slowMillis,
    );
    this.database = new rds.DatabaseInstance(this, 'Instance', {
      engine,
      instanceType,
      vpc: props.vpc,
      vpcSubnets,
      securityGroups: [securityGroup],
      multiAz,
      storageType: rds.StorageType.GP3,
      allocatedStorage: allocatedGiB,
      maxAllocatedStorage: maxAllocatedGiB,
      storageEncrypted: true,
      // fromGeneratedSecret keeps the username a literal in the template: MasterUsername is
      // create-only, and a reference to the secret would replace the database of earlier stacks.
      credentials: rds.Credentials.fromGeneratedSecret(MASTER_USERNAME),
      databaseName: this.databaseName,
      parameterGroup: this.parameterGroup,
      caCertificate: rds.CaCertificate.RDS_CA_RSA2048_G1,
      iamAuthentication: true,
      cloudwatchLogsExports: DATABASE_LOG_EXPORTS,
      cloudwatchLogsRetention: this.logRetention,
      backupRetention,
      copyTagsToSnapshot: true,
      deletionProtection,
      autoMinorVersionUpgrade: true,
      publiclyAccessible: false,
      removalPolicy: RemovalPolicy.SNAPSHOT,
    });
    markTier(this.database, 'database');
    this.secret = this.database.secret!;
    // Kept with the data: a snapshot restored after the stack is gone still needs its password.
    (this.database.node.findChild('Secret') as rds.DatabaseSecret).applyRemovalPolicy(RemovalPolicy.RETAIN);
    // Stacks from releases before 0.2 let RDS manage the password. Saying false (not leaving it
    // out) makes the update turn that off and set MasterUserPassword in place.
    (this.database.node.defaultChild as rds.CfnDBInstance).manageMasterUserPassword = false;
    this.connections = this.database.connections;
    // The rotation function may reach the database (the rotation opens that) and Secrets
    // Manager, nothing else.
    const rotationSecurityGroup = new ec2.SecurityGroup(this, 'RotationSecurityGroup', {
      vpc: props.vpc,
      description: 'SeparatedDb password rotation: to the database and Secrets Manager only',
      allowAllOutbound: false,
    });
    const secretsManager = props.secretsManagerEndpoint ?? ec2.Peer.anyIpv4();
    rotationSecurityGroup.connections.allowTo(secretsManager, ec2.Port.tcp(443), 'Secrets Manager API');
    this.rotation = this.database.addRotationSingleUser({
      automaticallyAfter: rotationInterval,
      vpcSubnets,
      endpoint: props.secretsManagerEndpoint,
      securityGroup: rotationSecurityGroup,
    });

    acknowledgeLogRetentionHandler(this);

    if (!multiAz) {
      Validations.of(this.database).acknowledge({
        id: 'AwsSolutions-RDS3',
        reason:
          'Single-AZ is the cost-sane choice for a 10-user stage; the database becomes Multi-AZ in place at stage 1k.',
      });
    }
    Validations.of(this.database).acknowledge({
      id: 'AwsSolutions-RDS11',
      reason:
        'The database is in isolated subnets and admits only the app security group; a non-standard port adds no protection.',
    });
  }

  /**
   * Replicates the credentials secret into another region (Secrets Manager `ReplicaRegions`), where
   * a `CrossRegionReplica` of this database hands it to the app. The secret is rotated here only,
   * and each rotation reaches the replica secret.
   *
   * @param region the other region
   */
  public replicateSecretTo(region: string): void {
    if (!Token.isUnresolved(region) && !RegionInfo.regions.some((r) => r.name === region)) {
      throw new ScaleStagesError(
        `replicateSecretTo needs an AWS region such as eu-west-1; got '${region}'.`,
        this,
      );
    }
    (this.database.node.findChild('Secret') as rds.DatabaseSecret).addReplicaRegion(region);
  }

  /**
   * Lets an app tier reach the database: opens the database port to its security group, lets it
   * read the credentials secret, and hands it DATABASE_HOST, DATABASE_PORT, DATABASE_NAME and
   * DATABASE_SECRET_ARN.
   */
  public connectApp(appTier: IAppTier): void {
    this.allowApp(appTier);
    appTier.addEnvironment('DATABASE_HOST', this.database.dbInstanceEndpointAddress);
    appTier.addEnvironment('DATABASE_PORT', this.database.dbInstanceEndpointPort);
    appTier.addEnvironment('DATABASE_NAME', this.databaseName);
    appTier.addEnvironment('DATABASE_SECRET_ARN', this.secret.secretArn);
  }

  /**
   * The app tier may reach the database's port and read its secret, without the environment variables
   * `connectApp` adds (a `ShardedDb` names its shards its own way).
   */
  public allowApp(appTier: IAppTier): void {
    this.connections.allowDefaultPortFrom(appTier, 'PostgreSQL from the app tier');
    this.secret.grantRead(appTier);
  }
}
