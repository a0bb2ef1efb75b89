import * as rds from 'aws-cdk-lib/aws-rds';
import { UserStage } from './user-stage';

/** Sizing of one stage; every value can be overridden through `StageStackProps`. */
export interface StageSizing {
  /** NAT gateways for the app subnets' outbound traffic. */
  readonly natGateways: number;
  /** The single server of stages 1 to 100. */
  readonly server?: { readonly instanceType: string; readonly dataVolumeGiB: number };
  /** The load-balanced fleet from stage 1k. */
  readonly web?: {
    readonly instanceType: string;
    readonly minCapacity: number;
    readonly maxCapacity: number;
  };
  /** The RDS database from stage 10 (instance class without the `db.` prefix). */
  readonly database?: {
    readonly instanceType: string;
    readonly storageGiB: number;
    readonly multiAz: boolean;
  };
  /** The read replicas of the RDS database from stage 100k. */
  readonly readReplicas?: { readonly count: number; readonly instanceType: string };
  /** The ElastiCache cache from stage 100k (node type without the `cache.` prefix). */
  readonly cache?: { readonly nodeType: string; readonly replicas: number };
  /** The queue workers from stage 1m: none while the queue is empty, up to `maxCapacity`. */
  readonly workers?: { readonly instanceType: string; readonly maxCapacity: number };
  /** Each secondary region of stage 10m: a fleet, a cross-region database replica, a cache, workers. */
  readonly secondaryRegion?: SecondaryRegionSizing;
}

/** The sizing of one secondary region (stage 10m). */
export interface SecondaryRegionSizing {
  readonly natGateways: number;
  readonly web: { readonly instanceType: string; readonly minCapacity: number; readonly maxCapacity: number };
  /** The cross-region read replica of the primary database. */
  readonly databaseReplica: { readonly instanceType: string };
  readonly cache: { readonly nodeType: string; readonly replicas: number };
  readonly workers: { readonly instanceType: string; readonly maxCapacity: number };
}

/**
 * The layers a stage's stacks are built from, in the order `StageStack` builds them. Sized layers
 * have their sizing in the stage's row under the same name (`server`, `web` for the fleet,
 * `database`, `readReplicas`, `cache`, `workers`, `secondaryRegion` for the regions).
 */
export type StageLayer =
  /** The VPC with its subnets, endpoints and, from stage 1k, NAT. */
  | 'network'
  /** Compute, stages 1 to 100: one server, which hosts the database at stage 1. */
  | 'server'
  /** Compute from stage 1k: an internal load balancer and its Auto Scaling fleet. */
  | 'fleet'
  /** RDS PostgreSQL in the isolated data subnets. */
  | 'database'
  /** The database's read replicas. */
  | 'readReplicas'
  /** Valkey for sessions and cached objects. */
  | 'cache'
  /** The CloudFront distribution, viewers' only way in: HTTPS from stage 1. */
  | 'cdn'
  /** The web client on S3 behind the distribution, with the API at `/api/*`. */
  | 'webClient'
  /** The AWS WAF web ACL in front of the distribution (in its own us-east-1 stack). */
  | 'edgeFirewall'
  /** The media bucket behind `/media/*`. */
  | 'media'
  /** The job queue, its workers and the pre-render schedule. */
  | 'workers'
  /** The DynamoDB store of denormalized read models (the feed); a global table at stage 10m. */
  | 'store'
  /** Secondary regions with routing at the edge, replicated secrets and media. */
  | 'regions'
  /** Alarms, the dashboard and the "time for the next stage" alarm. */
  | 'operations';

/** One row of the stage table. */
export interface StageDefinition {
  readonly stage: UserStage;
  /** How many users the stage is sized for. */
  readonly users: number;
  /** What this stage adds to the previous one. */
  readonly adds: readonly StageLayer[];
  /** What the "time for the next stage" alarm says besides, at this stage. */
  readonly advice?: string;
  /** What this stage no longer has: a layer that one it adds replaces. */
  readonly drops?: readonly StageLayer[];
  /** The sizing. */
  readonly sizing: StageSizing;
}

/**
 * The PostgreSQL majors, pinned together: the stage-1 server's (Amazon Linux 2023 package
 * `postgresql16-server`) and RDS's. At stage 10 the server's own tools dump its data into RDS, and
 * a dump restores into the same or a newer major, never an older one (a test holds the order).
 */
export const POSTGRES_VERSIONS = { server: 16, rds: rds.PostgresEngineVersion.VER_17 };

