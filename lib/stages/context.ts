import { RegionInfo } from 'aws-cdk-lib/region-info';
import { Node } from 'constructs';
import { ScaleStagesError } from '../private/errors';
import { VPC_ORIGIN_REGIONS } from '../private/regions';
import { MAX_SHARDS } from '../private/shards';
import { BUILT_STAGES, STAGES } from './stage-table';
import { UserStage } from './user-stage';

/** The default of the `appName` context key: the stack name at every stage. */
export const DEFAULT_APP_NAME = 'ScaleStages';
/** The default of the `regions` context key. */
export const DEFAULT_REGIONS = ['us-east-1', 'us-west-2'];
/** Room left in CloudFormation's 128-character stack names for `-<stage>-<region>`. */
const MAX_APP_NAME_LENGTH = 100;

/** One stack the CLI app creates. */
export interface StackPlan {
  readonly stage: UserStage;
  readonly stackName: string;
}

/** What the `stage`, `appName` and `regions` context keys ask for, checked. */
export interface StageContext {
  readonly appName: string;
  /** Regions, the first one primary (used by stage 10m). */
  readonly regions: string[];
  readonly stacks: StackPlan[];
}

/**
 * The context keys the CLI app reads. Keys with `:` or `/` in them (feature flags, the CDK's own,
 * cached look-ups) are the CDK's, not the app's.
 */
export const CONTEXT_KEYS = [
  'stage',
  'appName',
  'regions',
  'domainName',
  'certificateArn',
  'hostedZoneId',
  'alarmEmail',
  'writerRegion',
  'allowStageChange',
  'databaseShards',
] as const;

/**
 * Reads and checks the context keys. Every bad value fails with one line that names the key, the
 * value and the valid choices; a key the app does not read fails with the closest one it does.
 */
export function readStageContext(node: Node): StageContext {
  checkKnownKeys(node);
  const appName = readString(node, 'appName') ?? DEFAULT_APP_NAME;
  if (!/^[A-Za-z][A-Za-z0-9-]*$/.test(appName) || appName.length > MAX_APP_NAME_LENGTH) {
    throw new ScaleStagesError(
      `context key 'appName' must start with a letter and hold only letters, digits and hyphens, at most ${MAX_APP_NAME_LENGTH} characters (it becomes the CloudFormation stack name); got '${appName}'.`,
    );
  }

  const regions = readRegions(node);
  const stage = readString(node, 'stage') ?? UserStage.USERS_1;
  const choices = [...STAGES.map((s) => s.stage), 'all'];
  if (!choices.includes(stage)) {
    throw new ScaleStagesError(
      `context key 'stage' must be one of ${choices.join(', ')}; got '${stage}'. Example: npx cdk synth -c stage=10`,
    );
  }
  const stacks =
    stage === 'all'
      ? BUILT_STAGES.map((s) => ({ stage: s, stackName: `${appName}-${s}` }))
      : [{ stage: stage as UserStage, stackName: appName }];
  return { appName, regions, stacks };
}

/** What the `domainName`, `certificateArn` and `hostedZoneId` context keys ask for, checked. */
export interface DomainContext {
  readonly domainName?: string;
  readonly certificateArn?: string;
  readonly hostedZoneId?: string;
}

/**
 * Reads and checks the own-domain context keys: the name viewers use, the ACM certificate in
 * us-east-1 that covers it (CloudFront takes certificates from that region only), and optionally
 * the Route 53 hosted zone that gets the alias records.
 */
export function readDomainContext(node: Node): DomainContext {
  const domainName = readString(node, 'domainName');
  const certificateArn = readString(node, 'certificateArn');
  const hostedZoneId = readString(node, 'hostedZoneId');
  if (domainName !== undefined) checkDomainName(`context key 'domainName'`, domainName);
  if (
    certificateArn !== undefined &&
    !/^arn:aws[a-z-]*:acm:us-east-1:\d{12}:certificate\/[A-Za-z0-9-]+$/.test(certificateArn)
  ) {
    throw new ScaleStagesError(
      `context key 'certificateArn' must be the ARN of an ACM certificate in us-east-1 (CloudFront uses no other region), such as arn:aws:acm:us-east-1:123456789012:certificate/<id>; got '${certificateArn}'.`,
    );
  }
  if (hostedZoneId !== undefined && !/^Z[A-Z0-9]{1,31}$/.test(hostedZoneId)) {
    throw new ScaleStagesError(
      `context key 'hostedZoneId' must be a Route 53 hosted zone id such as Z0123456789ABCDEFGHIJ; got '${hostedZoneId}'.`,
    );
  }
  if ((domainName === undefined) !== (certificateArn === undefined)) {
    throw new ScaleStagesError(
      `context keys 'domainName' and 'certificateArn' go together: CloudFront serves a domain only with a certificate that covers it; got ${domainName === undefined ? 'certificateArn without domainName' : 'domainName without certificateArn'}.`,
    );
  }
  if (hostedZoneId !== undefined && domainName === undefined) {
    throw new ScaleStagesError(
      `context key 'hostedZoneId' needs 'domainName' (the name its alias records point at the distribution); got hostedZoneId '${hostedZoneId}' alone.`,
    );
  }
  return { domainName, certificateArn, hostedZoneId };
}

