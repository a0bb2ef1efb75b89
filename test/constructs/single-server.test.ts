import { execFileSync } from 'child_process';
import { Duration, Size, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { IConstruct } from 'constructs';
import { AppSource, SingleServer, StageNetwork } from '../../lib';
import { estimatedBytes } from '../deploy-rules/template';
import { cloudFrontPrefixListRef, networkStack, newApp, serverScript } from '../helpers';

function build(props: Partial<ConstructorParameters<typeof SingleServer>[2]> = {}) {
  const { stack, vpc } = networkStack();
  const server = new SingleServer(stack, 'Server', { vpc, ...props });
  return { stack, server, template: Template.fromStack(stack) };
}

describe('SingleServer defaults', () => {
  const { server, template } = build();

  test('one Graviton t4g.micro running the latest Amazon Linux 2023, resolved at launch', () => {
    template.resourceCountIs('AWS::EC2::Instance', 1);
    template.hasResourceProperties('AWS::EC2::Instance', {
      InstanceType: 't4g.micro',
      ImageId: 'resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64',
      SubnetId: { Ref: Match.stringLikeRegexp('NetworkVpcPublicSubnet1') },
    });
  });

  test('IMDSv2 is required', () => {
    template.hasResourceProperties('AWS::EC2::LaunchTemplate', {
      LaunchTemplateData: { MetadataOptions: { HttpTokens: 'required' } },
    });
  });

  test('root volume is encrypted gp3', () => {
    template.hasResourceProperties('AWS::EC2::Instance', {
      BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { Encrypted: true, VolumeType: 'gp3' } }],
    });
  });

  test("only the app port is open, to CloudFront's origin-facing servers; nothing to the world, never SSH", () => {
    const groups = template.findResources('AWS::EC2::SecurityGroup');
    const inline = Object.values(groups).flatMap((g) => g.Properties.SecurityGroupIngress ?? []);
    expect(inline).toEqual([]);
    const ingress = Object.values(template.findResources('AWS::EC2::SecurityGroupIngress'));
    expect(ingress.map((r) => r.Properties)).toEqual([
      expect.objectContaining({
        IpProtocol: 'tcp',
        FromPort: 80,
        ToPort: 80,
        SourcePrefixListId: cloudFrontPrefixListRef(),
      }),
    ]);
  });

  test("the prefix list is CloudFront's origin-facing one, looked up by name at deploy time", () => {
    const [lookup] = Object.values(template.findResources('Custom::AWS'));
    const create = JSON.parse(lookup.Properties.Create);
    expect(create).toMatchObject({
      service: 'EC2',
      action: 'describeManagedPrefixLists',
      parameters: {
        Filters: [{ Name: 'prefix-list-name', Values: ['com.amazonaws.global.cloudfront.origin-facing'] }],
      },
      outputPaths: ['PrefixLists.0.PrefixListId'],
    });
    expect(JSON.parse(lookup.Properties.Update)).toEqual(create);
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: [{ Action: 'ec2:DescribeManagedPrefixLists', Effect: 'Allow', Resource: '*' }],
      },
    });
  });

  test('outbound traffic is limited to HTTPS and HTTP', () => {
    template.hasResourceProperties('AWS::EC2::SecurityGroup', {
      SecurityGroupEgress: [
        Match.objectLike({ CidrIp: '0.0.0.0/0', IpProtocol: 'tcp', FromPort: 443, ToPort: 443 }),
        Match.objectLike({ CidrIp: '0.0.0.0/0', IpProtocol: 'tcp', FromPort: 80, ToPort: 80 }),
      ],
    });
  });

  test('shell access through SSM Session Manager', () => {
    template.hasResourceProperties('AWS::IAM::Role', {
      ManagedPolicyArns: Match.arrayWith([
        { 'Fn::Join': ['', Match.arrayWith([Match.stringLikeRegexp('AmazonSSMManagedInstanceCore')])] },
      ]),
    });
    template.hasResourceProperties('AWS::EC2::Instance', { KeyName: Match.absent() });
  });

  test('an Elastic IP holds the public address', () => {
    template.hasResourceProperties('AWS::EC2::EIP', {
      Domain: 'vpc',
      InstanceId: { Ref: Match.stringLikeRegexp('ServerInstance') },
    });
    expect(Stack.of(server).resolve(server.publicIp)).toEqual({
      Ref: expect.stringMatching(/^ServerElasticIp/),
    });
  });

  test('the data volume is encrypted gp3 of 20 GiB, in the server AZ, kept on delete and replace', () => {
    template.hasResource('AWS::EC2::Volume', {
      Properties: {
        Size: 20,
        VolumeType: 'gp3',
        Encrypted: true,
        AvailabilityZone: { 'Fn::Select': [0, { 'Fn::GetAZs': '' }] },
      },
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
    template.hasResourceProperties('AWS::EC2::VolumeAttachment', {
      InstanceId: { Ref: Match.stringLikeRegexp('ServerInstance') },
      VolumeId: { Ref: Match.stringLikeRegexp('ServerDataVolume') },
    });
  });

  test('daily AWS Backup snapshots of the data volume are kept 7 days in a retained vault', () => {
    template.hasResourceProperties('AWS::Backup::BackupPlan', {
      BackupPlan: {
        BackupPlanRule: [
          Match.objectLike({
            ScheduleExpression: 'cron(0 5 * * ? *)',
            Lifecycle: { DeleteAfterDays: 7 },
          }),
        ],
      },
    });
    template.hasResourceProperties('AWS::Backup::BackupSelection', {
      BackupSelection: {
        Resources: [
          {
            'Fn::Join': [
              '',
              Match.arrayWith([':volume/', { Ref: Match.stringLikeRegexp('ServerDataVolume') }]),
            ],
          },
        ],
      },
    });
    template.hasResource('AWS::Backup::BackupVault', {
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
  });

  test('the local database password lives in a retained Secrets Manager secret the server can read', () => {
    template.hasResource('AWS::SecretsManager::Secret', {
      Properties: {
        GenerateSecretString: Match.objectLike({ GenerateStringKey: 'password', PasswordLength: 32 }),
      },
      DeletionPolicy: 'Retain',
    });
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue'],
            Resource: { Ref: Match.stringLikeRegexp('ServerLocalDatabaseSecret') },
          }),
        ]),
      },
    });
  });

  test('user data runs at every boot, mounts the volume, runs PostgreSQL and writes the environment', () => {
    const script = serverScript(template);
    const raw = JSON.stringify(template.findResources('AWS::EC2::Instance'));
    expect(raw).toContain('[scripts-user, always]');
    expect(script).toContain('mkfs.xfs');
    expect(script).toMatch(/if ! blkid "\$device"/);
    expect(script).toContain('dnf install -y "postgresql${PG_MAJOR}-server"');
    expect(script).toMatch(
      /DATABASE_HOST=127\.0\.0\.1\nDATABASE_NAME=app\nDATABASE_PORT=5432\nDATABASE_SECRET_ARN=TOKEN/,
    );
    expect(script).toContain('systemctl restart scale-stages-app');
  });

  test('the first boot signals CloudFormation once the app answers its health check', () => {
    template.hasResource('AWS::EC2::Instance', {
      CreationPolicy: { ResourceSignal: { Timeout: 'PT15M' } }, // Count defaults to 1
    });
    const script = serverScript(template);
    expect(script).toMatch(
      /^#!\/bin\/bash\nfunction exitTrap\(\)\{\nexitCode=\$\?\n\/opt\/aws\/bin\/cfn-signal .*-e \$exitCode/,
    );
    expect(script).toMatch(
      /trap exitTrap EXIT\nset -euo pipefail\nfor attempt in [^\n]*dnf install -y aws-cfn-bootstrap && break;[^\n]*\n/,
    );
    expect(script).toContain("APP_HEALTH_URL='http://127.0.0.1:80/healthz'");
    expect(script.indexOf('curl -fsS')).toBeGreaterThan(script.indexOf('systemctl restart scale-stages-app'));
  });

  test('the rendered user data is valid bash', () => {
    const script = serverScript(template);
    expect(() => execFileSync('bash', ['-n'], { input: script })).not.toThrow();
  });

  test('the user data EC2 receives (the MIME document, deploy-time values at their longest) fits 16 KB', () => {
    const rendered = Stack.of(server).resolve(server.instance.userData.render());
    expect(estimatedBytes(rendered)).toBeLessThan(16 * 1024);
  });

  test('exposes the escape hatches', () => {
    expect(server.instance).toBeInstanceOf(ec2.Instance);
    expect(server.dataVolume).toBeInstanceOf(ec2.Volume);
    expect(server.localDatabaseSecret).toBeDefined();
    expect(server.localDatabaseRotation).toBeInstanceOf(secretsmanager.RotationSchedule);
    expect(server.localDatabaseRotationFunction).toBeInstanceOf(lambda.Function);
    expect(server.connections.securityGroups).toHaveLength(1);
  });
});

