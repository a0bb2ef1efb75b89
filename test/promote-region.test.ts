import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

// The promotion runbook (README): runs its script against a stand-in `aws` that records each call and answers
// as the AWS CLI would: the order of the calls and their arguments are the runbook.

const SCRIPT = path.join(__dirname, '..', 'scripts', 'promote-region.sh');
const STUB = `#!/usr/bin/env bash
printf '%s\\n' "$*" >> "$AWS_CALLS"
case "$1 $2" in
  "cloudformation describe-stacks")
    case "$*" in
      *DatabaseReplicaId*) echo "\${REPLICA_ID-shop-replica-db}" ;;
      *DatabaseSecretArn*) echo "arn:aws:secretsmanager:eu-west-1:123456789012:secret:Db-AbCdEf" ;;
      *ShardReplicaIds*) echo "\${SHARD_IDS-None}" ;;
      *ShardSecretArns*) echo "\${SHARD_SECRETS-None}" ;;
    esac ;;
  "rds promote-read-replica") echo modifying ;;
  "rds wait") [ -z "\${WAIT_FAILS-}" ] || { echo "Waiter DBInstanceAvailable failed" >&2; exit 255; } ;;
  "secretsmanager stop-replication-to-replica") echo "arn:aws:secretsmanager:eu-west-1:123456789012:secret:Db-AbCdEf" ;;
  "rds modify-db-instance") echo modifying ;;
  "cloudfront describe-key-value-store") echo "arn:aws:cloudfront::123456789012:key-value-store/0123" ;;
  "cloudfront-keyvaluestore describe-key-value-store") echo "ETAG1" ;;
  "cloudfront-keyvaluestore put-key") echo 1 ;;
  *) echo "unexpected aws call: $*" >&2; exit 2 ;;
esac
`;

function promote(args: string[], env: Record<string, string> = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'promote-'));
  fs.writeFileSync(path.join(dir, 'aws'), STUB, { mode: 0o755 });
  const calls = path.join(dir, 'calls');
  const result = spawnSync('bash', [SCRIPT, ...args], {
    env: { PATH: `${dir}:${process.env.PATH}`, AWS_CALLS: calls, ...env },
    encoding: 'utf8',
  });
  const made = fs.existsSync(calls) ? fs.readFileSync(calls, 'utf8').trim().split('\n') : [];
  fs.rmSync(dir, { recursive: true, force: true });
  return { ...result, calls: made };
}

test('promotes the replica, frees the secret, turns on Multi-AZ and moves the writes, in that order', () => {
  const { status, calls, stdout } = promote(['Shop', 'eu-west-1']);
  expect(status).toBe(0);
  expect(calls).toEqual([
    "cloudformation describe-stacks --region eu-west-1 --stack-name Shop-eu-west-1 --query Stacks[0].Outputs[?OutputKey=='DatabaseReplicaId'].OutputValue --output text",
    "cloudformation describe-stacks --region eu-west-1 --stack-name Shop-eu-west-1 --query Stacks[0].Outputs[?OutputKey=='DatabaseSecretArn'].OutputValue --output text",
    "cloudformation describe-stacks --region eu-west-1 --stack-name Shop-eu-west-1 --query Stacks[0].Outputs[?OutputKey=='ShardReplicaIds'].OutputValue --output text",
    'rds promote-read-replica --region eu-west-1 --db-instance-identifier shop-replica-db --backup-retention-period 7 --output text --query DBInstance.DBInstanceStatus',
    'rds wait db-instance-available --region eu-west-1 --db-instance-identifier shop-replica-db',
    'secretsmanager stop-replication-to-replica --region eu-west-1 --secret-id arn:aws:secretsmanager:eu-west-1:123456789012:secret:Db-AbCdEf --output text --query ARN',
    'rds modify-db-instance --region eu-west-1 --db-instance-identifier shop-replica-db --multi-az --apply-immediately --output text --query DBInstance.DBInstanceStatus',
    'cloudfront describe-key-value-store --name Shop-routing --query KeyValueStore.ARN --output text',
    'cloudfront-keyvaluestore describe-key-value-store --kvs-arn arn:aws:cloudfront::123456789012:key-value-store/0123 --query ETag --output text',
    'cloudfront-keyvaluestore put-key --kvs-arn arn:aws:cloudfront::123456789012:key-value-store/0123 --if-match ETAG1 --key writer-region --value eu-west-1 --output text --query ItemCount',
  ]);
  expect(stdout).toContain('npx cdk deploy --all -c stage=10m -c writerRegion=eu-west-1');
});

