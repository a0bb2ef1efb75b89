// Draws each built stage's architecture from its synthesized templates: `npm run diagrams` writes
// docs/diagrams/stage-<id>.svg. Only the tiers are drawn (edge, app servers, data, queue); IAM,
// policies, log groups, custom resources, security groups and routes are left out, but security
// group rules and IAM grants decide which tier talks to which. At stage 10m each secondary region's
// stack is drawn as a region of its own beside the primary's. Graphviz runs as WebAssembly
// (@hpcc-js/wasm-graphviz, pinned in package-lock.json), so every machine renders the same bytes
// without a native Graphviz or its fonts.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App } from 'aws-cdk-lib/core';
import { StageStacks, TestedFeatureFlags, UserStage } from '../lib';
import { BUILT_STAGES, STAGES } from '../lib/stages/stage-table';

const ROOT = path.join(__dirname, '..');
export const DIAGRAM_DIR = path.join(ROOT, 'docs', 'diagrams');

/** A CloudFormation template, as far as the diagram reads it. */
export interface CfnTemplate {
  readonly Resources?: Record<string, CfnResource>;
  /** Read where another stack's resources refer to this one's with `Fn::GetStackOutput`. */
  readonly Outputs?: Record<string, { readonly Value?: unknown }>;
}
interface CfnResource {
  readonly Type: string;
  readonly Properties?: Props;
  readonly Metadata?: Record<string, unknown>;
}
type Props = Record<string, unknown>;

/**
 * The templates of one stage: the primary stack's and, from stage 1k, the edge stack's; at stage
 * 10m also each secondary region's stack.
 */
export interface StageTemplates {
  readonly primary: CfnTemplate;
  readonly edge?: CfnTemplate;
  /** Stage 10m: the primary stack's region (the stack itself is environment-agnostic). */
  readonly primaryRegion?: string;
  /** Stage 10m: each secondary region's template, by region, in the order of the regions. */
  readonly secondaries?: Readonly<Record<string, CfnTemplate>>;
}

/** What a box in the picture stands for. */
export type TierKind =
  | 'viewer'
  | 'cdn'
  | 'firewall'
  | 'bucket'
  | 'server'
  | 'volume'
  | 'loadBalancer'
  | 'fleet'
  | 'database'
  | 'replica'
  | 'cache'
  | 'queue'
  | 'schedule';

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

/** Synthesizes one stage as `cdk synth -c stage=<id>` does (cdk.json's context over the tested flags). */
export function synthStageTemplates(stage: UserStage): StageTemplates {
  const cdkJson = JSON.parse(fs.readFileSync(path.join(ROOT, 'cdk.json'), 'utf8'));
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'diagrams-'));
  try {
    const app = new App({
      outdir,
      // Path metadata, as `cdk synth` writes it, names the boxes ("Web fleet", "Media bucket").
      context: {
        ...TestedFeatureFlags.CONTEXT,
        ...cdkJson.context,
        'aws:cdk:enable-path-metadata': true,
        '@aws-cdk/core:validationReportPrettyPrint': false,
      },
      // The bundled CloudFormation validator costs a second per stage and changes nothing drawn.
      builtinCloudFormationValidation: false,
    });
    const stacks = new StageStacks(app, 'ScaleStages', { stage });
    const assembly = app.synth();
    const templates: StageTemplates = {
      primary: assembly.getStackByName(stacks.primary.stackName).template,
      edge: stacks.edge && assembly.getStackByName(stacks.edge.stackName).template,
    };
    if (stacks.secondaries.length === 0) return templates;
    return {
      ...templates,
      primaryRegion: stacks.secondaries[0].primaryRegion,
      secondaries: Object.fromEntries(
        stacks.secondaries.map((s) => [s.region, assembly.getStackByName(s.stackName).template]),
      ),
    };
  } finally {
    fs.rmSync(outdir, { recursive: true, force: true });
  }
}

/** The logical IDs a value refers to through Ref and Fn::GetAtt. */
function refs(value: unknown, into: Set<string> = new Set()): Set<string> {
  if (Array.isArray(value)) {
    value.forEach((v) => refs(v, into));
  } else if (value && typeof value === 'object') {
    for (const [key, v] of Object.entries(value)) {
      if (key === 'Ref' && typeof v === 'string' && !v.startsWith('AWS::')) into.add(v);
      else if (key === 'Fn::GetAtt' && Array.isArray(v) && typeof v[0] === 'string') into.add(v[0]);
      else refs(v, into);
    }
  }
  return into;
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : value === undefined ? [] : [value];
}

/** "WebBucket" -> "Web bucket". */
function humanize(id: string): string {
  const words = id.replace(/([a-z0-9])([A-Z])/g, '$1 $2').split(' ');
  return words.map((w, i) => (i === 0 ? w : w.toLowerCase())).join(' ');
}

