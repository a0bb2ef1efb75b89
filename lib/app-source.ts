import * as crypto from 'crypto';
import * as fs from 'fs';
import { FileSystem, Token } from 'aws-cdk-lib/core';
import { assetPath } from './private/assets';
import { ENV_FILE } from './private/app-environment';
import { ScaleStagesError } from './private/errors';
import { downloadRdsCaCommand, RDS_CA_FILE } from './private/rds-ca';

/** Where the app's environment variables are written on every server, in `KEY=value` lines. */
/** Where the demo app's start commands keep the cache's AUTH token (root only). */
const CACHE_TOKEN_FILE = '/etc/scale-stages/cache-auth-token';

/** Options every kind of app shares. */
export interface AppSourceOptions {
  /**
   * The TCP port the app listens on. A `SingleServer` opens it to CloudFront; a load balancer
   * forwards to it.
   *
   * @default 80
   */
  readonly port?: number;
  /**
   * The HTTP path that answers 2xx when the app is healthy, on `port`: each server's boot waits up to
   * 5 minutes for it before it signals CloudFormation, and load balancers probe it. Set it for a
   * container image that has no `/healthz` (nginx answers `/`), or the first deploy rolls back.
   *
   * @default '/healthz'
   */
  readonly healthCheckPath?: string;
  /**
   * The release phase: shell commands that change the database for this release, such as
   * `['cd /opt/app && npx prisma migrate deploy']`. They run once per release (a release is this
   * `AppSource`: its commands and options), on the first server of the release, before the app of that
   * release starts on any server; servers of the previous release keep serving meanwhile. They get the
   * stage's database as PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD and PGSSLMODE, and run after the
   * app's environment file is written, before the start commands. A failure stops the release: its
   * servers do not start, and the deploy fails with the previous release serving.
   *
   * Make each migration transactional, so that a failure leaves the schema as it was (`psql
   * --single-transaction -v ON_ERROR_STOP=1`, or a tool that wraps each migration in a transaction),
   * and compatible with the previous release (add now, remove in a later release).
   *
   * @default - none
   */
  readonly migrations?: string[];
}

/** Options for an app shipped as a folder (an S3 asset). */
export interface AssetAppSourceOptions extends AppSourceOptions {
  /**
   * The command that installs and starts the app, run as root in the unpacked folder with the app's
   * environment variables exported. It must be idempotent, as the commands of `fromCommands` are.
   *
   * @default './start.sh'
   */
  readonly startCommand?: string;
}

/** Options for an app that runs as a container image on the server. */
export interface ContainerAppSourceOptions extends AppSourceOptions {
  /**
   * The port the container listens on; the server's `port` is published to it.
   *
   * @default - the same as `port`
   */
  readonly containerPort?: number;
}

/** Options of the demo app. */
export interface DemoAppSourceOptions extends AppSourceOptions {
  /**
   * Whether to ship the module that signs direct uploads. No effect since 0.10.0: the demo's files are
   * an S3 asset, not user data, and every server gets all of them.
   *
   * @default true
   * @deprecated the demo ships all its files as an S3 asset; leave this out
   */
  readonly directUploads?: boolean;
}

/**
 * The user's application and how a server starts it.
 *
 * Every server writes the app's environment variables (database endpoint and secret ARN, cache
 * endpoint, queue URL, ...) to `/etc/scale-stages/app.env` before it runs the start commands, so
 * the app reads its connection facts from the environment and any server can die.
 */
export class AppSource {
  /** The file that holds the app's environment variables on every server. */
  public static readonly ENVIRONMENT_FILE = ENV_FILE;

  /**
   * Shell commands that install and start the app; they run as root with the app's environment
   * variables exported.
   *
   * The commands must be idempotent: a `SingleServer` runs them at every boot and again for each
   * release, on the running machine (docs/releases.md).
   */
  public static fromCommands(commands: string[], options: AppSourceOptions = {}): AppSource {
    if (commands.length === 0) {
      throw new ScaleStagesError(
        'AppSource.fromCommands needs at least one command; got none. Pass the shell commands that install and start your app.',
      );
    }
    return new AppSource(options, ['set -a', `. ${ENV_FILE}`, 'set +a', ...commands]);
  }

