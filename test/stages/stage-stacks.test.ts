import { Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { EdgeStack, StageStacks, UserStage } from '../../lib';
import { newApp, synthStage } from '../helpers';

describe('stage 1: one stack, no edge firewall', () => {
  const { stack, template, edge } = synthStage(UserStage.USERS_1);

  test('only the primary stack, environment-agnostic, and no web ACL on the distribution', () => {
    expect(edge).toBeUndefined();
    expect(stack.environment).toBe('aws://unknown-account/unknown-region');
    template.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({ WebACLId: Match.absent() }),
    });
  });
});

describe('stage 1k: the primary stack and <name>-Edge in us-east-1', () => {
  const app = newApp();
  const stacks = new StageStacks(app, 'Shop', { stage: UserStage.USERS_1K });
  const primary = Template.fromStack(stacks.primary);

  test('the edge stack is named <name>-Edge, pinned to us-east-1, and holds the web ACL', () => {
    expect(stacks.edge!.stackName).toBe('Shop-Edge');
    expect(stacks.edge!.region).toBe('us-east-1');
    const edge = Template.fromStack(stacks.edge!);
    edge.resourceCountIs('AWS::WAFv2::WebACL', 1);
    edge.hasOutput('WebAclArn', {
      Value: { 'Fn::GetAtt': [Match.stringLikeRegexp('^FirewallWebAcl'), 'Arn'] },
    });
  });

  test('the primary stays environment-agnostic and reads the ARN with Fn::GetStackOutput in us-east-1', () => {
    expect(stacks.primary.stackName).toBe('Shop');
    expect(stacks.primary.environment).toBe('aws://unknown-account/unknown-region');
    primary.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({
        WebACLId: {
          'Fn::GetStackOutput': { StackName: 'Shop-Edge', OutputName: 'WebAclArn', Region: 'us-east-1' },
        },
      }),
    });
  });

  test('the primary depends on the edge stack, so `cdk deploy Shop` deploys the edge first', () => {
    expect(stacks.primary.dependencies).toEqual([stacks.edge]);
  });

  test('the cloud assembly holds both stacks without any credentials', () => {
    const assembly = app.synth();
    expect(assembly.stacks.map((s) => [s.stackName, s.environment.region]).sort()).toEqual([
      ['Shop', 'unknown-region'],
      ['Shop-Edge', 'us-east-1'],
    ]);
  });
});

test('edgeFirewall: true adds the edge stack below stage 1k; false leaves it out from 1k', () => {
  expect(synthStage(UserStage.USERS_1, { edgeFirewall: true }).edge).toBeDefined();
  const without = synthStage(UserStage.USERS_1K, { edgeFirewall: false });
  expect(without.edge).toBeUndefined();
  without.template.hasResourceProperties('AWS::CloudFront::Distribution', {
    DistributionConfig: Match.objectLike({ WebACLId: Match.absent() }),
  });
});

test('the edge firewall settings reach the web ACL', () => {
  const { edge } = synthStage(UserStage.USERS_1K, { edgeFirewallProps: { requestsPerIpPer5Minutes: 300 } });
  edge!.hasResourceProperties('AWS::WAFv2::WebACL', {
    Rules: Match.arrayWith([
      Match.objectLike({ Statement: { RateBasedStatement: Match.objectLike({ Limit: 300 }) } }),
    ]),
  });
});

test('an edge stack in another region fails with the reason', () => {
  expect(() => new EdgeStack(newApp(), 'E', { env: { region: 'eu-west-1' } })).toThrow(
    /EdgeStack env.region must be us-east-1, where CloudFront's web ACLs live; got 'eu-west-1'/,
  );
  expect(new EdgeStack(newApp(), 'E', { env: { account: '123456789012' } }).region).toBe('us-east-1');
  expect(Stack.of(new EdgeStack(newApp(), 'E2').firewall).region).toBe('us-east-1');
});

test('a primary given its own stackName names its edge stack and its regions after it', () => {
  const stacks = new StageStacks(newApp(), 'Blue', { stage: UserStage.USERS_10M, stackName: 'Shop' });
  expect([stacks.primary, stacks.edge!, ...stacks.secondaries].map((s) => s.stackName)).toEqual([
    'Shop',
    'Shop-Edge',
    'Shop-us-west-2',
  ]);
  const defaults = new StageStacks(newApp(), 'Shop', { stage: UserStage.USERS_10M });
  expect([defaults.primary, defaults.edge!, ...defaults.secondaries].map((s) => s.stackName)).toEqual([
    'Shop',
    'Shop-Edge',
    'Shop-us-west-2',
  ]);
});
