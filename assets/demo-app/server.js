// The cdk-scale-stages demo app: answers `/`, `/healthz` and `/api/status` (the path the example
// web client calls through CloudFront) and reports whether it can log in to its PostgreSQL
// database, and whether that is the primary or a replica (stage 10m's other regions). From stage 100k it
// keeps its sessions in the cache (`/api/session`) and caches its
// status object with a TTL (cache-aside), so any server can answer any request. From stage 1m
// `/api/uploads` signs browser uploads to the media bucket and `/api/feed` reads the feed from the
// DynamoDB store (with aws.js and feed.js beside it). `/api/users/<id>/posts` keeps each user's posts in
// the database, or with ShardedDb in the user's shard (users.js, pg.js, shards.js). Plain Node.js with
// no dependencies, so it runs on a fresh server with only `node`.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const net = require('net');
const os = require('os');
const path = require('path');
const tls = require('tls');
const pg = require('./pg');

const env = process.env;
const port = Number(env.APP_PORT || 80);
const dbHost = env.DATABASE_HOST;
const dbPort = Number(env.DATABASE_PORT || 5432);

/** How long a session lives in the cache after its last request. */
const SESSION_TTL_SECONDS = 1800;
/** How long the cached status object is served before it is computed again. */
const STATUS_TTL_SECONDS = 30;
/** How long a cache command may take before the connection is dropped. */
const CACHE_TIMEOUT_MS = 2000;
/** How long `/` and `/healthz` wait for the database check (load balancers give up after 5 s). */
const STATUS_WAIT_MS = 3000;

/** Reports whether the database is configured, reachable and lets the app log in and query. */
let checking;
let lastError;
function databaseStatus() {
  checking =
    checking ||
    (async () => {
      const state = { reachable: false };
      let authenticated = false;
      let role;
      if (dbHost) {
        try {
          const database = { host: dbHost, port: dbPort, state };
          const rows = await (env.DATABASE_SECRET_ARN
            ? pg.query({ ...database, secretArn: env.DATABASE_SECRET_ARN, sql: 'SELECT pg_is_in_recovery()' })
            : pg.pgQuery(undefined, database));
          authenticated = Boolean(env.DATABASE_SECRET_ARN);
          // A replica (stage 10m's other regions) reads; its writes go to WRITER_REGION.
          if (authenticated) role = rows[0][0] === 't' ? 'replica (read-only)' : 'primary';
          lastError = undefined;
        } catch (e) {
          if (e.message !== lastError) console.error(`database: ${(lastError = e.message)}`);
        }
      }
      return { configured: Boolean(dbHost), reachable: state.reachable, authenticated, role };
    })().finally(() => (checking = undefined));
  return checking;
}

