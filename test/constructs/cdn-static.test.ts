import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import { CdnStatic } from '../../lib';
import { newApp } from '../helpers';

/** Managed CloudFront policies, by their fixed ids. */
const CACHING_OPTIMIZED = '658327ea-f89d-4fab-a63d-7e88639e58f6';
const CACHING_DISABLED = '4135ea2d-6df8-44a3-9df3-4b5a84be39ad';
const SECURITY_HEADERS = '67f7725c-6f97-4210-82d7-5512b31e9d03';
const ALL_VIEWER_EXCEPT_HOST_HEADER = 'b689b0a8-53d0-40ab-baf2-68738e2966ac';

function build(props: ConstructorParameters<typeof CdnStatic>[2] = {}, configure?: (cdn: CdnStatic) => void) {
  const stack = new Stack(newApp(), 'Test');
  const cdn = new CdnStatic(stack, 'Cdn', props);
  configure?.(cdn);
  return { stack, cdn, template: Template.fromStack(stack) };
}

const certificate = (stack: Stack, region: string) =>
  acm.Certificate.fromCertificateArn(stack, 'Cert', `arn:aws:acm:${region}:123456789012:certificate/abc`);

describe('CdnStatic defaults', () => {
  const { stack, cdn, template } = build({}, (c) =>
    c.addApiOrigin(new origins.HttpOrigin('api.example.com')),
  );

  test('the web bucket is private, encrypted, versioned, TLS-only, logged and retained', () => {
    template.hasResource('AWS::S3::Bucket', {
      Properties: {
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        },
        BucketEncryption: {
          ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
        },
        VersioningConfiguration: { Status: 'Enabled' },
        LoggingConfiguration: { LogFilePrefix: 'web-bucket/', DestinationBucketName: Match.anyValue() },
        LifecycleConfiguration: {
          Rules: [Match.objectLike({ NoncurrentVersionExpiration: { NoncurrentDays: 30 } })],
        },
      },
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: Match.stringLikeRegexp('CdnWebBucket') },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          Match.objectLike({ Principal: { Service: 'cloudfront.amazonaws.com' }, Action: 's3:GetObject' }),
        ]),
      },
    });
  });

  test('access logs are kept 90 days in a retained bucket CloudFront can write to', () => {
    template.hasResource('AWS::S3::Bucket', {
      Properties: {
        OwnershipControls: { Rules: [{ ObjectOwnership: 'ObjectWriter' }] },
        LifecycleConfiguration: { Rules: [Match.objectLike({ ExpirationInDays: 90 })] },
      },
      DeletionPolicy: 'Retain',
    });
  });

  test('the distribution serves the bucket through origin access control, HTTPS only, with security headers', () => {
    template.resourceCountIs('AWS::CloudFront::OriginAccessControl', 1);
    template.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({
        DefaultRootObject: 'index.html',
        HttpVersion: 'http2and3',
        PriceClass: 'PriceClass_100',
        Logging: Match.objectLike({ Prefix: 'distribution/' }),
        DefaultCacheBehavior: Match.objectLike({
          ViewerProtocolPolicy: 'redirect-to-https',
          CachePolicyId: CACHING_OPTIMIZED,
          ResponseHeadersPolicyId: SECURITY_HEADERS,
          FunctionAssociations: [Match.objectLike({ EventType: 'viewer-request' })],
        }),
      }),
    });
  });

  test('single-page-app routes get /index.html from a CloudFront Function on the web client only', () => {
    const code = fs.readFileSync(
      path.join(__dirname, '..', '..', 'assets', 'cloudfront', 'spa-routing.js'),
      'utf8',
    );
    template.hasResourceProperties('AWS::CloudFront::Function', {
      FunctionCode: code,
      FunctionConfig: Match.objectLike({ Runtime: 'cloudfront-js-2.0' }),
    });
  });

  test('the API path is never cached and gets the viewer request', () => {
    template.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({
        CacheBehaviors: [
          Match.objectLike({
            PathPattern: '/api/*',
            ViewerProtocolPolicy: 'redirect-to-https',
            CachePolicyId: CACHING_DISABLED,
            OriginRequestPolicyId: ALL_VIEWER_EXCEPT_HOST_HEADER,
            ResponseHeadersPolicyId: SECURITY_HEADERS,
            AllowedMethods: ['GET', 'HEAD', 'OPTIONS', 'PUT', 'PATCH', 'POST', 'DELETE'],
          }),
        ],
      }),
    });
  });

  test('the web client is uploaded on deploy and the cache invalidated', () => {
    template.hasResourceProperties('Custom::CDKBucketDeployment', {
      DestinationBucketName: { Ref: Match.stringLikeRegexp('CdnWebBucket') },
      DistributionPaths: ['/*'],
      Prune: true,
    });
  });

  test('exposes the escape hatches and the https URL', () => {
    expect(cdn.distribution).toBeInstanceOf(cloudfront.Distribution);
    expect(cdn.bucket!.bucketArn).toBeDefined();
    expect(stack.resolve(cdn.url)).toEqual({
      'Fn::Join': [
        '',
        ['https://', { 'Fn::GetAtt': [expect.stringMatching(/^CdnDistribution/), 'DomainName'] }],
      ],
    });
  });
});

