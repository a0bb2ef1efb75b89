import * as fs from 'fs';
import * as path from 'path';
import { Annotations, Duration, Stack, Token, Validations } from 'aws-cdk-lib/core';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3deploy from 'aws-cdk-lib/aws-s3-deployment';
import { Construct } from 'constructs';
import { assetPath, readAsset } from '../private/assets';
import {
  acknowledgeAwsCdkHandler,
  afterHandlerLogGroup,
  BASIC_EXECUTION_ROLE,
} from '../private/aws-cdk-handlers';
import { BROWSER_UPLOADS_CORS, contentBucket, logBucket } from '../private/buckets';
import { checkDays, ScaleStagesError } from '../private/errors';
import { markTier } from '../private/tiers';

/** Properties of a `CdnStatic`. */
export interface CdnStaticProps {
  /**
   * Where the app runs (the server, or the load balancer through a VPC origin). Without a web
   * client it serves every path; with one, the API paths (`apiPathPattern`). Never cached, with the
   * viewer's headers, cookies and query strings passed on.
   *
   * @default - no app origin; `addApiOrigin` can add one later
   */
  readonly appOrigin?: cloudfront.IOrigin;
  /**
   * The paths the app serves when the web client is on S3.
   *
   * @default '/api/*'
   */
  readonly apiPathPattern?: string;
  /**
   * Whether the browser client is served from a private S3 bucket (stage 100 onwards). Without it
   * the app serves every path itself, as at stages 1 and 10.
   *
   * @default true
   */
  readonly webClient?: boolean;
  /**
   * The folder with the built web client (it must hold an `index.html`). Its files are uploaded on
   * every deploy; files no longer in the folder are removed from the bucket (older versions stay
   * in the bucket's version history).
   *
   * @default - the small example client shipped with this library
   */
  readonly webClientPath?: string;
  /**
   * The ARN of a CLOUDFRONT-scope AWS WAF web ACL (created in us-east-1) that inspects every
   * request before it reaches an origin. `EdgeFirewall` builds one.
   *
   * @default - no web ACL
   */
  readonly webAclArn?: string;
  /**
   * Custom domain names (CNAMEs) of the distribution; give `certificate` with them.
   *
   * @default - only the distribution's *.cloudfront.net name
   */
  readonly domainNames?: string[];
  /**
   * The ACM certificate (in us-east-1) that covers `domainNames`; with it viewers need TLS 1.2+.
   *
   * @default - the *.cloudfront.net certificate
   */
  readonly certificate?: acm.ICertificate;
  /**
   * The edge locations that serve the content; more locations cost more.
   *
   * @default cloudfront.PriceClass.PRICE_CLASS_100 (North America and Europe)
   */
  readonly priceClass?: cloudfront.PriceClass;
  /**
   * How long CloudFront and S3 access logs are kept.
   *
   * @default Duration.days(90)
   */
  readonly logRetention?: Duration;
}

/**
 * The CloudFront distribution in front of the app, from stage 1, and the browser client on a
 * private S3 bucket (origin access control) from stage 100.
 *
 * Viewers get HTTPS from the first stage with no domain and no certificate: the
 * `*.cloudfront.net` name has one, and HTTP redirects. Security headers on every response,
 * single-page-app routing on the web client (paths without a file extension get `/index.html`),
 * access logs for the distribution and the bucket. The bucket is versioned, encrypted, TLS-only
 * and kept when the stack is deleted. The app is never cached. Later stages grow the same
 * distribution (same logical id): the web client moves to S3, media gets a bucket.
 */
export class CdnStatic extends Construct {
  /**
   * Where the app may write pre-rendered pages in the web bucket, served from the default
   * behavior with the TTL of their `Cache-Control`; deploys of the web client leave them alone.
   */
  public static readonly PRERENDERED_PREFIX = 'prerendered/';

  /** The private bucket that holds the web client; undefined without a web client. */
  public readonly bucket?: s3.Bucket;
  /** The bucket that receives the distribution's and the web bucket's access logs. */
  public readonly logBucket: s3.Bucket;
  /** The CloudFront distribution. */
  public readonly distribution: cloudfront.Distribution;
  /** The upload of the web client's files; undefined without a web client. */
  public readonly deployment?: s3deploy.BucketDeployment;