describe('SingleServer public DNS name', () => {
  test.each([
    ['us-east-1', 'compute-1.amazonaws.com'],
    ['eu-west-1', 'eu-west-1.compute.amazonaws.com'],
  ])('in %s it ends in %s', (region, suffix) => {
    const stack = new Stack(newApp(), 'Test', { env: { region } });
    const server = new SingleServer(stack, 'Server', { vpc: new StageNetwork(stack, 'Network').vpc });
    expect(stack.resolve(server.publicDnsName)).toEqual({
      'Fn::Join': [
        '',
        [
          'ec2-',
          { 'Fn::Join': ['-', { 'Fn::Split': ['.', { Ref: expect.stringMatching(/^ServerElasticIp/) }] }] },
          `.${suffix}`,
        ],
      ],
    });
  });
});

describe('SingleServer overrides', () => {
  test('postgresMajorVersion picks the package on the box and the tools that later move the data', () => {
    const { stack, vpc } = networkStack();
    new SingleServer(stack, 'Server', { vpc, postgresMajorVersion: 15 });
    expect(serverScript(Template.fromStack(stack))).toContain("export PG_MAJOR='15' ");
  });

  test('instance type, volume size and backup retention', () => {
    const { template } = build({
      instanceType: new ec2.InstanceType('m7g.large'),
      dataVolumeSize: Size.gibibytes(100),
      backupRetention: Duration.days(30),
    });
    template.hasResourceProperties('AWS::EC2::Instance', { InstanceType: 'm7g.large' });
    template.hasResourceProperties('AWS::EC2::Volume', { Size: 100 });
    template.hasResourceProperties('AWS::Backup::BackupPlan', {
      BackupPlan: { BackupPlanRule: [Match.objectLike({ Lifecycle: { DeleteAfterDays: 30 } })] },
    });
  });

  test('without a local database: no secret, no rotation, PostgreSQL stopped, the volume kept', () => {
    const { server, template } = build({ localDatabase: false });
    template.resourceCountIs('AWS::SecretsManager::Secret', 0);
    template.resourceCountIs('AWS::SecretsManager::RotationSchedule', 0);
    template.resourceCountIs('AWS::SecretsManager::ResourcePolicy', 0);
    expect(Object.keys(template.findResources('AWS::Lambda::Function'))).not.toContainEqual(
      expect.stringMatching(/LocalDatabaseRotation/),
    );
    expect(JSON.stringify(template.toJSON())).not.toContain('ssm:SendCommand');
    expect(server.localDatabaseRotation).toBeUndefined();
    expect(server.localDatabaseRotationFunction).toBeUndefined();
    template.resourceCountIs('AWS::EC2::Volume', 1);
    const script = serverScript(template);
    expect(script).toContain('systemctl disable --now postgresql');
    expect(script).not.toContain('DATABASE_HOST');
  });

  test('an x86 instance type gets the x86 image and a Graviton warning', () => {
    const { stack, template } = build({ instanceType: new ec2.InstanceType('t3.micro') });
    template.hasResourceProperties('AWS::EC2::Instance', {
      ImageId: 'resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64',
    });
    Annotations.fromStack(stack).hasWarning(
      '/Test/Server',
      Match.stringLikeRegexp('t3.micro is not Graviton'),
    );
  });

  test('a custom app port is opened instead of 80, and environment variables reach the app', () => {
    const { stack, vpc } = networkStack();
    const server = new SingleServer(stack, 'Server', {
      vpc,
      app: AppSource.fromCommands(['./start.sh'], { port: 8080 }),
      environment: { FEATURE_FLAGS: 'beta' },
    });
    server.addEnvironment('LOG_LEVEL', 'debug');
    const template = Template.fromStack(stack);
    const script = serverScript(template);
    expect(script).toMatch(/APP_PORT=8080\n/);
    expect(script).toMatch(/FEATURE_FLAGS=beta\n/);
    expect(script).toMatch(/LOG_LEVEL=debug\n/);
    expect(script).toMatch(/\. \/etc\/scale-stages\/app\.env\nset \+a\n\.\/start\.sh\n/);
    expect(script).toContain("APP_HEALTH_URL='http://127.0.0.1:8080/healthz'");
    template.resourceCountIs('AWS::EC2::SecurityGroupIngress', 1);
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', { FromPort: 8080, ToPort: 8080 });
  });
});

