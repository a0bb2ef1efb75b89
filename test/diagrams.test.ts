import * as fs from 'fs';
import * as path from 'path';
import { UserStage } from '../lib';
import { BUILT_STAGES } from '../lib/stages/stage-table';
import { TierGraph, TierKind, TierNode } from '../scripts/diagrams/graph';
import { synthStageTemplates } from '../scripts/diagrams/parse';
import { diagramFile, renderSvgs, toDot } from '../scripts/diagrams/render';
import { tierGraph } from '../scripts/diagrams/stage';

// Each stage is synthesized once; the graphs, their DOT text and the fresh renders are shared.
const graphs = new Map<UserStage, TierGraph>();
const dots: Record<string, string> = {};
let svgs: Record<string, string> = {};
beforeAll(() => {
  for (const stage of BUILT_STAGES) {
    const graph = tierGraph(stage, synthStageTemplates(stage));
    graphs.set(stage, graph);
    dots[stage] = toDot(graph);
  }
  svgs = renderSvgs(dots);
}, 60_000);

const kinds = (stage: UserStage) => graphs.get(stage)!.nodes.map((n) => n.kind);
const kindCount = (stage: UserStage, kind: TierKind) => kinds(stage).filter((k) => k === kind).length;
const node = (stage: UserStage, kind: TierKind) => graphs.get(stage)!.nodes.find((n) => n.kind === kind);
const hasEdge = (stage: UserStage, from: TierKind, to: TierKind) => {
  const graph = graphs.get(stage)!;
  const kindOf = (id: string) => graph.nodes.find((n) => n.id === id)?.kind;
  return graph.edges.some((e) => kindOf(e.from) === from && kindOf(e.to) === to);
};

/** The boxes each stage should show, and those it must not. */
const EXPECTED: Record<string, { has: TierKind[]; lacks: TierKind[]; buckets: number; fleets: number }> = {
  [UserStage.USERS_1]: {
    has: ['viewer', 'cdn', 'server', 'volume'],
    lacks: ['loadBalancer', 'fleet', 'database', 'firewall', 'bucket', 'cache', 'queue'],
    buckets: 0,
    fleets: 0,
  },
  [UserStage.USERS_10]: {
    has: ['cdn', 'server', 'database'],
    lacks: ['loadBalancer', 'fleet', 'firewall', 'bucket', 'replica', 'cache'],
    buckets: 0,
    fleets: 0,
  },
  [UserStage.USERS_100]: {
    has: ['cdn', 'server', 'database', 'bucket'],
    lacks: ['loadBalancer', 'fleet', 'firewall', 'cache'],
    buckets: 1,
    fleets: 0,
  },
  [UserStage.USERS_1K]: {
    has: ['cdn', 'firewall', 'loadBalancer', 'fleet', 'database', 'bucket'],
    lacks: ['server', 'volume', 'replica', 'cache', 'queue'],
    buckets: 1,
    fleets: 1,
  },
  [UserStage.USERS_10K]: {
    has: ['cdn', 'firewall', 'loadBalancer', 'fleet', 'database', 'bucket'],
    lacks: ['server', 'replica', 'cache', 'queue'],
    buckets: 2,
    fleets: 1,
  },
  [UserStage.USERS_100K]: {
    has: ['cdn', 'firewall', 'loadBalancer', 'fleet', 'database', 'replica', 'cache'],
    lacks: ['server', 'queue', 'schedule'],
    buckets: 2,
    fleets: 1,
  },
  [UserStage.USERS_1M]: {
    has: ['cdn', 'firewall', 'loadBalancer', 'fleet', 'database', 'replica', 'cache', 'queue', 'schedule'],
    lacks: ['server', 'volume'],
    buckets: 2,
    fleets: 2,
  },
  // The 1m blueprint in us-east-1, and in us-west-2 a web fleet, workers and a copy of the media bucket
  // around a cross-region replica: a 'replica', so the writable database stays the only 'database'.
  [UserStage.USERS_10M]: {
    has: ['cdn', 'firewall', 'loadBalancer', 'fleet', 'database', 'replica', 'cache', 'queue', 'schedule'],
    lacks: ['server', 'volume'],
    buckets: 3,
    fleets: 4,
  },
};

test('every built stage has expectations and a diagram', () => {
  expect(Object.keys(EXPECTED)).toEqual([...BUILT_STAGES]);
  expect(Object.keys(svgs)).toEqual([...BUILT_STAGES]);
});

