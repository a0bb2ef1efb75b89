// The picture of a stage as a graph: its boxes (the tiers), the edges between them and the regions
// they run in. `tierGraph` (stage.ts) reads it; `toDot` (render.ts) draws it.
import { Tier } from '../../lib/private/tiers';
import { UserStage } from '../../lib';

/** What a box in the picture stands for: a tier the constructs mark, or the viewers. */
export type TierKind = Tier | 'viewer';

/** Where a box is drawn: at the edge, in one of the VPC's subnet tiers, or among the regional services. */
export type TierCluster = 'outside' | 'edge' | 'public' | 'app' | 'data' | 'regional';

export interface TierNode {
  readonly id: string;
  readonly kind: TierKind;
  readonly title: string;
  readonly details: readonly string[];
  readonly cluster: TierCluster;
  /** At stage 10m, the region the box runs in; none at the edge, outside, or in a single region. */
  readonly region?: string;
  /** The CloudFormation types the box was drawn from (none for the viewer). */
  readonly resourceTypes: readonly string[];
}

export interface TierEdge {
  readonly from: string;
  readonly to: string;
  readonly label?: string;
  /** `request`: traffic a viewer's request causes; `async`: jobs and replication; `grant`: the firewall. */
  readonly style: 'request' | 'async' | 'grant';
}

/** One region of a stage in several regions (stage 10m), the primary first. */
export interface TierRegion {
  readonly name: string;
  readonly role: 'primary' | 'secondary';
  /** The region's subnet tier labels, by cluster. */
  readonly subnetLabels: Partial<Record<TierCluster, string>>;
}

export interface TierGraph {
  readonly stage: UserStage;
  readonly nodes: readonly TierNode[];
  readonly edges: readonly TierEdge[];
  /** Subnet tier labels read from the subnets' tags, by cluster (of the primary region). */
  readonly subnetLabels: Partial<Record<TierCluster, string>>;
  /** Stage 10m: its regions, each drawn as a cluster of its own; none in a single region. */
  readonly regions?: readonly TierRegion[];
}

/** Adds an edge unless it loops or is drawn already; an end that is not drawn drops it. */
export function connect(
  edges: TierEdge[],
  from: string | undefined,
  to: string | undefined,
  edge: Omit<TierEdge, 'from' | 'to'>,
): void {
  if (!from || !to || from === to || edges.some((e) => e.from === from && e.to === to)) return;
  edges.push({ from, to, ...edge });
}