describe('SingleServer validation', () => {
  test.each([
    [
      { postgresMajorVersion: 9.6 },
      /postgresMajorVersion must be a whole number from 13 to 99 \(a PostgreSQL major version\); got 9.6/,
    ],
    [
      { dataVolumeSize: Size.gibibytes(0) },
      /dataVolumeSize \(GiB\) must be a whole number from 1 to 16384.*got 0/,
    ],
    [{ dataVolumeSize: Size.gibibytes(20000) }, /dataVolumeSize \(GiB\) must be .*got 20000/],
    [
      { backupRetention: Duration.days(0) },
      /backupRetention \(days\) must be a whole number from 1 to 3650; got 0/,
    ],
    [
      { backupRetention: Duration.hours(36) },
      /backupRetention \(days\) must be a whole number from 1 to 3650; got 1.5/,
    ],
    [
      { dataVolumeSize: Size.mebibytes(1536) },
      /dataVolumeSize \(GiB\) must be a whole number from 1 to 16384.*got 1.5/,
    ],
    [{ app: AppSource.demo({ port: 22 }) }, /app port 22 is SSH.*SSM Session Manager/],
    [
      { localDatabaseRotationInterval: Duration.days(0) },
      /localDatabaseRotationInterval \(days\) must be a whole number from 1 to 365; got 0/,
    ],
    [
      { localDatabaseRotationInterval: Duration.days(366) },
      /localDatabaseRotationInterval \(days\) must be a whole number from 1 to 365; got 366/,
    ],
    [
      { localDatabaseRotationInterval: Duration.hours(36) },
      /localDatabaseRotationInterval \(days\) must be a whole number from 1 to 365; got 1.5/,
    ],
  ])('%o fails', (props, message) => {
    expect(() => build(props)).toThrow(message);
  });

  test('a VPC without public subnets fails', () => {
    const stack = new Stack(newApp(), 'Test');
    const vpc = new ec2.Vpc(stack, 'Vpc', {
      subnetConfiguration: [{ name: 'Isolated', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }],
    });
    expect(() => new SingleServer(stack, 'Server', { vpc })).toThrow(/vpc has no public subnets/);
  });

  test('an environment variable set twice fails, naming it', () => {
    const { server } = build();
    expect(() => server.addEnvironment('DATABASE_HOST', 'db.example.com')).toThrow(
      /environment variable DATABASE_HOST is already set to '127.0.0.1'/,
    );
  });

  test.each([
    ['lower', 'x', /name must be upper case letters/],
    ['WITH_SPACE', 'a b', /must not contain spaces, quotes/],
    ['QUOTED', "it's", /must not contain spaces, quotes/],
  ])('environment variable %s=%s fails', (name, value, message) => {
    const { server } = build();
    expect(() => server.addEnvironment(name, value)).toThrow(message);
  });
});

