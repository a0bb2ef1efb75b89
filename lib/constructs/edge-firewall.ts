import { ArnFormat, RemovalPolicy, Stack, Token } from 'aws-cdk-lib/core';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as wafv2 from 'aws-cdk-lib/aws-wafv2';
import { Construct } from 'constructs';
import { checkWholeNumber, ScaleStagesError } from '../private/errors';
import { markTier } from '../private/tiers';

/** The AWS managed rule groups of the web ACL, in the order they run after the rate limit. */
const MANAGED_RULE_GROUPS = [
  'AWSManagedRulesAmazonIpReputationList',
  'AWSManagedRulesKnownBadInputsRuleSet',
  'AWSManagedRulesCommonRuleSet',
];

/** Properties of an `EdgeFirewall`. */
export interface EdgeFirewallProps {
  /**
   * How many requests one IP address may send in any 5 minutes before the rest are blocked;
   * AWS WAF accepts 10 or more.
   *
   * @default 2000
   */
  readonly requestsPerIpPer5Minutes?: number;
  /**
   * Rules of the core rule set (`AWSManagedRulesCommonRuleSet`) that only count matches instead of
   * blocking them. `SizeRestrictions_BODY` blocks every request body over 8 KB, which stops file
   * uploads and large JSON posts; `CrossSiteScripting_BODY` can catch rich-text editors.
   *
   * @default ['SizeRestrictions_BODY']
   */
  readonly countOnlyRules?: string[];
  /**
   * How long CloudWatch Logs keeps the web ACL's request logs.
   *
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * An AWS WAF web ACL for CloudFront: the edge firewall of stage 1k onwards.
 *
 * It blocks a per-IP flood (rate-based rule), addresses on Amazon's IP reputation list, known bad
 * inputs (Log4j and similar exploit patterns) and the OWASP-style core rule set, and logs every
 * request it sees to CloudWatch Logs. A CLOUDFRONT-scope web ACL can only be created in us-east-1,
 * so this construct must live in a stack whose region is us-east-1; hand `webAclArn` to the
 * distribution (`CdnStatic`'s `webAclArn`).
 */
export class EdgeFirewall extends Construct {
  /** The web ACL. */
  public readonly webAcl: wafv2.CfnWebACL;
  /** The log group of the web ACL's request logs. */
  public readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: EdgeFirewallProps = {}) {
    super(scope, id);
    const stack = Stack.of(this);
    if (stack.region !== 'us-east-1') {
      throw new ScaleStagesError(
        `EdgeFirewall must be in a stack whose region is us-east-1 (AWS WAF creates CLOUDFRONT-scope web ACLs only there); got region '${Token.isUnresolved(stack.region) ? 'not set' : stack.region}'. Give its stack env: { region: 'us-east-1' }.`,
        this,
      );
    }
    const rateLimit = props.requestsPerIpPer5Minutes ?? 2000;
    checkWholeNumber(
      this,
      'requestsPerIpPer5Minutes',
      rateLimit,
      10,
      2_000_000_000,
      'AWS WAF accepts 10 or more',
    );
    const countOnly = props.countOnlyRules ?? ['SizeRestrictions_BODY'];
    for (const name of countOnly) {
      if (!/^[A-Za-z0-9_]+$/.test(name)) {
        throw new ScaleStagesError(
          `countOnlyRules must hold rule names of AWSManagedRulesCommonRuleSet, such as 'SizeRestrictions_BODY'; got '${name}'.`,
          this,
        );
      }
    }

    const visibility = (metricName: string): wafv2.CfnWebACL.VisibilityConfigProperty => ({
      cloudWatchMetricsEnabled: true,
      metricName,
      sampledRequestsEnabled: true,
    });
    const rules: wafv2.CfnWebACL.RuleProperty[] = [
      {
        name: 'RequestsPerIp',
        priority: 0,
        action: { block: {} },
        statement: {
          rateBasedStatement: { limit: rateLimit, aggregateKeyType: 'IP', evaluationWindowSec: 300 },
        },
        visibilityConfig: visibility('RequestsPerIp'),
      },
      ...MANAGED_RULE_GROUPS.map((name, i) => ({
        name,
        priority: i + 1,
        overrideAction: { none: {} },
        statement: {
          managedRuleGroupStatement: {
            vendorName: 'AWS',
            name,
            ruleActionOverrides:
              name === 'AWSManagedRulesCommonRuleSet' && countOnly.length > 0
                ? countOnly.map((rule) => ({ name: rule, actionToUse: { count: {} } }))
                : undefined,
          },
        },
        visibilityConfig: visibility(name),
      })),
    ];
    this.webAcl = new wafv2.CfnWebACL(this, 'WebAcl', {
      scope: 'CLOUDFRONT',
      defaultAction: { allow: {} },
      description:
        'cdk-scale-stages edge firewall: rate limit, IP reputation, known bad inputs, core rule set',
      rules,
      visibilityConfig: visibility('EdgeFirewall'),
    });
    markTier(this.webAcl, 'firewall');

    // AWS WAF writes only to log groups whose names start with aws-waf-logs-, in its own region.
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      logGroupName: `aws-waf-logs-${stack.stackName}`,
      retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    new wafv2.CfnLoggingConfiguration(this, 'Logging', {
      resourceArn: this.webAcl.attrArn,
      // The log group's ARN without the ':*' that `logGroupArn` ends with.
      logDestinationConfigs: [
        stack.formatArn({
          service: 'logs',
          resource: 'log-group',
          resourceName: this.logGroup.logGroupName,
          arnFormat: ArnFormat.COLON_RESOURCE_NAME,
        }),
      ],
    });
  }

  /** The web ACL's ARN, for CloudFront's `WebACLId`. */
  public get webAclArn(): string {
    return this.webAcl.attrArn;
  }
}
