import { Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as logs from 'aws-cdk-lib/aws-logs';
import { EdgeFirewall } from '../../lib';
import { newApp } from '../helpers';

function build(props: ConstructorParameters<typeof EdgeFirewall>[2] = {}, region = 'us-east-1') {
  const stack = new Stack(newApp(), 'Edge', { env: { region } });
  const firewall = new EdgeFirewall(stack, 'Firewall', props);
  return { stack, firewall, template: Template.fromStack(stack) };
}

describe('EdgeFirewall defaults', () => {
  const { stack, firewall, template } = build();
  const rules = () =>
    Object.values(template.findResources('AWS::WAFv2::WebACL'))[0].Properties.Rules as Array<{
      Name: string;
      Priority: number;
      Statement: Record<string, { Name?: string; Limit?: number; RuleActionOverrides?: unknown }>;
    }>;

  test('a CLOUDFRONT-scope web ACL that allows what no rule blocks', () => {
    template.hasResourceProperties('AWS::WAFv2::WebACL', {
      Scope: 'CLOUDFRONT',
      DefaultAction: { Allow: {} },
      VisibilityConfig: Match.objectLike({ CloudWatchMetricsEnabled: true, SampledRequestsEnabled: true }),
    });
  });

  test('a per-IP rate limit first, then IP reputation, known bad inputs and the core rule set', () => {
    expect(rules().map((r) => [r.Priority, r.Name])).toEqual([
      [0, 'RequestsPerIp'],
      [1, 'AWSManagedRulesAmazonIpReputationList'],
      [2, 'AWSManagedRulesKnownBadInputsRuleSet'],
      [3, 'AWSManagedRulesCommonRuleSet'],
    ]);
    expect(rules()[0]).toMatchObject({
      Action: { Block: {} },
      Statement: { RateBasedStatement: { Limit: 2000, AggregateKeyType: 'IP', EvaluationWindowSec: 300 } },
    });
    for (const rule of rules().slice(1)) {
      expect(rule).toMatchObject({
        OverrideAction: { None: {} },
        Statement: { ManagedRuleGroupStatement: { VendorName: 'AWS', Name: rule.Name } },
      });
    }
  });

  test('the 8 KB body limit of the core rule set only counts, so uploads pass', () => {
    expect(rules()[3].Statement.ManagedRuleGroupStatement.RuleActionOverrides).toEqual([
      { Name: 'SizeRestrictions_BODY', ActionToUse: { Count: {} } },
    ]);
    expect(rules()[1].Statement.ManagedRuleGroupStatement.RuleActionOverrides).toBeUndefined();
  });

  test('every request is logged to a retained aws-waf-logs-* log group, by its ARN without :*', () => {
    template.hasResource('AWS::Logs::LogGroup', {
      Properties: { LogGroupName: 'aws-waf-logs-Edge', RetentionInDays: 90 },
      DeletionPolicy: 'Retain',
    });
    template.hasResourceProperties('AWS::WAFv2::LoggingConfiguration', {
      ResourceArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^FirewallWebAcl'), 'Arn'] },
      LogDestinationConfigs: [
        {
          'Fn::Join': [
            '',
            [
              'arn:aws:logs:us-east-1:',
              { Ref: 'AWS::AccountId' },
              ':log-group:',
              { Ref: Match.stringLikeRegexp('^FirewallLogs') },
            ],
          ],
        },
      ],
    });
  });

  test('exposes the web ACL, its ARN and the log group', () => {
    expect(stack.resolve(firewall.webAclArn)).toEqual({
      'Fn::GetAtt': [expect.stringMatching(/^FirewallWebAcl/), 'Arn'],
    });
    expect(firewall.logGroup).toBeInstanceOf(logs.LogGroup);
  });
});

test('rate limit, count-only rules and log retention are props', () => {
  const { template } = build({
    requestsPerIpPer5Minutes: 500,
    countOnlyRules: ['SizeRestrictions_BODY', 'CrossSiteScripting_BODY'],
    logRetention: logs.RetentionDays.ONE_YEAR,
  });
  const acl = Object.values(template.findResources('AWS::WAFv2::WebACL'))[0].Properties;
  expect(acl.Rules[0].Statement.RateBasedStatement.Limit).toBe(500);
  expect(acl.Rules[3].Statement.ManagedRuleGroupStatement.RuleActionOverrides).toEqual([
    { Name: 'SizeRestrictions_BODY', ActionToUse: { Count: {} } },
    { Name: 'CrossSiteScripting_BODY', ActionToUse: { Count: {} } },
  ]);
  template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 365 });
});

test('an empty count-only list leaves every rule of the core rule set blocking', () => {
  const acl = Object.values(build({ countOnlyRules: [] }).template.findResources('AWS::WAFv2::WebACL'))[0];
  expect(acl.Properties.Rules[3].Statement.ManagedRuleGroupStatement.RuleActionOverrides).toBeUndefined();
});

describe('EdgeFirewall validation', () => {
  test('a stack outside us-east-1 fails: CLOUDFRONT web ACLs live there only', () => {
    expect(() => build({}, 'eu-west-1')).toThrow(
      /Edge\/Firewall: EdgeFirewall must be in a stack whose region is us-east-1 .*got region 'eu-west-1'/,
    );
  });

  test('an environment-agnostic stack fails too', () => {
    const stack = new Stack(newApp(), 'Edge');
    expect(() => new EdgeFirewall(stack, 'Firewall')).toThrow(/got region 'not set'/);
  });

  test.each([
    [
      { requestsPerIpPer5Minutes: 5 },
      /requestsPerIpPer5Minutes must be a whole number from 10 to 2000000000 \(AWS WAF accepts 10 or more\); got 5/,
    ],
    [{ requestsPerIpPer5Minutes: 99.5 }, /requestsPerIpPer5Minutes must be a whole number.*got 99.5/],
    [
      { countOnlyRules: ['Size Restrictions'] },
      /countOnlyRules must hold rule names of AWSManagedRulesCommonRuleSet.*got 'Size Restrictions'/,
    ],
  ])('%o fails', (props, message) => {
    expect(() => build(props)).toThrow(message);
  });
});