/** Every rule acknowledged on `scope` or below, with its reason. */
function acknowledgements(scope: IConstruct): Record<string, string> {
  const found: Record<string, string> = {};
  for (const construct of scope.node.findAll()) {
    for (const entry of construct.node.metadata) {
      if (entry.type !== 'aws:cdk:acknowledged-rules') continue;
      // Validations records each id as `Annotation::<id>`.
      for (const [id, reason] of Object.entries(entry.data as Record<string, string>)) {
        found[id.replace(/^Annotation::/, '')] = reason;
      }
    }
  }
  return found;
}

describe('SingleServer local database rotation', () => {
  const { server, template } = build();
  const functionId = () => {
    const [id] = Object.keys(template.findResources('AWS::Lambda::Function')).filter((id) =>
      /^ServerLocalDatabaseRotation[0-9A-F]{8}$/.test(id),
    );
    return id;
  };

  test('the secret rotates every 30 days with the function, at once on creation', () => {
    template.resourceCountIs('AWS::SecretsManager::RotationSchedule', 1);
    template.hasResourceProperties('AWS::SecretsManager::RotationSchedule', {
      SecretId: { Ref: Match.stringLikeRegexp('^ServerLocalDatabaseSecret') },
      RotationLambdaARN: { 'Fn::GetAtt': [functionId(), 'Arn'] },
      RotationRules: { ScheduleExpression: 'rate(30 days)' },
      RotateImmediatelyOnUpdate: Match.absent(), // CloudFormation's default: true
    });
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      FunctionName: { 'Fn::GetAtt': [functionId(), 'Arn'] },
      Principal: 'secretsmanager.amazonaws.com',
    });
  });

  test("while it rotates, nobody in the account can delete the secret (aws-cdk-lib's rotation schedule adds the policy)", () => {
    template.hasResourceProperties('AWS::SecretsManager::ResourcePolicy', {
      SecretId: { Ref: Match.stringLikeRegexp('^ServerLocalDatabaseSecret') },
      ResourcePolicy: {
        Statement: [Match.objectLike({ Action: 'secretsmanager:DeleteSecret', Effect: 'Deny' })],
      },
    });
  });

  test('the function: Node.js 24 on Graviton, outside the VPC, told the instance and the database', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      Handler: 'local-database/index.handler',
      Timeout: 300,
      VpcConfig: Match.absent(),
      Environment: {
        Variables: { INSTANCE_ID: { Ref: Match.stringLikeRegexp('^ServerInstance') }, DATABASE_NAME: 'app' },
      },
    });
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 90 });
  });

  test('IAM: SendCommand on this instance and AWS-RunShellScript only; the secret; nothing else', () => {
    const policies = template.findResources('AWS::IAM::Policy', {
      Properties: { Roles: [{ Ref: Match.stringLikeRegexp('^ServerLocalDatabaseRotationServiceRole') }] },
    });
    const statements = Object.values(policies).flatMap((p) => p.Properties.PolicyDocument.Statement);
    expect(statements).toEqual([
      {
        Action: 'ssm:SendCommand',
        Effect: 'Allow',
        Resource: [
          {
            'Fn::Join': [
              '',
              [
                'arn:',
                { Ref: 'AWS::Partition' },
                ':ec2:',
                { Ref: 'AWS::Region' },
                ':',
                { Ref: 'AWS::AccountId' },
                ':instance/',
                { Ref: expect.stringMatching(/^ServerInstance[0-9A-F]{8}$/) },
              ],
            ],
          },
          {
            'Fn::Join': [
              '',
              [
                'arn:',
                { Ref: 'AWS::Partition' },
                ':ssm:',
                { Ref: 'AWS::Region' },
                '::document/AWS-RunShellScript',
              ],
            ],
          },
        ],
      },
      // Neither has resource-level permissions (Service Authorization Reference).
      {
        Action: ['secretsmanager:GetRandomPassword', 'ssm:GetCommandInvocation'],
        Effect: 'Allow',
        Resource: '*',
      },
      {
        Action: [
          'secretsmanager:DescribeSecret',
          'secretsmanager:GetSecretValue',
          'secretsmanager:PutSecretValue',
          'secretsmanager:UpdateSecretVersionStage',
        ],
        Effect: 'Allow',
        Resource: { Ref: expect.stringMatching(/^ServerLocalDatabaseSecret/) },
      },
    ]);
  });

  test('the server reads every version of the secret (AWSPENDING too), without a version-stage condition', () => {
    const instancePolicies = template.findResources('AWS::IAM::Policy', {
      Properties: { Roles: [{ Ref: Match.stringLikeRegexp('^ServerInstanceInstanceRole') }] },
    });
    const read = Object.values(instancePolicies)
      .flatMap((p) => p.Properties.PolicyDocument.Statement)
      .filter((st) => JSON.stringify(st).includes('secretsmanager:GetSecretValue'));
    expect(read).toEqual([
      {
        Action: ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue'],
        Effect: 'Allow',
        Resource: { Ref: expect.stringMatching(/^ServerLocalDatabaseSecret/) },
      },
    ]);
  });

  test('no SMG4 acknowledgement any more; the new findings carry their reasons', () => {
    const acks = acknowledgements(server);
    expect(Object.keys(acks)).toContain('AwsSolutions-EC28'); // the helper sees the server's own
    expect(Object.keys(acks)).not.toContain('AwsSolutions-SMG4');
    const rotationAcks = acknowledgements(server.localDatabaseRotationFunction!);
    expect(Object.keys(rotationAcks).sort()).toEqual([
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
      'AwsSolutions-IAM5[Resource::*]',
    ]);
    expect(rotationAcks['AwsSolutions-IAM5[Resource::*]']).toMatch(/no resource-level permissions/);
  });

  test('the scripts are not in the user data, which keeps its size', () => {
    const script = serverScript(template);
    expect(script).not.toContain('ALTER ROLE :"user" WITH PASSWORD');
    expect(script).not.toContain('AWSPENDING');
  });

  test.each([
    [Duration.days(1), 'rate(1 day)'],
    [Duration.days(7), 'rate(7 days)'],
    [Duration.days(365), 'rate(365 days)'],
  ])('localDatabaseRotationInterval %s rotates on %s', (interval, expression) => {
    const { template } = build({ localDatabaseRotationInterval: interval });
    template.hasResourceProperties('AWS::SecretsManager::RotationSchedule', {
      RotationRules: { ScheduleExpression: expression },
    });
  });
});
