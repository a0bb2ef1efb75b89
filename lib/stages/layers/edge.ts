/**
 * The edge layers of the primary stack: one CloudFront distribution from stage 1, viewers' only way in
 * (HTTPS at its `*.cloudfront.net` name or the team's own domain), grown by the web client at stage 100
 * and the media bucket at 10k.
 */
import { CfnOutput, Stack, Validations } from 'aws-cdk-lib/core';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as route53 from 'aws-cdk-lib/aws-route53';
import * as route53Targets from 'aws-cdk-lib/aws-route53-targets';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { IAppTier } from '../../app-tier';
import { CdnStatic } from '../../constructs/cdn-static';
import { LoadBalancedTier } from '../../constructs/load-balanced-tier';
import { SingleServer } from '../../constructs/single-server';
import { ScaleStagesError } from '../../private/errors';
import { checkDomainName, readDomainContext } from '../context';
import { connectMedia } from '../uploads';
import { IConstruct } from 'constructs';

/** The primary's output with its distribution's id (`SecondaryRegionStack` reads it). */
export const PRIMARY_DISTRIBUTION_ID_OUTPUT = 'DistributionId';

/** The settings of the CDN layer, named as `StageStackProps` names them. */
export interface CdnSettings {
  readonly domainName?: string;
  readonly certificate?: acm.ICertificate;
  readonly hostedZone?: route53.IHostedZone;
  readonly webAclArn?: string;
  readonly webClientPath?: string;
  readonly loadBalancerDomainName?: string;
}

/**
 * The distribution in front of the app tier (the server, or the fleet's internal load balancer through
 * a VPC origin), with the web client when `webClient` and the own domain's alias records. With `routedOriginId`, the API is left to stage 10m's routing (`PrimaryRegions`),
 * which gets the app's origin under that id.
 */
export function cdnLayer(
  stack: Stack,
  settings: CdnSettings,
  app: { readonly server?: SingleServer; readonly web?: LoadBalancedTier },
  options: { readonly webClient: boolean; readonly routedOriginId?: string },
): { cdn: CdnStatic; appOrigin: cloudfront.IOrigin } {
  const domain = ownDomain(stack, settings);
  const { origin, whyHttp } = appOrigin(app, settings.loadBalancerDomainName, options.routedOriginId);
  const cdn = new CdnStatic(stack, 'Cdn', {
    appOrigin: options.routedOriginId ? undefined : origin,
    webClient: options.webClient,
    webClientPath: options.webClient ? settings.webClientPath : undefined,
    webAclArn: settings.webAclArn,
    domainNames: domain && [domain.domainName],
    certificate: domain?.certificate,
  });
  if (whyHttp) Validations.of(cdn.distribution).acknowledge({ id: 'AwsSolutions-CFR5', reason: whyHttp });
  if (domain?.hostedZone) aliasRecords(stack, domain.hostedZone, domain.domainName, cdn);
  return { cdn, appOrigin: origin };
}

/** The app's URL and the distribution's id, for the team and for stage 10m's regions. */
export function appOutputs(stack: Stack, cdn: CdnStatic, webClient: boolean): void {
  // Stage 10m's regions let this distribution, and no other, read their media copies.
  new CfnOutput(stack, PRIMARY_DISTRIBUTION_ID_OUTPUT, {
    description: "The CloudFront distribution's id (aws cloudfront create-invalidation --distribution-id)",
    value: cdn.distribution.distributionId,
  });
  new CfnOutput(stack, 'AppUrl', {
    description: webClient
      ? 'The app: the web client, with the API at /api/*'
      : 'The app, served by the single server through CloudFront',
    value: cdn.url,
  });
}

/**
 * Stage 10k onwards: the media bucket behind `/media/*`, read and written by the fleet; at stage 10m
 * its reads fail over to `fallback`, a secondary region's copy.
 */
export function mediaLayer(
  stack: Stack,
  cdn: CdnStatic,
  appTiers: (IAppTier & IConstruct)[],
  fallback?: s3.IBucket,
): s3.IBucket {
  const media = cdn.addMediaBucket('/media/*', fallback);
  appTiers.forEach((tier) => connectMedia(tier, media));
  new CfnOutput(stack, 'MediaBucketName', {
    description: 'Media uploads; served at <AppUrl>/media/*',
    value: media.bucketName,
  });
  return media;
}

