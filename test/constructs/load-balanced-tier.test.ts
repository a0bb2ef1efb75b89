import { execFileSync } from 'child_process';
import { Duration, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import { AppSource, LoadBalancedTier, StageNetwork } from '../../lib';
import { cloudFrontPrefixListRef, flattenJoin, newApp } from '../helpers';

function stackWithNetwork(env?: { region: string }) {
  const stack = new Stack(newApp(), 'Test', { env });
  const vpc = new StageNetwork(stack, 'Network', { natGateways: 1 }).vpc;
  return { stack, vpc };
}

function build(props: Partial<ConstructorParameters<typeof LoadBalancedTier>[2]> = {}) {
  const { stack, vpc } = stackWithNetwork();
  const web = new LoadBalancedTier(stack, 'Web', { vpc, ...props });
  return { stack, web, template: Template.fromStack(stack) };
}

/** The shell script of the launch template's user data, with CloudFormation tokens as `TOKEN`. */
function launchScript(template: Template): string {
  const [lt] = Object.values(template.findResources('AWS::EC2::LaunchTemplate')).filter(
    (r) => r.Properties.LaunchTemplateData.UserData,
  );
  return flattenJoin(lt.Properties.LaunchTemplateData.UserData);
}

describe('LoadBalancedTier defaults', () => {
  const { stack, web, template } = build();

  test("an internal ALB in the network's VPC origin subnets, with deletion protection, that drops invalid headers and logs access", () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      Scheme: 'internal',
      Subnets: [
        { Ref: Match.stringLikeRegexp('NetworkVpcOriginSubnet1') },
        { Ref: Match.stringLikeRegexp('NetworkVpcOriginSubnet2') },
      ],
      LoadBalancerAttributes: Match.arrayWith([
        { Key: 'deletion_protection.enabled', Value: 'true' },
        { Key: 'routing.http.drop_invalid_header_fields.enabled', Value: 'true' },
        { Key: 'access_logs.s3.enabled', Value: 'true' },
        { Key: 'access_logs.s3.prefix', Value: 'load-balancer' },
      ]),
    });
    template.hasResource('AWS::S3::Bucket', {
      Properties: Match.objectLike({
        LifecycleConfiguration: { Rules: [Match.objectLike({ ExpirationInDays: 90 })] },
      }),
      DeletionPolicy: 'Retain',
    });
  });

  test("the load balancer admits only CloudFront's origin-facing servers, on its listener port", () => {
    const lbGroup = { 'Fn::GetAtt': [Match.stringLikeRegexp('^WebLoadBalancerSecurityGroup'), 'GroupId'] };
    const [group] = Object.values(
      template.findResources('AWS::EC2::SecurityGroup', {
        Properties: { GroupDescription: Match.stringLikeRegexp('^LoadBalancedTier: web traffic') },
      }),
    );
    expect(group.Properties.SecurityGroupIngress).toBeUndefined();
    const ingress = template.findResources('AWS::EC2::SecurityGroupIngress', {
      Properties: { GroupId: lbGroup },
    });
    expect(Object.values(ingress).map((r) => r.Properties)).toEqual([
      expect.objectContaining({
        FromPort: 80,
        ToPort: 80,
        SourcePrefixListId: cloudFrontPrefixListRef(),
      }),
    ]);
  });

  test('without a certificate: HTTP on 80, with a warning', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', { Port: 80, Protocol: 'HTTP' });
    template.resourceCountIs('AWS::ElasticLoadBalancingV2::Listener', 1);
    Annotations.fromStack(stack).hasWarning('/Test/Web', Match.stringLikeRegexp('serves plain HTTP'));
    expect(stack.resolve(web.url)).toEqual({
      'Fn::Join': ['', ['http://', { 'Fn::GetAtt': [expect.stringMatching(/^WebLoadBalancer/), 'DNSName'] }]],
    });
  });

  test("a fleet of 2 to 6 in the load balancer's subnets (it sends no traffic to other zones), replaced on failed ELB health checks", () => {
    template.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', {
      MinSize: '2',
      MaxSize: '6',
      HealthCheckType: 'ELB',
      HealthCheckGracePeriod: 300,
      VPCZoneIdentifier: [
        { Ref: Match.stringLikeRegexp('NetworkVpcOriginSubnet1') },
        { Ref: Match.stringLikeRegexp('NetworkVpcOriginSubnet2') },
      ],
    });
  });

  test('rolling updates one server at a time that keep the minimum and wait for healthy signals, after the bake', () => {
    // 15 minutes to boot and start the app, and the 10-minute bake of a release.
    template.hasResource('AWS::AutoScaling::AutoScalingGroup', {
      UpdatePolicy: {
        AutoScalingRollingUpdate: {
          MaxBatchSize: 1,
          MinInstancesInService: 2,
          WaitOnResourceSignals: true,
          PauseTime: 'PT25M',
        },
        AutoScalingScheduledAction: Match.anyValue(),
      },
      CreationPolicy: { ResourceSignal: { Count: 2, Timeout: 'PT25M' } },
    });
    expect(launchScript(template)).toContain(`export RELEASE_BAKE_SECONDS='600'`);
  });

  test('servers: Graviton t4g.small from a launch template with IMDSv2, an encrypted root and Session Manager', () => {
    template.hasResourceProperties('AWS::EC2::LaunchTemplate', {
      LaunchTemplateData: Match.objectLike({
        InstanceType: 't4g.small',
        ImageId: 'resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64',
        MetadataOptions: { HttpTokens: 'required' },
        BlockDeviceMappings: [
          { DeviceName: '/dev/xvda', Ebs: { Encrypted: true, VolumeType: 'gp3', VolumeSize: 8 } },
        ],
      }),
    });
    template.hasResourceProperties('AWS::IAM::Role', {
      ManagedPolicyArns: [
        { 'Fn::Join': ['', Match.arrayWith([Match.stringLikeRegexp('AmazonSSMManagedInstanceCore')])] },
      ],
    });
  });

  test('servers accept the app port from the load balancer only and reach out on 443 and 80 only', () => {
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      FromPort: 80,
      GroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('WebServerSecurityGroup'), 'GroupId'] },
      SourceSecurityGroupId: {
        'Fn::GetAtt': [Match.stringLikeRegexp('WebLoadBalancerSecurityGroup'), 'GroupId'],
      },
    });
    template.hasResourceProperties('AWS::EC2::SecurityGroup', {
      GroupDescription: Match.stringLikeRegexp('servers'),
      SecurityGroupEgress: [Match.objectLike({ FromPort: 443 }), Match.objectLike({ FromPort: 80 })],
    });
  });

  test('the target group checks the app health path', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      Port: 80,
      Protocol: 'HTTP',
      HealthCheckPath: '/healthz',
      Matcher: { HttpCode: '200' },
      TargetGroupAttributes: Match.arrayWith([{ Key: 'deregistration_delay.timeout_seconds', Value: '30' }]),
    });
  });

  test('scales on CPU and on requests per server', () => {
    template.hasResourceProperties('AWS::AutoScaling::ScalingPolicy', {
      TargetTrackingConfiguration: Match.objectLike({
        PredefinedMetricSpecification: { PredefinedMetricType: 'ASGAverageCPUUtilization' },
        TargetValue: 60,
      }),
    });
    template.hasResourceProperties('AWS::AutoScaling::ScalingPolicy', {
      TargetTrackingConfiguration: Match.objectLike({
        PredefinedMetricSpecification: Match.objectLike({ PredefinedMetricType: 'ALBRequestCountPerTarget' }),
        TargetValue: 1000,
      }),
    });
  });

  test('each server starts the app, waits for it to be healthy and signals the Auto Scaling group', () => {
    const script = launchScript(template);
    expect(script).toMatch(/\/opt\/aws\/bin\/cfn-signal --stack Test --resource WebFleetASG[0-9A-F]+ /);
    expect(script).toMatch(
      /trap exitTrap EXIT\nset -euo pipefail\nfor attempt in [^\n]*dnf install -y aws-cfn-bootstrap && break;[^\n]*\n/,
    );
    expect(script).toContain('APP_PORT=80\n');
    expect(script).toContain("APP_HEALTH_URL='http://127.0.0.1:80/healthz'");
  });
});

