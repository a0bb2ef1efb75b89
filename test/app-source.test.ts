import * as fs from 'fs';
import * as path from 'path';
import * as os from 'os';
import { execFileSync } from 'child_process';
import { Aws, Stack, Token } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { AppSource, LoadBalancedTier, SingleServer, StageNetwork } from '../lib';
import { flattenJoin, newApp, serverScript } from './helpers';

describe('AppSource', () => {
  /**
   * What a demo's start commands unpack: its asset folder zipped as `cdk deploy` uploads it, unpacked
   * by the start commands' own unzip line.
   */
  function shippedFiles(app: AppSource): string[] {
    expect(app.assetPath).toBe(path.join(__dirname, '..', 'assets', 'demo-app'));
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'demo-files-'));
    execFileSync('python3', [
      '-c',
      'import shutil, sys; shutil.make_archive(sys.argv[1], "zip", sys.argv[2])',
      path.join(work, 'demo-app'),
      app.assetPath!,
    ]);
    const unzip = app.startCommands.find((line) => line.startsWith('unzip '))!;
    execFileSync('bash', [
      '-euo',
      'pipefail',
      '-c',
      unzip
        .replace(/\/tmp\/demo-app\.zip/g, path.join(work, 'demo-app.zip'))
        .replace(/\/opt\/scale-stages\/demo-app/g, path.join(work, 'out')),
    ]);
    return fs.readdirSync(path.join(work, 'out')).sort();
  }

  test('demo: installs Node.js, downloads its files (an S3 asset) and runs the server under systemd with the environment file', () => {
    const app = AppSource.demo();
    expect(app.port).toBe(80);
    expect(app.healthCheckPath).toBe('/healthz');
    const script = app.startCommands.join('\n');
    expect(script).toContain('dnf install -y nodejs unzip');
    expect(script).toContain('aws s3 cp --only-show-errors "$APP_ASSET_URL" /tmp/demo-app.zip');
    expect(script).toContain('EnvironmentFile=/etc/scale-stages/app.env');
    expect(script).toContain('DynamicUser=yes');
    expect(script).toContain('ExecStart=/usr/bin/node /opt/scale-stages/demo-app/server.js');
    expect(shippedFiles(app)).toEqual(
      expect.arrayContaining(['aws.js', 'feed.js', 'server.js', 'worker.js']),
    );
    // A few lines of user data instead of the programs: the app of any stage fits EC2's 16 KB.
    expect(script.length).toBeLessThan(3000);
  });

  test('demoWorker: the same files, runs the worker with 5 minutes to finish a job on stop, and learns its group', () => {
    const app = AppSource.demoWorker();
    expect(shippedFiles(app)).toEqual(
      expect.arrayContaining(['aws-api.js', 'aws.js', 'feed.js', 'png.js', 'worker.js']),
    );
    const script = app.startCommands.join('\n');
    expect(script).toContain('ExecStart=/usr/bin/node /opt/scale-stages/demo-app/worker.js');
    expect(script).toContain('TimeoutStopSec=300');
    expect(script).toContain('echo "WORKER_AUTO_SCALING_GROUP=$GROUP" >> /etc/scale-stages/app.env');
  });

  test('demo: fetches the cache AUTH token when there is a cache, and systemd hands it over as a credential', () => {
    const script = AppSource.demo().startCommands.join('\n');
    expect(script).toContain('(umask 077; : > /etc/scale-stages/cache-auth-token)');
    expect(script).toContain(
      'if [ -n "${CACHE_SECRET_ARN:-}" ]; then aws secretsmanager get-secret-value --secret-id "$CACHE_SECRET_ARN" --query SecretString --output text > /etc/scale-stages/cache-auth-token; fi',
    );
    expect(script).toContain('LoadCredential=cache-auth-token:/etc/scale-stages/cache-auth-token');
    // The token never goes into the environment file, which every process of the app can read.
    expect(script).not.toMatch(/CACHE_AUTH_TOKEN=/);
  });

  test('fromCommands: exports the environment, then runs the commands', () => {
    const app = AppSource.fromCommands(['npm ci', 'npm start'], { port: 3000, healthCheckPath: '/up' });
    expect(app.startCommands).toEqual([
      'set -a',
      '. /etc/scale-stages/app.env',
      'set +a',
      'npm ci',
      'npm start',
    ]);
    expect(app.port).toBe(3000);
    expect(app.healthCheckPath).toBe('/up');
  });

  test('fromContainerImage: runs the image with Docker, publishing port to containerPort', () => {
    const app = AppSource.fromContainerImage('public.ecr.aws/nginx/nginx:stable', { containerPort: 8080 });
    expect(app.startCommands).toContain(
      'docker run -d --name app --restart unless-stopped --env-file /etc/scale-stages/app.env -p 80:8080 public.ecr.aws/nginx/nginx:stable',
    );
  });

  test.each([
    [() => AppSource.fromCommands([]), /needs at least one command; got none/],
    [() => AppSource.demo({ port: 0 }), /port must be a whole number from 1 to 65535; got 0/],
    [() => AppSource.demo({ port: 70000 }), /port must be a whole number from 1 to 65535; got 70000/],
    [
      () => AppSource.demo({ healthCheckPath: 'healthz' }),
      /healthCheckPath must start with '\/'; got 'healthz'/,
    ],
    [
      () => AppSource.fromContainerImage('nginx; rm -rf /'),
      /image must be an image reference.*got 'nginx; rm -rf \/'/,
    ],
    [
      () => AppSource.fromContainerImage('nginx', { containerPort: -1 }),
      /containerPort must be a whole number from 1 to 65535; got -1/,
    ],
  ])('bad input fails clearly (%#)', (make, message) => {
    expect(make).toThrow(message);
  });
});