  /**
   * A folder of your app, shipped as an S3 asset (`cdk deploy` uploads it): each server downloads it
   * to `/opt/app` and runs `startCommand` there. The user data then holds a few lines instead of the
   * app, so an app of any size fits EC2's 16 KB of user data; a change to the folder is a new release.
   */
  public static fromAsset(directory: string, options: AssetAppSourceOptions = {}): AppSource {
    if (!fs.existsSync(directory) || !fs.statSync(directory).isDirectory()) {
      throw new ScaleStagesError(
        `AppSource.fromAsset: directory must be a folder with your app and its start script; got '${directory}', which is not a folder.`,
      );
    }
    const startCommand = options.startCommand ?? './start.sh';
    return new AppSource(
      options,
      [
        'set -a',
        `. ${ENV_FILE}`,
        'set +a',
        'dnf install -y -q unzip',
        'aws s3 cp --only-show-errors "$APP_ASSET_URL" /tmp/app.zip',
        'rm -rf /opt/app.new && mkdir -p /opt/app.new && unzip -q /tmp/app.zip -d /opt/app.new && rm /tmp/app.zip',
        'rm -rf /opt/app && mv /opt/app.new /opt/app',
        `cd /opt/app && ${startCommand}`,
      ],
      { assetPath: directory },
    );
  }

  /**
   * A container image (for example `public.ecr.aws/nginx/nginx:stable`) run with Docker on the
   * server, restarted when it stops, with the app's environment variables passed in.
   *
   * The servers are Graviton (arm64) unless you give an x86 instance type, so the image needs a
   * linux/arm64 variant: a boot without one fails with a message that says so. Name the image by
   * digest (`repo@sha256:...`) or an immutable tag: a tag such as `latest` that is pushed again
   * changes no template, so only servers launched later get the new image (synth warns).
   */
  public static fromContainerImage(image: string, options: ContainerAppSourceOptions = {}): AppSource {
    if (!Token.isUnresolved(image) && !/^[a-z0-9][a-z0-9._\-/:@]*$/i.test(image)) {
      throw new ScaleStagesError(
        `AppSource.fromContainerImage: image must be an image reference such as 'public.ecr.aws/nginx/nginx:stable'; got '${image}'.`,
      );
    }
    const port = options.port ?? 80;
    const containerPort = options.containerPort ?? port;
    checkPort('containerPort', containerPort);
    return new AppSource(
      options,
      [
        'dnf install -y docker',
        'systemctl enable --now docker',
        // The server's own platform: Graviton servers (the default) run linux/arm64 images only.
        `platform="linux/$(uname -m | sed 's/^aarch64$/arm64/; s/^x86_64$/amd64/')"`,
        `docker pull --platform "$platform" ${image} || { echo "${image} has no $platform variant, which these servers run: build and push it for linux/arm64 too (docker buildx build --platform linux/arm64,linux/amd64), or give the tier an x86 instance type" >&2; exit 1; }`,
        'docker rm -f app || true',
        `docker run -d --name app --restart unless-stopped --env-file ${ENV_FILE} -p ${port}:${containerPort} ${image}`,
      ],
      { image },
    );
  }

