import { Annotations, ArnFormat, Duration, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib/core';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elasticache from 'aws-cdk-lib/aws-elasticache';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { IAppTier } from '../app-tier';
import { checkDays, checkWholeNumber, ScaleStagesError } from '../private/errors';
import { rotationFunction } from '../private/rotation-function';
import { checkInstanceType } from '../private/servers';
import { checkSubnets } from '../private/subnets';
import { markTier } from '../private/tiers';
import { StageNetwork } from './stage-network';

/**
 * What the cache drops when it is full (Valkey's and Redis OSS's `maxmemory-policy`).
 *
 * `allkeys-*` policies treat every key as a cache entry; `volatile-*` policies drop only keys that
 * have a TTL, so keys without one are kept (and writes fail once only those are left).
 */
export enum EvictionPolicy {
  /** Drops the least recently used keys: the right choice for a cache of sessions and objects. */
  ALLKEYS_LRU = 'allkeys-lru',
  /** Drops the least frequently used keys: better when a small set of keys is read far more than the rest. */
  ALLKEYS_LFU = 'allkeys-lfu',
  /** Drops random keys. */
  ALLKEYS_RANDOM = 'allkeys-random',
  /** Drops the least recently used keys among those with a TTL. */
  VOLATILE_LRU = 'volatile-lru',
  /** Drops the least frequently used keys among those with a TTL. */
  VOLATILE_LFU = 'volatile-lfu',
  /** Drops random keys among those with a TTL. */
  VOLATILE_RANDOM = 'volatile-random',
  /** Drops the keys with a TTL that expire soonest. */
  VOLATILE_TTL = 'volatile-ttl',
  /** Drops nothing: writes fail when memory is full. For data that must not vanish, such as queues. */
  NO_EVICTION = 'noeviction',
}

/** The engine and version of a `CachedTier`. */
export class CacheEngineVersion {
  /** Valkey 8.0. */
  public static readonly VALKEY_8_0 = new CacheEngineVersion('valkey', '8.0', 'valkey8');
  /** Valkey 7.2, the first Valkey release, compatible with Redis OSS 7.2. */
  public static readonly VALKEY_7_2 = new CacheEngineVersion('valkey', '7.2', 'valkey7');
  /** Redis OSS 7.1, the last Redis OSS release on ElastiCache. */
  public static readonly REDIS_7_1 = new CacheEngineVersion('redis', '7.1', 'redis7');

  /**
   * Any engine version ElastiCache offers from 7.0 on (earlier ones cannot require TLS).
   *
   * @param engine 'valkey' or 'redis'
   * @param version such as '8.0'
   * @param parameterGroupFamily such as 'valkey8'
   */
  public static of(engine: string, version: string, parameterGroupFamily: string): CacheEngineVersion {
    return new CacheEngineVersion(engine, version, parameterGroupFamily);
  }

  /** The ElastiCache engine name. */
  public readonly engine: string;
  /** The engine version. */
  public readonly version: string;
  /** The parameter group family of this version. */
  public readonly parameterGroupFamily: string;

  private constructor(engine: string, version: string, parameterGroupFamily: string) {
    this.engine = engine;
    this.version = version;
    this.parameterGroupFamily = parameterGroupFamily;
  }
}

/** Properties of a `CachedTier`. */
export interface CachedTierProps {
  /** The network; the cache nodes go in its isolated subnets. */
  readonly vpc: ec2.IVpc;
  /**
   * Where the cache nodes go, one availability zone per subnet.
   *
   * @default - the subnet group named 'Data': the isolated data tier of a `StageNetwork`
   */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /**
   * The node type (without the `cache.` prefix): t4g, t3, m7g, m6g, m5, r7g, r6g, r5 or c7gn.
   *
   * @default - t4g.micro (0.5 GiB), about $9 a month per node with Valkey
   */
  readonly nodeType?: ec2.InstanceType;
  /**
   * How many replicas follow the primary node; one or more give Multi-AZ with automatic failover,
   * and readers can use them through the reader endpoint.
   *
   * @default 1
   */
  readonly replicas?: number;
  /**
   * The engine and its version.
   *
   * @default CacheEngineVersion.VALKEY_8_0
   */
  readonly engineVersion?: CacheEngineVersion;
  /**
   * What the cache drops when memory is full.
   *
   * @default EvictionPolicy.ALLKEYS_LRU
   */
  readonly evictionPolicy?: EvictionPolicy;
  /**
   * How long the daily snapshots are kept; 1 to 35 days.
   *
   * @default Duration.days(3)
   */
  readonly snapshotRetention?: Duration;
  /**
   * How long the slow log (commands slower than 10 ms) is kept in CloudWatch Logs.
   *
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly slowLogRetention?: logs.RetentionDays;
  /**
   * How often Secrets Manager rotates the AUTH token; 1 to 365 days. Each rotation adds a new
   * token to the cache (ElastiCache's ROTATE strategy) and drops the oldest, so the current and the
   * previous token both work: a client that still holds the previous one keeps working until the
   * next rotation. Clients must read the secret again when the cache refuses their token
   * (WRONGPASS or NOAUTH).
   *
   * @default Duration.days(30)
   */
  readonly authTokenRotationInterval?: Duration;
  /**
   * What happens to the cache when it leaves the stack or is replaced: SNAPSHOT keeps a final
   * snapshot, RETAIN keeps the running cache, DESTROY keeps nothing.
   *
   * @default RemovalPolicy.SNAPSHOT
   */
  readonly removalPolicy?: RemovalPolicy;
}

const BURSTABLE_SIZES = ['micro', 'small', 'medium'];
const GRAVITON_SIZES = ['large', 'xlarge', '2xlarge', '4xlarge', '8xlarge', '12xlarge', '16xlarge'];
const INTEL_SIZES = ['large', 'xlarge', '2xlarge', '4xlarge', '12xlarge', '24xlarge'];

/** Node families ElastiCache offers (current generation, without data tiering), with their sizes. */
const NODE_SIZES: Record<string, readonly string[]> = {
  t4g: BURSTABLE_SIZES,
  t3: BURSTABLE_SIZES,
  m7g: GRAVITON_SIZES,
  m6g: GRAVITON_SIZES,
  r7g: GRAVITON_SIZES,
  r6g: GRAVITON_SIZES,
  c7gn: GRAVITON_SIZES,
  m5: INTEL_SIZES,
  r5: INTEL_SIZES,
};

const CACHE_PORT = 6379;

/**
 * A Valkey (or Redis OSS) cache on ElastiCache for sessions and cached objects: the cache tier of
 * stage 100k.
 *
 * One primary node and `replicas` replicas in different availability zones, with automatic
 * failover; encrypted at rest and in transit (TLS required); clients authenticate with a token that
 * Secrets Manager generates, keeps and rotates every 30 days (the previous token stays valid until
 * the next rotation). The eviction policy is explicit, daily snapshots are kept for
 * a few days, and a final snapshot is taken when the cache is deleted or replaced. Only app tiers
 * passed to `connectApp` can reach it.
 */
export class CachedTier extends Construct implements ec2.IConnectable {
  /** The ElastiCache replication group. */
  public readonly replicationGroup: elasticache.CfnReplicationGroup;
  /** The cache's security group. */
  public readonly connections: ec2.Connections;
  /** The AUTH token clients send, generated by Secrets Manager and rotated on a schedule. */
  public readonly authSecret: secretsmanager.ISecret;
  /** The schedule on which Secrets Manager rotates the AUTH token. */
  public readonly authTokenRotation: secretsmanager.RotationSchedule;
  /**
   * The Lambda function that rotates the AUTH token. It calls only the Secrets Manager and
   * ElastiCache APIs, so it runs outside the VPC.
   */
  public readonly authTokenRotationFunction: lambda.IFunction;
  /** The parameter group that sets the eviction policy; add parameters to tune the engine. */
  public readonly parameterGroup: elasticache.CfnParameterGroup;
  /** The log group that receives the slow log. */
  public readonly slowLog: logs.LogGroup;
  /** The endpoint of the primary node, for reads and writes. */
  public readonly primaryEndpointAddress: string;
  /** The endpoint that spreads reads over the replicas. */
  public readonly readerEndpointAddress: string;
  /** The port clients connect to. */
  public readonly port: number = CACHE_PORT;

  constructor(scope: Construct, id: string, props: CachedTierProps) {
    super(scope, id);
    const nodeType = props.nodeType ?? ec2.InstanceType.of(ec2.InstanceClass.T4G, ec2.InstanceSize.MICRO);
    const replicas = props.replicas ?? 1;
    const engineVersion = props.engineVersion ?? CacheEngineVersion.VALKEY_8_0;
    const evictionPolicy = props.evictionPolicy ?? EvictionPolicy.ALLKEYS_LRU;
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.SNAPSHOT;

    checkNodeType(this, nodeType);
    checkWholeNumber(
      this,
      'replicas',
      replicas,
      1,
      5,
      'ElastiCache allows 5; one or more give Multi-AZ failover',
    );
    const snapshotDays = checkDays(
      this,
      'snapshotRetention',
      props.snapshotRetention ?? Duration.days(3),
      1,
      35,
    );
    const rotationInterval = props.authTokenRotationInterval ?? Duration.days(30);
    checkDays(this, 'authTokenRotationInterval', rotationInterval, 1, 365);
    if (!Object.values(EvictionPolicy).includes(evictionPolicy)) {
      throw new ScaleStagesError(
        `evictionPolicy must be one of ${Object.values(EvictionPolicy).join(', ')}; got '${evictionPolicy}'.`,
        this,
      );
    }
    if (!['valkey', 'redis'].includes(engineVersion.engine)) {
      throw new ScaleStagesError(
        `engineVersion engine must be 'valkey' or 'redis'; got '${engineVersion.engine}'.`,
        this,
      );
    }
    if (!(parseFloat(engineVersion.version) >= 7)) {
      throw new ScaleStagesError(
        `engineVersion version must be 7.0 or later, the first that can require TLS; got '${engineVersion.version}'.`,
        this,
      );
    }
    if (removalPolicy === RemovalPolicy.DESTROY) {
      Annotations.of(this).addWarningV2(
        'cdk-scale-stages:cacheDestroyedWithoutSnapshot',
        'removalPolicy is DESTROY: deleting or replacing the cache loses its data without a final snapshot.',
      );
    }
    checkInstanceType(this, nodeType, 'nodeType');
    const subnets = checkSubnets(
      this,
      props.vpc,
      props.vpcSubnets ?? { subnetGroupName: StageNetwork.DATA_SUBNETS },
    );

    const securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description: 'CachedTier: Valkey/Redis from connected app tiers only; no outbound traffic',
      allowAllOutbound: false,
    });
    this.connections = new ec2.Connections({
      securityGroups: [securityGroup],
      defaultPort: ec2.Port.tcp(CACHE_PORT),
    });
    const subnetGroup = new elasticache.CfnSubnetGroup(this, 'SubnetGroup', {
      description: 'CachedTier: the isolated data subnets',
      subnetIds: subnets.subnetIds,
    });
    this.parameterGroup = new elasticache.CfnParameterGroup(this, 'Parameters', {
      cacheParameterGroupFamily: engineVersion.parameterGroupFamily,
      description: `CachedTier: maxmemory-policy ${evictionPolicy}`,
      properties: { 'maxmemory-policy': evictionPolicy },
    });
    this.authSecret = new secretsmanager.Secret(this, 'AuthToken', {
      description: 'CachedTier: the AUTH token cache clients send',
      // ElastiCache accepts 16 to 128 printable characters, specials only !&#$^<>-. The rotation
      // function generates its tokens the same way (assets/rotation/cache-auth-token).
      generateSecretString: { passwordLength: 64, excludePunctuation: true },
      // A retained cache still needs its token; otherwise the token goes with the cache.
      removalPolicy: removalPolicy === RemovalPolicy.RETAIN ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
    });
    this.slowLog = new logs.LogGroup(this, 'SlowLog', {
      retention: props.slowLogRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.replicationGroup = new elasticache.CfnReplicationGroup(this, 'ReplicationGroup', {
      replicationGroupDescription: 'cdk-scale-stages cache: sessions and cached objects',
      engine: engineVersion.engine,
      engineVersion: engineVersion.version,
      cacheNodeType: `cache.${nodeType}`,
      numCacheClusters: 1 + replicas,
      multiAzEnabled: true,
      automaticFailoverEnabled: true,
      cacheSubnetGroupName: subnetGroup.ref,
      securityGroupIds: [securityGroup.securityGroupId],
      cacheParameterGroupName: this.parameterGroup.ref,
      port: CACHE_PORT,
      atRestEncryptionEnabled: true,
      transitEncryptionEnabled: true,
      transitEncryptionMode: 'required',
      // The first token. Rotations change the secret, not this reference: "During stack updates,
      // CloudFormation doesn't retrieve the value of the dynamic reference unless a change is made
      // to the dynamic reference itself." (https://repost.aws/knowledge-center/cloudformation-stack-update-secrets)
      authToken: this.authSecret.secretValue.unsafeUnwrap(),
      snapshotRetentionLimit: snapshotDays,
      autoMinorVersionUpgrade: true,
      logDeliveryConfigurations: [
        {
          destinationType: 'cloudwatch-logs',
          destinationDetails: { cloudWatchLogsDetails: { logGroup: this.slowLog.logGroupName } },
          logFormat: 'json',
          logType: 'slow-log',
        },
      ],
    });
    this.replicationGroup.applyRemovalPolicy(removalPolicy);
    markTier(this.replicationGroup, 'cache');
    this.primaryEndpointAddress = this.replicationGroup.attrPrimaryEndPointAddress;
    this.readerEndpointAddress = this.replicationGroup.attrReaderEndPointAddress;

    // AWS has no rotation template for AUTH tokens: the library's own function adds each new token
    // with ModifyReplicationGroup and the ROTATE strategy (the previous token stays valid) and never
    // SETs, since it cannot know when every client has read the new token. See "Modifying the AUTH
    // token on an existing cluster", https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/auth.html
    const rotation = rotationFunction(this, 'AuthTokenRotationFunction', {
      description:
        'cdk-scale-stages CachedTier: rotates the cache AUTH token (ModifyReplicationGroup, ROTATE)',
      handler: 'cache-auth-token/index.handler',
      environment: { REPLICATION_GROUP_ID: this.replicationGroup.ref },
      // The maximum: the function waits in place while ElastiCache applies the token change.
      timeout: Duration.minutes(15),
    });
    // Only this replication group. ModifyReplicationGroup is authorized against the replication
    // group, and against a parameter group, security group or user group only when the request
    // names one (Service Authorization Reference, "Actions defined by Amazon ElastiCache"); the
    // function's requests name none. AuthTokenEnabled "Filters access by the presence of non
    // empty AuthToken parameter in the request": the function may change the token, nothing
    // without one.
    const groupArn = Stack.of(this).formatArn({
      service: 'elasticache',
      resource: 'replicationgroup',
      resourceName: this.replicationGroup.ref,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    rotation.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['elasticache:DescribeReplicationGroups'], resources: [groupArn] }),
    );
    rotation.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['elasticache:ModifyReplicationGroup'],
        resources: [groupArn],
        conditions: { Bool: { 'elasticache:AuthTokenEnabled': 'true' } },
      }),
    );
    Validations.of(rotation).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        "aws-cdk-lib's rotation schedule grants secretsmanager:GetRandomPassword, which has no resource-level permissions; every other statement names the secret or this replication group.",
    });
    this.authTokenRotationFunction = rotation;
    this.authTokenRotation = this.authSecret.addRotationSchedule('Rotation', {
      rotationLambda: rotation,
      automaticallyAfter: rotationInterval,
    });
    // The first rotation starts as soon as the schedule exists: the group must be there.
    this.authTokenRotation.node.addDependency(this.replicationGroup);
  }

  /**
   * Lets an app tier use the cache: opens the cache port to its security group, lets it read the
   * AUTH token, and hands it CACHE_HOST, CACHE_READER_HOST, CACHE_PORT and CACHE_SECRET_ARN.
   */
  public connectApp(appTier: IAppTier): void {
    this.connections.allowDefaultPortFrom(appTier, 'Valkey/Redis from the app tier');
    this.authSecret.grantRead(appTier);
    appTier.addEnvironment('CACHE_HOST', this.primaryEndpointAddress);
    appTier.addEnvironment('CACHE_READER_HOST', this.readerEndpointAddress);
    appTier.addEnvironment('CACHE_PORT', String(this.port));
    appTier.addEnvironment('CACHE_SECRET_ARN', this.authSecret.secretArn);
  }
}

function checkNodeType(scope: Construct, nodeType: ec2.InstanceType): void {
  const name = nodeType.toString();
  if (Token.isUnresolved(name)) return;
  const [family, size] = name.split('.');
  if (!NODE_SIZES[family]?.includes(size)) {
    const choices = Object.entries(NODE_SIZES)
      .map(([f, sizes]) => `${f}.{${sizes.join(',')}}`)
      .join(' ');
    throw new ScaleStagesError(
      `nodeType must be an ElastiCache node type (without 'cache.'); got '${name}'. Choices: ${choices}.`,
      scope,
    );
  }
}
