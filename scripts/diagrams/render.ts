// Draws a stage's graph as Graphviz DOT and renders it to SVG. Graphviz runs as WebAssembly
// (@hpcc-js/wasm-graphviz, pinned in package-lock.json), so every machine renders the same bytes
// without a native Graphviz or its fonts.
import { execFileSync } from 'child_process';
import * as path from 'path';
import { STAGES } from '../../lib/stages/stage-table';
import { TierCluster, TierEdge, TierGraph, TierKind, TierNode, TierRegion } from './graph';
import { ROOT } from './parse';

export const DIAGRAM_DIR = path.join(ROOT, 'docs', 'diagrams');

export function diagramFile(stage: string): string {
  return path.join(DIAGRAM_DIR, `stage-${stage}.svg`);
}

const STYLE: Record<TierKind, { fill: string; line: string; shape?: string }> = {
  viewer: { fill: '#ffffff', line: '#555555', shape: 'oval' },
  cdn: { fill: '#efe3fb', line: '#8c4fff' },
  firewall: { fill: '#fde2e2', line: '#dd344c' },
  bucket: { fill: '#e4f5dc', line: '#3f8624' },
  server: { fill: '#fdebd3', line: '#ed7100' },
  volume: { fill: '#e3ecfb', line: '#2e73b8', shape: 'cylinder' },
  loadBalancer: { fill: '#efe3fb', line: '#8c4fff' },
  fleet: { fill: '#fdebd3', line: '#ed7100' },
  database: { fill: '#e3ecfb', line: '#2e73b8', shape: 'cylinder' },
  replica: { fill: '#e3ecfb', line: '#2e73b8', shape: 'cylinder' },
  cache: { fill: '#fde2e2', line: '#c7131f', shape: 'cylinder' },
  store: { fill: '#e3ecfb', line: '#2e73b8', shape: 'cylinder' },
  queue: { fill: '#fbe3ef', line: '#e7157b' },
  schedule: { fill: '#fbe3ef', line: '#e7157b' },
};

type DrawnCluster = Exclude<TierCluster, 'outside'>;

const CLUSTER_STYLE: Record<DrawnCluster, { label: string; fill: string; line: string }> = {
  edge: { label: 'Edge (global)', fill: '#faf7fd', line: '#8c4fff' },
  public: { label: 'Public subnets', fill: '#f2f9ee', line: '#7aa116' },
  app: { label: 'App subnets', fill: '#eef5fc', line: '#147eba' },
  data: { label: 'Data subnets', fill: '#f1f3f5', line: '#546e7a' },
  regional: { label: 'Regional services', fill: '#fcfbf5', line: '#a89f68' },
};

/** The region clusters of stage 10m. */
const REGION_STYLE: Record<TierRegion['role'], { fill: string; line: string; penwidth: number }> = {
  primary: { fill: '#ffffff', line: '#232f3e', penwidth: 2 },
  secondary: { fill: '#ffffff', line: '#232f3e', penwidth: 1 },
};

/** The subnet tiers drawn inside the VPC, in this order. */
const VPC_CLUSTERS: DrawnCluster[] = ['public', 'app', 'data'];

/**
 * The kinds of box a job or a replication orders from left to right: the workers it feeds, and (at
 * stage 10m) a secondary region's copy of a bucket, below its source. Other async edges do not.
 */
const ASYNC_RANKS = new Set<TierKind>(['fleet', 'server', 'bucket']);

