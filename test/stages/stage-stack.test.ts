import * as zlib from 'zlib';
import { App, Duration, Size, Stack } from 'aws-cdk-lib';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as route53 from 'aws-cdk-lib/aws-route53';
import { AppSource, StageStack, UserStage } from '../../lib';
import { scriptWithoutComments } from '../../lib/private/assets';
import { POSTGRES_VERSIONS } from '../../lib/stages/stage-table';
import { CDK_JSON_CONTEXT, cloudFrontPrefixListRef, newApp, synthStage, serverScript } from '../helpers';

describe('stage 1', () => {
  const { stack, template } = synthStage(UserStage.USERS_1);

  test('one server with PostgreSQL on its data volume; no RDS, no NAT, no load balancer', () => {
    template.resourceCountIs('AWS::EC2::Instance', 1);
    template.resourceCountIs('AWS::EC2::Volume', 1);
    template.resourceCountIs('AWS::RDS::DBInstance', 0);
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.resourceCountIs('AWS::ElasticLoadBalancingV2::LoadBalancer', 0);
    expect(serverScript(template)).toContain('postgresql${PG_MAJOR}-server');
    expect(stack.server).toBeDefined();
    expect(stack.database).toBeUndefined();
  });

  test('viewers reach the server through CloudFront over HTTPS; HTTP redirects', () => {
    template.resourceCountIs('AWS::CloudFront::Distribution', 1);
    template.resourceCountIs('AWS::S3::Bucket', 1); // the access logs; no web client bucket yet
    template.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({
        DefaultCacheBehavior: Match.objectLike({
          ViewerProtocolPolicy: 'redirect-to-https',
          AllowedMethods: Match.arrayWith(['PUT', 'POST', 'DELETE']),
          CachePolicyId: '4135ea2d-6df8-44a3-9df3-4b5a84be39ad', // CachingDisabled
        }),
        CacheBehaviors: Match.absent(),
        DefaultRootObject: Match.absent(),
        Origins: [
          Match.objectLike({
            CustomOriginConfig: Match.objectLike({ OriginProtocolPolicy: 'http-only', HTTPPort: 80 }),
          }),
        ],
      }),
    });
  });

  test("nothing is open to the world: the app port admits CloudFront's origin-facing servers only", () => {
    const open = Object.values(template.findResources('AWS::EC2::SecurityGroup')).flatMap(
      (g) => g.Properties.SecurityGroupIngress ?? [],
    );
    expect(open).toEqual([]);
    const ingress = Object.values(template.findResources('AWS::EC2::SecurityGroupIngress'));
    expect(ingress).toHaveLength(1);
    expect(ingress[0].Properties.SourcePrefixListId).toEqual(cloudFrontPrefixListRef());
  });

  test("outputs the https URL of the app, the distribution's id and the instance id for Session Manager", () => {
    template.hasOutput('DistributionId', { Value: { Ref: Match.stringLikeRegexp('^CdnDistribution') } });
    template.hasOutput('AppUrl', {
      Value: {
        'Fn::Join': [
          '',
          ['https://', { 'Fn::GetAtt': [Match.stringLikeRegexp('CdnDistribution'), 'DomainName'] }],
        ],
      },
    });
    template.hasOutput('ServerInstanceId', { Value: { Ref: Match.stringLikeRegexp('ServerInstance') } });
    expect(Object.keys(template.toJSON().Outputs)).toEqual([
      'ServerInstanceId',
      'AlarmTopicArn',
      'DashboardName',
      'DistributionId',
      'AppUrl',
    ]);
  });

  test('the stack is environment-agnostic, so synth needs no credentials', () => {
    expect(stack.environment).toBe('aws://unknown-account/unknown-region');
  });
});

