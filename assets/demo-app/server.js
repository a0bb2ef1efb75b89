// The cdk-scale-stages demo app: answers `/`, `/healthz` and `/api/status` (the path the example
// web client calls through CloudFront) and reports whether its database is reachable. From stage
// 100k it keeps its sessions in the cache (`/api/session`) and caches its status object with a TTL
// (cache-aside), so any server can answer any request. Plain Node.js with no dependencies, so it
// runs on a fresh server with only `node`.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const net = require('net');
const os = require('os');
const path = require('path');
const tls = require('tls');

const port = Number(process.env.APP_PORT || 80);
const dbHost = process.env.DATABASE_HOST;
const dbPort = Number(process.env.DATABASE_PORT || 5432);

/** How long a session lives in the cache after its last request. */
const SESSION_TTL_SECONDS = 1800;
/** How long the cached status object is served before it is computed again. */
const STATUS_TTL_SECONDS = 30;
/** How long a cache command may take before the connection is dropped. */
const CACHE_TIMEOUT_MS = 2000;

/** Resolves true when a TCP connection to the database opens within `timeoutMs`. */
function databaseReachable(timeoutMs = 1000) {
  if (!dbHost) return Promise.resolve(false);
  return new Promise((resolve) => {
    const socket = net.connect({ host: dbHost, port: dbPort });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
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
 * the next command connects again.
 */
class Cache {
  constructor(host, cachePort, token) {
    this.host = host;
    this.port = cachePort;
    this.token = token;
    this.socket = undefined;
    this.pending = [];
    this.buffer = Buffer.alloc(0);
  }

  command(...args) {
    if (!this.socket) this.connect();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => this.socket && this.socket.destroy(new Error(`cache did not answer in ${CACHE_TIMEOUT_MS} ms`)),
        CACHE_TIMEOUT_MS,
      );
      const settle = (fn) => (value) => {
        clearTimeout(timer);
        fn(value);
      };
      this.pending.push({ resolve: settle(resolve), reject: settle(reject) });
      this.socket.write(encodeCommand(args));
    });
  }

  connect() {
    const socket = tls.connect({
      host: this.host,
      port: this.port,
      servername: net.isIP(this.host) ? undefined : this.host,
    });
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    socket.on('data', (chunk) => this.receive(chunk));
    socket.on('error', () => {}); // 'close' follows and fails what is pending
    socket.on('close', (hadError) => {
      if (this.socket === socket) this.socket = undefined;
      const failed = this.pending.splice(0);
      for (const p of failed)
        p.reject(new Error(hadError ? 'cache connection failed' : 'cache connection closed'));
    });
    if (this.token) {
      // A wrong token fails every later command with NOAUTH, which callers see.
      this.pending.push({ resolve: () => {}, reject: () => {} });
      socket.write(encodeCommand(['AUTH', this.token]));
    }
  }

  receive(chunk) {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    let reply;
    while (this.buffer.length > 0 && (reply = parseReply(this.buffer, 0))) {
      this.buffer = this.buffer.subarray(reply.next);
      const p = this.pending.shift();
      if (!p) continue;
      if (reply.value instanceof Error) p.reject(reply.value);
      else p.resolve(reply.value);
    }
  }
}

/** The AUTH token, handed over by systemd as a credential (see AppSource.demo). */
function cacheAuthToken() {
  const dir = process.env.CREDENTIALS_DIRECTORY;
  if (!dir) return undefined;
  try {
    return fs.readFileSync(path.join(dir, 'cache-auth-token'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

const cache = process.env.CACHE_HOST
  ? new Cache(process.env.CACHE_HOST, Number(process.env.CACHE_PORT || 6379), cacheAuthToken())
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

function send(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body) + '\n');
}

const server = http.createServer(async (req, res) => {
  const route = new URL(req.url, 'http://localhost').pathname;
  if (route === '/' || route === '/healthz') {
    // The server is healthy when it answers; the database state is reported, not required, so
    // that a database failover does not make a load balancer take every server out of service.
    const reachable = await databaseReachable();
    return send(res, 200, {
      app: 'cdk-scale-stages demo',
      database: { configured: Boolean(dbHost), reachable },
    });
  }
  if (route === '/api/status') {
    const status = await cacheAside('demo:status', STATUS_TTL_SECONDS, async () => ({
      configured: Boolean(dbHost),
      reachable: await databaseReachable(),
      checkedAt: new Date().toISOString(),
    }));
    return send(res, 200, { app: 'cdk-scale-stages demo', database: status.value, cache: status.cache });
  }
  if (route === '/api/session') return session(req, res);
  res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
});

server.listen(port, () => console.log(`demo app listening on port ${server.address().port}`));
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    if (cache && cache.socket) cache.socket.destroy();
    server.close(() => process.exit(0));
  });
}