/** The construct path below the stack, without the generated leaf names. */
function constructPath(resource: CfnResource): string[] {
  const cdkPath = String(resource.Metadata?.['aws:cdk:path'] ?? '');
  return cdkPath
    .split('/')
    .slice(1)
    .filter((s) => !['Resource', 'ASG', 'Default'].includes(s));
}

function count(n: number, what: string): string {
  return `${n} × ${what}`;
}

/** The tiers of one region's stack, with the firewall of the edge stack. */
interface RegionTiers {
  readonly nodes: Map<string, TierNode>;
  readonly edges: TierEdge[];
  readonly subnetLabels: Partial<Record<TierCluster, string>>;
  /** The box a logical ID is drawn in, if any. */
  readonly nodeOf: (logicalId: string) => string | undefined;
  /** Draws a bucket of the stack, unless it is drawn already. */
  readonly addBucket: (logicalId: string) => void;
}

/** Reads the tiers of one region's stack (`templates.primary`) and of the edge stack. */
function regionTiers(templates: Pick<StageTemplates, 'primary' | 'edge'>): RegionTiers {
  const resources = templates.primary.Resources ?? {};
  const byType = (type: string) =>
    Object.entries(resources)
      .filter(([, r]) => r.Type === type)
      .sort(([a], [b]) => a.localeCompare(b));
  const props = (id: string): Props => resources[id]?.Properties ?? {};

  // Subnet tiers, named by the tags the CDK puts on every subnet.
  // The tier comes from the subnet group's name: before stage 1k the app subnets are isolated too.
  const subnetTier = new Map<string, TierCluster>();
  const subnetLabels: Partial<Record<TierCluster, string>> = {};
  // The zones of each subnet group (a name, or an ID for subnets placed by zone ID), and the groups of each tier.
  const azs = new Map<string, Set<string>>();
  const groups = new Map<TierCluster, Set<string>>();
  for (const [id, subnet] of byType('AWS::EC2::Subnet')) {
    const tags = new Map(
      list(subnet.Properties?.Tags).map((t) => [(t as Props).Key as string, (t as Props).Value as string]),
    );
    const name = tags.get('aws-cdk:subnet-name') ?? 'Other';
    const type = (tags.get('aws-cdk:subnet-type') ?? '').toLowerCase();
    const byName = name.toLowerCase();
    const cluster: TierCluster =
      byName === 'public' || byName === 'app' || byName === 'data'
        ? byName
        : type === 'public'
          ? 'public'
          : type === 'private'
            ? 'app'
            : 'data';
    subnetTier.set(id, cluster);
    const zone = subnet.Properties?.AvailabilityZone ?? subnet.Properties?.AvailabilityZoneId;
    azs.set(name, new Set([...(azs.get(name) ?? []), JSON.stringify(zone)]));
    groups.set(cluster, new Set([...(groups.get(cluster) ?? []), name]));
    const names = [...groups.get(cluster)!];
    const zones = Math.max(...names.map((n) => azs.get(n)!.size));
    subnetLabels[cluster] = `${names.join(' and ')} subnets (${type}, ${zones} AZs)`;
  }
  const tierOf = (subnets: unknown): TierCluster => {
    const tiers = [...refs(subnets)].map((s) => subnetTier.get(s)).filter((t) => t !== undefined);
    return tiers[0] ?? 'regional';
  };
  const subnetGroupTier = (groupRef: unknown): TierCluster => {
    const [group] = refs(groupRef);
    return tierOf(props(group).SubnetIds);
  };

  const nodes = new Map<string, TierNode>();
  const alias = new Map<string, string>(); // logical ID -> node id, for resources drawn inside another box
  const add = (id: string, node: Omit<TierNode, 'id' | 'resourceTypes'>, types: string[]) => {
    nodes.set(id, { id, ...node, resourceTypes: types });
    alias.set(id, id);
  };
  const nodeOf = (logicalId: string): string | undefined => alias.get(logicalId);
  const edges: TierEdge[] = [];
  const connect = (from: string | undefined, to: string | undefined, edge: Omit<TierEdge, 'from' | 'to'>) => {
    if (!from || !to || from === to) return;
    if (edges.some((e) => e.from === from && e.to === to)) return;
    edges.push({ from, to, ...edge });
  };

  add('Viewer', { kind: 'viewer', title: 'Viewers', details: ['browsers and apps'], cluster: 'outside' }, []);

  // App servers.
  for (const [id, instance] of byType('AWS::EC2::Instance')) {
    const p = instance.Properties ?? {};
    add(
      id,
      {
        kind: 'server',
        title: `${humanize(constructPath(instance)[0] ?? 'Server')} (EC2)`,
        details: [count(1, String(p.InstanceType)), 'web, API and app'],
        cluster: tierOf(p.SubnetId),
      },
      [instance.Type],
    );
  }
  for (const [, eip] of byType('AWS::EC2::EIP')) {
    const [instance] = refs(eip.Properties?.InstanceId);
    if (instance && nodes.has(instance)) {
      const eipId = Object.entries(resources).find(([, r]) => r === eip)?.[0];
      if (eipId) alias.set(eipId, instance);
    }
  }
  for (const [id, attachment] of byType('AWS::EC2::VolumeAttachment')) {
    const [instance] = refs(attachment.Properties?.InstanceId);
    const [volume] = refs(attachment.Properties?.VolumeId);
    const server = instance && nodes.get(instance);
    if (!server || !volume) continue;
    const v = props(volume);
    add(
      volume,
      {
        kind: 'volume',
        title: 'Data volume (EBS)',
        details: [`${v.Size} GiB ${v.VolumeType ?? ''}`.trim(), v.Encrypted ? 'encrypted' : 'unencrypted'],
        cluster: server.cluster,
      },
      [resources[volume].Type, resources[id].Type],
    );
    connect(instance, volume, { style: 'request', label: 'mounted' });
  }
  const launchData = (templateRef: unknown): Props => {
    const [lt] = refs(templateRef);
    return (props(lt).LaunchTemplateData as Props | undefined) ?? {};
  };
  for (const [id, asg] of byType('AWS::AutoScaling::AutoScalingGroup')) {
    const p = asg.Properties ?? {};
    const data = launchData((p.LaunchTemplate as Props | undefined)?.LaunchTemplateId);
    add(
      id,
      {
        kind: 'fleet',
        title: `${humanize(constructPath(asg)[0] ?? 'Fleet')} fleet (Auto Scaling)`,
        details: [`${p.MinSize}–${p.MaxSize} × ${data.InstanceType}`],
        cluster: tierOf(p.VPCZoneIdentifier),
      },
      [asg.Type, 'AWS::EC2::LaunchTemplate'],
    );
  }
  for (const [id, lb] of byType('AWS::ElasticLoadBalancingV2::LoadBalancer')) {
    const p = lb.Properties ?? {};
    const type = p.Type === 'network' ? 'Network' : 'Application';
    add(
      id,
      {
        kind: 'loadBalancer',
        title: `${type} Load Balancer`,
        details: [p.Scheme === 'internal' ? 'internal' : 'internet-facing'],
        cluster: tierOf(p.Subnets),
      },
      [lb.Type],
    );
  }
  // Load balancer -> the fleets registered in its listeners' target groups.
  for (const [, listener] of byType('AWS::ElasticLoadBalancingV2::Listener')) {
    const [lb] = refs(listener.Properties?.LoadBalancerArn);
    const groups = refs(listener.Properties?.DefaultActions);
    for (const [asg, r] of byType('AWS::AutoScaling::AutoScalingGroup')) {
      if ([...refs(r.Properties?.TargetGroupARNs)].some((g) => groups.has(g))) {
        const port = props([...groups][0]).Port;
        connect(lb, asg, { style: 'request', label: port ? `HTTP :${port}` : undefined });
      }
    }
  }

  // Data tier.
  const dbInstances = byType('AWS::RDS::DBInstance');
  for (const [id, db] of dbInstances) {
    const p = db.Properties ?? {};
    if (p.SourceDBInstanceIdentifier) continue;
    add(
      id,
      {
        kind: 'database',
        title:
          `RDS ${p.Engine === 'postgres' ? 'PostgreSQL' : String(p.Engine)} ${p.EngineVersion ?? ''}`.trim(),
        details: [
          `primary, ${p.DBInstanceClass}`,
          [p.MultiAZ ? 'Multi-AZ' : 'single AZ', p.AllocatedStorage ? `${p.AllocatedStorage} GiB` : '']
            .filter(Boolean)
            .join(', '),
        ],
        cluster: subnetGroupTier(p.DBSubnetGroupName),
      },
      [db.Type],
    );
  }
  // Read replicas of one primary with one instance class are one box.
  // A cross-region replica (stage 10m) has its source in another stack: `tierGraph` draws that edge.
  const replicaGroups = new Map<string, string[]>();
  for (const [id, db] of dbInstances) {
    const p = db.Properties ?? {};
    const [source] = [...refs(p.SourceDBInstanceIdentifier)].filter((r) => resources[r]?.Type === db.Type);
    const sourceRegion = source ? '' : String(p.SourceRegion ?? '');
    if (!source && !sourceRegion) continue;
    const key = `${source ?? ''}|${p.DBInstanceClass}|${sourceRegion}`;
    replicaGroups.set(key, [...(replicaGroups.get(key) ?? []), id]);
  }
  for (const [key, ids] of replicaGroups) {
    const [source, instanceClass, sourceRegion] = key.split('|');
    const first = resources[ids[0]];
    const what = sourceRegion ? 'RDS cross-region read replica' : 'RDS read replica';
    add(
      ids[0],
      {
        kind: 'replica',
        title: ids.length === 1 ? what : `${what}s`,
        details: [
          count(ids.length, instanceClass),
          ...(sourceRegion ? [`of the ${sourceRegion} primary`] : []),
        ],
        cluster: subnetGroupTier(first.Properties?.DBSubnetGroupName),
      },
      [first.Type],
    );
    ids.forEach((id) => alias.set(id, ids[0]));
    connect(source, ids[0], { style: 'async', label: 'replication' });
  }
  for (const [id, cache] of byType('AWS::ElastiCache::ReplicationGroup')) {
    const p = cache.Properties ?? {};
    const engine = String(p.Engine ?? 'redis');
    const nodesPerShard = Number(p.NumCacheClusters ?? Number(p.ReplicasPerNodeGroup ?? 0) + 1);
    add(
      id,
      {
        kind: 'cache',
        title: `ElastiCache (${engine[0].toUpperCase()}${engine.slice(1)})`,
        details: [
          count(nodesPerShard * Number(p.NumNodeGroups ?? 1), String(p.CacheNodeType)),
          p.MultiAZEnabled ? 'Multi-AZ, automatic failover' : 'single AZ',
        ],
        cluster: subnetGroupTier(p.CacheSubnetGroupName),
      },
      [cache.Type],
    );
  }

  // Queues: a dead-letter queue is drawn inside the queue it serves.
  const queues = byType('AWS::SQS::Queue');
  const deadLetter = new Map<string, { queue: string; maxReceiveCount: unknown }>();
  for (const [id, queue] of queues) {
    const redrive = queue.Properties?.RedrivePolicy as Props | undefined;
    const [dlq] = refs(redrive?.deadLetterTargetArn);
    if (dlq) deadLetter.set(dlq, { queue: id, maxReceiveCount: redrive?.maxReceiveCount });
  }
  for (const [id, queue] of queues) {
    if (deadLetter.has(id)) continue;
    const dlq = [...deadLetter.values()].find((d) => d.queue === id);
    add(
      id,
      {
        kind: 'queue',
        title: `SQS ${humanize(constructPath(queue).slice(-1)[0] ?? 'queue').toLowerCase()}`,
        details: dlq ? [`dead-letter queue after ${dlq.maxReceiveCount} receives`] : [],
        cluster: 'regional',
      },
      [queue.Type],
    );
  }
  for (const [dlq, { queue }] of deadLetter) alias.set(dlq, queue);

  // The edge: CloudFront, its firewall and its origins.
  const buckets = new Map(byType('AWS::S3::Bucket'));
  const addBucket = (id: string) => {
    const bucket = buckets.get(id);
    if (!bucket || nodes.has(id)) return;
    add(
      id,
      {
        kind: 'bucket',
        title: `S3 ${humanize(constructPath(bucket).slice(-1)[0] ?? 'bucket').toLowerCase()}`,
        details: bucket.Properties?.VersioningConfiguration ? ['versioned'] : [],
        cluster: 'regional',
      },
      [bucket.Type],
    );
  };
  for (const [id, distribution] of byType('AWS::CloudFront::Distribution')) {
    const config = (distribution.Properties?.DistributionConfig ?? {}) as Props;
    add(id, { kind: 'cdn', title: 'CloudFront', details: ['HTTPS, edge caching'], cluster: 'edge' }, [
      distribution.Type,
    ]);
    connect('Viewer', id, { style: 'request', label: 'HTTPS' });
    const behaviors = [
      { ...(config.DefaultCacheBehavior as Props), PathPattern: '/* (default)' },
      ...list(config.CacheBehaviors).map((b) => b as Props),
    ];
    const via = originPaths(config, behaviors);
    for (const origin of list(config.Origins).map((o) => o as Props)) {
      let targets = refs(origin.DomainName);
      // A VPC origin points at the load balancer.
      const vpcOrigin = [...refs(origin.VpcOriginConfig)][0];
      if (vpcOrigin) targets = refs(props(vpcOrigin).VpcOriginEndpointConfig);
      const paths = via(String(origin.Id));
      for (const target of targets) {
        addBucket(target);
        connect(id, nodeOf(target), { style: 'request', label: paths.join('\n') });
      }
    }
    const webAcl = Object.entries(templates.edge?.Resources ?? {}).find(
      ([, r]) => r.Type === 'AWS::WAFv2::WebACL' && r.Properties?.Scope === 'CLOUDFRONT',
    );
    if (webAcl && config.WebACLId) {
      const [aclId, acl] = webAcl;
      add(
        aclId,
        {
          kind: 'firewall',
          title: 'AWS WAF web ACL',
          details: [`${list(acl.Properties?.Rules).length} rules, us-east-1`],
          cluster: 'edge',
        },
        [acl.Type],
      );
      connect(aclId, id, { style: 'grant', label: 'filters requests' });
    }
  }

  // Browsers upload straight into a bucket whose CORS rules allow POST or PUT.
  for (const [id, bucket] of buckets) {
    const cors = (bucket.Properties?.CorsConfiguration as Props | undefined)?.CorsRules;
    const methods = list(cors).flatMap((rule) => list((rule as Props).AllowedMethods));
    if (nodes.has(id) && methods.some((m) => m === 'POST' || m === 'PUT')) {
      connect('Viewer', id, { style: 'request', label: 'direct upload' });
    }
  }
  // Bucket notifications -> queue.
  const notifications = [
    ...byType('Custom::S3BucketNotifications').map(([, r]) => ({
      bucket: [...refs(r.Properties?.BucketName)][0],
      config: r.Properties?.NotificationConfiguration as Props | undefined,
    })),
    ...[...buckets].map(([id, r]) => ({
      bucket: id,
      config: r.Properties?.NotificationConfiguration as Props,
    })),
  ];
  for (const { bucket, config } of notifications) {
    for (const q of list(config?.QueueConfigurations).map((c) => c as Props)) {
      const prefix = list(((q.Filter as Props | undefined)?.Key as Props | undefined)?.FilterRules)
        .map((rule) => rule as Props)
        .find((rule) => String(rule.Name).toLowerCase() === 'prefix')?.Value;
      const [queue] = refs(q.QueueArn);
      addBucket(bucket);
      connect(nodeOf(bucket), nodeOf(queue), {
        style: 'async',
        label: prefix ? `new object in ${prefix}` : 'new object',
      });
    }
  }
  // Schedules -> their targets.
  for (const [id, schedule] of byType('AWS::Scheduler::Schedule')) {
    const p = schedule.Properties ?? {};
    const [target] = refs((p.Target as Props | undefined)?.Arn);
    if (!target || !nodeOf(target)) continue;
    add(
      id,
      {
        kind: 'schedule',
        title: 'EventBridge Scheduler',
        details: [`${humanize(constructPath(schedule).slice(-1)[0] ?? 'schedule')}: ${p.ScheduleExpression}`],
        cluster: 'regional',
      },
      [schedule.Type],
    );
    connect(id, nodeOf(target), { style: 'async', label: 'job' });
  }

  // Who talks to whom inside the VPC: security group rules between boxes.
  const groupsOf = new Map<string, Set<string>>(); // security group -> boxes
  const useGroups = (node: string, value: unknown) => {
    for (const group of refs(value)) groupsOf.set(group, new Set([...(groupsOf.get(group) ?? []), node]));
  };
  for (const [id, r] of Object.entries(resources)) {
    const node = nodeOf(id);
    if (!node) continue;
    const p = r.Properties ?? {};
    useGroups(node, [p.SecurityGroupIds, p.SecurityGroups, p.VPCSecurityGroups]);
    if (r.Type === 'AWS::AutoScaling::AutoScalingGroup') {
      const data = launchData((p.LaunchTemplate as Props | undefined)?.LaunchTemplateId);
      useGroups(node, [data.SecurityGroupIds, list(data.NetworkInterfaces).map((n) => (n as Props).Groups)]);
    }
  }
  const ingress = [
    ...byType('AWS::EC2::SecurityGroupIngress').map(([, r]) => ({
      group: [...refs(r.Properties?.GroupId)][0],
      source: r.Properties?.SourceSecurityGroupId,
    })),
    ...byType('AWS::EC2::SecurityGroup').flatMap(([id, r]) =>
      list(r.Properties?.SecurityGroupIngress).map((rule) => ({
        group: id,
        source: (rule as Props).SourceSecurityGroupId,
      })),
    ),
  ];
  for (const { group, source } of ingress) {
    for (const from of [...refs(source)].flatMap((g) => [...(groupsOf.get(g) ?? [])])) {
      for (const to of groupsOf.get(group) ?? []) connect(from, to, { style: 'request' });
    }
  }

  // What the servers' IAM roles let them do with queues and buckets.
  const roleOf = new Map<string, string>(); // role -> box
  for (const [id, r] of Object.entries(resources)) {
    const node = nodeOf(id);
    const kind = node && nodes.get(node)?.kind;
    if (!node || (kind !== 'server' && kind !== 'fleet')) continue;
    const p = r.Properties ?? {};
    const profileRef =
      r.Type === 'AWS::EC2::Instance'
        ? p.IamInstanceProfile
        : launchData((p.LaunchTemplate as Props | undefined)?.LaunchTemplateId).IamInstanceProfile;
    for (const profile of refs(profileRef)) {
      for (const role of refs(props(profile).Roles)) roleOf.set(role, node);
    }
  }
  for (const [, policy] of byType('AWS::IAM::Policy')) {
    const p = policy.Properties ?? {};
    const servers = [...refs(p.Roles)].map((role) => roleOf.get(role)).filter((n) => n !== undefined);
    const statements = list((p.PolicyDocument as Props | undefined)?.Statement).map((s) => s as Props);
    for (const server of servers) {
      for (const statement of statements) {
        if (statement.Effect !== 'Allow') continue;
        const actions = list(statement.Action).map(String);
        for (const target of refs(statement.Resource)) {
          const node = nodeOf(target);
          const kind = node && nodes.get(node)?.kind;
          if (kind === 'queue') {
            if (actions.some((a) => a.startsWith('sqs:ReceiveMessage'))) {
              connect(node, server, { style: 'async', label: 'jobs' });
            } else if (actions.some((a) => a.startsWith('sqs:SendMessage'))) {
              connect(server, node, { style: 'async', label: 'enqueue' });
            }
          }
        }
      }
    }
  }

  return { nodes, edges, subnetLabels, nodeOf, addBucket };
}