  private readonly domainName?: string;
  private media?: s3.Bucket;
  private mediaPrefix = 'media/';
  private replicationRole?: iam.Role;
  private readonly replicationDestinations: s3.IBucket[] = [];
  /** The paths of the behaviors added so far, in the order CloudFront matches them. */
  private readonly behaviorPaths: string[] = [];

  constructor(scope: Construct, id: string, props: CdnStaticProps = {}) {
    super(scope, id);
    const webClient = props.webClient ?? true;
    const logRetentionDays = checkDays(
      this,
      'logRetention',
      props.logRetention ?? Duration.days(90),
      1,
      3650,
    );
    if (!webClient && !props.appOrigin) {
      throw new ScaleStagesError(
        'webClient is false and there is no appOrigin: the distribution would serve nothing. Give appOrigin, or leave webClient on.',
        this,
      );
    }
    if (!webClient && props.webClientPath !== undefined) {
      throw new ScaleStagesError(
        `webClientPath '${props.webClientPath}' is given but webClient is false; drop one of them.`,
        this,
      );
    }
    const webClientPath = props.webClientPath ?? assetPath('web-client');
    if (webClient && !fs.existsSync(path.join(webClientPath, 'index.html'))) {
      throw new ScaleStagesError(
        `webClientPath must be a folder with an index.html (your built web client); got '${webClientPath}'.`,
        this,
      );
    }
    if (Boolean(props.domainNames?.length) !== Boolean(props.certificate)) {
      throw new ScaleStagesError(
        'domainNames and certificate go together: give both for a custom domain, or neither for the *.cloudfront.net name.',
        this,
      );
    }
    const webAcl = props.webAclArn;
    if (webAcl !== undefined && !Token.isUnresolved(webAcl) && !CLOUDFRONT_WEB_ACL.test(webAcl)) {
      throw new ScaleStagesError(
        `webAclArn must be the ARN of a CLOUDFRONT-scope AWS WAF web ACL, which lives in us-east-1 (arn:aws:wafv2:us-east-1:<account>:global/webacl/<name>/<id>); got '${webAcl}'.`,
        this,
      );
    }
    this.domainName = props.domainNames?.[0];

    // CloudFront's standard logs are written with ACLs.
    this.logBucket = logBucket(this, logRetentionDays, s3.ObjectOwnership.OBJECT_WRITER);

    let defaultBehavior: cloudfront.BehaviorOptions;
    if (webClient) {
      this.bucket = contentBucket(this, 'WebBucket', {
        logs: this.logBucket,
        logPrefix: 'web-bucket/',
        noncurrentVersionDays: 30,
      });
      const spaRouting = new cloudfront.Function(this, 'SpaRouting', {
        comment: 'Serves /index.html for single-page-app routes',
        code: cloudfront.FunctionCode.fromInline(readAsset('cloudfront/spa-routing.js')),
        runtime: cloudfront.FunctionRuntime.JS_2_0,
      });
      defaultBehavior = {
        origin: origins.S3BucketOrigin.withOriginAccessControl(this.bucket),
        viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
        cachePolicy: cloudfront.CachePolicy.CACHING_OPTIMIZED,
        responseHeadersPolicy: cloudfront.ResponseHeadersPolicy.SECURITY_HEADERS,
        functionAssociations: [
          { function: spaRouting, eventType: cloudfront.FunctionEventType.VIEWER_REQUEST },
        ],
      };
    } else {
      defaultBehavior = { origin: props.appOrigin!, ...APP_BEHAVIOR };
    }

    this.distribution = new cloudfront.Distribution(this, 'Distribution', {
      comment: `${Stack.of(this).stackName}: the app${webClient ? ' and its web client' : ''}`,
      defaultBehavior,
      defaultRootObject: webClient ? 'index.html' : undefined,
      domainNames: props.domainNames,
      certificate: props.certificate,
      minimumProtocolVersion: props.certificate ? cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021 : undefined,
      httpVersion: cloudfront.HttpVersion.HTTP2_AND_3,
      priceClass: props.priceClass ?? cloudfront.PriceClass.PRICE_CLASS_100,
      enableLogging: true,
      logBucket: this.logBucket,
      logFilePrefix: 'distribution/',
      webAclId: props.webAclArn,
    });
    markTier(this.distribution, 'cdn');
    Validations.of(this.distribution).acknowledge({
      id: 'AwsSolutions-CFR1',
      reason:
        'The app serves every country; add geoRestriction through the distribution escape hatch if yours must not.',
    });
    if (!props.webAclArn) {
      Validations.of(this.distribution).acknowledge({
        id: 'AwsSolutions-CFR2',
        reason:
          'No web ACL was given: StageStacks adds the edge WAF from stage 1k (about $9 a month), and below that when asked (edgeFirewall); give webAclArn for your own.',
      });
    }
    if (!props.certificate) {
      Validations.of(this.distribution).acknowledge({
        id: 'AwsSolutions-CFR4',
        reason:
          'The default *.cloudfront.net certificate cannot pin TLS 1.2; giving certificate and domainNames does.',
      });
    }

    if (this.bucket) {
      this.deployment = new s3deploy.BucketDeployment(this, 'WebClient', {
        sources: [s3deploy.Source.asset(webClientPath)],
        destinationBucket: this.bucket,
        distribution: this.distribution,
        distributionPaths: ['/*'],
        // A deploy replaces the client and prunes what it does not ship, but not what the app
        // renders into the bucket at run time.
        exclude: [`${CdnStatic.PRERENDERED_PREFIX}*`],
      });
      this.acknowledgeDeploymentHandler(this.bucket, this.deployment);
    }
    if (webClient && props.appOrigin) {
      this.addApiOrigin(props.appOrigin, props.apiPathPattern);
    }
  }