/** A command in the cache's wire protocol (RESP). */
function encodeCommand(args) {
  return `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join('');
}

/** Parses one RESP2 reply at `start`: `{ value, next }`, or undefined while it is incomplete. */
function parseReply(buf, start) {
  const end = buf.indexOf('\r\n', start);
  if (end < 0) return undefined;
  const type = String.fromCharCode(buf[start]);
  const line = buf.toString('utf8', start + 1, end);
  const next = end + 2;
  switch (type) {
    case '+':
      return { value: line, next };
    case '-':
      return { value: new Error(`cache: ${line}`), next };
    case ':':
      return { value: Number(line), next };
    case '$': {
      const length = Number(line);
      if (length < 0) return { value: null, next };
      if (buf.length < next + length + 2) return undefined;
      return { value: buf.toString('utf8', next, next + length), next: next + length + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { value: null, next };
      const items = [];
      let at = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, at);
        if (!item) return undefined;
        items.push(item.value);
        at = item.next;
      }
      return { value: items, next: at };
    }
    default:
      throw new Error(`cache: unexpected reply type '${type}'`);
  }
}

/**
 * A minimal Valkey/Redis client: one TLS connection (ElastiCache requires TLS), authenticated with
 * the AUTH token, replies answered in order. A failed connection fails its pending commands and
 * the next command connects again. When the cache refuses the token (NOAUTH or WRONGPASS: it was
 * rotated), `readToken` reads the current one and the command is sent once more on a new connection.
 */
class Cache {
  constructor(host, cachePort, token, readToken) {
    this.host = host;
    this.port = cachePort;
    this.token = token;
    this.readToken = readToken;
    this.reading = undefined;
    this.socket = undefined;
    this.pending = [];
  }

  async command(...args) {
    const token = this.token;
    try {
      return await this.sendOnReplacedConnection(args);
    } catch (e) {
      if (!this.readToken || !/^cache: (NOAUTH|WRONGPASS)/.test(e.message)) throw e;
      // Commands that failed together read the secret once; one that failed with a token already
      // replaced only tries again.
      if (this.token === token) {
        if (!this.reading) {
          console.error('cache: the AUTH token was refused; reading the cache secret again');
          this.reading = this.readToken()
            .then((fresh) => {
              this.token = fresh;
              if (this.socket) this.socket.end();
              this.socket = undefined;
            })
            .finally(() => (this.reading = undefined));
        }
        await this.reading;
      }
      return this.send(args);
    }
  }

  /**
   * Sends a command; when the server has closed the connection under it (a failover, an idle
   * timeout, a killed client) before the app noticed, sends it once more on a new connection.
   */
  async sendOnReplacedConnection(args) {
    const reused = this.socket !== undefined;
    try {
      return await this.send(args);
    } catch (e) {
      if (!reused || !/^cache connection (closed|failed)$/.test(e.message)) throw e;
      return this.send(args);
    }
  }

  send(args) {
    if (!this.socket) this.connect();
    const { socket, pending } = this;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => socket.destroy(new Error(`cache did not answer in ${CACHE_TIMEOUT_MS} ms`)),
        CACHE_TIMEOUT_MS,
      );
      const settle = (fn) => (value) => {
        clearTimeout(timer);
        fn(value);
      };
      pending.push({ resolve: settle(resolve), reject: settle(reject) });
      socket.write(encodeCommand(args));
    });
  }

  /** A new connection with its own queue of replies to wait for; the old one may still finish. */
  connect() {
    const socket = tls.connect({
      host: this.host,
      port: this.port,
      servername: net.isIP(this.host) ? undefined : this.host,
    });
    const pending = [];
    let buffer = Buffer.alloc(0);
    this.socket = socket;
    this.pending = pending;
    socket.on('data', (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      let reply;
      while (buffer.length > 0 && (reply = parseReply(buffer, 0))) {
        buffer = buffer.subarray(reply.next);
        const p = pending.shift();
        if (!p) continue;
        if (reply.value instanceof Error) p.reject(reply.value);
        else p.resolve(reply.value);
      }
    });
    socket.on('error', () => {}); // 'close' follows and fails what is pending
    socket.on('close', (hadError) => {
      if (this.socket === socket) this.socket = undefined;
      for (const p of pending.splice(0))
        p.reject(new Error(hadError ? 'cache connection failed' : 'cache connection closed'));
    });
    if (this.token) {
      // A wrong token fails every later command with NOAUTH, which callers see.
      pending.push({ resolve: () => {}, reject: () => {} });
      socket.write(encodeCommand(['AUTH', this.token]));
    }
  }
}

/** The AUTH token at start, handed over by systemd as a credential (see AppSource.demo). */
function cacheAuthToken() {
  const dir = process.env.CREDENTIALS_DIRECTORY;
  if (!dir) return undefined;
  try {
    return fs.readFileSync(path.join(dir, 'cache-auth-token'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

const cache = env.CACHE_HOST
  ? new Cache(
      env.CACHE_HOST,
      Number(env.CACHE_PORT || 6379),
      cacheAuthToken(),
      env.CACHE_SECRET_ARN && (() => pg.readSecret(env.CACHE_SECRET_ARN, 'cache')),
    )
  : undefined;

/**
 * Cache-aside: the cached value of `key` if there is one, else `compute()`, stored with a TTL. The
 * cache speeds things up but is never required: when it fails, the value is computed.
 */
async function cacheAside(key, ttlSeconds, compute) {
  if (!cache) return { value: await compute(), cache: 'off' };
  try {
    const hit = await cache.command('GET', key);
    if (hit !== null) return { value: JSON.parse(hit), cache: 'hit' };
  } catch {
    return { value: await compute(), cache: 'unavailable' };
  }
  const value = await compute();
  await cache.command('SET', key, JSON.stringify(value), 'EX', ttlSeconds).catch(() => {});
  return { value, cache: 'miss' };
}

/** The session id from the request's `sid` cookie, if it looks like one of ours. */
function sessionId(req) {
  const match = /(?:^|;\s*)sid=([0-9a-f-]{36})(?:;|$)/.exec(req.headers.cookie || '');
  return match ? match[1] : undefined;
}

/** Counts the visits of a session kept in the cache, so that any server can answer. */
async function session(req, res) {
  if (!cache) {
    return send(res, 503, { error: 'sessions need the cache (CACHE_HOST), which stage 100k adds' });
  }
  try {
    let id = sessionId(req);
    const stored = id ? await cache.command('GET', `session:${id}`) : null;
    const data = stored ? JSON.parse(stored) : { visits: 0, createdAt: new Date().toISOString() };
    if (!stored) id = crypto.randomUUID();
    data.visits += 1;
    await cache.command('SET', `session:${id}`, JSON.stringify(data), 'EX', SESSION_TTL_SECONDS);
    res.setHeader(
      'set-cookie',
      `sid=${id}; Path=/; Max-Age=${SESSION_TTL_SECONDS}; HttpOnly; Secure; SameSite=Lax`,
    );
    send(res, 200, { session: data, server: os.hostname() });
  } catch (error) {
    send(res, 503, { error: `the cache is unavailable: ${error.message}` });
  }
}

/** The largest upload the signed form allows (its policy's content-length-range). */
const UPLOAD_MAX_BYTES = 10 * 1024 * 1024;

/**
 * Stage 1m: signs a form (S3 presigned POST) with which the browser uploads one image straight to
 * the media bucket, under uploads/, so that the upload never passes through the servers; S3 then
 * notifies the job queue and a worker makes the thumbnail. aws.js is loaded only here.
 */
async function uploads(req, res) {
  if (!env.MEDIA_BUCKET || !env.JOB_QUEUE_URL) {
    return send(res, 503, { error: 'uploads need MEDIA_BUCKET and JOB_QUEUE_URL, which stage 1m adds' });
  }
  let body = '';
  for await (const chunk of req) if (body.length < 1000) body += chunk;
  let type;
  try {
    type = JSON.parse(body).contentType;
  } catch {
    // Answered below.
  }
  if (req.method !== 'POST' || !/^image\/(png|jpeg|gif|webp|avif)$/.test(type)) {
    return send(res, 400, { error: 'POST {"contentType": "image/png"} (or jpeg, gif, webp, avif)' });
  }
  try {
    const form = await require('./aws').presignedPost(env.MEDIA_BUCKET, 'uploads/', {
      maxBytes: UPLOAD_MAX_BYTES,
      contentTypePrefix: 'image/',
      contentType: type,
      expiresSeconds: 300,
    });
    send(res, 200, { ...form, maxBytes: UPLOAD_MAX_BYTES });
  } catch (error) {
    send(res, 503, { error: `could not sign the upload: ${error.message}` });
  }
}

/**
 * Stage 1m: the newest items of the feed, read from this region's replica of the store (feed.js).
 * At stage 10m each region's workers write their own items and DynamoDB replicates them to every
 * region, usually within a second or two: a reader sees its own region's items at once and the
 * others' after that (eventual consistency).
 */
async function feed(res) {
  if (!env.STORE_TABLE_NAME) {
    return send(res, 503, { error: 'the feed needs the store (STORE_TABLE_NAME), which stage 1m adds' });
  }
  try {
    const items = await require('./feed').newestFeedItems(20);
    send(res, 200, { region: env.AWS_REGION, consistency: 'eventual', items });
  } catch (error) {
    send(res, 503, { error: `the store is unavailable: ${error.message}` });
  }
}

function send(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body) + '\n');
}

const server = http.createServer(async (req, res) => {
  const route = new URL(req.url, 'http://localhost').pathname;
  if (route === '/' || route === '/healthz') {
    // The server is healthy when it answers; the database state is reported, not required, so
    // that a database failover does not make a load balancer take every server out of service.
    const database = await Promise.race([
      databaseStatus(),
      new Promise((resolve) =>
        setTimeout(resolve, STATUS_WAIT_MS, {
          configured: Boolean(dbHost),
          reachable: false,
          authenticated: false,
        }),
      ),
    ]);
    return send(res, 200, { app: 'cdk-scale-stages demo', database });
  }
  if (route === '/api/status') {
    const status = await cacheAside('demo:status', STATUS_TTL_SECONDS, async () => ({
      ...(await databaseStatus()),
      checkedAt: new Date().toISOString(),
    }));
    // Stage 10m: which region answered, and which one takes the writes.
    const region = env.AWS_REGION && {
      region: env.AWS_REGION,
      writerRegion: env.WRITER_REGION || env.AWS_REGION,
    };
    return send(res, 200, {
      app: 'cdk-scale-stages demo',
      ...region,
      database: status.value,
      cache: status.cache,
    });
  }
  if (route === '/api/session') return session(req, res);
  if (route === '/api/uploads') return uploads(req, res);
  if (route === '/api/feed') return feed(res);
  // A user's posts, on the shard that holds the user (users.js); the id as it is in the path.
  const userPosts = /^\/api\/users\/([^/]+)\/posts$/.exec(route);
  if (userPosts) return require('./users').posts(req, res, userPosts[1]);
  res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
});

server.listen(port, () => console.log(`demo app listening on port ${server.address().port}`));
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    if (cache && cache.socket) cache.socket.destroy();
    server.close(() => process.exit(0));
  });
}
