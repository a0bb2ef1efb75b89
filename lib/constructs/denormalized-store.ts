import { Aws, CfnRule, Duration, Fn, Lazy, RemovalPolicy, Stack, Token } from 'aws-cdk-lib/core';
import { RegionInfo } from 'aws-cdk-lib/region-info';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { Construct, IConstruct } from 'constructs';
import { IAppTier } from '../app-tier';
import { checkDays, ScaleStagesError } from '../private/errors';
import { markTier } from '../private/tiers';

/** Properties of a `DenormalizedStore`. */
export interface DenormalizedStoreProps {
  /**
   * The table's name: 3 to 255 letters, digits, `_`, `-` and `.`. A name lets stacks in other regions
   * find the table's replicas there without a reference between the stacks; it is fixed once the table
   * exists (a new name would replace the table).
   *
   * @default - a name CloudFormation generates
   */
  readonly tableName?: string;
  /**
   * The region the stack deploys to, when the stack's own region is known only at deploy time (an
   * environment-agnostic stack): `addReplica` needs it, since CloudFormation lists every replica's
   * region, the stack's own included. A deploy to any other region then stops before it changes
   * anything (a CloudFormation rule).
   *
   * @default - the stack's region
   */
  readonly homeRegion?: string;
  /**
   * The attribute that holds an item's expiry time, in seconds since the epoch. DynamoDB deletes an
   * expired item within a few days of its time, at no cost; items without it stay.
   *
   * @default 'expiresAt'
   */
  readonly timeToLiveAttribute?: string;
  /**
   * How far back point-in-time recovery can restore the table: 1 to 35 days.
   *
   * @default Duration.days(35)
   */
  readonly recoveryPeriod?: Duration;
  /**
   * Whether the table refuses to be deleted. Turn it off before you delete the stack.
   *
   * @default true
   */
  readonly deletionProtection?: boolean;
}

/** A denormalized store: the table here, or the replica in this region of a global table. */
export interface IDenormalizedStore extends IConstruct {
  /** The table in this stack's region: the table itself, or its replica in this region. */
  readonly localTable: dynamodb.ITableV2;
  /**
   * The app tier reads and writes items (no table administration) and gets the table's name as
   * STORE_TABLE_NAME.
   */
  connectApp(appTier: IAppTier): void;
}

/**
 * A DynamoDB table for denormalized read models: what a page reads in one request instead of a join,
 * such as a user's feed, kept up to date by the writes and workers that change its sources. Items are
 * keyed by `pk` and `sk` (strings), so one partition holds a user's items in order. On demand (nothing
 * to size, nothing idle to pay for but storage), encrypted at rest with a key DynamoDB owns,
 * point-in-time recovery, deletion protection, a TTL attribute, and kept when its stack goes.
 */
export class DenormalizedStore extends Construct implements IDenormalizedStore {
  /**
   * The store of a table that exists, by its name: in a stack of another region, that region's replica
   * of a global table (`addReplica`).
   */
  public static fromTableName(scope: Construct, id: string, tableName: string): IDenormalizedStore {
    return new ImportedStore(scope, id, tableName);
  }

  /** The table. */
  public readonly table: dynamodb.TableV2;
  private readonly replicaSettings: { deletionProtection: boolean; recoveryDays: number };
  private readonly replicaRegions: string[] = [];
  private readonly homeRegion: string;

