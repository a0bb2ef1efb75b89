// One region's stack as the diagram reads it: the boxes its constructs mark, with their template
// resources; the subnet tiers; and the boxes and edges drawn so far.
import { Tier } from '../../lib/private/tiers';
import { connect, TierCluster, TierEdge, TierNode } from './graph';
import { CfnResource, list, Props, refs, StackTiers } from './parse';

/** A marked box with the logical IDs and template resources of its parts; the first names it. */
export interface Box {
  readonly id: string;
  readonly logicalIds: readonly string[];
  readonly tier: Tier;
  readonly path: readonly string[];
  readonly resources: readonly CfnResource[];
}

/** A subnet group's cluster by its name, as `StageNetwork` names them... */
const SUBNET_GROUPS: Record<string, TierCluster> = { public: 'public', app: 'app', data: 'data' };
/** ...or else by its type: before stage 1k the app subnets are isolated too, so the name comes first. */
const SUBNET_TYPES: Record<string, TierCluster> = { public: 'public', private: 'app' };

export class Region {
  public readonly resources: Record<string, CfnResource>;
  private readonly boxes: readonly Box[];
  public readonly nodes = new Map<string, TierNode>();
  public readonly edges: TierEdge[] = [];
  /** The subnet tiers' labels, by cluster, from the tags the CDK puts on every subnet. */
  public readonly subnetLabels: Partial<Record<TierCluster, string>> = {};
  private readonly subnetTiers = new Map<string, TierCluster>();
  /** The box each drawn logical ID is in. */
  private readonly drawnIn = new Map<string, string>();

  /** Reads a region's stack and, in the primary region, the edge stack's boxes (the firewall). */
  constructor(stack: StackTiers, edge?: StackTiers) {
    this.resources = stack.template.Resources ?? {};
    this.boxes = [stack, ...(edge ? [edge] : [])].flatMap(({ template, boxes }) =>
      boxes.map((box) => ({
        id: box.logicalIds[0],
        logicalIds: box.logicalIds,
        tier: box.tier,
        path: box.path,
        resources: box.logicalIds.map((id) => template.Resources![id]),
      })),
    );
    this.readSubnets();
  }

  /** Draws a box, with the resources of `logicalIds` in it. */
  public add(node: TierNode, logicalIds: readonly string[]): void {
    this.nodes.set(node.id, node);
    for (const id of logicalIds) this.drawnIn.set(id, node.id);
  }

  /** The box a logical ID is drawn in, if any. */
  public nodeOf(logicalId: string): string | undefined {
    return this.drawnIn.get(logicalId);
  }

  public connect(
    from: string | undefined,
    to: string | undefined,
    edge: Omit<TierEdge, 'from' | 'to'>,
  ): void {
    connect(this.edges, from, to, edge);
  }

  public boxesOf(tier: Tier): Box[] {
    return this.boxes.filter((box) => box.tier === tier);
  }

  /** The resources of a type, by logical ID. */
  public byType(type: string): [string, CfnResource][] {
    return Object.entries(this.resources)
      .filter(([, r]) => r.Type === type)
      .sort(([a], [b]) => a.localeCompare(b));
  }

  public props(logicalId: string): Props {
    return this.resources[logicalId]?.Properties ?? {};
  }

  /**
   * The subnet tier resources run in: that of their subnets, of their subnet group's or of the
   * instance they are attached to; none puts them among the regional services.
   */
  public clusterOf(resources: readonly CfnResource[]): TierCluster {
    const subnets = resources.flatMap(({ Properties: p = {} }) => [
      p.SubnetId,
      p.VPCZoneIdentifier,
      p.Subnets,
      ...[...refs([p.DBSubnetGroupName, p.CacheSubnetGroupName])].map((group) => this.props(group).SubnetIds),
      ...[...refs(p.InstanceId)].map((instance) => this.props(instance).SubnetId),
    ]);
    const tiers = [...refs(subnets)].map((s) => this.subnetTiers.get(s));
    return tiers.find((t) => t !== undefined) ?? 'regional';
  }

  /** Each subnet's tier, and each tier's label: its groups' names, their type and their zones. */
  private readSubnets(): void {
    // The zones of each subnet group (a name, or an ID for subnets placed by zone ID), and the groups of each tier.
    const zones = new Map<string, Set<string>>();
    const groups = new Map<TierCluster, Set<string>>();
    for (const [id, subnet] of this.byType('AWS::EC2::Subnet')) {
      const p = subnet.Properties ?? {};
      const tags = new Map(
        list(p.Tags).map((t) => [(t as Props).Key as string, (t as Props).Value as string]),
      );
      const name = tags.get('aws-cdk:subnet-name') ?? 'Other';
      const type = (tags.get('aws-cdk:subnet-type') ?? '').toLowerCase();
      const cluster = SUBNET_GROUPS[name.toLowerCase()] ?? SUBNET_TYPES[type] ?? 'data';
      this.subnetTiers.set(id, cluster);
      zones.set(
        name,
        new Set([...(zones.get(name) ?? []), JSON.stringify(p.AvailabilityZone ?? p.AvailabilityZoneId)]),
      );
      groups.set(cluster, new Set([...(groups.get(cluster) ?? []), name]));
      const names = [...groups.get(cluster)!];
      const zoneCount = Math.max(...names.map((n) => zones.get(n)!.size));
      this.subnetLabels[cluster] = `${names.join(' and ')} subnets (${type}, ${zoneCount} AZs)`;
    }
  }
}