/** The `Fn::GetStackOutput` references in a value. */
function stackOutputs(value: unknown, into: Props[] = []): Props[] {
  if (Array.isArray(value)) {
    value.forEach((v) => stackOutputs(v, into));
  } else if (value && typeof value === 'object') {
    for (const [key, v] of Object.entries(value)) {
      if (key === 'Fn::GetStackOutput' && v && typeof v === 'object') into.push(v as Props);
      else stackOutputs(v, into);
    }
  }
  return into;
}

/** Reads the tiers of one stage out of its templates. */
export function tierGraph(stage: UserStage, templates: StageTemplates): TierGraph {
  const primary = regionTiers(templates);
  const secondaries = Object.entries(templates.secondaries ?? {});
  if (secondaries.length === 0) {
    return {
      stage,
      nodes: [...primary.nodes.values()],
      edges: primary.edges,
      subnetLabels: primary.subnetLabels,
    };
  }

  // Stage 10m: the primary region as in stage 1m, and each secondary region beside it. Their boxes
  // are named `<region>/<logical ID>`: the stacks share their construct paths, so their logical IDs.
  const primaryRegion = templates.primaryRegion ?? 'primary region';
  const regions: TierRegion[] = [
    { name: primaryRegion, role: 'primary', subnetLabels: primary.subnetLabels },
  ];
  const regional = (n: TierNode): TierNode =>
    n.cluster === 'outside' || n.cluster === 'edge' ? n : { ...n, region: primaryRegion };
  const nodes: TierNode[] = [...primary.nodes.values()].map(regional);
  const edges: TierEdge[] = [...primary.edges];
  const stacks = new Map([[primaryRegion, { template: templates.primary, tiers: primary, prefix: '' }]]);
  // The boxes the outputs another stack reads with `Fn::GetStackOutput` refer to, found by region.
  const outputTargets = (value: unknown): string[] =>
    stackOutputs(value).flatMap((ref) => {
      const stack = stacks.get(String(ref.Region));
      const output = stack?.template.Outputs?.[String(ref.OutputName)];
      return [...refs(output?.Value)].flatMap((id) => {
        const node = stack?.tiers.nodeOf(id);
        return node ? [`${stack?.prefix}${node}`] : [];
      });
    });
  for (const [region, template] of secondaries) {
    const tiers = regionTiers({ primary: template });
    const prefix = `${region}/`;
    stacks.set(region, { template, tiers, prefix });
    // The buckets the stack shares through its outputs: the destination of the media replication.
    for (const output of Object.values(template.Outputs ?? {}))
      [...refs(output.Value)].forEach(tiers.addBucket);
    regions.push({ name: region, role: 'secondary', subnetLabels: tiers.subnetLabels });
    // Viewers reach a secondary region through the primary's distribution only. (Its media bucket
    // takes uploads straight from browsers once the region takes the writes, after a promotion.)
    for (const n of tiers.nodes.values()) {
      if (n.cluster !== 'outside') nodes.push({ ...n, id: `${prefix}${n.id}`, region });
    }
    for (const e of tiers.edges) {
      if (e.from !== 'Viewer' && e.to !== 'Viewer')
        edges.push({ ...e, from: `${prefix}${e.from}`, to: `${prefix}${e.to}` });
    }
  }
  const connect = (from: string | undefined, to: string | undefined, edge: Omit<TierEdge, 'from' | 'to'>) => {
    if (!from || !to || from === to || edges.some((e) => e.from === from && e.to === to)) return;
    edges.push({ from, to, ...edge });
  };
  const resources = templates.primary.Resources ?? {};
  const byType = (res: Record<string, CfnResource>, type: string) =>
    Object.entries(res)
      .filter(([, r]) => r.Type === type)
      .sort(([a], [b]) => a.localeCompare(b));

  // CloudFront -> each secondary region's load balancer, through a VPC origin that reads its ARN.
  // The regional routing function sends an API behavior's reads to the region nearest the viewer,
  // with the next nearest as failover (its code names the origins it picks from), and keeps a
  // `/_region/<region>/*` behavior on its own origin.
  const functionCode = new Map(
    byType(resources, 'AWS::CloudFront::Function').map(([id, r]) => [
      id,
      String(r.Properties?.FunctionCode ?? ''),
    ]),
  );
  for (const [id, distribution] of byType(resources, 'AWS::CloudFront::Distribution')) {
    const config = (distribution.Properties?.DistributionConfig ?? {}) as Props;
    const behaviors = [config.DefaultCacheBehavior, ...list(config.CacheBehaviors)].map(
      (b) => (b ?? {}) as Props,
    );
    const via = originPaths(config, behaviors);
    for (const origin of list(config.Origins).map((o) => o as Props)) {
      const [vpcOrigin] = refs(origin.VpcOriginConfig);
      // A VPC origin reads its load balancer from the secondary's outputs, an S3 origin its bucket.
      const targets = outputTargets(
        vpcOrigin ? resources[vpcOrigin]?.Properties?.VpcOriginEndpointConfig : origin.DomainName,
      );
      const routed = behaviors
        .filter((b) => b.TargetOriginId !== origin.Id && !String(b.PathPattern).startsWith('/_region/'))
        .filter((b) =>
          [...refs(b.FunctionAssociations)].some((fn) =>
            functionCode.get(fn)?.includes(JSON.stringify(origin.Id)),
          ),
        )
        .map((b) => `${b.PathPattern} reads, failover`);
      const pinned = via(String(origin.Id));
      for (const target of targets)
        connect(id, target, { style: 'request', label: [...routed, ...pinned].join('\n') });
    }
  }
  // Primary database -> each cross-region replica, which names it by the primary's output.
  for (const [region, template] of secondaries) {
    const { tiers, prefix } = stacks.get(region)!;
    for (const [id, db] of byType(template.Resources ?? {}, 'AWS::RDS::DBInstance')) {
      const replica = tiers.nodeOf(id);
      if (!replica) continue;
      // The secondary keeps the primary's outputs in parameters and reads them from there.
      const named = db.Properties?.SourceDBInstanceIdentifier;
      const viaParameters = [...refs(named)].map((r) => template.Resources?.[r]?.Properties?.Value);
      for (const source of outputTargets([named, ...viaParameters])) {
        connect(source, `${prefix}${replica}`, { style: 'async', label: 'cross-region replication' });
      }
    }
  }
  // Primary buckets -> the buckets they replicate into, named by the secondary regions' outputs.
  for (const [id, bucket] of byType(resources, 'AWS::S3::Bucket')) {
    const rules = list((bucket.Properties?.ReplicationConfiguration as Props | undefined)?.Rules).map(
      (r) => r as Props,
    );
    for (const rule of rules) {
      const prefix = (rule.Filter as Props | undefined)?.Prefix ?? rule.Prefix;
      for (const target of outputTargets((rule.Destination as Props | undefined)?.Bucket)) {
        connect(primary.nodeOf(id), target, {
          style: 'async',
          label: prefix ? `S3 replication of ${prefix}` : 'S3 replication',
        });
      }
    }
  }
  return { stage, nodes, edges, subnetLabels: primary.subnetLabels, regions };
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
  queue: { fill: '#fbe3ef', line: '#e7157b' },
  schedule: { fill: '#fbe3ef', line: '#e7157b' },
};

