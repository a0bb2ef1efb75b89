// Who talks to whom inside a region: what the construct tree does not tell, read from the
// template's references (load balancer listeners, CloudFront origins, bucket notifications,
// schedules, security group rules and IAM grants).
import { list, Props, refs } from './parse';
import { Region } from './region';

/** A volume is mounted on the instance its attachment (drawn in the volume) names. */
function mountedVolumes(region: Region): void {
  for (const volume of region.boxesOf('volume')) {
    for (const instance of refs(volume.resources.map((r) => r.Properties?.InstanceId))) {
      region.connect(region.nodeOf(instance), volume.id, { style: 'request', label: 'mounted' });
    }
  }
}

/** A load balancer forwards to the fleets registered in its listeners' target groups. */
function loadBalancerTargets(region: Region): void {
  for (const [, listener] of region.byType('AWS::ElasticLoadBalancingV2::Listener')) {
    const [loadBalancer] = refs(listener.Properties?.LoadBalancerArn);
    const groups = refs(listener.Properties?.DefaultActions);
    const port = region.props([...groups][0]).Port;
    for (const fleet of region.boxesOf('fleet')) {
      const registered = refs(fleet.resources.map((r) => r.Properties?.TargetGroupARNs));
      if (![...registered].some((g) => groups.has(g))) continue;
      region.connect(region.nodeOf(loadBalancer), fleet.id, {
        style: 'request',
        label: port ? `HTTP :${port}` : undefined,
      });
    }
  }
}

/** Read replicas follow the database they name as their source (a cross-region one: stage.ts). */
function readReplication(region: Region): void {
  for (const replica of region.boxesOf('replica')) {
    for (const source of refs(replica.resources.map((r) => r.Properties?.SourceDBInstanceIdentifier))) {
      region.connect(region.nodeOf(source), replica.id, { style: 'async', label: 'replication' });
    }
  }
}

/**
 * The paths of the behaviors that reach an origin: directly, or through an origin group, as its
 * primary or (labelled so) its failover.
 */
