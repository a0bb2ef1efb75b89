/**
 * The network layer: the VPC the stage's tiers share, built by `StageNetwork` or taken from the team's
 * own VPC, which must then have the subnets the stage's layers need.
 */
import { Token } from 'aws-cdk-lib/core';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';
import { StageNetwork } from '../../constructs/stage-network';
import { ScaleStagesError } from '../../private/errors';
import { StageLayer, StageSizing } from '../stage-table';
import { UserStage } from '../user-stage';

/** The network of `stage`: a new VPC, or `settings.vpc` once it has what the stage needs. */
export function networkLayer(
  scope: Construct,
  stage: UserStage,
  layers: ReadonlySet<StageLayer>,
  sizing: StageSizing,
  settings: { readonly vpc?: ec2.IVpc; readonly natInstanceType?: ec2.InstanceType },
): StageNetwork {
  if (!settings.vpc) {
    return new StageNetwork(scope, 'Network', {
      natGateways: sizing.natGateways,
      natInstanceType: sizing.natGateways > 0 ? settings.natInstanceType : undefined,
    });
  }
  if (settings.natInstanceType) {
    throw new ScaleStagesError(
      `natInstanceType applies to the network the stack builds; with vpc, NAT is the VPC's own. Leave natInstanceType out, or vpc for a network with a NAT instance.`,
    );
  }
  checkExistingVpc(settings.vpc, stage, layers);
  return new StageNetwork(scope, 'Network', { vpc: settings.vpc });
}

/** The subnets each layer takes from an existing VPC, and why it needs them. */
const NEEDS: readonly {
  readonly layers: readonly StageLayer[];
  readonly what: string;
  readonly zones: number;
  readonly subnets: (vpc: ec2.IVpc) => ec2.ISubnet[];
  readonly why: string;
}[] = [
  {
    layers: ['server'],
    what: 'a public subnet',
    zones: 1,
    subnets: (vpc) => vpc.publicSubnets,
    why: 'the single server has a public address, which CloudFront reaches',
  },
  {
    layers: ['fleet', 'workers'],
    what: 'private subnets with a NAT route (PRIVATE_WITH_EGRESS)',
    zones: 2,
    subnets: (vpc) => vpc.privateSubnets,
    why: 'the load balancer, its servers and the workers run there and install packages through the NAT',
  },
  {
    layers: ['database', 'cache'],
    what: 'isolated or private subnets',
    zones: 2,
    subnets: (vpc) => (vpc.isolatedSubnets.length > 0 ? vpc.isolatedSubnets : vpc.privateSubnets),
    why: 'an RDS DB subnet group and an ElastiCache subnet group span at least two availability zones',
  },
];

/** Fails with what is missing when `vpc` lacks the subnets a layer of `stage` takes. */
function checkExistingVpc(vpc: ec2.IVpc, stage: UserStage, layers: ReadonlySet<StageLayer>): void {
  for (const need of NEEDS.filter((n) => n.layers.some((layer) => layers.has(layer)))) {
    const subnets = need.subnets(vpc);
    // A zone only known at deploy time counts as its own zone.
    const zones = new Set(
      subnets.map((s) => (Token.isUnresolved(s.availabilityZone) ? s : s.availabilityZone)),
    );
    if (zones.size < need.zones) {
      throw new ScaleStagesError(
        `vpc must have ${need.what} in ${need.zones === 1 ? 'an availability zone' : `${need.zones} availability zones`} at stage '${stage}': ${need.why}; got ${subnets.length} such subnet${subnets.length === 1 ? '' : 's'} in ${zones.size} zone${zones.size === 1 ? '' : 's'}.`,
      );
    }
  }
}