  /**
   * The small demo app of this library: a dependency-free Node.js server that answers `/` and
   * `/healthz` with JSON saying whether it can log in to its PostgreSQL database: over TLS
   * verified with RDS's CA bundle (which the start commands download), with the credentials of the
   * database secret, read again when a login fails (the password was rotated). With a cache
   * (stage 100k) it keeps sessions there (`/api/session`) and caches `/api/status` for 30
   * seconds; its start commands fetch the cache's AUTH token from Secrets Manager and systemd
   * hands it to the app as a credential, never through the environment. When the cache refuses
   * that token (NOAUTH or WRONGPASS: it was rotated), the app reads the secret again with the AWS
   * CLI and reconnects, once per refused command.
   */
  public static demo(options: DemoAppSourceOptions = {}): AppSource {
    return AppSource.demoProgram(options, [
      ...installDemoFiles(),
      `(umask 077; : > ${CACHE_TOKEN_FILE})`,
      `(set -a; . ${ENV_FILE}; set +a; if [ -n "\${CACHE_SECRET_ARN:-}" ]; then aws secretsmanager get-secret-value --secret-id "$CACHE_SECRET_ARN" --query SecretString --output text > ${CACHE_TOKEN_FILE}; fi)`,
      downloadRdsCaCommand('demo app'),
      ...demoService('scale-stages-app', 'cdk-scale-stages demo app', 'server.js', [
        `LoadCredential=cache-auth-token:${CACHE_TOKEN_FILE}`,
        'AmbientCapabilities=CAP_NET_BIND_SERVICE',
        // Before EnvironmentFile, so that a user's DATABASE_CA_FILE in the environment wins.
        `Environment=DATABASE_CA_FILE=${RDS_CA_FILE}`,
      ]),
    ]);
  }

  /** A demo program: its start commands, with the demo's files shipped as an S3 asset. */
  private static demoProgram(options: AppSourceOptions, commands: string[]): AppSource {
    return new AppSource(options, commands, { assetPath: assetPath('demo-app') });
  }

  /**
   * The demo worker of `QueueWorkers`: a dependency-free Node.js program that answers `/healthz`,
   * long-polls `JOB_QUEUE_URL` and runs two kinds of jobs: a thumbnail of each upload (an S3
   * event for an object under `uploads/` in `MEDIA_BUCKET`, written to `media/thumbnails/`), and a
   * pre-render of the feed (`{"type":"prerender"}`, written to `prerendered/feed.json` in
   * `WEB_BUCKET`). It protects its instance from scale-in while it works, and on SIGTERM finishes
   * the job at hand; a job it does not finish stays in the queue for another worker.
   */
  public static demoWorker(options: AppSourceOptions = {}): AppSource {
    const group = [
      'TOKEN=$(curl -sf -X PUT http://169.254.169.254/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 60")',
      'INSTANCE_ID=$(curl -sf -H "X-aws-ec2-metadata-token: $TOKEN" http://169.254.169.254/latest/meta-data/instance-id)',
      `GROUP=$(set -a; . ${ENV_FILE}; aws autoscaling describe-auto-scaling-instances --region "$AWS_REGION" --instance-ids "$INSTANCE_ID" --query 'AutoScalingInstances[0].AutoScalingGroupName' --output text)`,
      `echo "WORKER_AUTO_SCALING_GROUP=$GROUP" >> ${ENV_FILE}`,
    ];
    return AppSource.demoProgram(options, [
      ...installDemoFiles(),
      ...group,
      ...demoService('scale-stages-app', 'cdk-scale-stages demo worker', 'worker.js', [
        'AmbientCapabilities=CAP_NET_BIND_SERVICE',
        // SIGTERM lets the job at hand finish; a longer one is left to the queue's retry.
        'TimeoutStopSec=300',
      ]),
    ]);
  }

  /**
   * The demo's realtime service, a second service beside the demo app (`StageStackProps.services`, at a
   * path such as `/ws/*`): a dependency-free Node.js WebSocket server (RFC 6455) at `/ws/feed` that
   * pushes each new item of the feed in the store (`STORE_TABLE_NAME`, polled every few seconds) to
   * every open connection, answers `{"type":"echo"}` messages, pings each connection every 30 seconds
   * (inside the load balancer's 60-second idle timeout) and, on SIGTERM, closes its connections with
   * 1001 so that clients reconnect to another server.
   */
  public static demoRealtime(options: AppSourceOptions = {}): AppSource {
    return AppSource.demoProgram(options, [
      ...installDemoFiles(),
      ...demoService('scale-stages-app', 'cdk-scale-stages demo realtime service', 'realtime.js', [
        'AmbientCapabilities=CAP_NET_BIND_SERVICE',
        // SIGTERM closes the connections with 1001; the drain takes at most REALTIME_DRAIN_SECONDS.
        'TimeoutStopSec=30',
      ]),
    ]);
  }

