import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { RELEASE_METADATA_KEY } from '../../lib/private/releases';
import { FakeDeployment, FAKE_REGION } from './userdata';

/**
 * A boot harness for the servers' user data: it runs the rendered script under bash on this
 * machine, in a fake Amazon Linux 2023 instance, with stubs for what talks to AWS or the hardware.
 *
 * Isolation: every boot runs `sandbox.sh` under `unshare --mount --net`, which builds a chroot
 * from the instance's disk (a temporary directory) in a private mount namespace with no network.
 * The script's absolute paths (/etc/fstab, /opt/aws/bin, /dev/disk/by-id, /data ...) are the
 * chroot's, never this machine's; the host's /usr/lib and /usr/share are mounted read-only, and
 * the only programs on PATH are the stubs plus an allow-list of host tools that AL2023 also ships.
 */

const STUBS = path.join(__dirname, 'stubs');
const SANDBOX = path.join(__dirname, 'sandbox.sh');

/**
 * Host programs the instance may run as they are. AL2023 ships them too: even its minimal
 * container image has bash, coreutils, grep, sed, gawk, gzip, tar and findutils (the `rpm -qa` in
 * amazonlinux/amazon-linux-2023 issue 585), util-linux and diffutils are in every AL2023 AMI, and
 * dnf 4 is written in Python, so python3 is always there. (awk here is Debian's mawk standing in
 * for gawk.) A script that calls anything else fails with "command not found", as it should until
 * someone checks that AL2023 has it and adds it here.
 */
const HOST_TOOLS = [
  ...'arch base32 base64 basename cat chgrp chmod chown cksum comm cp cut date dd df dirname du echo env expand expr false fmt fold head id install join link ln ls md5sum mkdir mkfifo mknod mktemp mv nice nl nohup nproc od paste printenv printf pwd readlink realpath rm rmdir seq sha256sum sha512sum shuf sort split stat stdbuf tac tail tee test timeout touch tr true truncate tsort tty uname uniq unlink wc whoami yes ['.split(
    ' ',
  ),
  ...'bash grep egrep fgrep sed awk gzip gunzip zcat tar unzip find xargs getent flock setpriv findmnt cmp diff which hostname logger'.split(
    ' ',
  ),
];

/** Packages the AL2023 standard AMI has installed (dnf says "already installed"). */
const AMI_PACKAGES = [
  // AL2023 User Guide, "AWS CLI v2": awscli-2 is installed on the AL2023 AMI.
  'awscli-2',
  // AL2023 User Guide, "Package changes for curl and libcurl": curl-minimal is the AMI's curl.
  'curl-minimal',
  'python3',
  'sudo',
  'cloud-init',
  'systemd',
  'dnf',
  'util-linux',
  'xfsprogs',
  'nvme-cli',
  'amazon-ec2-utils',
  'amazon-ssm-agent',
  'coreutils',
  'bash',
];

/** Packages the AL2023 repositories offer (dnf installs them). */
const REPO_PACKAGES = [
  // In the AL2023 repositories (amazonlinux/amazon-linux-2023 issue 46) but not on the AMI (issue 768).
  'aws-cfn-bootstrap',
  'nodejs',
  'nodejs20',
  'nodejs22',
  'unzip',
  'docker',
  'postgresql15',
  'postgresql15-server',
  'postgresql16',
  'postgresql16-server',
  'jq',
  'git',
];

/** One recorded call of a stubbed command. */
export interface Call {
  /** The boot's virtual clock when the call was made, in seconds. */
  readonly at: number;
  /** The user the command ran as (sudo/runuser change it). */
  readonly user: string;
  readonly command: string;
  readonly args: string[];
}

/** One `cfn-signal` the instance sent. */
export interface CfnSignal {
  readonly at: number;
  readonly stack?: string;
  readonly resource?: string;
  readonly region?: string;
  readonly exitCode?: number;
  /** A wait condition handle's URL, for a signal to a wait condition instead of a resource. */
  readonly url?: string;
}

export interface BootResult {
  /** Which boot of the instance this was (1 is the first). */
  readonly boot: number;
  /** The user data script's exit status (90: the boot stopped in emergency mode before it ran). */
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly calls: Call[];
  readonly signals: CfnSignal[];
  /** What systemd logged while booting (fstab mounts, units that failed to start). */
  readonly systemLog: string;
  /** Why the boot stopped before the user data ran, if it did. */
  readonly blocked?: string;
}

