// Synthesizes a stage and reads what the diagram needs: the boxes its constructs mark in the
// construct tree (`markTier`), and the templates, whose references tell who talks to whom.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, CfnElement, Stack } from 'aws-cdk-lib/core';
import { IConstruct } from 'constructs';
import { StageStacks, TestedFeatureFlags, UserStage } from '../../lib';
import { Tier, tierOf } from '../../lib/private/tiers';

export const ROOT = path.join(__dirname, '..', '..');

/** A CloudFormation template, as far as the diagram reads it. */
export interface CfnTemplate {
  readonly Resources?: Record<string, CfnResource>;
  /** Read where another stack's resources refer to this one's with `Fn::GetStackOutput`. */
  readonly Outputs?: Record<string, { readonly Value?: unknown }>;
}
export interface CfnResource {
  readonly Type: string;
  readonly Properties?: Props;
}
export type Props = Record<string, unknown>;

/** A box a construct marks: its tier, its parts' logical IDs (the first names it) and its construct path. */
export interface TierBox {
  readonly tier: Tier;
  readonly logicalIds: readonly string[];
  /** The construct ids from below the stack down to the marked construct. */
  readonly path: readonly string[];
}

/** One stack: its template, and the boxes its constructs mark, in the order they were made. */
export interface StackTiers {
  readonly template: CfnTemplate;
  readonly boxes: readonly TierBox[];
}

/**
 * The stacks of one stage: the primary stack and, from stage 1k, the edge stack; at stage 10m also
 * each secondary region's stack.
 */
export interface StageTemplates {
  readonly primary: StackTiers;
  readonly edge?: StackTiers;
  /** Stage 10m: the primary stack's region (the stack itself is environment-agnostic). */
  readonly primaryRegion?: string;
  /** Stage 10m: each secondary region's stack, by region, in the order of the regions. */
  readonly secondaries?: Readonly<Record<string, StackTiers>>;
}

/** Synthesizes one stage as `cdk synth -c stage=<id>` does (cdk.json's context over the tested flags). */
export function synthStageTemplates(stage: UserStage): StageTemplates {
  const cdkJson = JSON.parse(fs.readFileSync(path.join(ROOT, 'cdk.json'), 'utf8'));
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'diagrams-'));
  try {
    const app = new App({
      outdir,
      context: {
        ...TestedFeatureFlags.CONTEXT,
        ...cdkJson.context,
        '@aws-cdk/core:validationReportPrettyPrint': false,
        // The validation report (the HTTP load balancer's warning) is the CLI's to print, not the script's.
        '@aws-cdk/core:failSynthOnValidationErrors': false,
      },
      // The bundled CloudFormation validator costs a second per stage and changes nothing drawn.
      builtinCloudFormationValidation: false,
    });
    const stacks = new StageStacks(app, 'ScaleStages', { stage });
    const assembly = app.synth();
    const read = (stack: Stack): StackTiers => ({
      template: assembly.getStackByName(stack.stackName).template,
      boxes: boxesOf(stack),
    });
    const templates: StageTemplates = {
      primary: read(stacks.primary),
      edge: stacks.edge && read(stacks.edge),
    };
    if (stacks.secondaries.length === 0) return templates;
    return {
      ...templates,
      primaryRegion: stacks.secondaries[0].primaryRegion,
      secondaries: Object.fromEntries(stacks.secondaries.map((s) => [s.region, read(s)])),
    };
  } finally {
    fs.rmSync(outdir, { recursive: true, force: true });
  }
}

/** The boxes the constructs of a stack mark, each where its first part is. */
function boxesOf(stack: Stack): TierBox[] {
  return stack.node.findAll().flatMap((construct) => {
    const mark = tierOf(construct);
    if (mark?.parts[0] !== construct) return [];
    const scopes = construct.node.scopes;
    return [
      {
        tier: mark.tier,
        logicalIds: mark.parts.map(logicalIdOf),
        path: scopes.slice(scopes.indexOf(stack) + 1).map((s) => s.node.id),
      },
    ];
  });
}

/** The logical ID of a CloudFormation resource, or of the one an L2 construct stands for. */
function logicalIdOf(construct: IConstruct): string {
  const cfn = CfnElement.isCfnElement(construct) ? construct : construct.node.defaultChild;
  if (!CfnElement.isCfnElement(cfn)) {
    throw new Error(`${construct.node.path} marks a tier but is no CloudFormation resource and has none`);
  }
  return Stack.of(cfn).resolve(cfn.logicalId);
}

/** The logical IDs a value refers to through Ref and Fn::GetAtt. */
export function refs(value: unknown, into: Set<string> = new Set()): Set<string> {
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

/** The `Fn::GetStackOutput` references in a value. */
export function stackOutputs(value: unknown, into: Props[] = []): Props[] {
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

/** A property that holds one item or a list of them, as a list. */
export function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : value === undefined ? [] : [value];
}