  /** The TCP port the app listens on. */
  public readonly port: number;
  /** The HTTP path that answers 200 when the app is healthy. */
  public readonly healthCheckPath: string;
  /** The shell commands that install and start the app, run as root after the environment file is written. */
  public readonly startCommands: string[];
  /** The release phase's commands (`migrations`), run once per release before the app starts. */
  public readonly migrations: string[];
  /**
   * What identifies this release: a hash of the start commands, the migrations, the port, the
   * health check path and the contents of `assetPath`. The release phase runs once per release id.
   */
  public readonly releaseId: string;
  /**
   * The folder `fromAsset` ships as an S3 asset; the servers get its URL as APP_ASSET_URL.
   *
   * @default - none: the start commands hold the app
   */
  public readonly assetPath?: string;
  /**
   * The image `fromContainerImage` runs.
   *
   * @default - none: not a container image
   */
  public readonly containerImage?: string;

  private constructor(
    options: AppSourceOptions,
    startCommands: string[],
    shipped: { readonly assetPath?: string; readonly image?: string } = {},
  ) {
    this.port = options.port ?? 80;
    this.healthCheckPath = options.healthCheckPath ?? '/healthz';
    checkPort('port', this.port);
    if (!this.healthCheckPath.startsWith('/')) {
      throw new ScaleStagesError(
        `AppSource healthCheckPath must start with '/'; got '${this.healthCheckPath}'. Use a path such as '/healthz'.`,
      );
    }
    this.startCommands = startCommands;
    this.migrations = options.migrations ?? [];
    const unresolved = this.migrations.find((command) => Token.isUnresolved(command));
    if (unresolved !== undefined) {
      throw new ScaleStagesError(
        `AppSource migrations must be literal commands, not deploy-time values: the release they belong to is a hash of them; got '${unresolved}'. Read deploy-time values from the environment file (${ENV_FILE}) in the commands instead.`,
      );
    }
    this.assetPath = shipped.assetPath;
    this.containerImage = shipped.image;
    const content = this.assetPath && FileSystem.fingerprint(this.assetPath);
    const release = JSON.stringify([
      startCommands,
      this.migrations,
      this.port,
      this.healthCheckPath,
      content,
    ]);
    this.releaseId = crypto.createHash('sha256').update(release).digest('hex').slice(0, 16);
  }
}

function checkPort(prop: string, port: number): void {
  if (!Token.isUnresolved(port) && (!Number.isInteger(port) || port < 1 || port > 65535)) {
    throw new ScaleStagesError(`AppSource ${prop} must be a whole number from 1 to 65535; got ${port}.`);
  }
}

/**
 * Unpacks the demo's files, the folder assets/demo-app that `cdk deploy` uploads as an S3 asset, to
 * /opt/scale-stages/demo-app: the user data holds these few lines, not the programs (EC2 takes 16 KB).
 */
function installDemoFiles(): string[] {
  return [
    'dnf install -y nodejs unzip',
    `(set -a; . ${ENV_FILE}; set +a; aws s3 cp --only-show-errors "$APP_ASSET_URL" /tmp/demo-app.zip)`,
    'rm -rf /opt/scale-stages/demo-app && mkdir -p /opt/scale-stages/demo-app',
    'unzip -q /tmp/demo-app.zip -d /opt/scale-stages/demo-app && rm /tmp/demo-app.zip',
  ];
}

/** A systemd service that runs a demo program with the app's environment, started now and at boot. */
function demoService(name: string, description: string, program: string, settings: string[]): string[] {
  const unit = [
    '[Unit]',
    `Description=${description}`,
    'After=network-online.target',
    '[Service]',
    ...settings,
    `EnvironmentFile=${ENV_FILE}`,
    `ExecStart=/usr/bin/node /opt/scale-stages/demo-app/${program}`,
    'DynamicUser=yes',
    'Restart=always',
    '[Install]',
    'WantedBy=multi-user.target',
  ].join('\n');
  return [
    `cat > /etc/systemd/system/${name}.service <<'UNIT'\n${unit}\nUNIT`,
    'systemctl daemon-reload',
    `systemctl enable ${name}`,
    `systemctl restart ${name}`,
  ];
}