describe.each(BUILT_STAGES.map((stage) => [stage]))('stage %s', (stage) => {
  test('has the tiers of its stage, and no others', () => {
    const expected = EXPECTED[stage];
    expect(kinds(stage)).toEqual(expect.arrayContaining(expected.has));
    for (const kind of expected.lacks) expect(kinds(stage)).not.toContain(kind);
    expect(kindCount(stage, 'bucket')).toBe(expected.buckets);
    expect(kindCount(stage, 'fleet')).toBe(expected.fleets);
    expect(kindCount(stage, 'cdn')).toBe(1);
    expect(kindCount(stage, 'database')).toBe(stage === UserStage.USERS_1 ? 0 : 1);
  });

  test('draws viewers through CloudFront to the app tier, and the app tier to its data', () => {
    expect(hasEdge(stage, 'viewer', 'cdn')).toBe(true);
    if (kinds(stage).includes('loadBalancer')) {
      expect(hasEdge(stage, 'cdn', 'loadBalancer')).toBe(true);
      expect(hasEdge(stage, 'loadBalancer', 'fleet')).toBe(true);
      expect(hasEdge(stage, 'fleet', 'database')).toBe(true);
    } else {
      expect(hasEdge(stage, 'cdn', 'server')).toBe(true);
    }
    if (kinds(stage).includes('bucket')) expect(hasEdge(stage, 'cdn', 'bucket')).toBe(true);
    if (kinds(stage).includes('firewall')) expect(hasEdge(stage, 'firewall', 'cdn')).toBe(true);
    if (kinds(stage).includes('cache')) expect(hasEdge(stage, 'fleet', 'cache')).toBe(true);
    if (kinds(stage).includes('replica')) {
      expect(hasEdge(stage, 'database', 'replica')).toBe(true);
      expect(hasEdge(stage, 'fleet', 'replica')).toBe(true);
    }
  });

  test('places each tier in its subnets', () => {
    expect(node(stage, 'database')?.cluster ?? 'data').toBe('data');
    expect(node(stage, 'cache')?.cluster ?? 'data').toBe('data');
    expect(node(stage, 'fleet')?.cluster ?? 'app').toBe('app');
    expect(node(stage, 'loadBalancer')?.cluster ?? 'app').toBe('app');
    expect(node(stage, 'server')?.cluster ?? 'public').toBe('public');
    expect(node(stage, 'cdn')?.cluster).toBe('edge');
  });

  test('leaves out IAM, policies, logs, custom resources, security groups and routes', () => {
    const types = graphs.get(stage)!.nodes.flatMap((n) => n.resourceTypes);
    for (const type of types) {
      expect(type).not.toMatch(/^AWS::(IAM|Logs|Lambda)::|^Custom::|SecurityGroup|Route|Policy/);
    }
    expect(dots[stage]).not.toMatch(/IAM|Polic|Role|Log ?Group|Security ?Group|Custom/i);
  });

  test('the committed picture is up to date', () => {
    const file = diagramFile(stage);
    const stale = `${path.relative(process.cwd(), file)} does not match the stage's templates: run \`npm run diagrams\` and commit the result`;
    const committed = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    if (committed !== svgs[stage]) throw new Error(stale);
  });
});

test('the 1m workers take jobs from the queue that uploads and the schedule feed', () => {
  const stage = UserStage.USERS_1M;
  expect(hasEdge(stage, 'queue', 'fleet')).toBe(true);
  expect(hasEdge(stage, 'schedule', 'queue')).toBe(true);
  expect(hasEdge(stage, 'bucket', 'queue')).toBe(true);
  expect(hasEdge(stage, 'viewer', 'bucket')).toBe(true);
  const workers = graphs.get(stage)!.nodes.find((n) => n.title.startsWith('Workers'));
  expect(workers?.details).toContain('0–20 × m7g.medium');
});

