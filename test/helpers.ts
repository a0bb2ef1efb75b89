import * as fs from 'fs';
import * as path from 'path';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import {
  SecondaryRegionStack,
  StageNetwork,
  StageNetworkProps,
  StageStack,
  StageStacks,
  StageStacksProps,
  TestedFeatureFlags,
  UserStage,
} from '../lib';
import { RELEASE_METADATA_KEY } from '../lib/private/releases';
import { BUILT_STAGES } from '../lib/stages/stage-table';
import { Json, renderText } from './deploy-rules/template';

/**
 * The context `cdk synth` gives bin/app.ts: the tested feature flags, with cdk.json's keys over them,
 * so tests see what `cdk synth` produces.
 */
export const CDK_JSON_CONTEXT: Record<string, unknown> = {
  ...TestedFeatureFlags.CONTEXT,
  ...JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'cdk.json'), 'utf8')).context,
};

/**
 * An app with the feature flags `cdk synth` uses. The bundled CloudFormation validator costs about a second
 * per synth, so unit tests leave it off; compliance tests turn it on for every stage. Tests read
 * the validation report file and assert the warnings they expect (Annotations), so the report is not
 * also printed (`failSynthOnValidationErrors` off: the app writes the report and leaves it to the
 * reader; compliance tests fail on every finding in it).
 */
export function newApp(options: { validate?: boolean } = {}): App {
  return new App({
    context: {
      ...CDK_JSON_CONTEXT,
      '@aws-cdk/core:validationReportPrettyPrint': false,
      '@aws-cdk/core:failSynthOnValidationErrors': false,
    },
    builtinCloudFormationValidation: options.validate ?? false,
  });
}

/** A stack holding a StageNetwork (without NAT unless asked), for construct tests. */
export function networkStack(props: StageNetworkProps = {}): { app: App; stack: Stack; vpc: ec2.Vpc } {
  const app = newApp();
  const stack = new Stack(app, 'Test');
  // A network it builds, so the concrete ec2.Vpc.
  const vpc = new StageNetwork(stack, 'Network', props).vpc as ec2.Vpc;
  return { app, stack, vpc };
}

export interface SynthesizedStage {
  /** The primary stack. */
  readonly stack: StageStack;
  readonly template: Template;
  /** The `<name>-Edge` stack's template, when the stage has an edge firewall. */
  readonly edge?: Template;
  /** Stage 10m: each secondary region's stack and template. */
  readonly secondaries: { readonly stack: SecondaryRegionStack; readonly template: Template }[];
}

/** Synthesizes one stage's stacks in their own app, as `cdk synth -c stage=<id>` does. */
export function synthStage(stage: UserStage, props: Partial<StageStacksProps> = {}): SynthesizedStage {
  const stacks = new StageStacks(newApp(), 'ScaleStages', { ...props, stage });
  return {
    stack: stacks.primary,
    template: Template.fromStack(stacks.primary),
    edge: stacks.edge && Template.fromStack(stacks.edge),
    secondaries: stacks.secondaries.map((stack) => ({ stack, template: Template.fromStack(stack) })),
  };
}

/** The shell script part of a rendered multipart user data, with CloudFormation tokens left as placeholders. */
export function userDataScript(template: Template): string {
  const instances = template.findResources('AWS::EC2::Instance');
  const [instance] = Object.values(instances);
  const userData = instance.Properties.UserData['Fn::Base64'];
  const text = typeof userData === 'string' ? userData : flattenJoin(userData);
  const match = /Content-Type: text\/x-shellscript[^\n]*\n(?:[^\n]+\n)*\n([\s\S]*?)\n--/.exec(text);
  if (!match) throw new Error(`no shell script part in user data:\n${text}`);
  return match[1];
}

/**
 * What the single server runs: the shell script of its user data, then the release in its metadata that
 * the user data applies (the app's environment, release phase and start commands), tokens as `TOKEN`.
 */
export function serverScript(template: Template): string {
  const [instance] = Object.values(template.findResources('AWS::EC2::Instance'));
  const release = instance.Metadata?.[RELEASE_METADATA_KEY]?.script;
  return `${userDataScript(template)}\n${release === undefined ? '' : flattenJoin(release)}`;
}

/** Renders an Fn::Join (possibly nested in Fn::Base64) with every other token as `TOKEN`. */
export function flattenJoin(value: unknown): string {
  return renderText(value as Json, () => 'TOKEN');
}

/**
 * What a security group rule's SourcePrefixListId is when it admits CloudFront's origin-facing
 * servers: the prefix list id the CloudFrontOriginFacingPrefixList lookup returns (a jest matcher).
 */
export function cloudFrontPrefixListRef(): { 'Fn::GetAtt': unknown[] } {
  return {
    'Fn::GetAtt': [expect.stringMatching(/^CloudFrontOriginFacingPrefixList/), 'PrefixLists.0.PrefixListId'],
  };
}

/** A stage's template as an earlier release synthesized it (test/fixtures/release-<version>). */
export function releaseFixture<T = Json>(release: string, stage: UserStage): T {
  const file = path.join(__dirname, 'fixtures', `release-${release}`, `stage-${stage}.template.json`);
  return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
}

/** The stages an earlier release built, in upgrade order: those it left a fixture of. */
export function releaseStages(release: string): UserStage[] {
  const files = new Set(fs.readdirSync(path.join(__dirname, 'fixtures', `release-${release}`)));
  return BUILT_STAGES.filter((stage) => files.has(`stage-${stage}.template.json`));
}
