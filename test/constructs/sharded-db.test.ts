import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import {
  CostEstimate,
  LoadBalancedTier,
  SeparatedDb,
  ShardedDb,
  StageNetwork,
  StageOperations,
} from '../../lib';
import { complianceReportOf } from '../compliance-report';
import { newApp } from '../helpers';

/** A stack with a first database, three shards in all, a fleet connected to them, and operations. */
function build(shards = 3, validate = false) {
  const app = newApp({ validate });
  const stack = new Stack(app, 'Test');
  const network = new StageNetwork(stack, 'Network', { natGateways: 1 });
  const first = new SeparatedDb(stack, 'Database', {
    vpc: network.vpc,
    instanceType: new ec2.InstanceType('m7g.large'),
    secretsManagerEndpoint: network.addSecretsManagerEndpoint(1),
  });
  const web = new LoadBalancedTier(stack, 'Web', { vpc: network.vpc });
  first.connectApp(web);
  const sharded = new ShardedDb(stack, 'Shards', { firstShard: first, shards });
  sharded.connectApp(web);
  const operations = new StageOperations(stack, 'Operations');
  operations.monitorDatabase(first);
  operations.monitorShards(sharded);
  return { app, stack, sharded, web, template: Template.fromStack(stack) };
}

const { stack, sharded, web, template } = build();

test('the first database stays shard 0; the others are databases of their own with all SeparatedDb gives', () => {
  expect(sharded.shards).toHaveLength(3);
  expect(sharded.shards[0].node.path).toBe('Test/Database');
  template.resourceCountIs('AWS::RDS::DBInstance', 3);
  for (const shard of sharded.shards.slice(1)) {
    const id = stack.getLogicalId(shard.database.node.defaultChild as never);
    template.hasResource('AWS::RDS::DBInstance', {
      Properties: Match.objectLike({
        DBInstanceClass: 'db.m7g.large',
        DBName: 'app',
        StorageEncrypted: true,
        DeletionProtection: true,
        BackupRetentionPeriod: 7,
        PubliclyAccessible: false,
        EnableCloudwatchLogsExports: ['postgresql', 'upgrade'],
      }),
      DeletionPolicy: 'Snapshot',
    });
    expect(id).toMatch(/^Shards(Shard1|Shard2)/);
  }
  // Each shard's master secret is rotated.
  template.resourceCountIs('AWS::SecretsManager::RotationSchedule', 3);
});

test("the app tier reaches each shard's port, reads each secret, and gets the shards in order", () => {
  const webGroup = stack.getLogicalId(web.connections.securityGroups[0].node.defaultChild as never);
  for (const shard of sharded.shards.slice(1)) {
    const group = stack.getLogicalId(shard.connections.securityGroups[0].node.defaultChild as never);
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      GroupId: { 'Fn::GetAtt': [group, 'GroupId'] },
      SourceSecurityGroupId: { 'Fn::GetAtt': [webGroup, 'GroupId'] },
      FromPort: { 'Fn::GetAtt': [Match.anyValue(), 'Endpoint.Port'] },
    });
  }
  const policies = JSON.stringify(template.findResources('AWS::IAM::Policy'));
  for (const shard of sharded.shards) {
    expect(policies).toContain(stack.getLogicalId(shard.secret.node.defaultChild as never));
  }
  const [lt] = Object.values(template.findResources('AWS::EC2::LaunchTemplate'));
  const userData = JSON.stringify(lt.Properties.LaunchTemplateData.UserData);
  for (const name of ['DATABASE_SHARD_HOSTS', 'DATABASE_SHARD_PORTS', 'DATABASE_SHARD_SECRET_ARNS']) {
    expect(userData).toContain(`${name}=`);
  }
  expect(userData).toContain('SHARD_MAP_TTL_SECONDS=10');
});

test("each shard after the first has the first's alarms: free storage, and CPU as an outgrow signal", () => {
  for (const shard of ['Shard 1', 'Shard 2']) {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmDescription: Match.stringLikeRegexp(`^${shard} has less than 2 GiB of free storage`),
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmDescription: Match.stringLikeRegexp(`^${shard} has averaged 70% CPU or more for an hour`),
    });
  }
});

describe('the reshard document', () => {
  const [document] = Object.values(template.findResources('AWS::SSM::Document'));
  const content = document.Properties.Content as {
    parameters: Record<string, { allowedValues?: string[]; allowedPattern?: string }>;
    mainSteps: { action: string; inputs: { timeoutSeconds: string; runCommand: string[] } }[];
  };

  test('a Run Command document whose parameters SSM checks before it runs anything', () => {
    expect(document.Properties.DocumentType).toBe('Command');
    expect(content.parameters.command.allowedValues).toEqual(['init', 'status', 'plan', 'apply']);
    expect(new RegExp(content.parameters.shards.allowedPattern!).test('3')).toBe(true);
    expect(new RegExp(content.parameters.shards.allowedPattern!).test('3; rm -rf /')).toBe(false);
    const tables = new RegExp(content.parameters.tables.allowedPattern!);
    expect(tables.test('posts:user_id,likes:user_id')).toBe(true);
    expect(tables.test("posts:user_id'; drop table x")).toBe(false);
    expect(content.mainSteps[0].inputs.timeoutSeconds).toBe('172800');
  });

  test('installs reshard.sh as it is in assets/scripts and runs it with the parameters, as bash parses it', () => {
    const commands = content.mainSteps[0].inputs.runCommand.join('\n');
    const script = fs.readFileSync(
      path.join(__dirname, '..', '..', 'assets', 'scripts', 'reshard.sh'),
      'utf8',
    );
    expect(commands).toContain(script.trimEnd());
    const rendered = commands
      .replace(/\{\{command\}\}/g, 'apply')
      .replace(/\{\{shards\}\}/g, '3')
      .replace(/\{\{tables\}\}/g, 'posts:user_id');
    execFileSync('bash', ['-n'], { input: rendered });
    expect(rendered).toContain('/opt/scale-stages/reshard.sh "${args[@]}"');
  });
});

test("the shards' cost: each new shard what the first costs on its own (class, storage, secret, alarms aside)", () => {
  const first = CostEstimate.monthlyBaseline(sharded.shards[0]);
  const shards = sharded.shards.slice(1).map((shard) => CostEstimate.monthlyBaseline(shard));
  expect(first).toBeGreaterThan(100);
  for (const cost of shards) expect(cost).toBeCloseTo(first, 2);
  expect(CostEstimate.monthlyBaseline(sharded)).toBeCloseTo(shards[0] + shards[1], 2);
});

test.each([
  [1, /shards must be a whole number from 2 to 12; got 1/],
  [13, /shards must be a whole number from 2 to 12; got 13/],
  [2.5, /shards must be a whole number from 2 to 12; got 2.5/],
])('%d shards fail', (shards, message) => {
  expect(() => build(shards)).toThrow(message);
});

test('cdk-nag and the validator find nothing on the shards or the document', () => {
  const { app } = build(2, true);
  const report = complianceReportOf(app);
  const rulesOn = (prefix: string) =>
    [
      ...new Set(report.findings.filter((f) => f.paths.some((p) => p.startsWith(prefix))).map((f) => f.rule)),
    ].sort();
  expect(rulesOn('Test/Shards')).toEqual([]);
});