test('a sharded database: promotes every shard replica, waits for each, frees every secret, before moving the writes', () => {
  const secret = (name: string) => `arn:aws:secretsmanager:eu-west-1:123456789012:secret:${name}`;
  const { status, calls } = promote(['Shop', 'eu-west-1'], {
    SHARD_IDS: 'shard1-db,shard2-db',
    SHARD_SECRETS: `${secret('S1-AbCdEf')},${secret('S2-AbCdEf')}`,
  });
  expect(status).toBe(0);
  const rds = calls.filter((c) => c.startsWith('rds') || c.startsWith('secretsmanager'));
  const verbs = rds.map((c) => c.split(' --')[0].replace(/^rds |^secretsmanager /, ''));
  const targets = rds.map((c) => /--(?:db-instance-identifier|secret-id) (\S+)/.exec(c)![1]);
  expect(verbs).toEqual([
    ...Array(3).fill('promote-read-replica'),
    ...Array(3).fill('wait db-instance-available'),
    ...Array(3).fill('stop-replication-to-replica'),
    ...Array(3).fill('modify-db-instance'),
  ]);
  const databases = ['shop-replica-db', 'shard1-db', 'shard2-db'];
  expect(targets).toEqual([
    ...databases,
    ...databases,
    secret('Db-AbCdEf'),
    secret('S1-AbCdEf'),
    secret('S2-AbCdEf'),
    ...databases,
  ]);
  expect(calls.findIndex((c) => c.includes('put-key'))).toBe(calls.length - 1);
});

test('refuses shard replicas without as many secrets, before promoting anything', () => {
  const { status, stderr, calls } = promote(['Shop', 'eu-west-1'], {
    SHARD_IDS: 'shard1-db,shard2-db',
    SHARD_SECRETS: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:S1-AbCdEf',
  });
  expect(status).toBe(1);
  expect(stderr).toContain('names 3 databases but 2 secrets; promoted nothing');
  expect(calls.some((c) => c.startsWith('rds'))).toBe(false);
});

test('calls nothing in the primary region: every call names the promoted region or is global', () => {
  const { calls } = promote(['Shop', 'eu-west-1']);
  for (const call of calls.filter((c) => !c.startsWith('cloudfront')))
    expect(call).toContain('--region eu-west-1');
});

test('stops before moving the writes when the database does not become available', () => {
  const { status, calls } = promote(['Shop', 'eu-west-1'], { WAIT_FAILS: '1' });
  expect(status).not.toBe(0);
  expect(calls.some((c) => c.includes('put-key'))).toBe(false);
  expect(calls.some((c) => c.includes('stop-replication-to-replica'))).toBe(false);
});

test('refuses a stack that is not a secondary region, and calls RDS not at all', () => {
  const { status, stderr, calls } = promote(['Shop', 'eu-west-1'], { REPLICA_ID: 'None' });
  expect(status).toBe(1);
  expect(stderr).toContain(
    'promote-region: stack Shop-eu-west-1 in eu-west-1 has no DatabaseReplicaId or DatabaseSecretArn output',
  );
  expect(calls.some((c) => c.startsWith('rds'))).toBe(false);
});

test('needs the app name and the region', () => {
  const { status, stderr } = promote(['Shop']);
  expect(status).not.toBe(0);
  expect(stderr).toContain('usage: scripts/promote-region.sh <appName> <region>');
});