describe('CdnStatic overrides', () => {
  test('a custom domain with its certificate requires TLS 1.2', () => {
    const stack = new Stack(newApp(), 'Test');
    const cdn = new CdnStatic(stack, 'Cdn', {
      domainNames: ['www.example.com'],
      certificate: certificate(stack, 'us-east-1'),
    });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({
        Aliases: ['www.example.com'],
        ViewerCertificate: Match.objectLike({ MinimumProtocolVersion: 'TLSv1.2_2021' }),
      }),
    });
    expect(cdn.url).toBe('https://www.example.com');
  });

  test('price class, log retention and the web client folder', () => {
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'client-'));
    fs.writeFileSync(path.join(folder, 'index.html'), '<h1>mine</h1>');
    const { template } = build({
      webClientPath: folder,
      priceClass: cloudfront.PriceClass.PRICE_CLASS_ALL,
      logRetention: Duration.days(30),
    });
    template.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({ PriceClass: 'PriceClass_All' }),
    });
    template.hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: { Rules: [Match.objectLike({ ExpirationInDays: 30 })] },
    });
    fs.rmSync(folder, { recursive: true });
  });
});

describe('CdnStatic media bucket', () => {
  const { cdn, template } = build({}, (c) => c.addMediaBucket());

  test('a second private, versioned, retained bucket served on /media/* with caching', () => {
    template.resourceCountIs('AWS::S3::Bucket', 3);
    template.hasResource('AWS::S3::Bucket', {
      Properties: Match.objectLike({
        VersioningConfiguration: { Status: 'Enabled' },
        LoggingConfiguration: { LogFilePrefix: 'media-bucket/', DestinationBucketName: Match.anyValue() },
      }),
      DeletionPolicy: 'Retain',
    });
    template.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({
        CacheBehaviors: [
          Match.objectLike({
            PathPattern: '/media/*',
            CachePolicyId: CACHING_OPTIMIZED,
            ViewerProtocolPolicy: 'redirect-to-https',
          }),
        ],
      }),
    });
    template.resourceCountIs('AWS::CloudFront::OriginAccessControl', 2);
    expect(cdn.mediaBucket).toBeDefined();
  });

  test('one media bucket per CdnStatic', () => {
    expect(() =>
      build({}, (c) => {
        c.addMediaBucket();
        c.addMediaBucket('/uploads/*');
      }),
    ).toThrow(/addMediaBucket was called twice/);
  });

  test('without addMediaBucket there is none', () => {
    expect(build().cdn.mediaBucket).toBeUndefined();
  });
});

describe('CdnStatic in front of the app alone (stages 1 and 10)', () => {
  const { cdn, template } = build({
    appOrigin: new origins.HttpOrigin('app.example.com'),
    webClient: false,
  });

  test('the app serves every path: HTTPS only, never cached, the viewer request passed on', () => {
    template.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({
        DefaultCacheBehavior: Match.objectLike({
          ViewerProtocolPolicy: 'redirect-to-https',
          CachePolicyId: CACHING_DISABLED,
          OriginRequestPolicyId: ALL_VIEWER_EXCEPT_HOST_HEADER,
          ResponseHeadersPolicyId: SECURITY_HEADERS,
          AllowedMethods: ['GET', 'HEAD', 'OPTIONS', 'PUT', 'PATCH', 'POST', 'DELETE'],
        }),
        CacheBehaviors: Match.absent(),
        DefaultRootObject: Match.absent(),
        Origins: [Match.objectLike({ DomainName: 'app.example.com' })],
      }),
    });
  });

  test('no web bucket, no upload, no routing function; the access logs stay', () => {
    template.resourceCountIs('AWS::S3::Bucket', 1);
    template.resourceCountIs('Custom::CDKBucketDeployment', 0);
    template.resourceCountIs('AWS::CloudFront::Function', 0);
    expect(cdn.bucket).toBeUndefined();
    expect(cdn.deployment).toBeUndefined();
  });
});

