import { EdgeFirewallProps } from '../constructs/edge-firewall';
import { StageStackProps } from '../stages/stage-stack';

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
  /**
   * Stage 10m: the regions the app runs in, the primary first (see `MultiRegion`).
   *
   * @default - at stage 10m, us-east-1 and us-west-2; another stage does not use them and warns
   */
  readonly regions?: string[];
}