  constructor(scope: Construct, id: string, props: DenormalizedStoreProps = {}) {
    super(scope, id);
    const name = props.tableName;
    if (name !== undefined && !Token.isUnresolved(name) && !/^[A-Za-z0-9_.-]{3,255}$/.test(name)) {
      throw new ScaleStagesError(
        `tableName must be 3 to 255 letters, digits, '_', '-' or '.' (DynamoDB's naming rules); got '${name}'.`,
        this,
      );
    }
    const recoveryPeriod = props.recoveryPeriod ?? Duration.days(35);
    const recoveryDays = checkDays(this, 'recoveryPeriod', recoveryPeriod, 1, 35);
    const ttl = props.timeToLiveAttribute ?? 'expiresAt';
    // The keys are strings, and DynamoDB expires an item by a Number attribute only.
    if (!Token.isUnresolved(ttl) && (ttl.length < 1 || ttl.length > 255 || ttl === 'pk' || ttl === 'sk')) {
      throw new ScaleStagesError(
        `timeToLiveAttribute must be a name of 1 to 255 characters other than the keys pk and sk (a TTL attribute holds a number); got '${ttl}'.`,
        this,
      );
    }
    this.homeRegion = props.homeRegion ?? Stack.of(this).region;
    const known = RegionInfo.regions.map((r) => r.name);
    if (props.homeRegion !== undefined && !known.includes(props.homeRegion)) {
      throw new ScaleStagesError(
        `homeRegion must be an AWS region such as us-east-1; got '${props.homeRegion}' (known: ${known.join(', ')}).`,
        this,
      );
    }
    this.replicaSettings = { deletionProtection: props.deletionProtection ?? true, recoveryDays };
    this.table = new dynamodb.TableV2(this, 'Table', {
      tableName: name,
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      billing: dynamodb.Billing.onDemand(),
      encryption: dynamodb.TableEncryptionV2.dynamoOwnedKey(),
      pointInTimeRecoverySpecification: {
        pointInTimeRecoveryEnabled: true,
        recoveryPeriodInDays: recoveryDays,
      },
      deletionProtection: this.replicaSettings.deletionProtection,
      timeToLiveAttribute: ttl,
      // From the start: a table with more than one replica needs a stream, and CloudFormation changes
      // the stream only while there is one replica (AWS::DynamoDB::GlobalTable, StreamSpecification).
      // No cost until something other than replication reads it.
      dynamoStream: dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    markTier(this.table, 'store');
  }

  /**
   * A replica of the table in `region`, with the same deletion protection and point-in-time recovery,
   * so that the apps there read and write it locally; DynamoDB replicates each write to every other
   * replica, usually within a second, and the last writer wins (multi-Region eventual consistency).
   * CloudFormation adds or removes one replica per stack update, so add one region per deploy to a
   * table that exists (AWS::DynamoDB::GlobalTable, Replicas).
   */
  public addReplica(region: string): void {
    const stackRegion = Stack.of(this).region;
    if (Token.isUnresolved(this.homeRegion)) {
      throw new ScaleStagesError(
        `addReplica needs to know the region this stack deploys to, which is known only at deploy time: give the DenormalizedStore homeRegion; got replica region '${region}'.`,
        this,
      );
    }
    if (Token.isUnresolved(region) || region === this.homeRegion || this.replicaRegions.includes(region)) {
      throw new ScaleStagesError(
        `addReplica needs a region other than the table's own and those it has (${[this.homeRegion, ...this.replicaRegions].join(', ')}); got '${region}'.`,
        this,
      );
    }
    this.replicaRegions.push(region);
    if (!Token.isUnresolved(stackRegion)) {
      this.table.addReplica({ region });
      return;
    }
    // TableV2 refuses replicas in a stack whose region is known only at deploy time: the list it would
    // write, with the home region in it, as CloudFormation requires, and a rule that holds the deploy to it.
    if (this.replicaRegions.length > 1) return;
    const cfn = this.table.node.defaultChild as dynamodb.CfnGlobalTable;
    const replica = (name: string) => ({
      Region: name,
      DeletionProtectionEnabled: this.replicaSettings.deletionProtection,
      PointInTimeRecoverySpecification: {
        PointInTimeRecoveryEnabled: true,
        RecoveryPeriodInDays: this.replicaSettings.recoveryDays,
      },
    });
    cfn.addPropertyOverride(
      'Replicas',
      Lazy.any({ produce: () => [replica(this.homeRegion), ...this.replicaRegions.map(replica)] }),
    );
    new CfnRule(this, 'DeployedInHomeRegion', {
      assertions: [
        {
          assert: Fn.conditionEquals(Aws.REGION, this.homeRegion),
          assertDescription: Lazy.string({
            produce: () =>
              `This stack deploys to ${this.homeRegion}: its DynamoDB table ${this.node.path} has that region's replica, and replicas in ${this.replicaRegions.join(', ')}.`,
          }),
        },
      ],
    });
  }

  public get localTable(): dynamodb.ITableV2 {
    return this.table;
  }

  public connectApp(appTier: IAppTier): void {
    connectStore(this.table, appTier);
  }
}

/** A store whose table exists: here, its replica in the stack's region. */
class ImportedStore extends Construct implements IDenormalizedStore {
  public readonly localTable: dynamodb.ITableV2;

  constructor(scope: Construct, id: string, tableName: string) {
    super(scope, id);
    this.localTable = dynamodb.TableV2.fromTableName(this, 'Table', tableName);
  }

  public connectApp(appTier: IAppTier): void {
    connectStore(this.localTable, appTier);
  }
}

function connectStore(table: dynamodb.ITableV2, appTier: IAppTier): void {
  table.grantReadWriteData(appTier);
  appTier.addEnvironment('STORE_TABLE_NAME', table.tableName);
}