describe('stage 10', () => {
  const { stack, template } = synthStage(UserStage.USERS_10);

  test('the server moves the stage-1 database into RDS at boot, after writing the environment and before the app', () => {
    const script = serverScript(template);
    const blob = /bash -c "\$\(echo '([A-Za-z0-9+/=]+)' \| base64 -d \| gunzip\)"/.exec(script)![1];
    expect(zlib.gunzipSync(Buffer.from(blob, 'base64')).toString()).toBe(
      scriptWithoutComments('scripts/migrate-local-database.sh'),
    );
    const order = [
      'app.env <<',
      'systemctl stop scale-stages-app',
      'rds-ca-bundle.pem',
      blob,
      'scale-stages-app.service',
    ];
    const at = order.map((marker) => script.indexOf(marker));
    expect(at.every((i) => i >= 0)).toBe(true);
    expect([...at].sort((a, b) => a - b)).toEqual(at);
    expect(script).toContain("export PG_MAJOR='16' DATABASE_CA_FILE='/etc/scale-stages/rds-ca-bundle.pem'");
  });

  test('adds RDS PostgreSQL sized from the stage table, reachable from the server', () => {
    template.resourceCountIs('AWS::RDS::DBInstance', 1);
    template.hasResourceProperties('AWS::RDS::DBInstance', {
      DBInstanceClass: 'db.t4g.micro',
      MultiAZ: false,
      AllocatedStorage: '20',
    });
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      SourceSecurityGroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('ServerSecurityGroup'), 'GroupId'] },
    });
  });

  test('the server stays, without its local database, and keeps its data volume for the migration', () => {
    template.resourceCountIs('AWS::EC2::Instance', 1);
    template.resourceCountIs('AWS::EC2::Volume', 1);
    const script = serverScript(template);
    expect(script).toContain('systemctl disable --now postgresql');
    expect(script).not.toContain('initdb');
    expect(script).toMatch(/DATABASE_NAME=app\nDATABASE_PORT=TOKEN\nDATABASE_SECRET_ARN=TOKEN\n/);
    expect(stack.database).toBeDefined();
  });

  test('outputs the database endpoint and its secret too', () => {
    template.hasOutput('DatabaseEndpoint', {
      Value: { 'Fn::GetAtt': [Match.stringLikeRegexp('DatabaseInstance'), 'Endpoint.Address'] },
    });
    template.hasOutput('DatabaseSecretArn', {
      Value: { Ref: Match.stringLikeRegexp('^DatabaseInstanceSecretAttachment') },
    });
  });

  test('still no NAT gateway', () => {
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
  });

  test('the password rotation reaches Secrets Manager through an endpoint in one zone (no NAT)', () => {
    template.resourceCountIs('AWS::SecretsManager::RotationSchedule', 1);
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcEndpointType: 'Interface',
      SubnetIds: [{ Ref: Match.stringLikeRegexp('^NetworkVpcDataSubnet1') }],
    });
    template.hasResourceProperties('AWS::EC2::SecurityGroupEgress', {
      GroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^DatabaseRotationSecurityGroup'), 'GroupId'] },
      DestinationSecurityGroupId: {
        'Fn::GetAtt': [Match.stringLikeRegexp('^NetworkSecretsManagerEndpointSecurityGroup'), 'GroupId'],
      },
    });
  });
});

describe('stage 100', () => {
  const { stack, template } = synthStage(UserStage.USERS_100);

  test('a stage-1 stack deployed straight to stage 100 moves its database the same way', () => {
    expect(serverScript(template)).toBe(serverScript(synthStage(UserStage.USERS_10).template));
  });

  test('the web client moves to S3 behind CloudFront; the server keeps the API behind the same distribution', () => {
    template.resourceCountIs('AWS::CloudFront::Distribution', 1);
    template.resourceCountIs('AWS::EC2::Instance', 1);
    template.resourceCountIs('AWS::RDS::DBInstance', 1);
    template.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({
        CacheBehaviors: [Match.objectLike({ PathPattern: '/api/*' })],
        Origins: Match.arrayWith([
          Match.objectLike({
            CustomOriginConfig: Match.objectLike({ OriginProtocolPolicy: 'http-only', HTTPPort: 80 }),
          }),
        ]),
      }),
    });
    expect(stack.cdn).toBeDefined();
  });

  test("the API origin is the server's Elastic IP by its EC2 DNS name", () => {
    const origins = template.toJSON().Resources;
    const distribution = Object.values(
      origins as Record<
        string,
        {
          Type: string;
          Properties: {
            DistributionConfig: { Origins: Array<{ DomainName: unknown; CustomOriginConfig?: unknown }> };
          };
        }
      >,
    ).find((r) => r.Type === 'AWS::CloudFront::Distribution')!;
    const api = distribution.Properties.DistributionConfig.Origins.find((o) => o.CustomOriginConfig)!;
    const rendered = JSON.stringify(api.DomainName);
    expect(rendered).toContain('"ec2-"');
    expect(rendered).toMatch(/"Fn::Split":\["\.",\{"Ref":"ServerElasticIp[0-9A-F]+"\}/);
    expect(rendered).toContain('compute-1.amazonaws.com');
    template.hasCondition('*', {
      'Fn::Equals': [{ Ref: 'AWS::Region' }, 'us-east-1'],
    });
  });

  test('outputs the web client URL', () => {
    template.hasOutput('AppUrl', {
      Value: {
        'Fn::Join': [
          '',
          ['https://', { 'Fn::GetAtt': [Match.stringLikeRegexp('CdnDistribution'), 'DomainName'] }],
        ],
      },
    });
  });

  test('still no NAT gateway', () => {
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
  });
});