export function originPaths(config: Props, behaviors: Props[]): (originId: string) => string[] {
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

/** Viewers reach CloudFront, which reaches each origin on the paths of its behaviors; the firewall filters it. */
function cdnOrigins(region: Region): void {
  const [firewall] = region.boxesOf('firewall');
  for (const cdn of region.boxesOf('cdn')) {
    const config = (region.props(cdn.id).DistributionConfig ?? {}) as Props;
    region.connect('Viewer', cdn.id, { style: 'request', label: 'HTTPS' });
    const behaviors = [
      { ...(config.DefaultCacheBehavior as Props), PathPattern: '/* (default)' },
      ...list(config.CacheBehaviors).map((b) => b as Props),
    ];
    const via = originPaths(config, behaviors);
    for (const origin of list(config.Origins).map((o) => o as Props)) {
      // A VPC origin points at the load balancer.
      const [vpcOrigin] = refs(origin.VpcOriginConfig);
      const targets = refs(vpcOrigin ? region.props(vpcOrigin).VpcOriginEndpointConfig : origin.DomainName);
      const label = via(String(origin.Id)).join('\n');
      for (const target of targets)
        region.connect(cdn.id, region.nodeOf(target), { style: 'request', label });
    }
    if (firewall && config.WebACLId) {
      region.connect(firewall.id, cdn.id, { style: 'grant', label: 'filters requests' });
    }
  }
}

/** Browsers upload straight into a bucket whose CORS rules allow POST or PUT. */
function directUploads(region: Region): void {
  for (const bucket of region.boxesOf('bucket')) {
    const cors = (region.props(bucket.id).CorsConfiguration as Props | undefined)?.CorsRules;
    const methods = list(cors).flatMap((rule) => list((rule as Props).AllowedMethods));
    if (methods.some((m) => m === 'POST' || m === 'PUT')) {
      region.connect('Viewer', bucket.id, { style: 'request', label: 'direct upload' });
    }
  }
}

/** A bucket's notifications, its own or those aws-cdk-lib's custom resource writes, feed a queue. */
function bucketNotifications(region: Region): void {
  const notifications = [
    ...region.byType('Custom::S3BucketNotifications').map(([, r]) => ({
      bucket: [...refs(r.Properties?.BucketName)][0],
      config: r.Properties?.NotificationConfiguration as Props | undefined,
    })),
    ...region.byType('AWS::S3::Bucket').map(([id, r]) => ({
      bucket: id,
      config: r.Properties?.NotificationConfiguration as Props | undefined,
    })),
  ];
  for (const { bucket, config } of notifications) {
    for (const q of list(config?.QueueConfigurations).map((c) => c as Props)) {
      const prefix = list(((q.Filter as Props | undefined)?.Key as Props | undefined)?.FilterRules)
        .map((rule) => rule as Props)
        .find((rule) => String(rule.Name).toLowerCase() === 'prefix')?.Value;
      const [queue] = refs(q.QueueArn);
      region.connect(region.nodeOf(bucket), region.nodeOf(queue), {
        style: 'async',
        label: prefix ? `new object in ${prefix}` : 'new object',
      });
    }
  }
}

/** A schedule puts its job on its target. */
function scheduledJobs(region: Region): void {
  for (const schedule of region.boxesOf('schedule')) {
    for (const target of refs((region.props(schedule.id).Target as Props | undefined)?.Arn)) {
      region.connect(schedule.id, region.nodeOf(target), { style: 'async', label: 'job' });
    }
  }
}

/** What the servers a launch template starts are given. */
const launchData = (p: Props): Props => (p.LaunchTemplateData as Props | undefined) ?? {};

/** The security groups of a resource, or of the servers its launch template starts. */
function securityGroups(p: Props): Set<string> {
  const data = launchData(p);
  const interfaces = list(data.NetworkInterfaces).map((n) => (n as Props).Groups);
  return refs([p.SecurityGroupIds, p.SecurityGroups, p.VPCSecurityGroups, data.SecurityGroupIds, interfaces]);
}

/** Who talks to whom inside the VPC: security group rules between the boxes in the groups. */
function securityGroupRules(region: Region): void {
  const boxesIn = new Map<string, Set<string>>(); // security group -> boxes
  for (const [id, r] of Object.entries(region.resources)) {
    const node = region.nodeOf(id);
    if (!node) continue;
    for (const group of securityGroups(r.Properties ?? {})) {
      boxesIn.set(group, new Set([...(boxesIn.get(group) ?? []), node]));
    }
  }
  const ingress = [
    ...region.byType('AWS::EC2::SecurityGroupIngress').map(([, r]) => ({
      group: [...refs(r.Properties?.GroupId)][0],
      source: r.Properties?.SourceSecurityGroupId,
    })),
    ...region.byType('AWS::EC2::SecurityGroup').flatMap(([id, r]) =>
      list(r.Properties?.SecurityGroupIngress).map((rule) => ({
        group: id,
        source: (rule as Props).SourceSecurityGroupId,
      })),
    ),
  ];
  for (const { group, source } of ingress) {
    for (const from of [...refs(source)].flatMap((g) => [...(boxesIn.get(g) ?? [])])) {
      for (const to of boxesIn.get(group) ?? []) region.connect(from, to, { style: 'request' });
    }
  }
}

/** The server or fleet box each IAM role is the instance role of. */
function serversByRole(region: Region): Map<string, string> {
  const serverOf = new Map<string, string>();
  for (const [id, r] of Object.entries(region.resources)) {
    const node = region.nodeOf(id);
    const kind = node && region.nodes.get(node)?.kind;
    if (!node || (kind !== 'server' && kind !== 'fleet')) continue;
    const p = r.Properties ?? {};
    for (const profile of refs([p.IamInstanceProfile, launchData(p).IamInstanceProfile])) {
      for (const role of refs(region.props(profile).Roles)) serverOf.set(role, node);
    }
  }
  return serverOf;
}

/**
 * A server's grant on a queue: to take jobs from it, or else to put jobs on it; or on the store: to
 * read and write its items.
 */
function queueGrant(region: Region, server: string, statement: Props): void {
  if (statement.Effect !== 'Allow') return;
  const actions = list(statement.Action).map(String);
  for (const target of refs(statement.Resource)) {
    const queue = region.nodeOf(target);
    if (queue && region.nodes.get(queue)?.kind === 'store' && actions.includes('dynamodb:PutItem')) {
      region.connect(server, queue, { style: 'request', label: 'items' });
    }
    if (!queue || region.nodes.get(queue)?.kind !== 'queue') continue;
    if (actions.some((a) => a.startsWith('sqs:ReceiveMessage'))) {
      region.connect(queue, server, { style: 'async', label: 'jobs' });
    } else if (actions.some((a) => a.startsWith('sqs:SendMessage'))) {
      region.connect(server, queue, { style: 'async', label: 'enqueue' });
    }
  }
}

/** What the servers' IAM roles let them do with queues and the store. */
function queueGrants(region: Region): void {
  const serverOf = serversByRole(region);
  for (const [, policy] of region.byType('AWS::IAM::Policy')) {
    const p = policy.Properties ?? {};
    const statements = list((p.PolicyDocument as Props | undefined)?.Statement).map((s) => s as Props);
    for (const server of [...refs(p.Roles)].flatMap((role) => serverOf.get(role) ?? [])) {
      statements.forEach((statement) => queueGrant(region, server, statement));
    }
  }
}

/** Draws the edges of a region, in this order. */
export function addEdges(region: Region): void {
  for (const read of [
    mountedVolumes,
    loadBalancerTargets,
    readReplication,
    cdnOrigins,
    directUploads,
    bucketNotifications,
    scheduledJobs,
    securityGroupRules,
    queueGrants,
  ]) {
    read(region);
  }
}