test('the launch template user data is valid bash', () => {
  const { template } = build();
  expect(() => execFileSync('bash', ['-n'], { input: launchScript(template) })).not.toThrow();
});

describe('LoadBalancedTier overrides', () => {
  test('internetFacing: in the public subnets, open to the world on its listener port', () => {
    const { stack } = build({ internetFacing: true });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      Scheme: 'internet-facing',
      Subnets: [
        { Ref: Match.stringLikeRegexp('NetworkVpcPublicSubnet1') },
        { Ref: Match.stringLikeRegexp('NetworkVpcPublicSubnet2') },
      ],
    });
    template.hasResourceProperties('AWS::EC2::SecurityGroup', {
      GroupDescription: 'LoadBalancedTier: web traffic from anywhere to the load balancer',
      SecurityGroupIngress: [Match.objectLike({ CidrIp: '0.0.0.0/0', FromPort: 80, ToPort: 80 })],
    });
    template.resourceCountIs('Custom::AWS', 0);
  });

  test('deletion protection can be turned off', () => {
    const { stack } = build({ deletionProtection: false });
    Template.fromStack(stack).hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      LoadBalancerAttributes: Match.arrayWith([{ Key: 'deletion_protection.enabled', Value: 'false' }]),
    });
  });

  test.each([
    [false, [443]],
    [true, [443, 80]],
  ])(
    'a certificate gives HTTPS on 443 with a modern policy (internet-facing %p: HTTP redirected too)',
    (internetFacing, ports) => {
      const { stack, vpc } = stackWithNetwork();
      const web = new LoadBalancedTier(stack, 'Web', {
        vpc,
        internetFacing,
        certificate: acm.Certificate.fromCertificateArn(
          stack,
          'Cert',
          'arn:aws:acm:us-east-1:123456789012:certificate/abc',
        ),
      });
      const template = Template.fromStack(stack);
      template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
        Port: 443,
        Protocol: 'HTTPS',
        SslPolicy: 'ELBSecurityPolicy-TLS13-1-2-2021-06',
      });
      const listeners = Object.values(template.findResources('AWS::ElasticLoadBalancingV2::Listener'));
      expect(listeners.map((l) => l.Properties.Port)).toEqual(ports);
      if (internetFacing) {
        template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
          Port: 80,
          DefaultActions: [
            Match.objectLike({ Type: 'redirect', RedirectConfig: Match.objectLike({ Port: '443' }) }),
          ],
        });
      } else {
        // One rule names CloudFront's prefix list, which counts 55 of the group's 60 rules.
        const fromCloudFront = Object.values(template.findResources('AWS::EC2::SecurityGroupIngress')).filter(
          (r) => r.Properties.SourcePrefixListId,
        );
        expect(fromCloudFront.map((r) => r.Properties.FromPort)).toEqual([443]);
      }
      Annotations.fromStack(stack).hasNoWarning('/Test/Web', Match.anyValue());
      expect(stack.resolve(web.url)['Fn::Join'][1][0]).toBe('https://');
    },
  );

  test('sizes, scaling targets, grace period and app', () => {
    const { template } = build({
      instanceType: new ec2.InstanceType('m7g.large'),
      minCapacity: 3,
      maxCapacity: 12,
      targetCpuUtilizationPercent: 50,
      targetRequestsPerMinute: 500,
      healthCheckGracePeriod: Duration.minutes(10),
      app: AppSource.fromContainerImage('public.ecr.aws/nginx/nginx:stable', {
        port: 8080,
        healthCheckPath: '/',
      }),
    });
    template.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', {
      MinSize: '3',
      MaxSize: '12',
      HealthCheckGracePeriod: 600,
    });
    template.hasResourceProperties('AWS::EC2::LaunchTemplate', {
      LaunchTemplateData: Match.objectLike({ InstanceType: 'm7g.large' }),
    });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      Port: 8080,
      HealthCheckPath: '/',
    });
    template.hasResourceProperties('AWS::AutoScaling::ScalingPolicy', {
      TargetTrackingConfiguration: Match.objectLike({ TargetValue: 500 }),
    });
    template.hasResourceProperties('AWS::AutoScaling::ScalingPolicy', {
      TargetTrackingConfiguration: Match.objectLike({ TargetValue: 50 }),
    });
  });

  test('a scheduled peak raises the minimum and lowers it again', () => {
    const { stack, vpc } = stackWithNetwork();
    const web = new LoadBalancedTier(stack, 'Web', { vpc });
    web.addScheduledPeak('Launch', {
      start: autoscaling.Schedule.cron({ hour: '8', minute: '0' }),
      end: autoscaling.Schedule.cron({ hour: '20', minute: '0' }),
      minCapacity: 4,
      timeZone: 'Europe/Berlin',
    });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::AutoScaling::ScheduledAction', {
      Recurrence: '0 8 * * *',
      MinSize: 4,
      TimeZone: 'Europe/Berlin',
    });
    template.hasResourceProperties('AWS::AutoScaling::ScheduledAction', {
      Recurrence: '0 20 * * *',
      MinSize: 2,
    });
    expect(() =>
      web.addScheduledPeak('TooBig', {
        start: autoscaling.Schedule.cron({ hour: '1' }),
        end: autoscaling.Schedule.cron({ hour: '2' }),
        minCapacity: 7,
      }),
    ).toThrow(/scheduled peak 'TooBig' minCapacity must be a whole number from 2 to 6; got 7/);
    expect(() =>
      web.addScheduledPeak('Mars', {
        start: autoscaling.Schedule.cron({ hour: '1' }),
        end: autoscaling.Schedule.cron({ hour: '2' }),
        minCapacity: 3,
        timeZone: 'Mars/Olympus',
      }),
    ).toThrow(
      /scheduled peak 'Mars' timeZone must be an IANA time zone such as 'Europe\/Berlin' or 'UTC'; got 'Mars\/Olympus'/,
    );
  });

  test('in a stack with a region, the region-specific access log policy of aws-cdk-lib is used', () => {
    const { stack, vpc } = stackWithNetwork({ region: 'eu-west-1' });
    new LoadBalancedTier(stack, 'Web', { vpc });
    const template = Template.fromStack(stack);
    const policies = JSON.stringify(template.findResources('AWS::S3::BucketPolicy'));
    expect(policies).toContain(':iam::156460612806:root'); // the eu-west-1 log delivery account
    expect(template.toJSON().Mappings).toBeUndefined();
  });
});

