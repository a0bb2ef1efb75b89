import * as fs from 'fs';
import * as path from 'path';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { StageNetwork, TestedFeatureFlags } from '../lib';

const ROOT = path.join(__dirname, '..');
const FLAG = '@aws-cdk/aws-ec2:restrictDefaultSecurityGroup';

describe('TestedFeatureFlags', () => {
  // After an aws-cdk-lib upgrade this fails until lib/feature-flags.ts takes the new flags in (and the
  // tests pass with them).
  test('are the flags `cdk init` writes for this aws-cdk-lib (its recommended-feature-flags.json)', () => {
    const recommended = JSON.parse(
      fs.readFileSync(
        path.join(
          path.dirname(require.resolve('aws-cdk-lib/package.json')),
          'recommended-feature-flags.json',
        ),
        'utf8',
      ),
    );
    expect(TestedFeatureFlags.CONTEXT).toEqual(recommended);
  });

  test('are the only list: cdk.json sets no flag, bin/app.ts gives these to its App', () => {
    const cdkJson = JSON.parse(fs.readFileSync(path.join(ROOT, 'cdk.json'), 'utf8'));
    expect(Object.keys(cdkJson.context).filter((key) => key in TestedFeatureFlags.CONTEXT)).toEqual([]);
    expect(fs.readFileSync(path.join(ROOT, 'bin', 'app.ts'), 'utf8')).toContain(
      'new App({ context: TestedFeatureFlags.CONTEXT })',
    );
  });

  test('cannot be changed by the apps that share them', () => {
    expect(Object.isFrozen(TestedFeatureFlags.CONTEXT)).toBe(true);
    expect(Object.isFrozen(TestedFeatureFlags.CONTEXT['@aws-cdk/core:target-partitions'])).toBe(true);
  });

  test('are overridden by cdk.json and -c (the CLI passes both in CDK_CONTEXT_JSON)', () => {
    const saved = process.env.CDK_CONTEXT_JSON;
    process.env.CDK_CONTEXT_JSON = JSON.stringify({ [FLAG]: false });
    try {
      const app = new App({ context: TestedFeatureFlags.CONTEXT });
      expect(app.node.tryGetContext(FLAG)).toBe(false);
      expect(app.node.tryGetContext('@aws-cdk/aws-iam:minimizePolicies')).toBe(true);
    } finally {
      if (saved === undefined) delete process.env.CDK_CONTEXT_JSON;
      else process.env.CDK_CONTEXT_JSON = saved;
    }
  });

  test('change what synthesizes: without them the VPC keeps the default security group open', () => {
    const resources = (context: Record<string, unknown>) => {
      const stack = new Stack(new App({ context }), 'Network');
      new StageNetwork(stack, 'Network');
      return Template.fromStack(stack);
    };
    resources(TestedFeatureFlags.CONTEXT).resourceCountIs('Custom::VpcRestrictDefaultSG', 1);
    resources({}).resourceCountIs('Custom::VpcRestrictDefaultSG', 0);
  });
});
