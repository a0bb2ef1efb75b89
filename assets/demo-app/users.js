// The demo app's user-keyed data: each user's posts, at /api/users/<id>/posts (GET the newest 50, POST
// {"text": "..."} to add one). With ShardedDb (DATABASE_SHARD_HOSTS, DATABASE_SHARD_PORTS,
// DATABASE_SHARD_SECRET_ARNS, shard 0 first) every read and write goes to the one shard that holds the
// user's bucket (shards.js), by the shard map on shard 0, cached SHARD_MAP_TTL_SECONDS; while
// reshard.sh moves the user's bucket, reads go on and writes answer 503 with Retry-After. Without
// shards, the posts are in the app's database. The table is created on each database at first use.
'use strict';
const crypto = require('crypto');
const pg = require('./pg');
const { ShardMap } = require('./shards');

const env = process.env;
const TABLE = 'scale_stages_demo_posts';
/** The longest post, in characters. */
const MAX_TEXT = 500;
/** How long a client should wait before it writes a moving user's posts again. */
const RETRY_AFTER_SECONDS = 5;

const list = (name) => (env[name] ? env[name].split(',') : []);
/** The databases, by shard number: the shards, or the app's database as the only one. */
const databases = env.DATABASE_SHARD_HOSTS
  ? list('DATABASE_SHARD_HOSTS').map((host, i) => ({
      host,
      port: list('DATABASE_SHARD_PORTS')[i] || 5432,
      secretArn: list('DATABASE_SHARD_SECRET_ARNS')[i],
    }))
  : [{ host: env.DATABASE_HOST, port: env.DATABASE_PORT || 5432, secretArn: env.DATABASE_SECRET_ARN }];
const map = new ShardMap();
let tables;

/**
 * Runs `sql` on shard `shard`. The posts table is created first on every shard (once per process), as
 * migrations would: reshard.sh copies a user's rows only into a shard that has the table.
 */
async function onShard(shard, sql) {
  const database = databases[shard];
  if (!database) throw new Error(`the shard map names shard ${shard}, which this server does not know`);
  // Under a lock: servers starting together would race to create the table.
  const create =
    `BEGIN; SELECT pg_advisory_xact_lock(hashtext('${TABLE}')); CREATE TABLE IF NOT EXISTS ${TABLE} ` +
    '(user_id text NOT NULL, id uuid NOT NULL, body text NOT NULL, ' +
    'created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (user_id, id)); COMMIT;';
  tables = tables || Promise.all(databases.map((db) => pg.query({ ...db, sql: create })));
  tables.catch(() => (tables = undefined));
  await tables;
  return pg.query({ ...database, sql });
}

/** Where a user's posts are: `{ shard, moving }`. One database: always shard 0, never moving. */
async function route(userId) {
  if (databases.length === 1) return { shard: 0, moving: false };
  await map.load(async () => {
    try {
      const rows = await pg.query({
        ...databases[0],
        sql: 'SELECT bucket, shard, moving FROM scale_stages_shard_map',
      });
      return rows.map(([bucket, shard, moving]) => ({ bucket, shard, moving }));
    } catch (e) {
      // No map yet (reshard.sh init has not run): every bucket is on shard 0, as init would write it.
      if (e.code !== '42P01') throw e;
      return Array.from({ length: 1024 }, (_, bucket) => ({ bucket, shard: 0, moving: false }));
    }
  });
  return map.route(userId);
}

function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body) + '\n');
}

/** GET or POST /api/users/<id>/posts. */
async function posts(req, res, userId) {
  if (!databases[0].host || !databases[0].secretArn) {
    return send(res, 503, { error: 'posts need the database (DATABASE_HOST), which stage 10 adds' });
  }
  if (!/^[\w.@-]{1,64}$/.test(userId)) {
    return send(res, 400, { error: 'a user id is 1 to 64 letters, digits, _ . @ or -' });
  }
  try {
    const { shard, moving } = await route(userId);
    if (req.method === 'POST') {
      let body = '';
      for await (const chunk of req) if (body.length <= MAX_TEXT * 4) body += chunk;
      let text;
      try {
        text = JSON.parse(body).text;
      } catch {
        // Answered below.
      }
      if (typeof text !== 'string' || text.length < 1 || text.length > MAX_TEXT) {
        return send(res, 400, { error: `POST {"text": "..."} of 1 to ${MAX_TEXT} characters` });
      }
      if (moving) {
        const error = `user ${userId}'s posts are moving to another shard; write again in a few seconds`;
        return send(res, 503, { error }, { 'retry-after': String(RETRY_AFTER_SECONDS) });
      }
      const id = crypto.randomUUID();
      await onShard(
        shard,
        `INSERT INTO ${TABLE} (user_id, id, body) VALUES (${pg.literal(userId)}, '${id}', ${pg.literal(text)})`,
      );
      return send(res, 201, { id, shard });
    }
    if (req.method !== 'GET') return send(res, 405, { error: 'GET or POST' }, { allow: 'GET, POST' });
    const rows = await onShard(
      shard,
      `SELECT id, body, created_at FROM ${TABLE} WHERE user_id = ${pg.literal(userId)} ` +
        'ORDER BY created_at DESC, id LIMIT 50',
    );
    send(res, 200, { shard, posts: rows.map(([id, text, createdAt]) => ({ id, text, createdAt })) });
  } catch (error) {
    send(res, 503, { error: `the database is unavailable: ${error.message}` });
  }
}

module.exports = { posts };
