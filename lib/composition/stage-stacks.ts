import { Construct } from 'constructs';
import { MultiRegion } from './multi-region';
import { monthlyCost, templateOf } from '../private/cost-model';
import { EdgeStack } from '../stages/edge-stack';
import { SecondaryRegionStack } from '../stages/secondary-region-stack';
import { StageStack } from '../stages/stage-stack';
import { StageStacksProps } from './stage-stacks-props';
import { edgeAndPrimary } from './edge-and-primary';
import { UserStage } from '../stages/user-stage';

/**
 * The stacks of one stage, composed in one place: the primary `StageStack` named `name` (in the
 * region the CLI deploys to) and, with an edge firewall, the `<name>-Edge` stack in us-east-1 that
 * the primary depends on. `cdk deploy <name>` deploys the edge stack first. At stage 10m,
 * `MultiRegion` composes them, with a `SecondaryRegionStack` per further region.
 *
 * The primary reads the web ACL's ARN with `Fn::GetStackOutput`, which reads another stack's output
 * across regions at deploy time, so the primary stack stays environment-agnostic and synth needs no
 * credentials (aws-cdk-lib's own cross-region references need an explicit region on both stacks).
 */
export class StageStacks {
  /** The single-region blueprint of the stage; at stage 10m, its primary region. */
  public readonly primary: StageStack;
  /** The stack in us-east-1, when there is an edge firewall. */
  public readonly edge?: EdgeStack;
  /** The secondary regions' stacks (stage 10m). */
  public readonly secondaries: SecondaryRegionStack[];

  constructor(scope: Construct, name: string, props: StageStacksProps) {
    if (props.stage === UserStage.USERS_10M) {
      const multiRegion = new MultiRegion(scope, name, props);
      this.primary = multiRegion.primary;
      this.edge = multiRegion.edge;
      this.secondaries = multiRegion.secondaries;
      return;
    }
    const { edge, primary } = edgeAndPrimary(scope, name, props);
    this.edge = edge;
    this.primary = primary;
    this.secondaries = [];
  }

  /**
   * The stage's estimated monthly cost before traffic, in US dollars: every stack, at us-east-1
   * on-demand list prices (see `StageStack.estimatedMonthlyCost`).
   */
  public estimatedMonthlyCost(): number {
    return monthlyCost(
      templateOf(this.primary),
      ...(this.edge ? [templateOf(this.edge)] : []),
      ...this.secondaries.map(templateOf),
    );
  }
}
