/**
 * Services in the blueprint: from stage 1m a service of `services` gets its own fleet, target group,
 * scaling and alarms behind the fleet's load balancer and the distribution, shares the app's data tiers,
 * and is added to a running stack in place; stacks without services are unchanged (the stage snapshots).
 */
import { fullDiff } from '@aws-cdk/cloudformation-diff';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { AppSource, SecondaryRegionStack, StageStack, StageStacks, UserStage } from '../../lib';
import { flattenJoin, newApp, synthStage } from '../helpers';
import { dataLossOnUpgrade } from '../upgrade-check';

const realtime = { name: 'realtime', app: AppSource.demoRealtime(), pathPattern: '/ws/*' };
const plain = synthStage(UserStage.USERS_1M);
const withService = synthStage(UserStage.USERS_1M, { services: [realtime] });
const json = (t: Template) => t.toJSON();
const [service] = withService.stack.services;
const id = (c: { node: { defaultChild?: unknown } }) =>
  withService.stack.getLogicalId(c.node.defaultChild as never);

test("the service has its own fleet, target group, scaling policy and listener rule, at /ws/* on the fleet's load balancer", () => {
  const t = withService.template;
  t.resourceCountIs('AWS::AutoScaling::AutoScalingGroup', 3); // the fleet, the workers, the service
  t.hasResourceProperties('AWS::ElasticLoadBalancingV2::ListenerRule', {
    ListenerArn: { Ref: id(withService.stack.web!.listener) },
    Priority: 10,
    Conditions: [{ Field: 'path-pattern', PathPatternConfig: { Values: ['/ws/*'] } }],
  });
  const group = json(t).Resources[id(service.autoScalingGroup)];
  // The stage's server class, two to ten of them.
  expect(group.Properties).toMatchObject({ MinSize: '2', MaxSize: '10' });
  const lt = json(t).Resources[id(service.launchTemplate)];
  expect(lt.Properties.LaunchTemplateData.InstanceType).toBe('m7g.large');
});

test("the distribution sends /ws/* to the same VPC origin as /api/*, uncached, with every method and the viewer's headers", () => {
  const dist = Object.values(withService.template.findResources('AWS::CloudFront::Distribution'))[0];
  const behaviors = dist.Properties.DistributionConfig.CacheBehaviors as Record<string, unknown>[];
  const api = behaviors.find((b) => b.PathPattern === '/api/*')!;
  const ws = behaviors.find((b) => b.PathPattern === '/ws/*')!;
  expect(ws.TargetOriginId).toEqual(api.TargetOriginId);
  // Managed policies: CachingDisabled and AllViewerExceptHostHeader, which passes Sec-WebSocket-Key and
  // Sec-WebSocket-Version (CloudFront Developer Guide, "Use WebSockets with CloudFront distributions").
  expect(ws).toMatchObject({
    CachePolicyId: '4135ea2d-6df8-44a3-9df3-4b5a84be39ad',
    OriginRequestPolicyId: 'b689b0a8-53d0-40ab-baf2-68738e2966ac',
    AllowedMethods: ['GET', 'HEAD', 'OPTIONS', 'PUT', 'PATCH', 'POST', 'DELETE'],
    ViewerProtocolPolicy: 'redirect-to-https',
  });
  // The idle timeouts stay the documented defaults the demo's 30-second pings fit in: the load
  // balancer's 60 seconds (no idle_timeout attribute), and CloudFront's 10 minutes for WebSockets.
  const lb = Object.values(
    withService.template.findResources('AWS::ElasticLoadBalancingV2::LoadBalancer'),
  )[0];
  expect(JSON.stringify(lb.Properties.LoadBalancerAttributes)).not.toContain('idle_timeout');
});

test('the service gets what the fleet gets: database, replicas, cache, queue, media, store', () => {
  const script = flattenJoin(
    json(withService.template).Resources[id(service.launchTemplate)].Properties.LaunchTemplateData.UserData,
  );
  for (const name of [
    'DATABASE_HOST',
    'DATABASE_READER_HOSTS',
    'CACHE_HOST',
    'JOB_QUEUE_URL',
    'MEDIA_BUCKET',
    'STORE_TABLE_NAME',
  ]) {
    expect([name, script.includes(`${name}=`)]).toEqual([name, true]);
  }
  const group = id(service.connections.securityGroups[0]);
  for (const target of ['Database', 'Cache']) {
    withService.template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      GroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp(`^${target}SecurityGroup`), 'GroupId'] },
      SourceSecurityGroupId: { 'Fn::GetAtt': [group, 'GroupId'] },
    });
  }
});

test('the service has its own alarms and widgets; its at-max signal joins the "time for stage 10m" alarm', () => {
  for (const alarm of ['ServiceRealtime5xx', 'ServiceRealtimeUnhealthy', 'ServiceRealtimeAtMax']) {
    expect(Object.keys(withService.template.findResources('AWS::CloudWatch::Alarm'))).toContainEqual(
      expect.stringMatching(new RegExp(`^Operations${alarm}`)),
    );
  }
  const composite = Object.values(withService.template.findResources('AWS::CloudWatch::CompositeAlarm'))[0];
  expect(JSON.stringify(composite.Properties.AlarmRule)).toContain('OperationsServiceRealtimeAtMax');
  const dashboard = JSON.stringify(withService.template.findResources('AWS::CloudWatch::Dashboard'));
  expect(dashboard).toContain('Service realtime: requests and 5xx');
});

