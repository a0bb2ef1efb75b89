import { Fn } from 'aws-cdk-lib/core';
import { Construct } from 'constructs';
import { EdgeFirewallProps } from '../constructs/edge-firewall';
import { EdgeStack } from './edge-stack';
import { monthlyCost, templateOf } from '../private/cost-model';
import { StageStack, StageStackProps } from './stage-stack';
import { STAGES } from './stage-table';

/** Properties of `StageStacks`. */
export interface StageStacksProps extends StageStackProps {
  /**
   * Whether an edge firewall (an AWS WAF web ACL in a `<name>-Edge` stack in us-east-1) guards the
   * distribution. About $9 a month before traffic.
   *
   * @default - from stage 1k
   */
  readonly edgeFirewall?: boolean;
  /**
   * The edge firewall's settings.
   *
   * @default - the `EdgeFirewall` defaults
   */
  readonly edgeFirewallProps?: EdgeFirewallProps;
}

/**
 * The stacks of one stage, composed in one place: the primary `StageStack` named `name` (in the
 * region the CLI deploys to) and, with an edge firewall, the `<name>-Edge` stack in us-east-1 that
 * the primary depends on. `cdk deploy <name>` deploys the edge stack first.
 *
 * The primary reads the web ACL's ARN with `Fn::GetStackOutput`, which reads another stack's output
 * across regions at deploy time, so the primary stack stays environment-agnostic and synth needs no
 * credentials (aws-cdk-lib's own cross-region references need an explicit region on both stacks).
 */
export class StageStacks {
  /** The single-region blueprint of the stage. */
  public readonly primary: StageStack;
  /** The stack in us-east-1, when there is an edge firewall. */
  public readonly edge?: EdgeStack;

  constructor(scope: Construct, name: string, props: StageStacksProps) {
    const sizing = STAGES.find((s) => s.stage === props.stage)?.sizing;
    const edgeFirewall = props.edgeFirewall ?? sizing?.edgeFirewall ?? false;
    if (edgeFirewall) {
      this.edge = new EdgeStack(scope, `${name}-Edge`, {
        env: props.env?.account ? { account: props.env.account } : undefined,
        firewall: props.edgeFirewallProps,
      });
    }
    this.primary = new StageStack(scope, name, {
      ...props,
      webAclArn:
        props.webAclArn ??
        (this.edge
          ? Fn.getStackOutput(this.edge.stackName, EdgeStack.WEB_ACL_ARN_OUTPUT, this.edge.region)
          : undefined),
    });
    if (this.edge) this.primary.addStackDependency(this.edge);
  }

  /**
   * The stage's estimated monthly cost before traffic, in US dollars: both stacks, at us-east-1
   * on-demand list prices (see `StageStack.estimatedMonthlyCost`).
   */
  public estimatedMonthlyCost(): number {
    return monthlyCost(templateOf(this.primary), ...(this.edge ? [templateOf(this.edge)] : []));
  }
}
