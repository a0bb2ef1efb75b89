import { Aws, CfnCondition, CfnMapping, Fn, ICfnConditionExpression, Stack, Token } from 'aws-cdk-lib/core';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { RegionInfo } from 'aws-cdk-lib/region-info';

const LOG_DELIVERY_SERVICE = 'logdelivery.elasticloadbalancing.amazonaws.com';

/**
 * Turns on a load balancer's access logs, also in a stack that is not tied to a region.
 *
 * Who writes the logs depends on the region: an Elastic Load Balancing account in regions older
 * than August 2022, a service principal in newer ones. aws-cdk-lib's `logAccessLogs` picks one at
 * synth time and so needs a region; in an environment-agnostic stack this picks at deploy time,
 * from a mapping of aws-cdk-lib's own region facts.
 */
export function enableAccessLogs(
  loadBalancer: elbv2.ApplicationLoadBalancer,
  bucket: s3.IBucket,
  prefix: string,
): void {
  const stack = Stack.of(loadBalancer);
  if (!Token.isUnresolved(stack.region)) {
    loadBalancer.logAccessLogs(bucket, prefix);
    return;
  }
  loadBalancer.setAttribute('access_logs.s3.enabled', 'true');
  loadBalancer.setAttribute('access_logs.s3.bucket', bucket.bucketName);
  loadBalancer.setAttribute('access_logs.s3.prefix', prefix);
  bucket.addToResourcePolicy(
    new iam.PolicyStatement({
      actions: ['s3:PutObject'],
      principals: [new RegionalLogDeliveryPrincipal(stack)],
      resources: [bucket.arnForObjects(`${prefix}/AWSLogs/${Aws.ACCOUNT_ID}/*`)],
    }),
  );
  const policy = bucket.policy?.node.defaultChild;
  if (policy) loadBalancer.node.addDependency(policy);
}

/** The account or service that delivers access logs in the region the stack is deployed to. */
class RegionalLogDeliveryPrincipal extends iam.PrincipalBase {
  private readonly account: string;
  private readonly byAccount: CfnCondition;

  constructor(stack: Stack) {
    super();
    const accounts = RegionInfo.regions.filter((r) => r.elbv2Account);
    const mapping =
      (stack.node.tryFindChild('ElbLogDelivery') as CfnMapping | undefined) ??
      new CfnMapping(stack, 'ElbLogDelivery', {
        mapping: Object.fromEntries(accounts.map((r) => [r.name, { account: r.elbv2Account! }])),
      });
    this.account = mapping.findInMap(Aws.REGION, 'account');
    this.byAccount =
      (stack.node.tryFindChild('ElbLogDeliveryByAccount') as CfnCondition | undefined) ??
      new CfnCondition(stack, 'ElbLogDeliveryByAccount', {
        expression: anyOf(accounts.map((r) => Fn.conditionEquals(Aws.REGION, r.name))),
      });
  }

  public get policyFragment(): iam.PrincipalPolicyFragment {
    const condition = this.byAccount.logicalId;
    return new iam.PrincipalPolicyFragment({
      AWS: [
        Token.asString(
          Fn.conditionIf(condition, `arn:${Aws.PARTITION}:iam::${this.account}:root`, Aws.NO_VALUE),
        ),
      ],
      Service: [Token.asString(Fn.conditionIf(condition, Aws.NO_VALUE, LOG_DELIVERY_SERVICE))],
    });
  }

  public dedupeString(): string | undefined {
    return undefined;
  }

  public toString(): string {
    return 'RegionalLogDeliveryPrincipal';
  }
}

/** Fn::Or takes 2 to 10 conditions; nest it for more. */
function anyOf(conditions: ICfnConditionExpression[]): ICfnConditionExpression {
  if (conditions.length <= 10) return Fn.conditionOr(...conditions);
  const groups: ICfnConditionExpression[] = [];
  for (let i = 0; i < conditions.length; i += 10) {
    const group = conditions.slice(i, i + 10);
    groups.push(group.length === 1 ? Fn.conditionOr(group[0], group[0]) : Fn.conditionOr(...group));
  }
  return anyOf(groups);
}