describe('LoadBalancedTier releases', () => {
  test('releaseBakeTime 0 signals as soon as the app is healthy', () => {
    const { template } = build({ releaseBakeTime: Duration.minutes(0) });
    template.hasResource('AWS::AutoScaling::AutoScalingGroup', {
      UpdatePolicy: { AutoScalingRollingUpdate: Match.objectLike({ PauseTime: 'PT15M' }) },
    });
    expect(launchScript(template)).toContain(`export RELEASE_BAKE_SECONDS='0'`);
  });

  test('the servers watch the alarms given to watchDuringReleases, and may read those alarms only', () => {
    const { stack, vpc } = stackWithNetwork();
    const web = new LoadBalancedTier(stack, 'Web', { vpc });
    const alarm = new cloudwatch.Alarm(stack, 'Errors', {
      metric: web.loadBalancer.metrics.httpCodeTarget(elbv2.HttpCodeTarget.TARGET_5XX_COUNT),
      threshold: 10,
      evaluationPeriods: 2,
    });
    web.watchDuringReleases(alarm);
    const template = Template.fromStack(stack);
    expect(launchScript(template)).toContain('RELEASE_ALARMS="TOKEN"');
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          {
            Action: 'cloudwatch:DescribeAlarms',
            Effect: 'Allow',
            Resource: {
              'Fn::GetAtt': [stack.getLogicalId(alarm.node.defaultChild as cloudwatch.CfnAlarm), 'Arn'],
            },
          },
        ]),
      },
    });
  });
});