/**
 * CloudFront's VPC origin of an internal load balancer: over HTTPS at `httpsHost`, the name its
 * certificate covers, or over HTTP without one.
 */
export function loadBalancerOrigin(
  loadBalancer: elbv2.IApplicationLoadBalancer,
  httpsHost: string | undefined,
  props: { originId?: string; vpcOriginName?: string },
): cloudfront.IOrigin {
  return origins.VpcOrigin.withApplicationLoadBalancer(loadBalancer, {
    ...props,
    domainName: httpsHost,
    protocolPolicy: httpsHost
      ? cloudfront.OriginProtocolPolicy.HTTPS_ONLY
      : cloudfront.OriginProtocolPolicy.HTTP_ONLY,
  });
}

/**
 * How CloudFront reaches the app, and why that hop is plain HTTP when it is. The stage-1 server has
 * a public address and admits CloudFront's origin-facing servers only; CloudFront reaches it over
 * HTTP, as it has no certificate. From stage 1k the load balancer is internal and CloudFront
 * reaches it through a VPC origin, over HTTPS at `loadBalancerDomainName` when a certificate is
 * given.
 */
function appOrigin(
  app: { readonly server?: SingleServer; readonly web?: LoadBalancedTier },
  httpsHost: string | undefined,
  originId?: string,
): { origin: cloudfront.IOrigin; whyHttp?: string } {
  if (app.server) {
    return {
      origin: new origins.HttpOrigin(app.server.publicDnsName, {
        protocolPolicy: cloudfront.OriginProtocolPolicy.HTTP_ONLY,
        httpPort: app.server.app.port,
      }),
      whyHttp: 'The stage-1 server has no certificate; its port admits only CloudFront.',
    };
  }
  return {
    origin: loadBalancerOrigin(app.web!.loadBalancer, httpsHost, { originId }),
    whyHttp: httpsHost
      ? undefined
      : 'CloudFront reaches the internal load balancer through a VPC origin, inside the AWS network; give loadBalancerCertificate and loadBalancerDomainName for HTTPS on that hop too.',
  };
}

/** The own domain from the settings, or else from the context keys; undefined for the *.cloudfront.net name. */
function ownDomain(
  stack: Stack,
  settings: CdnSettings,
): { domainName: string; certificate: acm.ICertificate; hostedZone?: route53.IHostedZone } | undefined {
  const fromContext = readDomainContext(stack.node);
  const domainName = settings.domainName ?? fromContext.domainName;
  if (domainName === undefined && settings.certificate === undefined && settings.hostedZone === undefined) {
    return undefined;
  }
  if (domainName === undefined && settings.hostedZone) {
    throw new ScaleStagesError(
      'hostedZone needs domainName: the name whose alias records it gets. Give domainName and certificate with it.',
    );
  }
  if (domainName === undefined || !(settings.certificate ?? fromContext.certificateArn)) {
    throw new ScaleStagesError(
      'domainName and certificate go together: CloudFront serves a domain only with an ACM certificate (in us-east-1) that covers it. Give both, or neither for the *.cloudfront.net name.',
    );
  }
  checkDomainName('domainName', domainName);
  const certificate =
    settings.certificate ??
    acm.Certificate.fromCertificateArn(stack, 'Certificate', fromContext.certificateArn!);
  const hostedZone =
    settings.hostedZone ??
    (fromContext.hostedZoneId
      ? route53.HostedZone.fromHostedZoneId(stack, 'HostedZone', fromContext.hostedZoneId)
      : undefined);
  return { domainName, certificate, hostedZone };
}

/** The A and AAAA alias records that point the viewers' domain at the distribution. */
function aliasRecords(stack: Stack, zone: route53.IHostedZone, domainName: string, cdn: CdnStatic): void {
  const target = route53.RecordTarget.fromAlias(new route53Targets.CloudFrontTarget(cdn.distribution));
  // A fully qualified name (trailing dot), so an imported zone needs no zone name.
  const recordName = `${domainName}.`;
  new route53.ARecord(stack, 'AliasRecord', { zone, recordName, target });
  new route53.AaaaRecord(stack, 'AliasRecordIpv6', { zone, recordName, target });
}