test('adding the service to a running stage-1m stack replaces nothing and changes only what routes to it or watches it', () => {
  const before = json(plain.template);
  const after = json(withService.template);
  expect(dataLossOnUpgrade(before, after)).toEqual([]);
  const changed: string[] = [];
  fullDiff(before, after).resources.forEachDifference((_logicalId, change) => {
    if (change.isAddition) return;
    changed.push(`${change.changeImpact} ${change.resourceType} ${Object.keys(change.propertyUpdates)}`);
  });
  expect(changed.sort()).toEqual([
    'WILL_UPDATE AWS::CloudFront::Distribution DistributionConfig',
    'WILL_UPDATE AWS::CloudWatch::CompositeAlarm AlarmRule',
    'WILL_UPDATE AWS::CloudWatch::Dashboard DashboardBody',
  ]);
  expect(withService.stack.estimatedMonthlyCost() - plain.stack.estimatedMonthlyCost()).toBeCloseTo(
    // Two m7g.large servers ($59.57 each) with 8 GiB roots ($0.64 each), three alarms.
    2 * 59.57 + 2 * 0.64 + 0.3,
    1,
  );
});

test('at stage 10m every region runs the service, and the regional routing picks the region for its path as for the API', () => {
  const tenMillion = synthStage(UserStage.USERS_10M, { services: [realtime] });
  const dist = Object.values(tenMillion.template.findResources('AWS::CloudFront::Distribution'))[0];
  const behaviors = dist.Properties.DistributionConfig.CacheBehaviors as Record<string, unknown>[];
  const ws = behaviors.find((b) => b.PathPattern === '/ws/*')!;
  const api = behaviors.find((b) => b.PathPattern === '/api/*')!;
  expect(ws.TargetOriginId).toEqual(api.TargetOriginId);
  expect(ws.FunctionAssociations).toEqual(api.FunctionAssociations);
  expect(api.FunctionAssociations).toHaveLength(1);
  const [region] = tenMillion.secondaries;
  expect(region.stack.services.map((s) => s.node.id)).toEqual(['realtime']);
  region.template.hasResourceProperties('AWS::ElasticLoadBalancingV2::ListenerRule', {
    Conditions: [{ Field: 'path-pattern', PathPatternConfig: { Values: ['/ws/*'] } }],
  });
  // In the region, the service reads the region's replica and writes to the writer region.
  const lt =
    region.template.toJSON().Resources[
      region.stack.getLogicalId(region.stack.services[0].launchTemplate.node.defaultChild as never)
    ];
  const script = flattenJoin(lt.Properties.LaunchTemplateData.UserData);
  expect(script).toContain('WRITER_REGION=us-east-1');
  expect(script).toContain('DATABASE_HOST=');
  expect(script).toContain('STORE_TABLE_NAME=');
  region.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
    AlarmDescription: Match.stringLikeRegexp('^Service realtime answered 10 or more 5xx'),
  });
});

test("a region composed without the primary's services fails, naming both lists", () => {
  const app = newApp();
  const region = new SecondaryRegionStack(app, 'Shop-eu-west-1', {
    region: 'eu-west-1',
    primaryStackName: 'Shop',
    primaryRegion: 'us-east-1',
  });
  expect(
    () =>
      new StageStack(app, 'Shop', {
        stage: UserStage.USERS_10M,
        secondaryRegions: [region],
        services: [realtime],
      }),
  ).toThrow(
    'SecondaryRegionStack Shop-eu-west-1 has services [], but its primary has [["realtime",["/ws/*"]]] (names and paths): give every region the primary\'s services.',
  );
});

test.each([
  [
    [{ ...realtime, pathPattern: '/api/search/*' }],
    /pathPattern '\/api\/search\/\*' falls under '\/api\/\*', which the distribution matches first/,
  ],
  [[realtime, realtime], /services must have different names; 'realtime' is given twice/],
  [[{ ...realtime, name: 'Realtime' }], /services name must be 1 to 20 lowercase letters.*got 'Realtime'/],
])('bad services fail at synth, naming the setting (%#)', (services, message) => {
  expect(() => synthStage(UserStage.USERS_1M, { services })).toThrow(message);
});

test('below stage 1m, services warn that the stage does not use them', () => {
  const app = newApp();
  const stacks = new StageStacks(app, 'Shop', { stage: UserStage.USERS_100K, services: [realtime] });
  expect(stacks.primary.services).toEqual([]);
  Annotations.fromStack(stacks.primary).hasWarning(
    '*',
    Match.stringLikeRegexp("services is set, but stage '100k' does not use it: it applies from stage '1m'"),
  );
});