describe('stage 1k', () => {
  const { stack, template } = synthStage(UserStage.USERS_1K);

  test('the Secrets Manager endpoint spans both zones, as the Multi-AZ database does', () => {
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcEndpointType: 'Interface',
      SubnetIds: [
        { Ref: Match.stringLikeRegexp('^NetworkVpcDataSubnet1') },
        { Ref: Match.stringLikeRegexp('^NetworkVpcDataSubnet2') },
      ],
    });
  });

  test('a load-balanced fleet of two t4g.small replaces the single server', () => {
    template.resourceCountIs('AWS::EC2::Instance', 0);
    template.resourceCountIs('AWS::ElasticLoadBalancingV2::LoadBalancer', 1);
    template.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', { MinSize: '2', MaxSize: '6' });
    template.hasResourceProperties('AWS::EC2::LaunchTemplate', {
      LaunchTemplateData: Match.objectLike({ InstanceType: 't4g.small' }),
    });
    expect(stack.server).toBeUndefined();
    expect(stack.web).toBeDefined();
  });

  test('egress for the app subnets: one NAT gateway', () => {
    template.resourceCountIs('AWS::EC2::NatGateway', 1);
  });

  test('the same database becomes Multi-AZ and a size larger; it admits the fleet', () => {
    template.hasResourceProperties('AWS::RDS::DBInstance', {
      MultiAZ: true,
      DBInstanceClass: 'db.t4g.small',
    });
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      GroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('DatabaseSecurityGroup'), 'GroupId'] },
      SourceSecurityGroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('WebServerSecurityGroup'), 'GroupId'] },
    });
    expect(JSON.stringify(template.findResources('AWS::EC2::LaunchTemplate'))).toContain('DATABASE_HOST=');
  });

  test('CloudFront sends the API to the internal load balancer through a VPC origin', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      Scheme: 'internal',
      LoadBalancerAttributes: Match.arrayWith([{ Key: 'deletion_protection.enabled', Value: 'true' }]),
    });
    template.hasResourceProperties('AWS::CloudFront::VpcOrigin', {
      VpcOriginEndpointConfig: Match.objectLike({
        Arn: { Ref: Match.stringLikeRegexp('^WebLoadBalancer') },
        OriginProtocolPolicy: 'http-only',
      }),
    });
    template.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({
        CacheBehaviors: [Match.objectLike({ PathPattern: '/api/*' })],
        Origins: Match.arrayWith([
          Match.objectLike({
            DomainName: { 'Fn::GetAtt': [Match.stringLikeRegexp('WebLoadBalancer'), 'DNSName'] },
            VpcOriginConfig: {
              VpcOriginId: { 'Fn::GetAtt': [Match.stringLikeRegexp('VpcOrigin'), 'Id'] },
            },
          }),
        ]),
      }),
    });
  });

  test('nothing is open to the world, and no origin-verify header or its secret is left', () => {
    const open = Object.values(template.findResources('AWS::EC2::SecurityGroup')).flatMap(
      (g) => g.Properties.SecurityGroupIngress ?? [],
    );
    expect(open.filter((r: { CidrIp?: string }) => r.CidrIp === '0.0.0.0/0')).toEqual([]);
    const fromAnywhere = Object.values(template.findResources('AWS::EC2::SecurityGroupIngress')).filter(
      (r) => r.Properties.CidrIp === '0.0.0.0/0' || r.Properties.CidrIpv6 === '::/0',
    );
    expect(fromAnywhere).toEqual([]);
    expect(JSON.stringify(template.toJSON())).not.toContain('X-Origin-Verify');
  });

  test('outputs the https URL, not the internal load balancer', () => {
    const outputs = Object.keys(template.toJSON().Outputs);
    expect(outputs).toEqual(expect.arrayContaining(['AppUrl', 'DatabaseEndpoint']));
    expect(outputs).not.toContain('ServerUrl');
    expect(outputs).not.toContain('LoadBalancerUrl');
  });

  test('with a certificate and its domain name: no warning, and CloudFront reaches the API over HTTPS', () => {
    const withCertificate = new StageStack(newApp(), 'T', {
      stage: UserStage.USERS_1K,
      loadBalancerCertificate: acm.Certificate.fromCertificateArn(
        new Stack(newApp(), 'Certs'),
        'Cert',
        'arn:aws:acm:us-east-1:123456789012:certificate/abc',
      ),
      loadBalancerDomainName: 'origin.example.com',
    });
    Annotations.fromStack(withCertificate).hasNoWarning('*', Match.anyValue());
    const template = Template.fromStack(withCertificate);
    template.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({
        Origins: Match.arrayWith([
          Match.objectLike({ DomainName: 'origin.example.com', VpcOriginConfig: Match.anyValue() }),
        ]),
      }),
    });
    template.hasResourceProperties('AWS::CloudFront::VpcOrigin', {
      VpcOriginEndpointConfig: Match.objectLike({ OriginProtocolPolicy: 'https-only' }),
    });
    const ingressPorts = Object.values(template.findResources('AWS::EC2::SecurityGroupIngress'))
      .filter((r) => r.Properties.SourcePrefixListId)
      .map((r) => r.Properties.FromPort);
    expect(ingressPorts).toEqual([443]);
  });

  test('a certificate without its domain name fails, and the reverse', () => {
    const certificate = acm.Certificate.fromCertificateArn(
      new Stack(newApp(), 'Certs'),
      'Cert',
      'arn:aws:acm:us-east-1:123456789012:certificate/abc',
    );
    expect(
      () =>
        new StageStack(newApp(), 'S', { stage: UserStage.USERS_1K, loadBalancerCertificate: certificate }),
    ).toThrow(/loadBalancerCertificate and loadBalancerDomainName go together/);
    expect(
      () =>
        new StageStack(newApp(), 'S', { stage: UserStage.USERS_1K, loadBalancerDomainName: 'a.example.com' }),
    ).toThrow(/loadBalancerCertificate and loadBalancerDomainName go together/);
  });

  test('fleet size, NAT instance and certificate are props', () => {
    const custom = synthStage(UserStage.USERS_1K, {
      webMinCapacity: 3,
      webMaxCapacity: 9,
      natInstanceType: new ec2.InstanceType('t4g.nano'),
    }).template;
    custom.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', { MinSize: '3', MaxSize: '9' });
    custom.resourceCountIs('AWS::EC2::NatGateway', 0);
    custom.hasResourceProperties('AWS::EC2::Instance', { InstanceType: 't4g.nano' });
  });
});