/** An EBS volume attached to the instance, appearing as an NVMe device `delaySeconds` into the boot. */
export interface AttachedVolume {
  readonly volumeId: string;
  readonly delaySeconds?: number;
}

export interface MachineOptions {
  /** The fake deployment the user data comes from (secrets, region). */
  readonly deployment: FakeDeployment;
  readonly attachedVolumes?: readonly AttachedVolume[];
  readonly instanceId?: string;
}

let image: string | undefined;

/** Builds (once per process) the read-only image: allowed host tools, stubs and harness files. */
function harnessImage(): string {
  if (image) return image;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scale-stages-boot-image-'));
  const bin = path.join(dir, 'usr', 'bin');
  const harness = path.join(dir, 'harness');
  fs.mkdirSync(bin, { recursive: true });
  fs.mkdirSync(path.join(harness, 'bin'), { recursive: true });
  const copy = (from: string, to: string) => {
    fs.copyFileSync(fs.realpathSync(from), to);
    fs.chmodSync(to, 0o755);
  };
  for (const tool of HOST_TOOLS) {
    const from = path.join('/usr/bin', tool);
    if (!fs.existsSync(from)) throw new Error(`the boot harness needs ${from} on this machine`);
    copy(from, path.join(bin, tool));
  }
  // AL2023's /bin/sh is bash; python3 keeps its versioned name so it finds its standard library.
  fs.symlinkSync('bash', path.join(bin, 'sh'));
  const python = path.basename(fs.realpathSync('/usr/bin/python3'));
  copy('/usr/bin/python3', path.join(bin, python));
  fs.symlinkSync(python, path.join(bin, 'python3'));
  for (const stub of fs.readdirSync(path.join(STUBS, 'bin'))) {
    copy(path.join(STUBS, 'bin', stub), path.join(bin, stub));
  }
  for (const file of fs.readdirSync(path.join(STUBS, 'harness'))) {
    copy(path.join(STUBS, 'harness', file), path.join(harness, file));
  }
  // The real mount and mountpoint, for the stubs (not on the instance's PATH).
  copy('/usr/bin/mount', path.join(harness, 'bin', 'mount'));
  copy('/usr/bin/mountpoint', path.join(harness, 'bin', 'mountpoint'));
  fs.writeFileSync(path.join(harness, 'repo-packages'), `${REPO_PACKAGES.join('\n')}\n`);
  image = dir;
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Fails with what to do when this machine cannot create the sandbox (needs root and util-linux). */
export function assertSandboxWorks(): void {
  const probe = spawnSync('unshare', ['--mount', '--net', '--', 'mount', '-t', 'tmpfs', 'tmpfs', '/mnt'], {
    encoding: 'utf8',
  });
  if (probe.error || probe.status !== 0) {
    throw new Error(
      'The boot harness runs user data in a private mount and network namespace: it needs root and ' +
        `util-linux's unshare, chroot (coreutils) and mount. unshare failed: ${probe.error?.message ?? probe.stderr}`,
    );
  }
}

/** The mount points under a directory, as this process's mount namespace sees them. */
function mountsUnder(dir: string): string[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((point) => point && (point === dir || point.startsWith(`${dir}/`)));
}

/** A fake AL2023 instance: its disk persists from boot to boot, like an EBS root volume. */
export class Machine {
  public static create(options: MachineOptions): Machine {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'scale-stages-boot-'));
    const dirs = [
      'usr/bin',
      'usr/lib',
      'usr/lib64',
      'usr/share',
      'usr/local/bin',
      'usr/local/sbin',
      'etc/systemd/system',
      'opt',
      'var/lib/cloud/instance/scripts',
      'var/log',
      'root',
      'home/ec2-user',
      'dev',
      'proc',
      'run',
      'tmp',
      '.harness-image',
      '.harness/config',
      '.harness/log',
      '.harness/pkgs',
      '.harness/ebs',
      '.harness/systemd/enabled',
      '.harness/systemd/units',
    ];
    for (const dir of dirs) fs.mkdirSync(path.join(root, dir), { recursive: true });
    for (const [link, target] of [
      ['bin', 'usr/bin'],
      ['sbin', 'usr/bin'],
      ['lib', 'usr/lib'],
      ['lib64', 'usr/lib64'],
      ['usr/sbin', 'bin'],
    ]) {
      fs.symlinkSync(target, path.join(root, link));
    }
    const write = (file: string, text: string) => fs.writeFileSync(path.join(root, file), text);
    // What the AL2023 AMI has in /etc that the scripts touch.
    write(
      'etc/os-release',
      'NAME="Amazon Linux"\nVERSION="2023"\nID="amzn"\nID_LIKE="fedora"\nVERSION_ID="2023"\nPLATFORM_ID="platform:al2023"\nPRETTY_NAME="Amazon Linux 2023"\n',
    );
    write(
      'etc/fstab',
      '#\nUUID=6f1b5c2e-7d1a-4c4f-9d55-8a2f1c3e9b10     /           xfs    defaults,noatime  1   1\n' +
        'UUID=A1B2-C3D4        /boot/efi       vfat    defaults,noatime,uid=0,gid=0,umask=0077,shortname=winnt,x-systemd.automount 0 2\n',
    );
    write(
      'etc/passwd',
      'root:x:0:0:root:/root:/bin/bash\nbin:x:1:1:bin:/bin:/sbin/nologin\ndaemon:x:2:2:daemon:/sbin:/sbin/nologin\n' +
        'nobody:x:65534:65534:Kernel Overflow User:/:/sbin/nologin\nec2-user:x:1000:1000:EC2 Default User:/home/ec2-user:/bin/bash\n',
    );
    write(
      'etc/group',
      'root:x:0:\nbin:x:1:\ndaemon:x:2:\nwheel:x:10:ec2-user\nnobody:x:65534:\nec2-user:x:1000:\n',
    );
    write('etc/nsswitch.conf', 'passwd: files\ngroup: files\nhosts: files\n');
    write('etc/hosts', '127.0.0.1 localhost\n');
    if (fs.existsSync('/etc/ld.so.cache'))
      fs.copyFileSync('/etc/ld.so.cache', path.join(root, 'etc/ld.so.cache'));
    for (const pkg of AMI_PACKAGES) write(`.harness/pkgs/${pkg}`, `${pkg}\n`);
    write('.harness/boot', '0\n');
    write('.harness/config/region', `${FAKE_REGION}\n`);
    write('.harness/config/instance-id', `${options.instanceId ?? 'i-0123456789abcdef0'}\n`);
    write(
      '.harness/config/attached',
      (options.attachedVolumes ?? []).map((v) => `${v.volumeId} ${v.delaySeconds ?? 0}\n`).join(''),
    );
    write(
      '.harness/config/secrets',
      [...options.deployment.secrets()].map(([arn, value]) => `${arn}\t${value}\n`).join(''),
    );
    // The S3 objects `aws s3 cp` can download: the stack's assets, as `cdk deploy` uploads them.
    fs.mkdirSync(path.join(root, '.harness/objects'));
    const objects = [...options.deployment.objects].map(([url, body], i) => {
      fs.writeFileSync(path.join(root, `.harness/objects/${i}`), body);
      return `${url}\t/.harness/objects/${i}\n`;
    });
    write('.harness/config/objects', objects.join(''));
    const machine = new Machine(root);
    // The releases the servers read with cfn-get-metadata (lib/private/releases.ts).
    machine.update(options.deployment);
    return machine;
  }

  private bootCount = 0;

  private constructor(public readonly root: string) {}

  /** This machine's path of a path on the instance. */
  public path(instancePath: string): string {
    return path.join(this.root, instancePath);
  }

  public read(instancePath: string): string {
    return fs.readFileSync(this.path(instancePath), 'utf8');
  }

  public exists(instancePath: string): boolean {
    return fs.existsSync(this.path(instancePath));
  }

  /** Changes which volumes are attached (and when they appear) from the next boot on. */
  public attach(volumes: readonly AttachedVolume[]): void {
    fs.writeFileSync(
      this.path('.harness/config/attached'),
      volumes.map((v) => `${v.volumeId} ${v.delaySeconds ?? 0}\n`).join(''),
    );
  }

  /**
   * Boots the instance: with a script, cloud-init stores it as the user data's shell part (a new
   * instance, or user data changed while the instance was stopped); without one, the stored part
   * runs again, as `scripts-user` with `always` does at every boot.
   */
  public boot(script?: string, faults: readonly string[] = []): BootResult {
    const part = this.path('var/lib/cloud/instance/scripts/part-001');
    if (script !== undefined) {
      fs.writeFileSync(part, script);
      fs.chmodSync(part, 0o700);
    } else if (!fs.existsSync(part)) {
      throw new Error('the first boot needs the user data script');
    }
    return this.start(faults);
  }

  /**
   * Runs `command` as root on the running instance, as a daemon such as cfn-hup runs its hooks: the
   * instance as its last boot left it (mounts and enabled services up), without running the user data.
   * Its result counts as a boot of its own in the logs.
   */
  public run(command: string, faults: readonly string[] = []): BootResult {
    if (!fs.existsSync(this.path('var/lib/cloud/instance/scripts/part-001'))) {
      throw new Error('a command runs on a booted instance: boot it first');
    }
    fs.writeFileSync(this.path('.harness/exec'), command);
    return this.start(faults);
  }

  /** A stack update to `deployment`'s template: the instance's metadata (releases) becomes its. */
  public update(deployment: FakeDeployment): void {
    for (const id of deployment.idsWithMetadata(RELEASE_METADATA_KEY)) {
      this.setMetadata(id, RELEASE_METADATA_KEY, deployment.metadata(id, RELEASE_METADATA_KEY));
    }
  }

  /** Sets a top-level key of a resource's metadata, which cfn-get-metadata reads. */
  public setMetadata(resource: string, key: string, value: unknown): void {
    fs.mkdirSync(this.path('.harness/config/metadata'), { recursive: true });
    fs.writeFileSync(this.path(`.harness/config/metadata/${resource}.${key}.json`), JSON.stringify(value));
  }

  private start(faults: readonly string[]): BootResult {
    this.bootCount += 1;
    const boot = this.bootCount;
    fs.writeFileSync(this.path('.harness/boot'), `${boot}\n`);
    fs.writeFileSync(this.path('.harness/config/faults'), faults.map((f) => `${f}\n`).join(''));
    const run = spawnSync('unshare', ['--mount', '--net', '--', 'bash', SANDBOX, this.root, harnessImage()], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    if (run.error) throw run.error;
    const log = (suffix: string) => {
      const file = this.path(`.harness/log/boot-${boot}.${suffix}`);
      return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    };
    const calls = log('calls')
      .split('\x1e\n')
      .filter((record) => record.length > 0)
      .map((record) => {
        const [at, user, command, ...args] = record.split('\x1f');
        return { at: Number(at), user, command, args };
      });
    return {
      boot,
      status: run.status,
      stdout: run.stdout,
      stderr: run.stderr,
      calls,
      signals: calls.filter((call) => call.command === 'cfn-signal').map(parseSignal),
      systemLog: log('system'),
      blocked: log('blocked') || undefined,
    };
  }

  /** The SQL each psql call of a boot ran. */
  public psqlInputs(boot: number): string[] {
    const dir = this.path('.harness/log');
    return fs
      .readdirSync(dir)
      .filter((file) => file.startsWith(`boot-${boot}.psql-`))
      .sort()
      .map((file) => fs.readFileSync(path.join(dir, file), 'utf8'));
  }

  /** Deletes the instance's disk, after checking no mount of a boot leaked into this namespace. */
  public destroy(): void {
    const leaked = mountsUnder(this.root);
    if (leaked.length > 0) {
      throw new Error(
        `mounts of a boot leaked into the host namespace, not deleting ${this.root}: ${leaked.join(', ')}`,
      );
    }
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

function parseSignal(call: Call): CfnSignal {
  const option = (...names: string[]) => {
    const index = call.args.findIndex((arg) => names.includes(arg));
    return index >= 0 ? call.args[index + 1] : undefined;
  };
  const exitCode = option('-e', '--exit-code');
  // The one argument that is neither an option nor an option's value.
  const url = call.args.find(
    (arg, i) => !arg.startsWith('-') && (i === 0 || !call.args[i - 1].startsWith('-')),
  );
  return {
    at: call.at,
    stack: option('--stack'),
    resource: option('--resource'),
    region: option('--region'),
    exitCode: exitCode === undefined ? undefined : Number(exitCode),
    ...(url === undefined ? {} : { url }),
  };
}

/** The commands of a boot, as `command arg...` lines, for readable assertions and failure output. */
export function commandLines(result: BootResult, command?: string): string[] {
  return result.calls
    .filter((call) => command === undefined || call.command === command)
    .map((call) => [call.command, ...call.args].join(' '));
}

/** A one-line-per-fact summary of a boot, for failure messages. */
export function describeBoot(result: BootResult): string {
  return [
    `boot ${result.boot}: exit ${result.status}${result.blocked ? ` (blocked: ${result.blocked.trim()})` : ''}`,
    `stderr:\n${result.stderr}`,
    `system log:\n${result.systemLog}`,
    `calls:\n${commandLines(result).join('\n')}`,
  ].join('\n');
}