const SERVER = { instanceType: 't4g.micro', dataVolumeGiB: 20 };
const SMALL_DATABASE = { instanceType: 't4g.micro', storageGiB: 20, multiAz: false };
const STAGE_1M: StageSizing = {
  natGateways: 2,
  web: { instanceType: 'm7g.large', minCapacity: 4, maxCapacity: 40 },
  database: { instanceType: 'm7g.xlarge', storageGiB: 20, multiAz: true },
  readReplicas: { count: 2, instanceType: 'm7g.xlarge' },
  cache: { nodeType: 'm7g.large', replicas: 2 },
  workers: { instanceType: 'm7g.medium', maxCapacity: 20 },
};

/** The stages in upgrade order, with their sizing. */
export const STAGES: readonly StageDefinition[] = [
  {
    stage: UserStage.USERS_1,
    users: 1,
    adds: ['network', 'server', 'cdn', 'operations'],
    sizing: { natGateways: 0, server: SERVER },
  },
  {
    stage: UserStage.USERS_10,
    users: 10,
    adds: ['database'],
    sizing: { natGateways: 0, server: SERVER, database: SMALL_DATABASE },
  },
  {
    stage: UserStage.USERS_100,
    users: 100,
    adds: ['webClient'],
    sizing: { natGateways: 0, server: SERVER, database: SMALL_DATABASE },
  },
  {
    stage: UserStage.USERS_1K,
    users: 1_000,
    adds: ['fleet', 'edgeFirewall'],
    drops: ['server'],
    sizing: {
      natGateways: 1,
      web: { instanceType: 't4g.small', minCapacity: 2, maxCapacity: 6 },
      database: { instanceType: 't4g.small', storageGiB: 20, multiAz: true },
    },
  },
  {
    stage: UserStage.USERS_10K,
    users: 10_000,
    adds: ['media'],
    sizing: {
      natGateways: 1,
      web: { instanceType: 't4g.medium', minCapacity: 2, maxCapacity: 10 },
      database: { instanceType: 't4g.medium', storageGiB: 20, multiAz: true },
    },
  },
  {
    stage: UserStage.USERS_100K,
    users: 100_000,
    adds: ['readReplicas', 'cache'],
    sizing: {
      natGateways: 2,
      web: { instanceType: 'm7g.large', minCapacity: 2, maxCapacity: 20 },
      database: { instanceType: 'm7g.large', storageGiB: 20, multiAz: true },
      readReplicas: { count: 1, instanceType: 'm7g.large' },
      cache: { nodeType: 't4g.medium', replicas: 1 },
    },
  },
  {
    stage: UserStage.USERS_1M,
    users: 1_000_000,
    adds: ['workers', 'store'],
    sizing: STAGE_1M,
    advice:
      'If DatabaseCpu fired, the database is outgrowing one writer, which more regions do not fix (they send it ' +
      'every write): split the users over database shards first (databaseShards, docs/resharding.md).',
  },
  {
    stage: UserStage.USERS_10M,
    users: 10_000_000,
    adds: ['regions'],
    advice:
      'If DatabaseCpu fired, the database is outgrowing one writer: split the users over database shards, or add ' +
      'one (databaseShards, docs/resharding.md; deploy the primary first, README "Sharding at stage 10m").',
    sizing: {
      ...STAGE_1M,
      // Each secondary region serves reads near its viewers and stands by to take the writes: the
      // 1m blueprint with a cross-region replica in place of the primary database.
      secondaryRegion: {
        natGateways: 2,
        web: { ...STAGE_1M.web!, minCapacity: 2 },
        databaseReplica: { instanceType: STAGE_1M.database!.instanceType },
        cache: { nodeType: 'm7g.large', replicas: 1 },
        workers: STAGE_1M.workers!,
      },
    },
  },
];

/** The stages this version builds, in upgrade order: all of them. */
export const BUILT_STAGES: readonly UserStage[] = STAGES.map((s) => s.stage);

/**
 * The layers of `stage`: what every stage up to it adds, less what a later one drops. Empty for a
 * stage that is not in the table.
 */
export function layersAt(stage: UserStage): ReadonlySet<StageLayer> {
  const layers = new Set<StageLayer>();
  for (const row of STAGES.slice(0, STAGES.findIndex((s) => s.stage === stage) + 1)) {
    row.adds.forEach((layer) => layers.add(layer));
    row.drops?.forEach((layer) => layers.delete(layer));
  }
  return layers;
}

/**
 * The stages that use each stage-specific setting (a `StageStackProps` prop, or a context key of the
 * same name): from `from`, up to `to` where a later stage drops what uses it. A setting given at
 * another stage does nothing there, and `StageStack` says so with one warning (not an error: a user
 * may set a later stage's size ahead of the upgrade).
 */