  /**
   * The upload runs in aws-cdk-lib's BucketDeployment handler, one Lambda per stack that this
   * library does not write; what cdk-nag says of it is aws-cdk-lib's design.
   */
  private acknowledgeDeploymentHandler(bucket: s3.Bucket, deployment: s3deploy.BucketDeployment): void {
    const stack = Stack.of(this);
    const webBucketId = stack.getLogicalId(bucket.node.defaultChild as s3.CfnBucket);
    const reason =
      "aws-cdk-lib's BucketDeployment handler needs to read the CDK asset bucket, write and prune the web bucket, and invalidate the distribution (CreateInvalidation has no resource-level permissions).";
    for (const finding of [
      BASIC_EXECUTION_ROLE,
      'IAM5[Action::s3:GetBucket*]',
      'IAM5[Action::s3:GetObject*]',
      'IAM5[Action::s3:List*]',
      'IAM5[Action::s3:Abort*]',
      'IAM5[Action::s3:DeleteObject*]',
      'IAM5[Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/*]',
      `IAM5[Resource::<${webBucketId}.Arn>/*]`,
      'IAM5[Resource::*]',
    ]) {
      Validations.of(deployment.handlerRole).acknowledge({ id: `AwsSolutions-${finding}`, reason });
    }
    const handlerId = 'Custom::CDKBucketDeployment8693BB64968944B69AAFB0CC9EB8756C';
    acknowledgeAwsCdkHandler(
      this,
      handlerId,
      'aws-cdk-lib picks the runtime of its BucketDeployment handler and moves it forward with its releases.',
      ['L1'],
    );
    afterHandlerLogGroup(deployment, handlerId);
  }

  /**
   * Serves the app's API, or a service's paths, through the same distribution on `pathPattern`: never
   * cached, every method, with the viewer's headers (a WebSocket upgrade's among them), cookies and
   * query strings passed on, so the browser client calls its own origin and needs no CORS.
   *
   * @param origin where the API runs (the server or the load balancer)
   * @param pathPattern the API's paths
   * @param functionAssociations CloudFront Functions to run on these paths, such as stage 10m's
   * regional routing
   */
  public addApiOrigin(
    origin: cloudfront.IOrigin,
    pathPattern: string = '/api/*',
    functionAssociations?: cloudfront.FunctionAssociation[],
  ): void {
    this.checkBehaviorPath(pathPattern);
    this.distribution.addBehavior(pathPattern, origin, { ...APP_BEHAVIOR, functionAssociations });
  }