describe('stage 10k', () => {
  const { template } = synthStage(UserStage.USERS_10K);

  test('the same distribution serves the web client, the media bucket and the API', () => {
    template.resourceCountIs('AWS::CloudFront::Distribution', 1);
    template.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({
        CacheBehaviors: [
          Match.objectLike({ PathPattern: '/api/*', CachePolicyId: '4135ea2d-6df8-44a3-9df3-4b5a84be39ad' }),
          Match.objectLike({
            PathPattern: '/media/*',
            CachePolicyId: '658327ea-f89d-4fab-a63d-7e88639e58f6',
          }),
        ],
      }),
    });
  });

  test('the media bucket joins the same distribution; the API keeps its VPC origin', () => {
    template.resourceCountIs('AWS::CloudFront::Distribution', 1);
    template.resourceCountIs('AWS::CloudFront::VpcOrigin', 1);
    template.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({
        CacheBehaviors: [
          Match.objectLike({ PathPattern: '/api/*' }),
          Match.objectLike({ PathPattern: '/media/*' }),
        ],
      }),
    });
  });

  test('the fleet may write media and learns the bucket name', () => {
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: ['s3:DeleteObject', 's3:GetObject', 's3:PutObject'],
            Resource: {
              'Fn::Join': [
                '',
                [{ 'Fn::GetAtt': [Match.stringLikeRegexp('CdnMediaBucket'), 'Arn'] }, '/media/*'],
              ],
            },
          }),
        ]),
      },
      Roles: [{ Ref: Match.stringLikeRegexp('WebServerRole') }],
    });
    expect(JSON.stringify(template.findResources('AWS::EC2::LaunchTemplate'))).toContain('MEDIA_BUCKET=');
  });

  test('sized from the stage table: t4g.medium fleet of 2 to 10, db.t4g.medium Multi-AZ', () => {
    template.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', { MinSize: '2', MaxSize: '10' });
    template.hasResourceProperties('AWS::RDS::DBInstance', {
      DBInstanceClass: 'db.t4g.medium',
      MultiAZ: true,
    });
  });
});

