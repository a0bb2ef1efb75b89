import * as fs from 'fs';
import * as path from 'path';
import { App, Stack, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { AwsSolutionsChecks } from 'cdk-nag';
import { StageNetwork, StageStack, StageStackProps, UserStage } from '../lib';

/** The feature flags users get from cdk.json, so tests see what `cdk synth` produces. */
export const CDK_JSON_CONTEXT: Record<string, unknown> = JSON.parse(
  fs.readFileSync(path.join(__dirname, '..', 'cdk.json'), 'utf8'),
).context;

/**
 * An app with cdk.json's feature flags. The bundled CloudFormation validator costs about a second
 * per synth, so unit tests leave it off; compliance tests turn it on for every stage. Tests read
 * the validation report file, so it is not also printed.
 */
export function newApp(options: { validate?: boolean } = {}): App {
  return new App({
    context: { ...CDK_JSON_CONTEXT, '@aws-cdk/core:validationReportPrettyPrint': false },
    builtinCloudFormationValidation: options.validate ?? false,
  });
}

/** A stack holding a StageNetwork, for construct tests. */
export function networkStack(): { app: App; stack: Stack; vpc: ec2.Vpc } {
  const app = newApp();
  const stack = new Stack(app, 'Test');
  const vpc = new StageNetwork(stack, 'Network').vpc;
  return { app, stack, vpc };
}

export interface SynthesizedStage {
  readonly stack: StageStack;
  readonly template: Template;
}

/** Synthesizes one stage in its own app. */
export function synthStage(stage: UserStage, props: Partial<StageStackProps> = {}): SynthesizedStage {
  const stack = new StageStack(newApp(), 'ScaleStages', { ...props, stage });
  return { stack, template: Template.fromStack(stack) };
}

export interface Finding {
  readonly plugin: string;
  readonly rule: string;
  readonly severity: string;
  readonly paths: string[];
}

/** The parts of aws-cdk-lib's validation-report.json that the tests read. */
interface ValidationReport {
  readonly pluginReports: Array<{
    readonly pluginName: string;
    readonly violations: Array<{
      readonly ruleName: string;
      readonly severity: string;
      readonly violatingConstructs: Array<{ readonly constructPath: string }>;
    }>;
  }>;
}

export interface ComplianceReport {
  /** Unacknowledged findings of cdk-nag and of the bundled CloudFormation validator. */
  readonly findings: Finding[];
  /** The synthesized templates, by stack name. */
  readonly templates: Record<string, object>;
}

/**
 * Synthesizes an app with cdk-nag's AwsSolutions pack added to the bundled CloudFormation
 * validator, and returns every unacknowledged finding of either, whatever its severity.
 */
export function complianceReportOf(app: App): ComplianceReport {
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  let outdir = app.outdir;
  const templates: Record<string, object> = {};
  try {
    const assembly = app.synth();
    outdir = assembly.directory;
    for (const stack of assembly.stacks) templates[stack.stackName] = stack.template;
  } catch {
    // A failing validation throws after writing the report, which is what we read.
  }
  const report: ValidationReport = JSON.parse(
    fs.readFileSync(path.join(outdir, 'validation-report.json'), 'utf8'),
  );
  const findings = report.pluginReports.flatMap((plugin) =>
    plugin.violations.map((v) => ({
      plugin: plugin.pluginName,
      rule: v.ruleName,
      severity: v.severity,
      paths: v.violatingConstructs.map((c) => c.constructPath),
    })),
  );
  return { findings, templates };
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

/** Renders an Fn::Join (possibly nested in Fn::Base64) with every other token as `TOKEN`. */
export function flattenJoin(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    if ('Fn::Join' in obj) {
      const [sep, parts] = obj['Fn::Join'] as [string, unknown[]];
      return parts.map(flattenJoin).join(sep);
    }
    if ('Fn::Base64' in obj) return flattenJoin(obj['Fn::Base64']);
  }
  return 'TOKEN';
}

/** The CloudFormation validator that aws-cdk-lib bundles (the same engine that runs on every synth). */
function bundledValidator() {
  const cdkLibDir = path.dirname(require.resolve('aws-cdk-lib/package.json'));
  // The package is bundled inside aws-cdk-lib, not a dependency of ours, so it is loaded by path.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(require.resolve('@aws/cloudformation-validate', { paths: [cdkLibDir] }));
}

let infoEngine: { validateTemplate: (template: unknown, config: object) => ValidateReport } | undefined;

interface ValidateReport {
  readonly diagnostics: Array<{ ruleId: string; message: string; location?: { logicalId?: string } }>;
}

/**
 * The bundled validator's data-safety infos for a template: I3011 (a stateful resource without
 * explicit DeletionPolicy and UpdateReplacePolicy) and I3013 (data that expires after a default
 * retention period). aws-cdk-lib runs the validator at WARN level on synth, which drops infos, so
 * tests ask for them at INFO level here. The CEL engine gives the same diagnostics as the Rego one
 * and starts ten times faster.
 */
export function dataSafetyInfos(template: object): string[] {
  const validate = bundledValidator();
  infoEngine ??= new validate.CelEngine();
  const report = infoEngine!.validateTemplate(
    new validate.TemplateContent(JSON.stringify(template), 'template.json'),
    {
      severityLevel: 'INFO',
      detailLevel: 'STANDARD',
      include: { ids: ['I3011', 'I3013'] },
    },
  );
  return report.diagnostics.map((d) => `${d.ruleId} ${d.location?.logicalId ?? ''}: ${d.message}`);
}