describe('LoadBalancedTier origin header', () => {
  const { stack, vpc } = stackWithNetwork();
  const web = new LoadBalancedTier(stack, 'Web', { vpc });
  const header = web.requireOriginHeader();
  const template = Template.fromStack(stack);

  test('requests without the secret header get 403; with it they reach the servers', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
      DefaultActions: [
        { Type: 'fixed-response', FixedResponseConfig: Match.objectLike({ StatusCode: '403' }) },
      ],
    });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::ListenerRule', {
      Priority: 1,
      Conditions: [
        {
          Field: 'http-header',
          HttpHeaderConfig: {
            HttpHeaderName: 'X-Origin-Verify',
            Values: [
              {
                'Fn::Join': [
                  '',
                  [
                    '{{resolve:secretsmanager:',
                    { Ref: Match.stringLikeRegexp('WebOriginHeaderSecret') },
                    ':SecretString:::}}',
                  ],
                ],
              },
            ],
          },
        },
      ],
      Actions: [Match.objectLike({ Type: 'forward' })],
    });
  });

  test('the value is a generated, retained secret that never appears in the template', () => {
    template.hasResource('AWS::SecretsManager::Secret', {
      Properties: Match.objectLike({
        GenerateSecretString: { ExcludePunctuation: true, PasswordLength: 48 },
      }),
      DeletionPolicy: 'Retain',
    });
    expect(header.name).toBe('X-Origin-Verify');
    expect(JSON.stringify(stack.resolve(header.value))).toContain('{{resolve:secretsmanager:');
  });

  test('a bad header name or a second call fails', () => {
    expect(() => web.requireOriginHeader()).toThrow(/requireOriginHeader was called twice/);
    const other = stackWithNetwork();
    const tier = new LoadBalancedTier(other.stack, 'Web', { vpc: other.vpc });
    expect(() => tier.requireOriginHeader('Origin Verify')).toThrow(
      /origin header name must look like 'X-Origin-Verify'; got 'Origin Verify'/,
    );
  });
});