describe('stage 100k', () => {
  const { stack, template } = synthStage(UserStage.USERS_100K);

  test('adds a Valkey cache (primary and replica, Multi-AZ) on cache.t4g.medium, wired into the fleet', () => {
    template.resourceCountIs('AWS::ElastiCache::ReplicationGroup', 1);
    template.hasResourceProperties('AWS::ElastiCache::ReplicationGroup', {
      Engine: 'valkey',
      CacheNodeType: 'cache.t4g.medium',
      NumCacheClusters: 2,
      MultiAZEnabled: true,
      CacheSubnetGroupName: { Ref: Match.stringLikeRegexp('^CacheSubnetGroup') },
    });
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      GroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^CacheSecurityGroup'), 'GroupId'] },
      SourceSecurityGroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^WebServerSecurityGroup'), 'GroupId'] },
    });
    const launchTemplate = JSON.stringify(template.findResources('AWS::EC2::LaunchTemplate'));
    for (const name of ['CACHE_HOST=', 'CACHE_PORT=6379', 'CACHE_SECRET_ARN=', 'DATABASE_READER_HOSTS=']) {
      expect(launchTemplate).toContain(name);
    }
    expect(stack.cache).toBeDefined();
  });

  test('adds one m7g.large read replica of the same primary, which grows to db.m7g.large Multi-AZ', () => {
    const instances = Object.entries(template.findResources('AWS::RDS::DBInstance'));
    expect(
      instances.map(([id, r]) => [id.replace(/[0-9A-F]{8}$/, ''), r.Properties.DBInstanceClass]),
    ).toEqual([
      ['DatabaseInstance', 'db.m7g.large'],
      ['ReadReplicasReplica1', 'db.m7g.large'],
    ]);
    template.hasResourceProperties('AWS::RDS::DBInstance', {
      MultiAZ: true,
      SourceDBInstanceIdentifier: Match.absent(),
    });
    expect(stack.readReplicas!.replicas).toHaveLength(1);
  });

  test('sized from the stage table: an m7g.large fleet of 2 to 20, and a NAT gateway per availability zone', () => {
    template.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', { MinSize: '2', MaxSize: '20' });
    template.hasResourceProperties('AWS::EC2::LaunchTemplate', {
      LaunchTemplateData: Match.objectLike({ InstanceType: 'm7g.large' }),
    });
    template.resourceCountIs('AWS::EC2::NatGateway', 2);
  });

  test('outputs the reader endpoints, the cache endpoint and its secret', () => {
    template.hasOutput('DatabaseReaderEndpoints', Match.anyValue());
    template.hasOutput('CacheEndpoint', {
      Value: { 'Fn::GetAtt': [Match.stringLikeRegexp('^CacheReplicationGroup'), 'PrimaryEndPoint.Address'] },
    });
    template.hasOutput('CacheSecretArn', { Value: { Ref: Match.stringLikeRegexp('^CacheAuthToken') } });
  });

  test('cache and replica sizing are props', () => {
    const custom = synthStage(UserStage.USERS_100K, {
      cacheNodeType: new ec2.InstanceType('r7g.large'),
      cacheReplicas: 2,
      databaseReadReplicas: 2,
      databaseReplicaInstanceType: new ec2.InstanceType('r7g.large'),
    }).template;
    custom.hasResourceProperties('AWS::ElastiCache::ReplicationGroup', {
      CacheNodeType: 'cache.r7g.large',
      NumCacheClusters: 3,
    });
    const replicas = Object.values(custom.findResources('AWS::RDS::DBInstance')).filter(
      (r) => r.Properties.SourceDBInstanceIdentifier,
    );
    expect(replicas.map((r) => r.Properties.DBInstanceClass)).toEqual(['db.r7g.large', 'db.r7g.large']);
  });

  test.each([
    [{ cacheReplicas: 0 }, /^ScaleStages\/Cache: replicas must be a whole number from 1 to 5 .*got 0/],
    [
      { cacheNodeType: new ec2.InstanceType('t4g.nano') },
      /^ScaleStages\/Cache: nodeType must be .*got 't4g.nano'/,
    ],
    [
      { databaseReadReplicas: 16 },
      /^ScaleStages\/ReadReplicas: replicas must be a whole number from 1 to 15 .*got 16/,
    ],
  ])('bad sizing %o fails naming the construct and the rule', (props, message) => {
    expect(() => synthStage(UserStage.USERS_100K, props)).toThrow(message);
  });
});