function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
function quote(text: string): string {
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

/** The DOT text of a stage's graph, written line by line. */
class Dot {
  public readonly lines: string[] = [];

  constructor(private readonly graph: TierGraph) {}

  public node(node: TierNode, indent: string): void {
    const style = STYLE[node.kind];
    const label = [`<b>${escapeHtml(node.title)}</b>`, ...node.details.map(escapeHtml)].join('<br/>');
    const shape = style.shape ? `, shape=${style.shape}, style=filled` : '';
    this.lines.push(
      `${indent}${quote(node.id)} [label=<${label}>, fillcolor=${quote(style.fill)}, color=${quote(style.line)}${shape}];`,
    );
  }

  /** The boxes of a cluster; in a single region none has a region, at stage 10m those of `region`. */
  public members(cluster: TierCluster, region?: TierRegion): TierNode[] {
    return this.graph.nodes.filter((n) => n.cluster === cluster && n.region === region?.name);
  }

  /** A cluster of boxes. The primary region's clusters keep the names they have in a single region. */
  public cluster(id: DrawnCluster, indent: string, region?: TierRegion): void {
    const members = this.members(id, region);
    if (members.length === 0) return;
    const style = CLUSTER_STYLE[id];
    const label = (region ?? this.graph).subnetLabels[id] ?? style.label;
    this.lines.push(
      `${indent}subgraph ${quote(`cluster_${id}${suffix(region)}`)} {`,
      `${indent}  label=${quote(label)}; labeljust=l; fontsize=11; style="rounded,filled"; fillcolor=${quote(style.fill)}; color=${quote(style.line)};`,
    );
    members.forEach((n) => this.node(n, `${indent}  `));
    this.lines.push(`${indent}}`);
  }

  /** The VPC with its subnet tiers, then the regional services. */
  public vpcAndServices(indent: string, region?: TierRegion): void {
    if (VPC_CLUSTERS.some((c) => this.members(c, region).length > 0)) {
      this.lines.push(
        `${indent}subgraph ${quote(`cluster_vpc${suffix(region)}`)} {`,
        `${indent}  label="VPC"; labeljust=l; fontsize=12; style="rounded"; color="#248814";`,
      );
      VPC_CLUSTERS.forEach((c) => this.cluster(c, `${indent}  `, region));
      this.lines.push(`${indent}}`);
    }
    this.cluster('regional', indent, region);
  }

  /** A region of stage 10m, drawn around its VPC and services. */
  public region(region: TierRegion): void {
    const style = REGION_STYLE[region.role];
    this.lines.push(
      `  subgraph ${quote(`cluster_region_${region.name}`)} {`,
      `    label=${quote(`${region.name} (${region.role} region)`)}; labeljust=l; fontsize=14; style="rounded,filled"; fillcolor=${quote(style.fill)}; color=${quote(style.line)}; penwidth=${style.penwidth};`,
    );
    this.vpcAndServices('    ', region);
    this.lines.push('  }');
  }

  /** The servers and fleets of a region side by side. */
  public rankCompute(region?: TierRegion): void {
    const compute = this.graph.nodes.filter(
      (n) => (n.kind === 'server' || n.kind === 'fleet') && n.region === region?.name,
    );
    if (compute.length > 1)
      this.lines.push(`  { rank=same; ${compute.map((n) => quote(n.id)).join('; ')}; }`);
  }

  public edge(edge: TierEdge): void {
    const attrs: string[] = [];
    if (edge.label) attrs.push(`label=${quote(edge.label)}`);
    if (edge.style === 'async') attrs.push('style=dashed');
    const target = this.graph.nodes.find((n) => n.id === edge.to)?.kind;
    if (edge.style === 'async' && !(target && ASYNC_RANKS.has(target))) attrs.push('constraint=false');
    if (edge.style === 'grant') attrs.push('style=dotted', 'arrowhead=none', 'color="#dd344c"');
    this.lines.push(
      `  ${quote(edge.from)} -> ${quote(edge.to)}${attrs.length ? ` [${attrs.join(', ')}]` : ''};`,
    );
  }
}

/** The primary region's clusters keep their single-region names; a secondary's are suffixed. */
function suffix(region?: TierRegion): string {
  return region?.role === 'secondary' ? `_${region.name}` : '';
}

/** The Graphviz DOT text of a stage's tiers. */
export function toDot(graph: TierGraph): string {
  const users = STAGES.find((s) => s.stage === graph.stage)?.users ?? 0;
  const title = `Stage ${graph.stage}: ${users.toLocaleString('en-US')} ${users === 1 ? 'user' : 'users'}`;
  const dot = new Dot(graph);
  dot.lines.push(
    `digraph "stage-${graph.stage}" {`,
    `  graph [label=${quote(title)}, labelloc=t, fontsize=18, fontname="Helvetica,Arial,sans-serif", rankdir=LR, nodesep=0.35, ranksep=0.6, newrank=true, compound=true, pad=0.2];`,
    '  node [fontname="Helvetica,Arial,sans-serif", fontsize=11, style="rounded,filled", shape=box, margin="0.25,0.08"];',
    '  edge [fontname="Helvetica,Arial,sans-serif", fontsize=9, color="#555555", fontcolor="#333333"];',
  );
  dot.members('outside').forEach((n) => dot.node(n, '  '));
  dot.cluster('edge', '  ');
  if (!graph.regions) {
    dot.vpcAndServices('  ');
    dot.rankCompute();
  } else {
    graph.regions.forEach((region) => dot.region(region));
    graph.regions.forEach((region) => dot.rankCompute(region));
  }
  graph.edges.forEach((edge) => dot.edge(edge));
  dot.lines.push('}');
  return `${dot.lines.join('\n')}\n`;
}

// Graphviz in WebAssembly is an ES module; a child process loads it so that jest (CommonJS) can too.
const RENDER = `
import { Graphviz } from '@hpcc-js/wasm-graphviz';
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const graphviz = await Graphviz.load();
const dots = JSON.parse(Buffer.concat(chunks).toString('utf8'));
process.stdout.write(JSON.stringify(Object.fromEntries(Object.entries(dots).map(([k, dot]) => [k, graphviz.dot(dot)]))));
`;

/** Renders DOT texts to SVG, by key. */
export function renderSvgs(dots: Record<string, string>): Record<string, string> {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', RENDER], {
    cwd: ROOT,
    input: JSON.stringify(dots),
    maxBuffer: 64 * 1024 * 1024,
  });
  return JSON.parse(out.toString('utf8'));
}
