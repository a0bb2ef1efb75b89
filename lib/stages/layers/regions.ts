/**
 * The regions layer of stage 10m, as the primary stack sees it: each secondary region's load balancer
 * behind the distribution, reads routed to the nearest region and writes to the writer region, media
 * reads that fail over to a region's copy, and the database secret and the media replicated to every
 * region.
 */
import { Aws, CfnOutput, Fn, Stack } from 'aws-cdk-lib/core';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { IConstruct } from 'constructs';
import { IAppTier } from '../../app-tier';
import { CdnStatic } from '../../constructs/cdn-static';
import { DenormalizedStore } from '../../constructs/denormalized-store';
import { SeparatedDb } from '../../constructs/separated-db';
import { ShardedDb } from '../../constructs/sharded-db';
import { BROWSER_UPLOADS_CORS, contentBucket, logBucket } from '../../private/buckets';
import { ScaleStagesError } from '../../private/errors';
import { readString } from '../context';
import {
  pinRegions,
  regionalOriginId,
  regionalRouting,
  RegionalApp,
  WRITER_REGION_KEY,
} from '../regional-routing';
import { connectMedia } from '../uploads';
import { loadBalancerOrigin, PRIMARY_DISTRIBUTION_ID_OUTPUT } from './edge';

/** The outputs of a secondary region's stack that the primary reads (`Fn::GetStackOutput`). */
export const SECONDARY_OUTPUTS = {
  loadBalancerArn: 'LoadBalancerArn',
  loadBalancerDnsName: 'LoadBalancerDnsName',
  loadBalancerSecurityGroup: 'LoadBalancerSecurityGroupId',
  mediaBucketName: 'MediaBucketName',
} as const;

/** What the primary knows of a secondary region's stack. */
export interface SecondaryRegion {
  readonly stackName: string;
  readonly region: string;
  readonly primaryRegion: string;
  /** The name CloudFront connects to its load balancer with over HTTPS; undefined for HTTP. */
  readonly loadBalancerDomainName?: string;
}

/** Stage 10m's regions in the primary stack; its layer steps run in the order the stack calls them. */
export class PrimaryRegions {
  private readonly apps: RegionalApp[] = [];
  private routing?: cloudfront.FunctionAssociation;
  private store?: cloudfront.KeyValueStore;

  constructor(
    private readonly stack: Stack,
    private readonly secondaries: readonly SecondaryRegion[],
  ) {}

  /** The primary region: the first of the app's regions, where this stack deploys. */
  public get primaryRegion(): string {
    return this.secondaries[0].primaryRegion;
  }

  /**
   * The routing function's association, which `routeApi` makes: the services' paths run it too, so that
   * each viewer reaches the service in the nearest region.
   */
  public get routingAssociation(): cloudfront.FunctionAssociation | undefined {
    return this.routing;
  }

  /** The primary region's app origin id, which the routing function selects by. */
  public get appOriginId(): string {
    return regionalOriginId(this.primaryRegion);
  }

  /**
   * The API at `/api/*` behind the routing function, over the primary's app and each secondary
   * region's load balancer. The writer region is `writerRegion`, else the context key, else the primary.
   */
  public routeApi(cdn: CdnStatic, appOrigin: cloudfront.IOrigin, writerRegion?: string): void {
    this.apps.push(
      { region: this.secondaries[0].primaryRegion, origin: appOrigin },
      ...this.secondaries.map((s) => this.secondaryOrigin(s)),
    );
    const { association, store } = regionalRouting(cdn, this.apps, this.writerRegion(writerRegion));
    this.routing = association;
    this.store = store;
    cdn.addApiOrigin(appOrigin, '/api/*', [association]);
  }

  /** The first secondary region's media copy, which media reads fail over to. */
  public mediaFallback(): s3.IBucket {
    return this.secondaryMedia(this.secondaries[0]);
  }

