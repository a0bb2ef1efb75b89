import { Aws, Duration, RemovalPolicy, Size, Stack, Token, Validations } from 'aws-cdk-lib/core';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { RegionInfo } from 'aws-cdk-lib/region-info';
import { Construct } from 'constructs';
import { IAppTier } from '../app-tier';
import { acknowledgeLogRetentionHandler, DATABASE_LOG_EXPORTS } from '../private/database-logs';
import { checkGibibytes, ScaleStagesError } from '../private/errors';
import { checkInstanceType } from '../private/servers';
import { checkDatabaseName, postgresParameters, slowStatementMillis } from '../private/postgres';
import { checkSubnets } from '../private/subnets';
import { markTier } from '../private/tiers';
import { StageNetwork } from './stage-network';

/** Properties of a `CrossRegionReplica`. */
export interface CrossRegionReplicaProps {
  /** The network of the replica's region; the replica goes in its isolated subnets. */
  readonly vpc: ec2.IVpc;
  /**
   * Where the replica goes. Create-only: moving it replaces the replica.
   *
   * @default - the subnet group named 'Data': the isolated data tier of a `StageNetwork`
   */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /**
   * The DB instance identifier of the source database in `sourceRegion` (in this account), such as
   * the `DatabaseInstanceIdentifier` output of the primary stack. The replica names its source by
   * the ARN built from it, as a cross-region replica must.
   */
  readonly sourceInstanceIdentifier: string;
  /** The source database's region. */
  readonly sourceRegion: string;
  /**
   * The last part of the ARN of the source's credentials secret: its name and the six characters
   * Secrets Manager appends (`db-AbCdEf`), such as the `DatabaseSecretNameWithSuffix` output of the
   * primary stack. The source stack replicates the secret to this region (`ReplicaRegions`), and the
   * replica hands the app the replica secret, whose ARN has this region and the same name.
   *
   * A whole name, not an ARN to take apart: CloudFormation resolves `Fn::GetStackOutput` only as a
   * direct value or inside `Fn::Join`, `Fn::Sub` and a few others, never inside `Fn::Split`.
   */
  readonly sourceSecretNameWithSuffix: string;
  /**
   * The PostgreSQL version of the source; the replica's parameter group is of its family.
   *
   * @default rds.PostgresEngineVersion.VER_17
   */
  readonly engineVersion?: rds.PostgresEngineVersion;
  /**
   * The replica's instance class (without the `db.` prefix). A replica smaller than the source can
   * fall behind under a heavy write load, and it becomes the primary when it is promoted.
   *
   * @default - m7g.large
   */
  readonly instanceType?: ec2.InstanceType;
  /**
   * The ceiling of the replica's storage autoscaling. A replica's storage does not follow its source's
   * by itself, and a replica that runs out of space stops replicating: keep this at least the source's
   * ceiling (`SeparatedDb`'s is 100 GiB by default).
   *
   * @default Size.gibibytes(1000)
   */
  readonly maxAllocatedStorage?: Size;
  /**
   * The name of the app's database on the source.
   *
   * @default 'app'
   */
  readonly databaseName?: string;
  /**
   * Statements that run at least this long are written to the PostgreSQL log.
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
 * A read replica, in this stack's region, of a PostgreSQL database in another region: reads near
 * the viewers, and the database a region takes over when the source's region fails (promotion).
 *
 * An L1 `AWS::RDS::DBInstance`, because aws-cdk-lib's `DatabaseInstanceReadReplica` of an imported
 * source builds the source's ARN in the replica's own region and sets no `SourceRegion`
 * (aws/aws-cdk#28998). The replica is encrypted with a customer-managed key of its own region (a
 * cross-region replica of an encrypted source needs one there), requires TLS, exports its logs,
 * keeps deletion protection on and is retained when removed from the stack: once promoted it holds
 * the only writable copy of the data.
 */
export class CrossRegionReplica extends Construct implements ec2.IConnectable {
  /** The replica instance. */
  public readonly instance: rds.CfnDBInstance;
  /** The key that encrypts the replica's storage. */
  public readonly encryptionKey: kms.Key;
  /** The replica's endpoint address. */
  public readonly endpointAddress: string;
  /** The replica's port. */
  public readonly endpointPort: string;
  /** The replica secret: the source's credentials, replicated into this region. */
  public readonly secret: secretsmanager.ISecret;
  /** The source database's ARN. */
  public readonly sourceArn: string;
  /** The replica's security group. */
  public readonly connections: ec2.Connections;
  /** The name of the app's database. */
  public readonly databaseName: string;

