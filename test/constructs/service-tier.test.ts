import { Duration } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { AppSource, LoadBalancedTier, ServiceTier, StageOperations } from '../../lib';
import { flattenJoin, networkStack } from '../helpers';

type Props = Partial<ConstructorParameters<typeof ServiceTier>[2]>;

/** A fleet, and a service split off it at /ws/*, in a network of their own. */
function build(props: Props = {}, web: (w: LoadBalancedTier) => void = () => {}) {
  const { stack, vpc } = networkStack({ natGateways: 1 });
  const tier = new LoadBalancedTier(stack, 'Web', { vpc });
  web(tier);
  const service = new ServiceTier(stack, 'Realtime', {
    web: tier,
    app: AppSource.demoRealtime(),
    pathPatterns: ['/ws/*'],
    priority: 10,
    ...props,
  });
  return { stack, web: tier, service };
}

describe('ServiceTier defaults', () => {
  const { stack, web, service } = build();
  service.addEnvironment('FEATURE', 'on');
  const alarm = new cloudwatch.Alarm(stack, 'Alarm', {
    metric: service.targetGroup.metrics.unhealthyHostCount(),
    threshold: 1,
    evaluationPeriods: 1,
  });
  service.watchDuringReleases(alarm);
  const template = Template.fromStack(stack);
  const id = (c: { node: { defaultChild?: unknown } }) => stack.getLogicalId(c.node.defaultChild as never);

  test("the fleet's listener sends the service's paths to the service's target group, and every other path to the fleet", () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::ListenerRule', {
      ListenerArn: { Ref: stack.getLogicalId(web.listener.node.defaultChild as never) },
      Priority: 10,
      Conditions: [{ Field: 'path-pattern', PathPatternConfig: { Values: ['/ws/*'] } }],
      Actions: [{ Type: 'forward', TargetGroupArn: { Ref: id(service.targetGroup) } }],
    });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
      DefaultActions: [{ Type: 'forward', TargetGroupArn: { Ref: id(web.targetGroup) } }],
    });
  });

  test('its own target group drains a leaving server for 5 minutes and checks the app health path', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      HealthCheckPath: '/healthz',
      Matcher: { HttpCode: '200' },
      TargetGroupAttributes: Match.arrayWith([{ Key: 'deregistration_delay.timeout_seconds', Value: '300' }]),
    });
    // The fleet's own stays at 30 seconds.
    const fleet = template.toJSON().Resources[id(web.targetGroup)];
    expect(fleet.Properties.TargetGroupAttributes).toContainEqual({
      Key: 'deregistration_delay.timeout_seconds',
      Value: '30',
    });
  });

  test('its own servers: 2 to 6, scaled on CPU, replaced one at a time, each signalling after its bake', () => {
    const group = template.toJSON().Resources[id(service.autoScalingGroup)];
    expect(group.Properties).toMatchObject({ MinSize: '2', MaxSize: '6', HealthCheckType: 'ELB' });
    expect(group.UpdatePolicy.AutoScalingRollingUpdate).toMatchObject({
      MaxBatchSize: 1,
      MinInstancesInService: 2,
      WaitOnResourceSignals: true,
      PauseTime: 'PT25M',
    });
    template.hasResourceProperties('AWS::AutoScaling::ScalingPolicy', {
      AutoScalingGroupName: { Ref: id(service.autoScalingGroup) },
      TargetTrackingConfiguration: Match.objectLike({
        PredefinedMetricSpecification: { PredefinedMetricType: 'ASGAverageCPUUtilization' },
        TargetValue: 60,
      }),
    });
    const policies = template.findResources('AWS::AutoScaling::ScalingPolicy', {
      Properties: { AutoScalingGroupName: { Ref: id(service.autoScalingGroup) } },
    });
    expect(Object.keys(policies)).toHaveLength(1);
  });

  test('its servers take the app port from the load balancer only, with IMDSv2 and an encrypted root volume', () => {
    const sources = Object.values(
      template.findResources('AWS::EC2::SecurityGroupIngress', {
        Properties: {
          GroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^RealtimeServerSecurityGroup'), 'GroupId'] },
        },
      }),
    ).map((rule) => [rule.Properties.FromPort, rule.Properties.SourceSecurityGroupId['Fn::GetAtt'][0]]);
    expect(sources).toEqual([[80, expect.stringMatching(/^WebLoadBalancerSecurityGroup/)]]);
    const lt = template.toJSON().Resources[id(service.launchTemplate)];
    expect(lt.Properties.LaunchTemplateData.MetadataOptions).toMatchObject({ HttpTokens: 'required' });
    expect(lt.Properties.LaunchTemplateData.BlockDeviceMappings[0].Ebs).toMatchObject({ Encrypted: true });
  });

  test('its environment and its release alarms are its own', () => {
    const script = flattenJoin(
      template.toJSON().Resources[id(service.launchTemplate)].Properties.LaunchTemplateData.UserData,
    );
    expect(script).toContain('FEATURE=on');
    expect(script).toContain('realtime.js');
    expect(script).toMatch(/RELEASE_ALARMS="TOKEN"/);
    const fleetScript = flattenJoin(
      template.toJSON().Resources[id(web.launchTemplate)].Properties.LaunchTemplateData.UserData,
    );
    expect(fleetScript).not.toContain('FEATURE=on');
    template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [{ Ref: Match.stringLikeRegexp('^RealtimeServerRole') }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: 'cloudwatch:DescribeAlarms',
            Resource: { 'Fn::GetAtt': [id(alarm), 'Arn'] },
          }),
        ]),
      },
    });
  });
});