describe('stage 10m', () => {
  const stage = UserStage.USERS_10M;
  const graph = () => graphs.get(stage)!;
  const inRegion = (region: string | undefined) => graph().nodes.filter((n) => n.region === region);
  const edge = (from: TierNode | undefined, to: TierNode | undefined) =>
    graph().edges.find((e) => e.from === from?.id && e.to === to?.id);
  const find = (region: string, kind: TierKind, title = '') =>
    inRegion(region).find((n) => n.kind === kind && n.title.startsWith(title));

  test('draws the primary region and each secondary region as a cluster of its own', () => {
    expect(graph().regions?.map((r) => [r.name, r.role])).toEqual([
      ['us-east-1', 'primary'],
      ['us-west-2', 'secondary'],
    ]);
    expect(dots[stage]).toContain('label="us-east-1 (primary region)"');
    expect(dots[stage]).toContain('label="us-west-2 (secondary region)"');
    // Only the viewers and the edge are outside the regions.
    expect(inRegion(undefined).map((n) => n.kind)).toEqual(['viewer', 'cdn', 'firewall']);
  });

  test('the secondary region has its own load balancer, fleets, replica, cache, queue and media bucket', () => {
    const secondary = inRegion('us-west-2');
    expect(secondary.map((n) => n.kind).sort()).toEqual(
      ['bucket', 'cache', 'fleet', 'fleet', 'loadBalancer', 'queue', 'replica'].sort(),
    );
    expect(secondary.every((n) => n.id.startsWith('us-west-2/'))).toBe(true);
    expect(find('us-west-2', 'replica')?.title).toBe('RDS cross-region read replica');
    expect(find('us-west-2', 'replica')?.details).toEqual(['1 × db.m7g.xlarge', 'of the us-east-1 primary']);
    expect(find('us-west-2', 'replica')?.cluster).toBe('data');
    expect(find('us-west-2', 'cache')?.cluster).toBe('data');
    expect(find('us-west-2', 'fleet', 'Web')?.cluster).toBe('app');
    expect(find('us-west-2', 'bucket')?.title).toBe('S3 media bucket');
    // The primary region is stage 1m's: one writable database, its replicas, the schedule.
    expect(inRegion('us-east-1').filter((n) => n.kind === 'database')).toHaveLength(1);
    expect(find('us-east-1', 'schedule')).toBeDefined();
  });

  test('CloudFront reaches the secondary region, and the primary replicates its database and media there', () => {
    const cdn = node(stage, 'cdn');
    const lb = find('us-west-2', 'loadBalancer');
    expect(edge(cdn, lb)?.label).toBe('/api/* reads, failover\n/_region/us-west-2/*');
    expect(edge(cdn, find('us-east-1', 'loadBalancer'))).toBeDefined();
    // Media reads fail over to the secondary's copy (an origin group on /media/*).
    expect(edge(cdn, find('us-east-1', 'bucket', 'S3 media'))?.label).toBe('/media/*');
    expect(edge(cdn, find('us-west-2', 'bucket'))?.label).toBe('/media/* failover');
    expect(edge(find('us-east-1', 'database'), find('us-west-2', 'replica'))).toMatchObject({
      style: 'async',
      label: 'cross-region replication',
    });
    expect(edge(find('us-east-1', 'bucket', 'S3 media'), find('us-west-2', 'bucket'))).toMatchObject({
      style: 'async',
      label: 'S3 replication of media/',
    });
  });

  test("the secondary region's fleets use its replica and cache, and its workers take jobs from its queue", () => {
    const web = find('us-west-2', 'fleet', 'Web');
    const workers = find('us-west-2', 'fleet', 'Workers');
    const queue = find('us-west-2', 'queue');
    expect(edge(find('us-west-2', 'loadBalancer'), web)).toBeDefined();
    expect(edge(web, find('us-west-2', 'replica'))).toBeDefined();
    expect(edge(workers, find('us-west-2', 'replica'))).toBeDefined();
    expect(edge(web, find('us-west-2', 'cache'))).toBeDefined();
    expect(edge(web, queue)?.label).toBe('enqueue');
    expect(edge(queue, workers)?.label).toBe('jobs');
    expect(edge(find('us-west-2', 'bucket'), queue)?.label).toBe('new object in uploads/');
    // No edge crosses between the regions but the distribution's and the replication.
    const regionOf = new Map(graph().nodes.map((n) => [n.id, n.region]));
    const crossing = graph().edges.filter(
      (e) => regionOf.get(e.from) && regionOf.get(e.to) && regionOf.get(e.from) !== regionOf.get(e.to),
    );
    expect(crossing.map((e) => e.label)).toEqual(['cross-region replication', 'S3 replication of media/']);
  });
});

test('labels the sizes the stage table gives', () => {
  expect(node(UserStage.USERS_1, 'server')?.details).toContain('1 × t4g.micro');
  expect(node(UserStage.USERS_100K, 'fleet')?.details).toContain('2–20 × m7g.large');
  expect(node(UserStage.USERS_1M, 'replica')?.details).toContain('2 × db.m7g.xlarge');
  expect(node(UserStage.USERS_1M, 'cache')?.details[0]).toBe('3 × cache.m7g.large');
});

test('rendering is deterministic', () => {
  const again = renderSvgs({ [UserStage.USERS_1M]: dots[UserStage.USERS_1M] });
  expect(again[UserStage.USERS_1M]).toBe(svgs[UserStage.USERS_1M]);
});