  /**
   * Adds a private media bucket (user uploads, images) served on `pathPattern` with caching and
   * the same protections as the web client's bucket: stage 10k onwards. The app writes to it with
   * its own credentials; viewers read it through CloudFront only.
   *
   * @param pathPattern the media paths; object keys start with the same prefix (`media/...`)
   * @param fallback a bucket in another region with a copy of the media (`replicateMediaTo`), whose
   * policy lets this account's distributions read them: CloudFront reads from it when the media
   * bucket answers a 5xx or not at all (GET and HEAD, an origin group), as in stage 10m
   */
  public addMediaBucket(pathPattern: string = '/media/*', fallback?: s3.IBucket): s3.IBucket {
    if (this.media) {
      throw new ScaleStagesError('addMediaBucket was called twice; a CdnStatic has one media bucket.', this);
    }
    this.checkBehaviorPath(pathPattern);
    this.mediaPrefix = pathPattern.replace(/^\//, '').replace(/\*$/, '');
    this.media = contentBucket(this, 'MediaBucket', {
      logs: this.logBucket,
      logPrefix: 'media-bucket/',
      noncurrentVersionDays: 90,
    });
    const origin = origins.S3BucketOrigin.withOriginAccessControl(this.media);
    const target = fallback
      ? new origins.OriginGroup({
          primaryOrigin: origin,
          fallbackOrigin: origins.S3BucketOrigin.withOriginAccessControl(fallback),
        })
      : origin;
    if (fallback) {
      Annotations.of(this.distribution).acknowledgeWarning(
        '@aws-cdk/aws-cloudfront-origins:updateImportedBucketPolicyOac',
        "The fallback bucket's own stack lets this account's distributions read it (see the fallback param).",
      );
    }
    this.distribution.addBehavior(pathPattern, target, {
      viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
      cachePolicy: cloudfront.CachePolicy.CACHING_OPTIMIZED,
      responseHeadersPolicy: cloudfront.ResponseHeadersPolicy.SECURITY_HEADERS,
    });
    return this.media;
  }

  /**
   * Lets browsers POST uploads straight to the media bucket (with a presigned POST the app hands
   * them) and read the answer: a CORS rule for POST. Any origin: a presigned POST's signed policy,
   * not CORS, decides what may be uploaded, and the distribution's own name cannot be named here
   * (the bucket would then depend on the distribution that depends on it).
   */
  public allowBrowserUploads(): void {
    if (!this.media) {
      throw new ScaleStagesError(
        'allowBrowserUploads needs the media bucket: call addMediaBucket first.',
        this,
      );
    }
    this.media.addCorsRule(BROWSER_UPLOADS_CORS);
  }

  /**
   * Copies the media (the objects under the media path, such as `media/`: what viewers are served, thumbnails included) into a bucket in
   * another region with S3 Cross-Region Replication, deletions too; stage 10m replicates into each
   * secondary region. The destination must exist and be versioned before this change deploys, and
   * objects from before it are not copied (S3 Batch Replication copies them). Uploads waiting for
   * processing (`uploads/`) stay in this region.
   *
   * @param destination the bucket in the other region, versioned
   */
  public replicateMediaTo(destination: s3.IBucket): void {
    if (!this.media) {
      throw new ScaleStagesError('replicateMediaTo needs the media bucket: call addMediaBucket first.', this);
    }
    if (!this.replicationRole) {
      // The permissions of S3 User Guide, "Setting up permissions for live replication".
      this.replicationRole = new iam.Role(this, 'MediaReplicationRole', {
        assumedBy: new iam.ServicePrincipal('s3.amazonaws.com'),
        description: 'S3 replicates the media bucket into the secondary regions',
      });
      this.replicationRole.addToPrincipalPolicy(
        new iam.PolicyStatement({
          actions: ['s3:GetReplicationConfiguration', 's3:ListBucket'],
          resources: [this.media.bucketArn],
        }),
      );
      this.replicationRole.addToPrincipalPolicy(
        new iam.PolicyStatement({
          actions: [
            's3:GetObjectVersionForReplication',
            's3:GetObjectVersionAcl',
            's3:GetObjectVersionTagging',
          ],
          resources: [this.media.arnForObjects(`${this.mediaPrefix}*`)],
        }),
      );
      const mediaId = Stack.of(this).getLogicalId(this.media.node.defaultChild as s3.CfnBucket);
      Validations.of(this.replicationRole).acknowledge({
        id: `AwsSolutions-IAM5[Resource::<${mediaId}.Arn>/${this.mediaPrefix}*]`,
        reason: `S3 replicates every new version of every object under ${this.mediaPrefix}.`,
      });
    }
    this.replicationRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['s3:ReplicateObject', 's3:ReplicateDelete', 's3:ReplicateTags'],
        resources: [destination.arnForObjects(`${this.mediaPrefix}*`)],
      }),
    );
    // cdk-nag names the resource as it reads the template: a deploy-time name as its JSON.
    const destinationName = Stack.of(this).resolve(destination.bucketName);
    const shown = typeof destinationName === 'string' ? destinationName : JSON.stringify(destinationName);
    Validations.of(this.replicationRole).acknowledge({
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::${shown}/${this.mediaPrefix}*]`,
      reason: `S3 writes every replicated version of every object under ${this.mediaPrefix} into the destination.`,
    });
    this.replicationDestinations.push(destination);
    const cfnBucket = this.media.node.defaultChild as s3.CfnBucket;
    cfnBucket.replicationConfiguration = {
      role: this.replicationRole.roleArn,
      rules: this.replicationDestinations.map((bucket, i) => ({
        id: `media-to-${i + 1}`,
        status: 'Enabled',
        priority: i + 1,
        filter: { prefix: this.mediaPrefix },
        deleteMarkerReplication: { status: 'Enabled' },
        destination: { bucket: bucket.bucketArn },
      })),
    };
  }

  /** The media bucket, once `addMediaBucket` has added it. */
  public get mediaBucket(): s3.IBucket | undefined {
    return this.media;
  }

  /** The URL of the web client: the first custom domain name, or the *.cloudfront.net name. */
  public get url(): string {
    return `https://${this.domainName ?? this.distribution.distributionDomainName}`;
  }

  /**
   * A behavior's path must be absolute, must not take every path from the web client, and must not fall
   * under a path added before it: CloudFront matches the behaviors in order, so that path would win.
   */
  private checkBehaviorPath(pathPattern: string): void {
    if (!pathPattern.startsWith('/') || pathPattern === '/*') {
      throw new ScaleStagesError(
        `pathPattern must start with '/' and leave the web client its paths, such as '/api/*'; got '${pathPattern}'.`,
        this,
      );
    }
    const earlier = this.behaviorPaths.find(
      (p) => p === pathPattern || (p.endsWith('*') && pathPattern.startsWith(p.slice(0, -1))),
    );
    if (earlier !== undefined) {
      throw new ScaleStagesError(
        `pathPattern '${pathPattern}' falls under '${earlier}', which the distribution matches first; give it a prefix of its own, such as '/ws/*'.`,
        this,
      );
    }
    this.behaviorPaths.push(pathPattern);
  }
}

/** A CLOUDFRONT-scope WAFv2 web ACL's ARN: region us-east-1, scope `global`. */
const CLOUDFRONT_WEB_ACL = /^arn:aws[a-z-]*:wafv2:us-east-1:\d{12}:global\/webacl\/[^/]+\/[^/]+$/;

/** How CloudFront passes requests to the app: every method, never cached, the viewer's request. */
const APP_BEHAVIOR: cloudfront.AddBehaviorOptions = {
  viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
  allowedMethods: cloudfront.AllowedMethods.ALLOW_ALL,
  cachePolicy: cloudfront.CachePolicy.CACHING_DISABLED,
  originRequestPolicy: cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
  responseHeadersPolicy: cloudfront.ResponseHeadersPolicy.SECURITY_HEADERS,
};
