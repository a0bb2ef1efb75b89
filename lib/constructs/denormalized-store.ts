import { Duration, RemovalPolicy, Token } from 'aws-cdk-lib/core';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';
import { IAppTier } from '../app-tier';
import { checkDays, ScaleStagesError } from '../private/errors';
import { markTier } from '../private/tiers';

/** Properties of a `DenormalizedStore`. */
export interface DenormalizedStoreProps {
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

/**
 * A DynamoDB table for denormalized read models: what a page reads in one request instead of a join,
 * such as a user's feed, kept up to date by the writes and workers that change its sources. Items are
 * keyed by `pk` and `sk` (strings), so one partition holds a user's items in order. On demand (nothing
 * to size, nothing idle to pay for but storage), encrypted at rest with a key DynamoDB owns,
 * point-in-time recovery, deletion protection, a TTL attribute, and kept when its stack goes.
 */
export class DenormalizedStore extends Construct {
  /** The table. */
  public readonly table: dynamodb.TableV2;

  constructor(scope: Construct, id: string, props: DenormalizedStoreProps = {}) {
    super(scope, id);
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
    this.table = new dynamodb.TableV2(this, 'Table', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      billing: dynamodb.Billing.onDemand(),
      encryption: dynamodb.TableEncryptionV2.dynamoOwnedKey(),
      pointInTimeRecoverySpecification: {
        pointInTimeRecoveryEnabled: true,
        recoveryPeriodInDays: recoveryDays,
      },
      deletionProtection: props.deletionProtection ?? true,
      timeToLiveAttribute: ttl,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    markTier(this.table, 'database');
  }

  /**
   * The app tier reads and writes items (no table administration) and gets the table's name as
   * STORE_TABLE_NAME.
   */
  public connectApp(appTier: IAppTier): void {
    this.table.grantReadWriteData(appTier);
    appTier.addEnvironment('STORE_TABLE_NAME', this.table.tableName);
  }
}