const CLUSTER_STYLE: Record<
  Exclude<TierCluster, 'outside'>,
  { label: string; fill: string; line: string }
> = {
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

function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
function quote(text: string): string {
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

/** The Graphviz DOT text of a stage's tiers. */
export function toDot(graph: TierGraph): string {
  const users = STAGES.find((s) => s.stage === graph.stage)?.users ?? 0;
  const out: string[] = [
    `digraph "stage-${graph.stage}" {`,
    `  graph [label=${quote(`Stage ${graph.stage}: ${users.toLocaleString('en-US')} ${users === 1 ? 'user' : 'users'}`)}, labelloc=t, fontsize=18, fontname="Helvetica,Arial,sans-serif", rankdir=LR, nodesep=0.35, ranksep=0.6, newrank=true, compound=true, pad=0.2];`,
    '  node [fontname="Helvetica,Arial,sans-serif", fontsize=11, style="rounded,filled", shape=box, margin="0.25,0.08"];',
    '  edge [fontname="Helvetica,Arial,sans-serif", fontsize=9, color="#555555", fontcolor="#333333"];',
  ];
  const nodeLine = (node: TierNode, indent: string) => {
    const style = STYLE[node.kind];
    const lines = [`<b>${escapeHtml(node.title)}</b>`, ...node.details.map((d) => escapeHtml(d))];
    const shape = style.shape ? `, shape=${style.shape}${style.shape === 'box' ? '' : ', style=filled'}` : '';
    out.push(
      `${indent}${quote(node.id)} [label=<${lines.join('<br/>')}>, fillcolor=${quote(style.fill)}, color=${quote(style.line)}${shape}];`,
    );
  };
  // In a single region every box has no region; at stage 10m each region's boxes go in its cluster.
  // The primary region's clusters keep the names they have in a single region.
  const clusterSuffix = (region?: TierRegion) => (region?.role === 'secondary' ? `_${region.name}` : '');
  const inCluster = (cluster: TierCluster, region?: TierRegion) =>
    graph.nodes.filter((n) => n.cluster === cluster && n.region === region?.name);
  const cluster = (id: Exclude<TierCluster, 'outside'>, indent: string, region?: TierRegion) => {
    const members = inCluster(id, region);
    if (members.length === 0) return;
    const style = CLUSTER_STYLE[id];
    const label = (region ?? graph).subnetLabels[id] ?? style.label;
    out.push(`${indent}subgraph ${quote(`cluster_${id}${clusterSuffix(region)}`)} {`);
    out.push(
      `${indent}  label=${quote(label)}; labeljust=l; fontsize=11; style="rounded,filled"; fillcolor=${quote(style.fill)}; color=${quote(style.line)};`,
    );
    members.forEach((n) => nodeLine(n, `${indent}  `));
    out.push(`${indent}}`);
  };
  const vpcAndServices = (indent: string, region?: TierRegion) => {
    if (['public', 'app', 'data'].some((c) => inCluster(c as TierCluster, region).length > 0)) {
      out.push(`${indent}subgraph ${quote(`cluster_vpc${clusterSuffix(region)}`)} {`);
      out.push(`${indent}  label="VPC"; labeljust=l; fontsize=12; style="rounded"; color="#248814";`);
      cluster('public', `${indent}  `, region);
      cluster('app', `${indent}  `, region);
      cluster('data', `${indent}  `, region);
      out.push(`${indent}}`);
    }
    cluster('regional', indent, region);
  };
  const rankCompute = (region?: TierRegion) => {
    const compute = graph.nodes.filter(
      (n) => (n.kind === 'server' || n.kind === 'fleet') && n.region === region?.name,
    );
    if (compute.length > 1) out.push(`  { rank=same; ${compute.map((n) => quote(n.id)).join('; ')}; }`);
  };
  inCluster('outside').forEach((n) => nodeLine(n, '  '));
  cluster('edge', '  ');
  if (!graph.regions) {
    vpcAndServices('  ');
    rankCompute();
  } else {
    for (const region of graph.regions) {
      const style = REGION_STYLE[region.role];
      out.push(`  subgraph ${quote(`cluster_region_${region.name}`)} {`);
      out.push(
        `    label=${quote(`${region.name} (${region.role} region)`)}; labeljust=l; fontsize=14; style="rounded,filled"; fillcolor=${quote(style.fill)}; color=${quote(style.line)}; penwidth=${style.penwidth};`,
      );
      vpcAndServices('    ', region);
      out.push('  }');
    }
    for (const region of graph.regions) rankCompute(region);
  }
  for (const edge of graph.edges) {
    const attrs: string[] = [];
    if (edge.label) attrs.push(`label=${quote(edge.label)}`);
    if (edge.style === 'async') attrs.push('style=dashed');
    // Of the jobs, only their delivery to the workers orders the tiers from left to right; of the
    // replication, only a bucket's (stage 10m), which puts a secondary region's copy below its source.
    const target = graph.nodes.find((n) => n.id === edge.to)?.kind;
    if (edge.style === 'async' && target !== 'fleet' && target !== 'server' && target !== 'bucket')
      attrs.push('constraint=false');
    if (edge.style === 'grant') attrs.push('style=dotted', 'arrowhead=none', 'color="#dd344c"');
    out.push(`  ${quote(edge.from)} -> ${quote(edge.to)}${attrs.length ? ` [${attrs.join(', ')}]` : ''};`);
  }
  out.push('}');
  return `${out.join('\n')}\n`;
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

/** The DOT text of every built stage, by stage id. */
export function stageDots(stages: readonly UserStage[] = BUILT_STAGES): Record<string, string> {
  return Object.fromEntries(
    stages.map((stage) => [stage, toDot(tierGraph(stage, synthStageTemplates(stage)))]),
  );
}

export function diagramFile(stage: string): string {
  return path.join(DIAGRAM_DIR, `stage-${stage}.svg`);
}

if (require.main === module) {
  const start = Date.now();
  const dots = stageDots();
  const svgs = renderSvgs(dots);
  fs.mkdirSync(DIAGRAM_DIR, { recursive: true });
  for (const [stage, svg] of Object.entries(svgs)) {
    fs.writeFileSync(diagramFile(stage), svg);
    if (process.argv.includes('--dot'))
      fs.writeFileSync(diagramFile(stage).replace(/\.svg$/, '.dot'), dots[stage]);
    console.log(`wrote ${path.relative(ROOT, diagramFile(stage))}`);
  }
  console.log(`${Object.keys(svgs).length} diagrams in ${((Date.now() - start) / 1000).toFixed(1)} s`);
}

/**
 * The paths of the behaviors that reach an origin: directly, or through an origin group, as its
 * primary or (labelled so) its failover.
 */
function originPaths(config: Props, behaviors: Props[]): (originId: string) => string[] {
  const groups = new Map(
    list((config.OriginGroups as Props | undefined)?.Items).map((g) => {
      const group = g as Props;
      const members = list((group.Members as Props | undefined)?.Items).map((m) =>
        String((m as Props).OriginId),
      );
      return [String(group.Id), members] as const;
    }),
  );
  return (originId) =>
    behaviors.flatMap((b) => {
      const target = String(b.TargetOriginId);
      if (target === originId) return [String(b.PathPattern)];
      const members = groups.get(target) ?? [];
      if (members[0] === originId) return [String(b.PathPattern)];
      return members.includes(originId) ? [`${b.PathPattern} failover`] : [];
    });
}