export const STAGE_SPECIFIC_SETTINGS: Readonly<
  Record<string, { readonly from: UserStage; readonly to?: UserStage }>
> = {
  dataVolumeSize: { from: UserStage.USERS_1, to: UserStage.USERS_100 },
  databaseInstanceType: { from: UserStage.USERS_10 },
  databaseAllocatedStorage: { from: UserStage.USERS_10 },
  webClientPath: { from: UserStage.USERS_100 },
  webMinCapacity: { from: UserStage.USERS_1K },
  webMaxCapacity: { from: UserStage.USERS_1K },
  loadBalancerCertificate: { from: UserStage.USERS_1K },
  loadBalancerDomainName: { from: UserStage.USERS_1K },
  natInstanceType: { from: UserStage.USERS_1K },
  databaseReadReplicas: { from: UserStage.USERS_100K },
  databaseReplicaInstanceType: { from: UserStage.USERS_100K },
  cacheNodeType: { from: UserStage.USERS_100K },
  cacheReplicas: { from: UserStage.USERS_100K },
  worker: { from: UserStage.USERS_1M },
  services: { from: UserStage.USERS_1M },
  workerInstanceType: { from: UserStage.USERS_1M },
  workerMaxCapacity: { from: UserStage.USERS_1M },
  prerenderRate: { from: UserStage.USERS_1M },
  databaseShards: { from: UserStage.USERS_1M },
  regions: { from: UserStage.USERS_10M },
  writerRegion: { from: UserStage.USERS_10M },
};

/**
 * Why `setting` does nothing at `stage`, or undefined when the stage uses it (or it is not
 * stage-specific).
 */
export function unusedAtStage(setting: string, stage: UserStage): string | undefined {
  const range = STAGE_SPECIFIC_SETTINGS[setting];
  if (!range) return undefined;
  if (!atLeast(stage, range.from)) {
    return `${setting} is set, but stage '${stage}' does not use it: it applies from stage '${range.from}'.`;
  }
  if (range.to && !atLeast(range.to, stage)) {
    return `${setting} is set, but stage '${stage}' does not use it: it applies to stages '${range.from}' to '${range.to}'.`;
  }
  return undefined;
}

/**
 * The sizing of `layer` in `row`, for a stage that has the layer: every sized layer of a stage has its
 * sizing in the stage's row (a test holds the table to it).
 */
export function sizingOf<K extends keyof StageSizing>(
  row: StageDefinition,
  layer: K,
): NonNullable<StageSizing[K]> {
  const sizing = row.sizing[layer];
  if (sizing === undefined) {
    throw new Error(
      `the stage table gives stage '${row.stage}' no ${layer} sizing; add it to the stage's row.`,
    );
  }
  return sizing as NonNullable<StageSizing[K]>;
}

/** Whether `stage` is `other` or later in the playbook. */
export function atLeast(stage: UserStage, other: UserStage): boolean {
  return STAGES.findIndex((s) => s.stage === stage) >= STAGES.findIndex((s) => s.stage === other);
}

/**
 * What the "time for the next stage" alarm of a stack at `stage` says: the next stage and the
 * command to deploy it, or, at the last built stage, what to scale instead.
 */
export function nextStageAdvice(
  stackName: string,
  stage: UserStage,
): { alarmName: string; description: string } {
  const index = STAGES.findIndex((s) => s.stage === stage);
  const next = STAGES[index + 1];
  if (next) {
    return {
      alarmName: `${stackName}-time-for-stage-${next.stage}`,
      description:
        `Stage ${stage} is outgrowing its architecture (see which signal fired). Stage ${next.stage} is sized for ` +
        `${next.users.toLocaleString('en-US')} users: preview with npx cdk diff -c stage=${next.stage}, then run ` +
        `npx cdk deploy -c stage=${next.stage} (or set "stage": "${next.stage}" in cdk.json).` +
        (STAGES[index].advice ? ` ${STAGES[index].advice}` : ''),
    };
  }
  return {
    alarmName: `${stackName}-stage-${stage}-at-capacity`,
    description:
      `Stage ${stage} is at capacity (see which signal fired), and it is the last stage of the playbook. ` +
      'Scale within the stage: raise webMaxCapacity, databaseInstanceType, databaseReadReplicas, cacheNodeType or ' +
      'workerMaxCapacity, or add a region to the regions context key, then npx cdk deploy --all.' +
      (STAGES[index].advice ? ` ${STAGES[index].advice}` : ''),
  };
}