test("the README's nginx example checks a path nginx answers: its default page at /, not /healthz", () => {
  const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## The app'));
  const block = /```ts\n([\s\S]*?)```/.exec(section)![1];
  const call = /AppSource\.fromContainerImage\('public\.ecr\.aws\/nginx\/nginx:stable', (\{[^}]*\})\)/.exec(
    block,
  );
  expect(call).not.toBeNull();
  // The options as written, evaluated as the object literal they are.
  const options = new Function(`return ${call![1]};`)();
  const app = AppSource.fromContainerImage('public.ecr.aws/nginx/nginx:stable', options);
  expect(app.healthCheckPath).toBe('/');
  expect(app.port).toBe(80);
});

describe('the release phase (migrations)', () => {
  const migrations = ['cd /opt/app && ./migrate up'];

  test('a release is its commands and options: the same AppSource twice is one release, a change is another', () => {
    const release = (commands: string[], m?: string[]) =>
      AppSource.fromCommands(commands, { migrations: m }).releaseId;
    expect(release(['./start v1'], migrations)).toBe(release(['./start v1'], migrations));
    expect(release(['./start v2'], migrations)).not.toBe(release(['./start v1'], migrations));
    expect(release(['./start v1'], ['./migrate v2'])).not.toBe(release(['./start v1'], migrations));
    expect(release(['./start v1'])).toMatch(/^[0-9a-f]{16}$/);
  });

  test('a deploy-time value in the migrations fails: the release id would not be stable', () => {
    expect(() =>
      AppSource.fromCommands(['./start'], { migrations: [`./migrate ${Token.asString(Aws.REGION)}`] }),
    ).toThrow(/AppSource migrations must be literal commands, not deploy-time values/);
  });

  test.each([
    ['the fleet', (stack: Stack, app: AppSource) => fleetUserData(stack, app)],
    ['the single server', (stack: Stack, app: AppSource) => serverUserData(stack, app)],
  ])('%s runs the release phase after the environment file and before the start commands', (_, userData) => {
    const app = AppSource.fromCommands(['./start-the-app'], { migrations });
    const script = userData(new Stack(newApp(), 'Test'), app);
    const order = [
      'cat > /etc/scale-stages/app.env',
      'dnf install -y -q postgresql16',
      `cat > /opt/scale-stages/release/migrate.sh <<'MIGRATE'\ncd /opt/app && ./migrate up\nMIGRATE`,
      `export RELEASE_ID='${app.releaseId}' MIGRATE_SCRIPT='/opt/scale-stages/release/migrate.sh'`,
      './start-the-app',
    ].map((text) => script.indexOf(text));
    expect(order.every((at) => at >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
  });

  test('without migrations there is no release phase', () => {
    const script = fleetUserData(new Stack(newApp(), 'Test'), AppSource.fromCommands(['./start-the-app']));
    expect(script).not.toContain('postgresql16');
    expect(script).not.toContain('RELEASE_ID');
  });
});

/** The shell script of a load-balanced fleet's launch template, tokens as TOKEN. */
function fleetUserData(stack: Stack, app: AppSource): string {
  const vpc = new StageNetwork(stack, 'Network', { natGateways: 1 }).vpc;
  new LoadBalancedTier(stack, 'Web', { vpc, app });
  const [template] = Object.values(Template.fromStack(stack).findResources('AWS::EC2::LaunchTemplate'));
  return flattenJoin(template.Properties.LaunchTemplateData.UserData);
}

/** The shell script of a single server at stage 10 (a connected database), tokens as TOKEN. */
function serverUserData(stack: Stack, app: AppSource): string {
  const network = new StageNetwork(stack, 'Network');
  new SingleServer(stack, 'Server', { vpc: network.vpc, app, localDatabase: false });
  return serverScript(Template.fromStack(stack));
}

describe("the app against EC2's 16 KB of user data", () => {
  const big = AppSource.fromCommands([`echo '${'x'.repeat(20_000)}' > /opt/app/big.txt`, './start']);
  const folder = path.join(__dirname, '..', 'assets', 'web-client');

  test('the single server takes a big app: the app is a release in its metadata, not its user data', () => {
    expect(serverUserData(new Stack(newApp(), 'Test'), big)).toContain(big.startCommands[0]);
  });

  test('the fleet: user data over 16 KB fails synth with its size and the way out', () => {
    expect(() => fleetUserData(new Stack(newApp(), 'Test'), big)).toThrow(
      /the servers' user data is about 2\d,\d{3} bytes, over the 16,384 \(16 KB\) EC2 takes before base64 encoding; ship the app as an S3 asset instead of inline commands: AppSource\.fromAsset\('<folder with start\.sh>'\)/,
    );
  });

  test('fromAsset: the servers download the folder from the asset bucket and run its start command there', () => {
    const app = AppSource.fromAsset(folder, { startCommand: './start.sh --port 8080', port: 8080 });
    const stack = new Stack(newApp(), 'Test');
    const script = fleetUserData(stack, app);
    expect(script).toContain('aws s3 cp --only-show-errors "$APP_ASSET_URL" /tmp/app.zip');
    expect(script).toContain('cd /opt/app && ./start.sh --port 8080');
    // The environment file names the asset's object, whose key is the folder's hash.
    expect(script).toMatch(/APP_ASSET_URL=/);
    expect(JSON.stringify(Template.fromStack(stack).toJSON())).toMatch(/[0-9a-f]{64}\.zip/);
    // The servers may read the asset, and the asset is in the cloud assembly for cdk deploy to upload.
    const policies = JSON.stringify(Template.fromStack(stack).findResources('AWS::IAM::Policy'));
    // Only the one object, the asset's zip: no wildcard on the bootstrap bucket.
    expect(policies).toMatch(
      /"Action":"s3:GetObject","Effect":"Allow","Resource":\{"Fn::Join":\["",\["arn:",\{"Ref":"AWS::Partition"\},":s3:::",\{"Fn::Sub":"cdk-hnb659fds-assets-\$\{AWS::AccountId\}-\$\{AWS::Region\}"\},"\/[0-9a-f]{64}\.zip"\]\]\}/,
    );
    expect(policies).not.toMatch(/s3:GetObject\*|s3:List\*|s3:GetBucket\*/);
    expect(app.assetPath).toBe(folder);
  });

  test("fromAsset: a release is the folder's contents", () => {
    expect(AppSource.fromAsset(folder).releaseId).toBe(AppSource.fromAsset(folder).releaseId);
    const other = path.join(__dirname, '..', 'assets', 'demo-app');
    expect(AppSource.fromAsset(other).releaseId).not.toBe(AppSource.fromAsset(folder).releaseId);
  });

  test('fromAsset: a path that is not a folder fails with the path', () => {
    expect(() => AppSource.fromAsset('/no/such/folder')).toThrow(
      "AppSource.fromAsset: directory must be a folder with your app and its start script; got '/no/such/folder', which is not a folder.",
    );
  });
});

describe('container images', () => {
  const digest = `sha256:${'a'.repeat(64)}`;
  test.each([
    ['nginx', "'latest, by default'"],
    ['public.ecr.aws/nginx/nginx:latest', "'latest'"],
    ['registry.example.com:5000/shop', "'latest, by default'"],
    ['shop:1.4.2', undefined],
    [`shop@${digest}`, undefined],
    [`registry.example.com:5000/shop:2@${digest}`, undefined],
    ['registry.example.com:5000/shop:2', undefined],
  ])('%s: a warning at synth when its tag can move (%s)', (image, tag) => {
    const stack = new Stack(newApp(), 'Test');
    fleetUserData(stack, AppSource.fromContainerImage(image));
    const warnings = Annotations.fromStack(stack)
      .findWarning('*', Match.stringLikeRegexp('container image'))
      .map((w) => String(w.entry.data));
    expect(warnings).toEqual(
      tag === undefined
        ? []
        : [
            `container image '${image}' is named by a tag that can move (${tag}): pushing it again changes no template, so running servers keep the old image and only servers launched later get the new one. Name it by digest ('<repository>@sha256:<digest>') or by a tag you never push again ('shop:1.4.2'). [ack: cdk-scale-stages:mutableImageTag]`,
          ],
    );
  });

  test('the servers pull the image for their own platform, and a missing variant fails with what to do', () => {
    const script = AppSource.fromContainerImage('shop:1.4.2').startCommands.join('\n');
    expect(script).toContain(`platform="linux/$(uname -m | sed 's/^aarch64$/arm64/; s/^x86_64$/amd64/')"`);
    expect(script).toContain(
      'docker pull --platform "$platform" shop:1.4.2 || { echo "shop:1.4.2 has no $platform variant, which these servers run: build and push it for linux/arm64 too (docker buildx build --platform linux/arm64,linux/amd64), or give the tier an x86 instance type" >&2; exit 1; }',
    );
  });
});
