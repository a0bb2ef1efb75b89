import { RegionInfo } from 'aws-cdk-lib/region-info';
import { Node } from 'constructs';
import { ScaleStagesError } from '../private/errors';
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
 * Reads and checks the context keys. Every bad value fails with one line that names the key, the
 * value and the valid choices.
 */
export function readStageContext(node: Node): StageContext {
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
  return regions;
}

/** A context value as a string; numbers are accepted (`"stage": 10` in cdk.json). */
function readString(node: Node, key: string): string | undefined {
  const value: unknown = node.tryGetContext(key);
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string' || typeof value === 'number') return String(value).trim();
  throw new ScaleStagesError(`context key '${key}' must be a string; got ${JSON.stringify(value)}.`);
}
