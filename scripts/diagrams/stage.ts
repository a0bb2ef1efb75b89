// The graph of a stage: its one region or, at stage 10m, the primary region with each secondary
// region beside it, and what crosses between them (read from `Fn::GetStackOutput` references).
import { UserStage } from '../../lib';
import { addEdges, originPaths } from './edges';
import { connect, TierEdge, TierGraph, TierNode, TierRegion } from './graph';
import { addNodes } from './nodes';
import { CfnTemplate, list, Props, refs, StackTiers, StageTemplates, stackOutputs } from './parse';
import { Region } from './region';

function readRegion(stack: StackTiers, edge?: StackTiers): Region {
  const region = new Region(stack, edge);
  addNodes(region);
  addEdges(region);
  return region;
}

/** Reads the tiers of one stage out of its construct tree and templates. */
export function tierGraph(stage: UserStage, templates: StageTemplates): TierGraph {
  const primary = readRegion(templates.primary, templates.edge);
  if (templates.secondaries) return multiRegionGraph(stage, primary, templates);
  return {
    stage,
    nodes: [...primary.nodes.values()],
    edges: primary.edges,
    subnetLabels: primary.subnetLabels,
  };
}

/** A region's stack, as placed in the picture: its boxes are named with the prefix. */
interface Placed {
  readonly region: Region;
  readonly template: CfnTemplate;
  readonly prefix: string;
}
/** The boxes a value's `Fn::GetStackOutput` references refer to. */
type OutputTargets = (value: unknown) => string[];

/**
 * Stage 10m: the primary region as in stage 1m, and each secondary region beside it. Their boxes
 * are named `<region>/<logical ID>`: the stacks share their construct paths, so their logical IDs.
 */
function multiRegionGraph(stage: UserStage, primary: Region, templates: StageTemplates): TierGraph {
  const name = templates.primaryRegion ?? 'primary region';
  const placed = new Map<string, Placed>([
    [name, { region: primary, template: templates.primary.template, prefix: '' }],
  ]);
  const regions: TierRegion[] = [{ name, role: 'primary', subnetLabels: primary.subnetLabels }];
  const nodes: TierNode[] = [...primary.nodes.values()].map((n) =>
    n.cluster === 'outside' || n.cluster === 'edge' ? n : { ...n, region: name },
  );
  const edges: TierEdge[] = [...primary.edges];
  for (const [secondary, stack] of Object.entries(templates.secondaries ?? {})) {
    const region = readRegion(stack);
    const prefix = `${secondary}/`;
    placed.set(secondary, { region, template: stack.template, prefix });
    regions.push({ name: secondary, role: 'secondary', subnetLabels: region.subnetLabels });
    // Viewers reach a secondary region through the primary's distribution only. (Its media bucket
    // takes uploads straight from browsers once the region takes the writes, after a promotion.)
    const inside = [...region.nodes.values()].filter((n) => n.cluster !== 'outside');
    nodes.push(...inside.map((n) => ({ ...n, id: `${prefix}${n.id}`, region: secondary })));
    const between = region.edges.filter((e) => e.from !== 'Viewer' && e.to !== 'Viewer');
    edges.push(...between.map((e) => ({ ...e, from: `${prefix}${e.from}`, to: `${prefix}${e.to}` })));
  }
  const targets = outputTargets(placed);
  cdnToSecondaries(primary, edges, targets);
  crossRegionReplicas([...placed.values()].slice(1), edges, targets);
  mediaReplication(primary, edges, targets);
  return { stage, nodes, edges, subnetLabels: primary.subnetLabels, regions };
}

/** The boxes the outputs another stack reads with `Fn::GetStackOutput` refer to, found by region. */
function outputTargets(placed: ReadonlyMap<string, Placed>): OutputTargets {
  return (value) =>
    stackOutputs(value).flatMap((ref) => {
      const stack = placed.get(String(ref.Region));
      const output = stack?.template.Outputs?.[String(ref.OutputName)];
      return [...refs(output?.Value)].flatMap((id) => {
        const node = stack?.region.nodeOf(id);
        return node ? [`${stack?.prefix}${node}`] : [];
      });
    });
}

/**
 * CloudFront reaches each secondary region's load balancer through a VPC origin that reads its ARN
 * (and the copy of the media through an S3 origin). The regional routing function sends an API
 * behavior's reads to the region nearest the viewer, with the next nearest as failover (its code
 * names the origins it picks from), and keeps a `/_region/<region>/*` behavior on its own origin.
 */
function cdnToSecondaries(primary: Region, edges: TierEdge[], outputTargets: OutputTargets): void {
  const functionCode = new Map(
    primary
      .byType('AWS::CloudFront::Function')
      .map(([id, r]) => [id, String(r.Properties?.FunctionCode ?? '')]),
  );
  for (const cdn of primary.boxesOf('cdn')) {
    const config = (primary.props(cdn.id).DistributionConfig ?? {}) as Props;
    const behaviors = [config.DefaultCacheBehavior, ...list(config.CacheBehaviors)].map(
      (b) => (b ?? {}) as Props,
    );
    const via = originPaths(config, behaviors);
    for (const origin of list(config.Origins).map((o) => o as Props)) {
      const [vpcOrigin] = refs(origin.VpcOriginConfig);
      const routes = (b: Props) =>
        [...refs(b.FunctionAssociations)].some((fn) =>
          functionCode.get(fn)?.includes(JSON.stringify(origin.Id)),
        );
      const routed = behaviors
        .filter((b) => b.TargetOriginId !== origin.Id && !String(b.PathPattern).startsWith('/_region/'))
        .filter(routes)
        .map((b) => `${b.PathPattern} reads, failover`);
      const label = [...routed, ...via(String(origin.Id))].join('\n');
      const endpoint = vpcOrigin ? primary.props(vpcOrigin).VpcOriginEndpointConfig : origin.DomainName;
      for (const target of outputTargets(endpoint))
        connect(edges, cdn.id, target, { style: 'request', label });
    }
  }
}

/** The primary database -> each cross-region replica, which names it by the primary's output. */
function crossRegionReplicas(secondaries: Placed[], edges: TierEdge[], outputTargets: OutputTargets): void {
  for (const { region, template, prefix } of secondaries) {
    for (const replica of region.boxesOf('replica')) {
      // The secondary keeps the primary's outputs in parameters and reads them from there.
      const named = replica.resources.map((r) => r.Properties?.SourceDBInstanceIdentifier);
      const viaParameters = [...refs(named)].map((r) => template.Resources?.[r]?.Properties?.Value);
      for (const source of outputTargets([named, ...viaParameters])) {
        connect(edges, source, `${prefix}${replica.id}`, {
          style: 'async',
          label: 'cross-region replication',
        });
      }
    }
  }
}

/** The primary's buckets -> the buckets they replicate into, named by the secondary regions' outputs. */
function mediaReplication(primary: Region, edges: TierEdge[], outputTargets: OutputTargets): void {
  for (const bucket of primary.boxesOf('bucket')) {
    const rules = (primary.props(bucket.id).ReplicationConfiguration as Props | undefined)?.Rules;
    for (const rule of list(rules).map((r) => r as Props)) {
      const prefix = (rule.Filter as Props | undefined)?.Prefix ?? rule.Prefix;
      for (const target of outputTargets((rule.Destination as Props | undefined)?.Bucket)) {
        connect(edges, bucket.id, target, {
          style: 'async',
          label: prefix ? `S3 replication of ${prefix}` : 'S3 replication',
        });
      }
    }
  }
}