describe('stage 1m', () => {
  const { stack, template } = synthStage(UserStage.USERS_1M);
  const resources = template.toJSON().Resources as Record<
    string,
    { Type: string; Properties: Record<string, unknown> }
  >;
  const idOf = (prefix: string) =>
    Object.keys(resources).find((id) => new RegExp(`^${prefix}[0-9A-F]{8}$`).test(id))!;
  /** Every IAM statement of the policies attached to the role whose logical id starts with `rolePrefix`. */
  const statements = (rolePrefix: string) =>
    Object.values(resources)
      .filter((r) => r.Type === 'AWS::IAM::Policy' && JSON.stringify(r.Properties.Roles).includes(rolePrefix))
      .flatMap((r) => (r.Properties.PolicyDocument as { Statement: object[] }).Statement);
  /** Whether a statement allows `action` on the objects under `keyPrefix` (IAM merges statements). */
  const allows = (all: object[], action: string, bucketPrefix: string, keyPrefix: string) => {
    const resource = { 'Fn::Join': ['', [{ 'Fn::GetAtt': [idOf(bucketPrefix), 'Arn'] }, `/${keyPrefix}*`]] };
    const list = (value: unknown) => (Array.isArray(value) ? value : [value]);
    return all.some((statement) => {
      const { Action, Resource } = statement as { Action: unknown; Resource: unknown };
      return (
        list(Action).includes(action) &&
        list(Resource).some((r) => JSON.stringify(r) === JSON.stringify(resource))
      );
    });
  };

  test('adds QueueWorkers: m7g.medium workers, none while the queue is empty, up to 20', () => {
    expect(stack.workers).toBeDefined();
    template.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', { MinSize: '0', MaxSize: '20' });
    template.hasResourceProperties('AWS::EC2::LaunchTemplate', {
      LaunchTemplateData: Match.objectLike({ InstanceType: 'm7g.medium' }),
    });
    template.resourceCountIs('AWS::SQS::Queue', 2);
  });

  test("the web fleet may send jobs and put uploads under uploads/ in the media bucket, and knows the queue's URL", () => {
    const web = statements('WebServerRole');
    expect(web).toContainEqual(
      expect.objectContaining({ Action: expect.arrayContaining(['sqs:SendMessage']) }),
    );
    expect(allows(web, 's3:PutObject', 'CdnMediaBucket', 'uploads/')).toBe(true);
    expect(allows(web, 's3:PutObject', 'CdnMediaBucket', 'media/')).toBe(true);
    const webTemplate = JSON.stringify(resources[idOf('WebLaunchTemplate')]);
    expect(webTemplate).toContain('JOB_QUEUE_URL=');
  });

  test('the workers read uploads, write thumbnails and the pre-rendered feed, and know both buckets', () => {
    const workers = statements('WorkersServerRole');
    expect(allows(workers, 's3:GetObject', 'CdnMediaBucket', 'uploads/')).toBe(true);
    expect(allows(workers, 's3:PutObject', 'CdnMediaBucket', 'media/thumbnails/')).toBe(true);
    expect(allows(workers, 's3:PutObject', 'CdnWebBucket', 'prerendered/')).toBe(true);
    expect(allows(workers, 's3:PutObject', 'CdnMediaBucket', 'uploads/')).toBe(false);
    expect(JSON.stringify(workers)).not.toContain('s3:DeleteObject');
    const workerTemplate = JSON.stringify(resources[idOf('WorkersLaunchTemplate')]);
    for (const name of ['MEDIA_BUCKET=', 'WEB_BUCKET=', 'JOB_QUEUE_URL=', 'DATABASE_HOST=']) {
      expect(workerTemplate).toContain(name);
    }
  });

  test('a new upload is a job (S3 notification on uploads/), and a pre-render job goes on the queue every 5 minutes', () => {
    template.hasResourceProperties('Custom::S3BucketNotifications', {
      BucketName: { Ref: idOf('CdnMediaBucket') },
      NotificationConfiguration: {
        QueueConfigurations: [
          Match.objectLike({
            QueueArn: { 'Fn::GetAtt': [idOf('WorkersQueue'), 'Arn'] },
            Filter: { Key: { FilterRules: [{ Name: 'prefix', Value: 'uploads/' }] } },
          }),
        ],
      },
    });
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'rate(5 minutes)',
      Target: Match.objectLike({
        Arn: { 'Fn::GetAtt': [idOf('WorkersQueue'), 'Arn'] },
        Input: '{"type":"prerender"}',
      }),
    });
  });

  test('sized from the stage table: a fleet of 4 to 40, Multi-AZ db.m7g.xlarge with two replicas, three cache.m7g.large nodes', () => {
    template.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', { MinSize: '4', MaxSize: '40' });
    const instances = Object.entries(template.findResources('AWS::RDS::DBInstance'));
    expect(
      instances.map(([id, r]) => [id.replace(/[0-9A-F]{8}$/, ''), r.Properties.DBInstanceClass]),
    ).toEqual([
      ['DatabaseInstance', 'db.m7g.xlarge'],
      ['ReadReplicasReplica1', 'db.m7g.xlarge'],
      ['ReadReplicasReplica2', 'db.m7g.xlarge'],
    ]);
    template.hasResourceProperties('AWS::ElastiCache::ReplicationGroup', {
      CacheNodeType: 'cache.m7g.large',
      NumCacheClusters: 3,
    });
  });

  test('outputs the job queue and the dead-letter queue', () => {
    template.hasOutput('JobQueueUrl', { Value: { Ref: idOf('WorkersQueue') } });
    template.hasOutput('DeadLetterQueueUrl', { Value: { Ref: idOf('WorkersDeadLetterQueue') } });
  });

  test('worker sizing and the pre-render rate are props; the rate must be whole minutes', () => {
    const custom = synthStage(UserStage.USERS_1M, {
      workerInstanceType: new ec2.InstanceType('c7g.large'),
      workerMaxCapacity: 5,
      prerenderRate: Duration.minutes(15),
    }).template;
    custom.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', { MinSize: '0', MaxSize: '5' });
    custom.hasResourceProperties('AWS::Scheduler::Schedule', { ScheduleExpression: 'rate(15 minutes)' });
    expect(() => synthStage(UserStage.USERS_1M, { prerenderRate: Duration.seconds(90) })).toThrow(
      /prerenderRate must be whole minutes \(EventBridge Scheduler's rate unit\); got 1 minute 30 seconds\./,
    );
    expect(() => synthStage(UserStage.USERS_1M, { prerenderRate: Duration.seconds(30) })).toThrow(
      /prerenderRate must be whole seconds from 1 minute to 1 day; got 30 seconds\./,
    );
  });
});