test('StageOperations.monitorService: its 5xx and unhealthy servers, which its releases watch, and its at-max signal', () => {
  const { stack, service } = build();
  const operations = new StageOperations(stack, 'Operations');
  operations.monitorService(service);
  const template = Template.fromStack(stack);
  const tg = {
    'Fn::GetAtt': [stack.getLogicalId(service.targetGroup.node.defaultChild as never), 'TargetGroupFullName'],
  };
  for (const metric of ['HTTPCode_Target_5XX_Count', 'UnHealthyHostCount']) {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: metric,
      Dimensions: Match.arrayWith([{ Name: 'TargetGroup', Value: tg }]),
      AlarmDescription: Match.stringLikeRegexp('service Realtime|Service Realtime'),
    });
  }
  template.hasResourceProperties('AWS::CloudWatch::Alarm', {
    MetricName: 'GroupDesiredCapacity',
    Threshold: 6,
    AlarmDescription: 'Service Realtime has wanted its maximum of 6 servers for an hour.',
  });
  const watched = template.findResources('AWS::IAM::Policy', {
    Properties: { Roles: [{ Ref: Match.stringLikeRegexp('^RealtimeServerRole') }] },
  });
  expect(JSON.stringify(watched).match(/cloudwatch:DescribeAlarms/g)).toHaveLength(1);
  expect(JSON.stringify(watched)).toMatch(/OperationsServiceRealtime5xx/);
});

test.each<[string, Props, RegExp]>([
  [
    'a relative path',
    { pathPatterns: ['ws/*'] },
    /pathPatterns must be 1 to 5 paths such as '\/ws\/\*'.*got \["ws\/\*"\]/,
  ],
  ['every path', { pathPatterns: ['/*'] }, /not '\/\*' \(the app keeps its paths\)/],
  ['six paths', { pathPatterns: ['/a', '/b', '/c', '/d', '/e', '/f'] }, /1 to 5 paths/],
  ['129 characters', { pathPatterns: [`/${'a'.repeat(128)}`] }, /at most 128 characters/],
  ['priority 0', { priority: 0 }, /priority must be a whole number from 1 to 50000; got 0/],
  ['one server', { minCapacity: 1 }, /minCapacity must be a whole number from 2 to 100/],
  ['no room to roll', { minCapacity: 3, maxCapacity: 3 }, /maxCapacity must be a whole number from 4 to 500/],
  [
    'an hour and a second',
    { deregistrationDelay: Duration.seconds(3601) },
    /deregistrationDelay \(seconds\) must be a whole number from 0 to 3600/,
  ],
  [
    'a db. class',
    { instanceType: new ec2.InstanceType('db.m7g.large') },
    /instanceType takes the instance class without the 'db.' prefix/,
  ],
])('%s fails at synth, naming the prop', (_what, props, message) => {
  expect(() => build(props)).toThrow(message);
});

test("a fleet that requires the CDN's origin header is refused: its rule would take the service's paths first", () => {
  expect(() => build({}, (web) => web.requireOriginHeader())).toThrow(
    /web requires an origin header \(requireOriginHeader\): its rule forwards every path to web's servers before a service's rule/,
  );
});