/** A DNS name a viewer can type: labels of letters, digits and hyphens, at least two. */
export function checkDomainName(what: string, domainName: string): void {
  const label = '[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?';
  if (!new RegExp(`^(${label}\\.)+${label}$`, 'i').test(domainName) || domainName.length > 253) {
    throw new ScaleStagesError(`${what} must be a DNS name such as www.example.com; got '${domainName}'.`);
  }
}

function readRegions(node: Node): string[] {
  const raw = readString(node, 'regions');
  if (raw === undefined) return DEFAULT_REGIONS;
  const known = RegionInfo.regions.map((r) => r.name);
  const regions = raw.split(',').map((r) => r.trim());
  for (const region of regions) {
    if (!known.includes(region)) {
      throw new ScaleStagesError(
        `context key 'regions' must be a comma-separated list of AWS regions such as us-east-1,us-west-2; got '${raw}', and '${region}' is not a known region (known: ${known.join(', ')}).`,
      );
    }
  }
  const repeated = regions.find((r, i) => regions.indexOf(r) !== i);
  if (repeated) {
    throw new ScaleStagesError(
      `context key 'regions' must name each region once; got '${raw}', which repeats '${repeated}'.`,
    );
  }
  const unreachable = regions.find((r) => !VPC_ORIGIN_REGIONS.includes(r));
  if (unreachable) {
    throw new ScaleStagesError(
      `context key 'regions' must name regions where CloudFront VPC origins reach load balancers; got '${raw}', and '${unreachable}' is not one (choices: ${VPC_ORIGIN_REGIONS.join(', ')}).`,
    );
  }
  if (regions.length < 2) {
    throw new ScaleStagesError(
      `context key 'regions' must name at least two regions, the primary first, such as us-east-1,eu-west-1 (stage 10m runs in several); got '${raw}'.`,
    );
  }
  return regions;
}

/** A context value as a string; numbers are accepted (`"stage": 10` in cdk.json). */
export function readString(node: Node, key: string): string | undefined {
  const value: unknown = node.tryGetContext(key);
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string' || typeof value === 'number') return String(value).trim();
  throw new ScaleStagesError(`context key '${key}' must be a string; got ${JSON.stringify(value)}.`);
}

/**
 * The number of database shards the `databaseShards` prop, else its context key, asks for: a whole
 * number from 2 to 12, the database included; undefined for one database.
 */
export function readDatabaseShards(node: Node, fromProps?: number): number | undefined {
  const raw = fromProps ?? readString(node, 'databaseShards');
  if (raw === undefined) return undefined;
  const shards = Number(raw);
  if (!Number.isInteger(shards) || shards < 2 || shards > MAX_SHARDS) {
    throw new ScaleStagesError(
      `databaseShards (prop or context key) must be a whole number from 2 to ${MAX_SHARDS}, the database included; got '${raw}'. Leave it out for one database.`,
    );
  }
  return shards;
}

/** Fails on a context key the app does not read (a typo such as `-c stages=1k` would be ignored). */
function checkKnownKeys(node: Node): void {
  const known: readonly string[] = CONTEXT_KEYS;
  for (const key of Object.keys(node.getAllContext())) {
    if (/[:/]/.test(key) || known.includes(key)) continue;
    const [closest] = [...known].sort((a, b) => editDistance(key, a) - editDistance(key, b));
    const hint =
      editDistance(key, closest) <= Math.max(2, closest.length / 3)
        ? `did you mean '${closest}'?`
        : 'props such as serverInstanceType are set in code, on StageStack (see the README)';
    throw new ScaleStagesError(
      `context key '${key}' is not one this app reads; ${hint} (context keys: ${known.join(', ')}).`,
    );
  }
}

/** How many one-letter edits turn `a` into `b` (Levenshtein distance), case-insensitively. */
function editDistance(a: string, b: string): number {
  const [x, y] = [a.toLowerCase(), b.toLowerCase()];
  let row = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const next = [i];
    for (let j = 1; j <= y.length; j++) {
      next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (x[i - 1] === y[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[y.length];
}