  constructor(scope: Construct, id: string, props: CrossRegionReplicaProps) {
    super(scope, id);
    const region = Stack.of(this).region;
    if (Token.isUnresolved(region)) {
      throw new ScaleStagesError(
        `CrossRegionReplica needs a stack with an explicit region (env: { region }); the replica's key and subnets are in that region, and the source in another.`,
        this,
      );
    }
    if (!Token.isUnresolved(props.sourceRegion) && props.sourceRegion === region) {
      throw new ScaleStagesError(
        `sourceRegion must differ from the replica's region; got '${props.sourceRegion}' for both. Use ReplicatedDb for replicas in the source's region.`,
        this,
      );
    }
    const instanceType =
      props.instanceType ?? ec2.InstanceType.of(ec2.InstanceClass.M7G, ec2.InstanceSize.LARGE);
    checkInstanceType(this, instanceType);
    this.databaseName = checkDatabaseName(this, props.databaseName ?? 'app');
    const slowMillis = slowStatementMillis(this, props.slowStatementThreshold ?? Duration.seconds(1));
    if (
      !Token.isUnresolved(props.sourceRegion) &&
      !RegionInfo.regions.some((r) => r.name === props.sourceRegion)
    ) {
      throw new ScaleStagesError(
        `sourceRegion must be an AWS region such as us-east-1; got '${props.sourceRegion}'.`,
        this,
      );
    }
    // RDS User Guide, "Naming constraints in Amazon RDS" (DB instance identifier).
    if (
      !Token.isUnresolved(props.sourceInstanceIdentifier) &&
      !/^[a-zA-Z](?!.*--)(?!.*-$)[a-zA-Z0-9-]{0,62}$/.test(props.sourceInstanceIdentifier)
    ) {
      throw new ScaleStagesError(
        `sourceInstanceIdentifier must be a DB instance identifier (1 to 63 letters, digits or hyphens, starting with a letter, no two hyphens in a row, not ending with one), such as shop-db; got '${props.sourceInstanceIdentifier}'.`,
        this,
      );
    }
    // Secrets Manager User Guide, "Secret ARN" format: ...:secret:SecretName-6RandomCharacters.
    if (
      !Token.isUnresolved(props.sourceSecretNameWithSuffix) &&
      !/^[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$/.test(props.sourceSecretNameWithSuffix)
    ) {
      throw new ScaleStagesError(
        `sourceSecretNameWithSuffix must be the last part of the source secret's ARN, its name and the 6 characters Secrets Manager appends, such as db-AbCdEf (not the whole ARN); got '${props.sourceSecretNameWithSuffix}'.`,
        this,
      );
    }
    const vpcSubnets = props.vpcSubnets ?? { subnetGroupName: StageNetwork.DATA_SUBNETS };
    checkSubnets(this, props.vpc, vpcSubnets);

    // arn:<partition>:rds:<source region>:<account>:db:<identifier>; the source is in this account.
    this.sourceArn = `arn:${Aws.PARTITION}:rds:${props.sourceRegion}:${Aws.ACCOUNT_ID}:db:${props.sourceInstanceIdentifier}`;

    this.encryptionKey = new kms.Key(this, 'Key', {
      description: `${Stack.of(this).stackName}: encrypts the cross-region database replica`,
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description: 'CrossRegionReplica: PostgreSQL from connected app tiers only; no outbound traffic',
      allowAllOutbound: false,
    });
    const subnetGroup = new rds.SubnetGroup(this, 'SubnetGroup', {
      vpc: props.vpc,
      vpcSubnets,
      description: 'CrossRegionReplica: the isolated data subnets of this region',
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const parameterGroup = postgresParameters(
      this,
      props.engineVersion ?? rds.PostgresEngineVersion.VER_17,
      'CrossRegionReplica: TLS required for every connection',
      slowMillis,
    );

    // The replica inherits the engine, storage, master user, database and backups of its source,
    // and CloudFormation rejects those properties beside SourceDBInstanceIdentifier (the
    // deploy-rule suite holds the list).
    this.instance = new rds.CfnDBInstance(this, 'Instance', {
      sourceDbInstanceIdentifier: this.sourceArn,
      sourceRegion: props.sourceRegion,
      kmsKeyId: this.encryptionKey.keyArn,
      dbInstanceClass: `db.${instanceType}`,
      dbSubnetGroupName: subnetGroup.subnetGroupName,
      vpcSecurityGroups: [securityGroup.securityGroupId],
      dbParameterGroupName: parameterGroup.bindToInstance({}).parameterGroupName,
      storageType: 'gp3',
      maxAllocatedStorage: checkGibibytes(
        this,
        'maxAllocatedStorage',
        props.maxAllocatedStorage ?? Size.gibibytes(1000),
        22,
        65536,
        'gp3 on RDS, above the 20 GiB a stage starts with',
      ),
      caCertificateIdentifier: rds.CaCertificate.RDS_CA_RSA2048_G1.toString(),
      enableIamDatabaseAuthentication: true,
      enableCloudwatchLogsExports: DATABASE_LOG_EXPORTS,
      autoMinorVersionUpgrade: true,
      publiclyAccessible: false,
      copyTagsToSnapshot: true,
      deletionProtection: true,
    });
    this.instance.applyRemovalPolicy(RemovalPolicy.RETAIN);
    markTier(this.instance, 'replica');
    for (const log of DATABASE_LOG_EXPORTS) {
      new logs.LogRetention(this, `LogRetention${log}`, {
        logGroupName: `/aws/rds/instance/${this.instance.ref}/${log}`,
        retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
      });
    }
    acknowledgeLogRetentionHandler(this);

    this.endpointAddress = this.instance.attrEndpointAddress;
    this.endpointPort = this.instance.attrEndpointPort;
    this.connections = new ec2.Connections({
      securityGroups: [securityGroup],
      defaultPort: ec2.Port.tcp(5432),
    });

    // A replica secret has the primary secret's ARN with this region in it (Secrets Manager User
    // Guide, "Replicate AWS Secrets Manager secrets across Regions").
    this.secret = secretsmanager.Secret.fromSecretCompleteArn(
      this,
      'Secret',
      `arn:${Aws.PARTITION}:secretsmanager:${region}:${Aws.ACCOUNT_ID}:secret:${props.sourceSecretNameWithSuffix}`,
    );

    Validations.of(this.instance).acknowledge(
      {
        id: 'AwsSolutions-RDS2',
        reason:
          "A read replica is encrypted with KmsKeyId, this region's key; CloudFormation rejects StorageEncrypted beside SourceDBInstanceIdentifier.",
      },
      {
        id: 'AwsSolutions-RDS3',
        reason:
          'One replica per secondary region, single-AZ until it is promoted (the runbook turns on Multi-AZ then); the source is Multi-AZ.',
      },
      {
        id: 'AwsSolutions-RDS11',
        reason:
          'The replica is in isolated subnets and admits only the app security group; a non-standard port adds no protection.',
      },
      {
        id: 'AwsSolutions-RDS13',
        reason:
          'A read replica takes no automated backups of its own while it follows the source, which keeps them; the runbook sets backups when it is promoted.',
      },
    );
  }

  /**
   * Lets an app tier read from the replica: opens its port to the tier, lets the tier read the
   * replica secret, and hands it DATABASE_HOST, DATABASE_PORT, DATABASE_NAME, DATABASE_SECRET_ARN
   * and DATABASE_READER_HOSTS, all of this region. Until the replica is promoted, writes fail with
   * PostgreSQL's read-only error; the CDN sends them to the writer region.
   */
  public connectApp(appTier: IAppTier): void {
    this.allowApp(appTier);
    appTier.addEnvironment('DATABASE_HOST', this.endpointAddress);
    appTier.addEnvironment('DATABASE_PORT', this.endpointPort);
    appTier.addEnvironment('DATABASE_NAME', this.databaseName);
    appTier.addEnvironment('DATABASE_SECRET_ARN', this.secret.secretArn);
    appTier.addEnvironment('DATABASE_READER_HOSTS', this.endpointAddress);
  }

  /**
   * The app tier may reach the replica's port and read the replica secret, without the environment
   * variables `connectApp` adds (a secondary region's shard replicas are named as the shards are).
   */
  public allowApp(appTier: IAppTier): void {
    this.connections.allowDefaultPortFrom(appTier, 'PostgreSQL from the app tier');
    this.secret.grantRead(appTier);
  }

  /** How many seconds the replica lags behind its source. */
  public metricReplicaLag(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: 'AWS/RDS',
      metricName: 'ReplicaLag',
      dimensionsMap: { DBInstanceIdentifier: this.instance.ref },
      period: Duration.minutes(1),
      statistic: 'Maximum',
      ...props,
    });
  }
}