describe('LoadBalancedTier access logs in an environment-agnostic stack', () => {
  const { template } = build();

  test('the log writer is chosen at deploy time from aws-cdk-lib region facts', () => {
    const mapping = template.toJSON().Mappings.ElbLogDelivery;
    expect(mapping['us-east-1']).toEqual({ account: '127311923021' });
    expect(mapping['il-central-1']).toBeUndefined();
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: 's3:PutObject',
            Principal: {
              AWS: { 'Fn::If': ['ElbLogDeliveryByAccount', Match.anyValue(), { Ref: 'AWS::NoValue' }] },
              Service: {
                'Fn::If': [
                  'ElbLogDeliveryByAccount',
                  { Ref: 'AWS::NoValue' },
                  'logdelivery.elasticloadbalancing.amazonaws.com',
                ],
              },
            },
          }),
        ]),
      },
    });
  });

  test('the condition names every region that has a log delivery account', () => {
    const rendered = JSON.stringify(template.toJSON().Conditions.ElbLogDeliveryByAccount);
    const mapping = template.toJSON().Mappings.ElbLogDelivery;
    for (const region of Object.keys(mapping)) expect(rendered).toContain(`"${region}"`);
    expect(rendered).not.toContain('"il-central-1"');
  });
});

describe('LoadBalancedTier validation', () => {
  test.each([
    [{ minCapacity: 1 }, /minCapacity must be a whole number from 2 to 100 \(two keep the app up/],
    [
      { minCapacity: 4, maxCapacity: 4 },
      /maxCapacity must be a whole number from 5 to 500 \(above minCapacity, so a rolling update/,
    ],
    [
      { targetCpuUtilizationPercent: 95 },
      /targetCpuUtilizationPercent must be a whole number from 10 to 90; got 95/,
    ],
    [
      { targetRequestsPerMinute: 0 },
      /targetRequestsPerMinute must be a whole number from 1 to 1000000; got 0/,
    ],
    [
      { healthCheckGracePeriod: Duration.seconds(30) },
      /healthCheckGracePeriod must be from 1 to 60 minutes.*got 30 seconds/,
    ],
    [
      { releaseBakeTime: Duration.minutes(46) },
      /releaseBakeTime must be from 0 to 45 minutes \(a server's boot and bake must fit the rolling update's one-hour signal timeout\); got 46 minutes/,
    ],
    [
      { logRetention: Duration.days(0) },
      /logRetention \(days\) must be a whole number from 1 to 3650; got 0/,
    ],
  ])('%o fails', (props, message) => {
    expect(() => build(props)).toThrow(message);
  });

  test('subnets in one availability zone fail', () => {
    const { stack, vpc } = stackWithNetwork();
    expect(
      () => new LoadBalancedTier(stack, 'Web', { vpc, vpcSubnets: { subnets: [vpc.privateSubnets[0]] } }),
    ).toThrow(/vpcSubnets must select subnets in at least 2 availability zones/);
  });

  test('a non-Graviton type warns', () => {
    const { stack } = build({ instanceType: new ec2.InstanceType('c5.large') });
    Annotations.fromStack(stack).hasWarning('/Test/Web', Match.stringLikeRegexp('c5.large is not Graviton'));
  });
});