  /**
   * `/_region/<region>/*` for each region, after the media behavior (so that the origins of earlier
   * stages keep their construct ids), and the database's and shards' secrets, the media and the store
   * replicated to each region.
   */
  public pinAndReplicate(
    cdn: CdnStatic,
    database: SeparatedDb,
    store: DenormalizedStore,
    shards?: ShardedDb,
  ): void {
    pinRegions(cdn, this.apps, this.routing!);
    for (const secondary of this.secondaries) {
      database.replicateSecretTo(secondary.region);
      shards?.replicateSecretsTo(secondary.region);
      cdn.replicateMediaTo(this.secondaryMedia(secondary));
      store.addReplica(secondary.region);
    }
    new CfnOutput(this.stack, 'RoutingStoreArn', {
      description: `The key value store whose ${WRITER_REGION_KEY} key names the region that takes the writes (promotion runbook)`,
      value: this.store!.keyValueStoreArn,
    });
  }

  /** The writer region: one of the app's regions. */
  private writerRegion(fromProps?: string): string {
    const regions = this.apps.map((a) => a.region);
    const writer = fromProps ?? readString(this.stack.node, 'writerRegion') ?? regions[0];
    if (!regions.includes(writer)) {
      throw new ScaleStagesError(
        `writerRegion (prop or context key) must be one of the app's regions, ${regions.join(', ')}; got '${writer}'.`,
      );
    }
    return writer;
  }

  /**
   * A secondary region's load balancer as an origin of the distribution: a VPC origin made here, from
   * the outputs of its stack, which deploys first.
   */
  private secondaryOrigin(secondary: SecondaryRegion): RegionalApp {
    const output = (name: string) => Fn.getStackOutput(secondary.stackName, name, secondary.region);
    const loadBalancer = elbv2.ApplicationLoadBalancer.fromApplicationLoadBalancerAttributes(
      this.stack,
      `LoadBalancer-${secondary.region}`,
      {
        loadBalancerArn: output(SECONDARY_OUTPUTS.loadBalancerArn),
        loadBalancerDnsName: output(SECONDARY_OUTPUTS.loadBalancerDnsName),
        securityGroupId: output(SECONDARY_OUTPUTS.loadBalancerSecurityGroup),
      },
    );
    return {
      region: secondary.region,
      origin: loadBalancerOrigin(loadBalancer, secondary.loadBalancerDomainName, {
        originId: regionalOriginId(secondary.region),
        vpcOriginName: `${this.stack.stackName}-${secondary.region}`,
      }),
    };
  }

  /** A secondary region's media bucket, from its stack's output. */
  private secondaryMedia(secondary: SecondaryRegion): s3.IBucket {
    const id = `Media-${secondary.region}`;
    return (
      (this.stack.node.tryFindChild(id) as s3.IBucket | undefined) ??
      s3.Bucket.fromBucketAttributes(this.stack, id, {
        bucketName: Fn.getStackOutput(
          secondary.stackName,
          SECONDARY_OUTPUTS.mediaBucketName,
          secondary.region,
        ),
        region: secondary.region,
      })
    );
  }
}

/**
 * A secondary region's media bucket: the destination of the primary's media replication, like its
 * source, which browsers may POST uploads to once this region takes the writes. The primary's
 * distribution, and no other, reads the media from here when its own media bucket fails (CloudFront
 * Developer Guide, "Restrict access to an Amazon S3 origin": AWS:SourceArn names the distribution).
 */
export function regionMediaLayer(
  stack: Stack,
  primaryOutput: (name: string) => string,
  appTiers: (IAppTier & IConstruct)[],
): s3.Bucket {
  const media = contentBucket(stack, 'MediaBucket', {
    logs: logBucket(stack, 90),
    logPrefix: 'media-bucket/',
    noncurrentVersionDays: 90,
    cors: [BROWSER_UPLOADS_CORS],
  });
  // It exists from stage 1, so the distribution's id is an output before this stack deploys.
  const distributionId = primaryOutput(PRIMARY_DISTRIBUTION_ID_OUTPUT);
  media.addToResourcePolicy(
    new iam.PolicyStatement({
      principals: [new iam.ServicePrincipal('cloudfront.amazonaws.com')],
      actions: ['s3:GetObject'],
      resources: [media.arnForObjects('media/*')],
      conditions: {
        StringEquals: {
          'AWS:SourceArn': `arn:${Aws.PARTITION}:cloudfront::${Aws.ACCOUNT_ID}:distribution/${distributionId}`,
        },
      },
    }),
  );
  appTiers.forEach((tier) => connectMedia(tier, media));
  return media;
}
