import * as fs from 'fs';
import { Template } from 'aws-cdk-lib/assertions';
import { assertSandboxWorks, Machine } from './harness';
import { hostFingerprint } from './servers';
import { FakeDeployment } from './userdata';

/** Proves the boot sandbox keeps user data away from this machine's /etc, /opt, /dev and network. */
const hostBefore = hostFingerprint();
let machine: Machine;

beforeAll(() => {
  assertSandboxWorks();
  machine = Machine.create({ deployment: new FakeDeployment(Template.fromJSON({ Resources: {} })) });
});

afterAll(() => machine?.destroy());

const HOSTILE = `#!/bin/bash
set -u
echo 'UUID=1234 /data xfs defaults 0 2' >> /etc/fstab
echo 'intruder:x:0:0::/:/bin/bash' >> /etc/passwd
mkdir -p /opt/aws/bin /data /etc/scale-stages /var/lib/cloud
touch /opt/aws/bin/marker /data/marker /etc/scale-stages/marker /dev/disk/by-id/marker
touch /usr/bin/marker 2> /dev/null && echo 'usr/bin writable'
touch /usr/lib/marker 2> /dev/null && echo 'usr/lib writable'
(exec 3<> /dev/tcp/169.254.169.254/80) 2> /dev/null && echo 'network reachable'
(exec 3<> /dev/tcp/127.0.0.1/22) 2> /dev/null && echo 'host loopback reachable'
command -v apt-get > /dev/null && echo 'host tools on PATH'
exit 0
`;

test('a boot that writes everywhere changes only the fake instance', () => {
  const result = machine.boot(HOSTILE);
  expect({ status: result.status, stdout: result.stdout }).toEqual({ status: 0, stdout: '' });
  // The writes happened, inside the instance.
  expect(machine.read('etc/fstab')).toContain('UUID=1234 /data xfs');
  for (const file of ['opt/aws/bin/marker', 'data/marker', 'etc/scale-stages/marker']) {
    expect(machine.exists(file)).toBe(true);
  }
  // Nothing of it reached this machine.
  expect(hostFingerprint()).toEqual(hostBefore);
  expect(fs.readFileSync('/etc/fstab', 'utf8')).not.toContain('UUID=1234');
  expect(fs.existsSync('/usr/bin/marker')).toBe(false);
});

test('the boot mounts vanish with the boot', () => {
  machine.boot();
  const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  expect(mounts).not.toContain(machine.root);
});