test('appOrigin with a web client serves the API on apiPathPattern', () => {
  const { template } = build({
    appOrigin: new origins.HttpOrigin('app.example.com'),
    apiPathPattern: '/v1/*',
  });
  template.hasResourceProperties('AWS::CloudFront::Distribution', {
    DistributionConfig: Match.objectLike({
      CacheBehaviors: [Match.objectLike({ PathPattern: '/v1/*', CachePolicyId: CACHING_DISABLED })],
    }),
  });
});

test('a web ACL ARN reaches the distribution', () => {
  const arn = 'arn:aws:wafv2:us-east-1:123456789012:global/webacl/edge/abc';
  build({ webAclArn: arn }).template.hasResourceProperties('AWS::CloudFront::Distribution', {
    DistributionConfig: Match.objectLike({ WebACLId: arn }),
  });
});

describe('CdnStatic validation', () => {
  test.each([
    'arn:aws:wafv2:eu-west-1:123456789012:global/webacl/edge/abc',
    'arn:aws:wafv2:us-east-1:123456789012:regional/webacl/edge/abc',
    'my-web-acl',
  ])('a web ACL ARN that is not a CLOUDFRONT one fails: %s', (arn) => {
    expect(() => build({ webAclArn: arn })).toThrow(
      new RegExp(
        `webAclArn must be the ARN of a CLOUDFRONT-scope AWS WAF web ACL, which lives in us-east-1.*got '${arn}'`,
      ),
    );
  });

  test('no web client and no app origin fails: nothing to serve', () => {
    expect(() => build({ webClient: false })).toThrow(
      /Test\/Cdn: webClient is false and there is no appOrigin: the distribution would serve nothing/,
    );
  });

  test('a web client folder without a web client fails', () => {
    expect(() =>
      build({ webClient: false, webClientPath: '/tmp', appOrigin: new origins.HttpOrigin('a.example.com') }),
    ).toThrow(/webClientPath '\/tmp' is given but webClient is false/);
  });

  test('an API path pattern that takes every path fails', () => {
    expect(() => build({ appOrigin: new origins.HttpOrigin('a.example.com'), apiPathPattern: '/*' })).toThrow(
      /pathPattern must start with '\/' and leave the web client its paths/,
    );
  });

  test('a web client folder without index.html fails', () => {
    expect(() => build({ webClientPath: os.tmpdir() + '/no-such-client' })).toThrow(
      /Test\/Cdn: webClientPath must be a folder with an index.html \(your built web client\); got '.*no-such-client'/,
    );
  });

  test('domain names without a certificate fail, and the reverse', () => {
    expect(() => build({ domainNames: ['www.example.com'] })).toThrow(
      /domainNames and certificate go together/,
    );
    const stack = new Stack(newApp(), 'Test');
    expect(() => new CdnStatic(stack, 'Cdn', { certificate: certificate(stack, 'us-east-1') })).toThrow(
      /domainNames and certificate go together/,
    );
  });

  test('a certificate outside us-east-1 fails (aws-cdk-lib checks it)', () => {
    const stack = new Stack(newApp(), 'Test');
    expect(
      () =>
        new CdnStatic(stack, 'Cdn', {
          domainNames: ['a.example.com'],
          certificate: certificate(stack, 'eu-west-1'),
        }),
    ).toThrow(
      /certificates must be in the us-east-1 region and the certificate you provided is in eu-west-1/,
    );
  });

  test('log retention must be whole days', () => {
    expect(() => build({ logRetention: Duration.hours(12) })).toThrow(
      /logRetention \(days\) must be a whole number from 1 to 3650; got 0.5/,
    );
  });

  test.each(['api/*', '/*'])('API path pattern %p fails', (pathPattern) => {
    expect(() =>
      build({}, (cdn) => cdn.addApiOrigin(new origins.HttpOrigin('api.example.com'), pathPattern)),
    ).toThrow(
      new RegExp(
        `pathPattern must start with '/' and leave the web client its paths.*got '${pathPattern.replace('*', '\\*')}'`,
      ),
    );
  });
});
