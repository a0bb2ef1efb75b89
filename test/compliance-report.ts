import * as fs from 'fs';
import * as path from 'path';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks, NIST80053R5Checks } from 'cdk-nag';

// The compliance checks, kept apart from ./helpers so that only the compliance tests load cdk-nag
// and the validator (about half a second per test file).

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
 * Synthesizes an app with cdk-nag's AwsSolutions and NIST 800-53 rev 5 packs added to the bundled
 * CloudFormation validator, and returns every unacknowledged finding of any, whatever its severity.
 */
export function complianceReportOf(app: App): ComplianceReport {
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app), new NIST80053R5Checks(app));
  let outdir = app.outdir;
  const templates: Record<string, object> = {};
  try {
    const assembly = app.synth();
    outdir = assembly.directory;
  } catch {
    // A failing validation throws after writing the templates and the report, which is what we read.
  }
  for (const file of fs.readdirSync(outdir).filter((f) => f.endsWith('.template.json'))) {
    templates[file.replace(/\.template\.json$/, '')] = JSON.parse(
      fs.readFileSync(path.join(outdir, file), 'utf8'),
    );
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
