import { CfnOutput, Stack, StackProps, Token } from 'aws-cdk-lib/core';
import { Construct } from 'constructs';
import { EdgeFirewall, EdgeFirewallProps } from '../constructs/edge-firewall';
import { ScaleStagesError } from '../private/errors';
import { acknowledgeNist80053R5 } from '../private/nist-800-53-r5';

/** Properties of an `EdgeStack`. */
export interface EdgeStackProps extends StackProps {
  /**
   * The edge firewall's settings.
   *
   * @default - the `EdgeFirewall` defaults
   */
  readonly firewall?: EdgeFirewallProps;
}

/**
 * What a stage must create in us-east-1 for CloudFront: the edge firewall (a CLOUDFRONT-scope web
 * ACL). Its region is always us-east-1, whatever the primary stack's; the primary reads the web
 * ACL's ARN from the `WebAclArn` output at deploy time (`Fn::GetStackOutput`).
 */
export class EdgeStack extends Stack {
  /** The name of the output that holds the web ACL's ARN. */
  public static readonly WEB_ACL_ARN_OUTPUT = 'WebAclArn';

  /** The edge firewall. */
  public readonly firewall: EdgeFirewall;

  constructor(scope: Construct, id: string, props: EdgeStackProps = {}) {
    const region = props.env?.region;
    if (region !== undefined && !Token.isUnresolved(region) && region !== 'us-east-1') {
      throw new ScaleStagesError(
        `EdgeStack env.region must be us-east-1, where CloudFront's web ACLs live; got '${region}'. Leave it out and the stack sets it.`,
      );
    }
    super(scope, id, {
      description: 'cdk-scale-stages: what CloudFront needs in us-east-1 (the edge firewall)',
      ...props,
      env: { ...props.env, region: 'us-east-1' },
    });
    this.firewall = new EdgeFirewall(this, 'Firewall', props.firewall);
    new CfnOutput(this, EdgeStack.WEB_ACL_ARN_OUTPUT, {
      description: 'The edge web ACL, read by the primary stack',
      value: this.firewall.webAclArn,
    });
    acknowledgeNist80053R5(this);
  }
}
