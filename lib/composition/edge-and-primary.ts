import { Fn } from 'aws-cdk-lib/core';
import { Construct } from 'constructs';
import { EdgeStack } from '../stages/edge-stack';
import { StageStack } from '../stages/stage-stack';
import { StageStacksProps } from './stage-stacks-props';
import { layersAt } from '../stages/stage-table';

/**
 * The primary `StageStack` and, when the stage has an edge firewall, the edge stack it depends on.
 */
export function edgeAndPrimary(
  scope: Construct,
  name: string,
  props: StageStacksProps,
): { edge?: EdgeStack; primary: StageStack } {
  const edgeFirewall = props.edgeFirewall ?? layersAt(props.stage).has('edgeFirewall');
  const edge = edgeFirewall
    ? new EdgeStack(scope, `${name}-Edge`, {
        // A primary given its own stackName names its edge stack after it, as it does by default.
        stackName: props.stackName && `${props.stackName}-Edge`,
        env: props.env?.account ? { account: props.env.account } : undefined,
        firewall: props.edgeFirewallProps,
      })
    : undefined;
  const primary = new StageStack(scope, name, {
    ...props,
    webAclArn:
      props.webAclArn ??
      (edge ? Fn.getStackOutput(edge.stackName, EdgeStack.WEB_ACL_ARN_OUTPUT, edge.region) : undefined),
  });
  if (edge) primary.addStackDependency(edge);
  return { edge, primary };
}