test("the stage table pins both PostgreSQL majors, the server's no newer than RDS's (a dump restores only into the same or a newer major)", () => {
  expect(POSTGRES_VERSIONS.server).toBe(16);
  expect(POSTGRES_VERSIONS.rds.postgresMajorVersion).toBe('17');
  expect(POSTGRES_VERSIONS.server).toBeLessThanOrEqual(Number(POSTGRES_VERSIONS.rds.postgresMajorVersion));
  const stage1 = synthStage(UserStage.USERS_1).template;
  expect(serverScript(stage1)).toContain("export PG_MAJOR='16' ");
  const stage10 = synthStage(UserStage.USERS_10).template;
  stage10.hasResourceProperties('AWS::RDS::DBInstance', { EngineVersion: '17' });
  expect(serverScript(stage10)).toContain("export PG_MAJOR='16' DATABASE_CA_FILE=");
});

describe('StageStack props', () => {
  test('sizing overrides win over the stage table', () => {
    const { template } = synthStage(UserStage.USERS_10, {
      serverInstanceType: new ec2.InstanceType('t4g.small'),
      dataVolumeSize: Size.gibibytes(50),
      databaseInstanceType: new ec2.InstanceType('t4g.medium'),
      databaseAllocatedStorage: Size.gibibytes(40),
    });
    template.hasResourceProperties('AWS::EC2::Instance', { InstanceType: 't4g.small' });
    template.hasResourceProperties('AWS::EC2::Volume', { Size: 50 });
    template.hasResourceProperties('AWS::RDS::DBInstance', {
      DBInstanceClass: 'db.t4g.medium',
      AllocatedStorage: '40',
    });
  });

  test('an own domain: alias, certificate with TLS 1.2 (2021 policy), Route 53 records, https URL', () => {
    const app = newApp();
    const certs = new Stack(app, 'Certs');
    const certificate = acm.Certificate.fromCertificateArn(
      certs,
      'Cert',
      'arn:aws:acm:us-east-1:123456789012:certificate/abc',
    );
    const stack = new StageStack(app, 'S', {
      stage: UserStage.USERS_1,
      domainName: 'www.example.com',
      certificate,
      hostedZone: route53.HostedZone.fromHostedZoneAttributes(certs, 'Zone', {
        hostedZoneId: 'Z0123456789ABC',
        zoneName: 'example.com',
      }),
    });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({
        Aliases: ['www.example.com'],
        ViewerCertificate: {
          AcmCertificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/abc',
          MinimumProtocolVersion: 'TLSv1.2_2021',
          SslSupportMethod: 'sni-only',
        },
      }),
    });
    for (const type of ['A', 'AAAA']) {
      template.hasResourceProperties('AWS::Route53::RecordSet', {
        Name: 'www.example.com.',
        Type: type,
        HostedZoneId: 'Z0123456789ABC',
        AliasTarget: Match.objectLike({
          DNSName: { 'Fn::GetAtt': [Match.stringLikeRegexp('^CdnDistribution'), 'DomainName'] },
        }),
      });
    }
    template.hasOutput('AppUrl', { Value: 'https://www.example.com' });
  });

  test('the own domain from the context keys, without a hosted zone: no records', () => {
    const app = new App({
      context: {
        ...CDK_JSON_CONTEXT,
        domainName: 'app.example.org',
        certificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/abc',
      },
    });
    const template = Template.fromStack(new StageStack(app, 'S', { stage: UserStage.USERS_1 }));
    template.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({ Aliases: ['app.example.org'] }),
    });
    template.resourceCountIs('AWS::Route53::RecordSet', 0);
    template.hasOutput('AppUrl', { Value: 'https://app.example.org' });
  });

  test.each<[{ domainName?: string; certificateArn?: boolean; hostedZone?: boolean }, RegExp]>([
    [{ domainName: 'www.example.com' }, /domainName and certificate go together/],
    [
      { domainName: 'not a name', certificateArn: true },
      /domainName must be a DNS name such as www.example.com; got 'not a name'/,
    ],
    [{ hostedZone: true }, /hostedZone needs domainName/],
  ])('own-domain props %o fail', (given, message) => {
    const app = newApp();
    const certs = new Stack(app, 'Certs');
    const props = {
      stage: UserStage.USERS_1,
      domainName: given.domainName,
      certificate: given.certificateArn
        ? acm.Certificate.fromCertificateArn(
            certs,
            'Cert',
            'arn:aws:acm:us-east-1:123456789012:certificate/abc',
          )
        : undefined,
      hostedZone: given.hostedZone
        ? route53.HostedZone.fromHostedZoneId(certs, 'Zone', 'Z0123456789ABC')
        : undefined,
    };
    expect(() => new StageStack(app, 'S', props)).toThrow(message);
  });

  test('the user app replaces the demo', () => {
    const { template } = synthStage(UserStage.USERS_1, {
      app: AppSource.fromCommands(['/opt/myapp/start'], { port: 8080 }),
    });
    const script = serverScript(template);
    expect(script).toContain('/opt/myapp/start');
    template.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({
        Origins: [Match.objectLike({ CustomOriginConfig: Match.objectLike({ HTTPPort: 8080 }) })],
      }),
    });
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', { FromPort: 8080, ToPort: 8080 });
    expect(script).not.toContain('scale-stages-app.service');
  });

  test('a stage that is not a UserStage fails with the choices', () => {
    expect(() => new StageStack(newApp(), 'S', { stage: '5' as UserStage })).toThrow(
      "StageStack stage must be one of '1', '10', '100', '1k', '10k', '100k', '1m', '10m'; got '5'.",
    );
  });
});
