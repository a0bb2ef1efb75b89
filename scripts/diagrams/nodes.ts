// The boxes of a region: one per construct that marks its tier, labelled from its resources.
import { Tier } from '../../lib/private/tiers';
import { TierNode } from './graph';
import { list, Props } from './parse';
import { Box, Region } from './region';

type Label = Pick<TierNode, 'title' | 'details'> & Partial<Pick<TierNode, 'cluster'>>;

/** "WebBucket" -> "Web bucket". */
function humanize(id: string): string {
  const words = id.replace(/([a-z0-9])([A-Z])/g, '$1 $2').split(' ');
  return words.map((w, i) => (i === 0 ? w : w.toLowerCase())).join(' ');
}

function count(n: number, what: string): string {
  return `${n} × ${what}`;
}

/** The marked construct's own id, and that of the construct it belongs to ("Web" of "Web/Fleet"). */
const own = (box: Box) => box.path[box.path.length - 1];
const owner = (box: Box) => box.path[box.path.length - 2] ?? own(box);
const props = (box: Box, part = 0): Props => box.resources[part].Properties ?? {};

/**
 * How each tier is labelled, in the order the boxes are listed (which orders them within a cluster
 * of the picture). A box is drawn in the subnet tier of its resources unless its label says where.
 */
const LABELS: Record<Tier, (box: Box) => Label> = {
  server: (box) => ({
    title: `${humanize(owner(box))} (EC2)`,
    details: [count(1, String(props(box).InstanceType)), 'web, API and app'],
  }),
  volume: (box) => ({
    title: 'Data volume (EBS)',
    details: [
      `${props(box).Size} GiB ${props(box).VolumeType ?? ''}`.trim(),
      props(box).Encrypted ? 'encrypted' : 'unencrypted',
    ],
  }),
  // The fleet's parts: its Auto Scaling group, then its launch template.
  fleet: (box) => ({
    title: `${humanize(owner(box))} fleet (Auto Scaling)`,
    details: [
      `${props(box).MinSize}–${props(box).MaxSize} × ${(props(box, 1).LaunchTemplateData as Props).InstanceType}`,
    ],
  }),
  loadBalancer: (box) => ({
    title: `${props(box).Type === 'network' ? 'Network' : 'Application'} Load Balancer`,
    details: [props(box).Scheme === 'internal' ? 'internal' : 'internet-facing'],
  }),
  database: (box) => {
    const p = props(box);
    const storage = p.AllocatedStorage ? `${p.AllocatedStorage} GiB` : '';
    return {
      title:
        `RDS ${p.Engine === 'postgres' ? 'PostgreSQL' : String(p.Engine)} ${p.EngineVersion ?? ''}`.trim(),
      details: [
        `primary, ${p.DBInstanceClass}`,
        [p.MultiAZ ? 'Multi-AZ' : 'single AZ', storage].filter(Boolean).join(', '),
      ],
    };
  },
  // A cross-region replica (stage 10m) names the region of its primary.
  replica: (box) => {
    const { SourceRegion: sourceRegion, DBInstanceClass: instanceClass } = props(box);
    const what = sourceRegion ? 'RDS cross-region read replica' : 'RDS read replica';
    return {
      title: box.resources.length === 1 ? what : `${what}s`,
      details: [
        count(box.resources.length, String(instanceClass)),
        ...(sourceRegion ? [`of the ${sourceRegion} primary`] : []),
      ],
    };
  },
  cache: (box) => {
    const p = props(box);
    const engine = String(p.Engine ?? 'redis');
    const nodesPerShard = Number(p.NumCacheClusters ?? Number(p.ReplicasPerNodeGroup ?? 0) + 1);
    return {
      title: `ElastiCache (${engine[0].toUpperCase()}${engine.slice(1)})`,
      details: [
        count(nodesPerShard * Number(p.NumNodeGroups ?? 1), String(p.CacheNodeType)),
        p.MultiAZEnabled ? 'Multi-AZ, automatic failover' : 'single AZ',
      ],
    };
  },
  // A global table lists every replica's region, its own (the stack's) first.
  store: (box) => {
    const replicas = list(props(box).Replicas).length;
    return {
      title: 'DynamoDB store',
      details: [
        'on demand, point-in-time recovery',
        replicas > 1 ? `global table, ${replicas} regions` : 'one region',
      ],
    };
  },
  // The queue's parts: the queue, then the dead-letter queue it hands failed jobs to.
  queue: (box) => {
    const redrive = props(box).RedrivePolicy as Props | undefined;
    return {
      title: `SQS ${humanize(own(box)).toLowerCase()}`,
      details: redrive ? [`dead-letter queue after ${redrive.maxReceiveCount} receives`] : [],
    };
  },
  cdn: () => ({ title: 'CloudFront', details: ['HTTPS, edge caching'], cluster: 'edge' }),
  bucket: (box) => ({
    title: `S3 ${humanize(own(box)).toLowerCase()}`,
    details: props(box).VersioningConfiguration ? ['versioned'] : [],
  }),
  firewall: (box) => ({
    title: 'AWS WAF web ACL',
    details: [`${list(props(box).Rules).length} rules, us-east-1`],
    cluster: 'edge',
  }),
  schedule: (box) => ({
    title: 'EventBridge Scheduler',
    details: [`${humanize(own(box))}: ${props(box).ScheduleExpression}`],
  }),
};

/** Draws the viewers, then each marked box, tier by tier. */
export function addNodes(region: Region): void {
  const viewer: TierNode = {
    id: 'Viewer',
    kind: 'viewer',
    title: 'Viewers',
    details: ['browsers and apps'],
    cluster: 'outside',
    resourceTypes: [],
  };
  region.add(viewer, [viewer.id]);
  for (const [tier, label] of Object.entries(LABELS) as [Tier, (box: Box) => Label][]) {
    for (const box of region.boxesOf(tier)) {
      const node: TierNode = {
        id: box.id,
        kind: tier,
        cluster: region.clusterOf(box.resources),
        ...label(box),
        resourceTypes: box.resources.map((r) => r.Type),
      };
      region.add(node, box.logicalIds);
    }
  }
}
