// The demo app's PostgreSQL client, with no dependencies: one connection per query, TLS, the logins
// PostgreSQL offers, and the simple query protocol. Secrets come from Secrets Manager through the AWS
// CLI (the server's role). Errors never quote a password or a secret.
'use strict';
const crypto = require('crypto');
const { execFile } = require('child_process');
const fs = require('fs');
const net = require('net');
const tls = require('tls');

const env = process.env;
/** How long a database login and query may take. */
const DB_TIMEOUT_MS = 2000;

const sha256 = (data) => crypto.createHash('sha256').update(data).digest();
const hmac = (key, data) => crypto.createHmac('sha256', key).update(data).digest();
const md5 = (data) => crypto.createHash('md5').update(data).digest('hex');
const int32 = (n) => Buffer.from([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
/** A PostgreSQL protocol message: type byte (none for the first), length, body. */
const frame = (type, body = '') =>
  Buffer.concat([Buffer.from(type), int32(Buffer.byteLength(body) + 4), Buffer.from(body)]);

/** A text value as an SQL literal (standard_conforming_strings is on, PostgreSQL's default). */
function literal(value) {
  const text = String(value);
  if (text.includes('\0')) throw new Error('a value holds a NUL character');
  return `'${text.replace(/'/g, "''")}'`;
}

/**
 * Logs in to PostgreSQL at `host`:`port` as `cred` (a database secret) and runs `sql` (simple query
 * protocol: one or more statements); resolves the rows of its last result that has rows, each an
 * array of strings (null for NULL), or rejects with an error whose `code` is the SQLSTATE the server
 * sent. TLS: asked for always (SSLRequest), required unless the database is on this host (RDS forces
 * it), the certificate verified against Node's CAs plus DATABASE_CA_FILE (RDS's CA bundle). Logins:
 * SCRAM-SHA-256, md5 or cleartext, whichever the server asks for. `state.reachable` is set once the TCP
 * connection opens. Without `cred` it only opens the connection.
 */
async function pgQuery(cred, { host, port = 5432, sql, state = {} }) {
  let socket = net.connect({ host, port: Number(port) });
  let buf = Buffer.alloc(0);
  let failed;
  let wake = () => {};
  const listen = (s) =>
    s
      .on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        wake();
      })
      .on('error', (e) => {
        failed = failed || e;
        wake();
      })
      .on('close', () => {
        failed = failed || new Error('the database closed the connection');
        wake();
      });
  const read = async (n) => {
    while (buf.length < n) {
      if (failed) throw failed;
      await new Promise((resolve) => (wake = resolve));
    }
    const out = buf.subarray(0, n);
    buf = buf.subarray(n);
    return out;
  };
  const send = (type, body) => socket.write(frame(type, body));
  const timer = setTimeout(
    () => socket.destroy(new Error('the database did not answer in time')),
    DB_TIMEOUT_MS,
  );
  try {
    listen(socket);
    await new Promise((resolve) => socket.once('connect', resolve).once('close', resolve));
    if (failed) throw failed;
    state.reachable = true;
    if (!cred) return undefined;
    send('', int32(80877103)); // SSLRequest
    const ssl = (await read(1)).toString();
    if (ssl === 'S' && buf.length === 0) {
      socket.removeAllListeners('data');
      const ca = env.DATABASE_CA_FILE && fs.existsSync(env.DATABASE_CA_FILE);
      socket = tls.connect({
        socket,
        host,
        servername: net.isIP(host) ? undefined : host,
        ca: ca ? [...tls.rootCertificates, fs.readFileSync(env.DATABASE_CA_FILE, 'utf8')] : undefined,
      });
      listen(socket);
    } else if (ssl !== 'N' || !/^(127\.|::1$|localhost$)/.test(host)) {
      throw new Error('the database does not offer TLS');
    }
    const user = String(cred.username);
    const password = String(cred.password);
    const database = env.DATABASE_NAME || cred.dbname || 'postgres';
    send('', Buffer.concat([int32(196608), Buffer.from(`user\0${user}\0database\0${database}\0\0`)]));
    let nonce, first, serverSignature, rows, result;
    let queried = false;
    for (;;) {
      const head = await read(5);
      const type = String.fromCharCode(head[0]);
      const body = await read(head.readInt32BE(1) - 4);
      const text = body.toString('utf8', 4);
      if (type === 'E') {
        const fields = Object.fromEntries(
          body
            .toString()
            .split('\0')
            .map((f) => [f[0], f.slice(1)]),
        );
        throw Object.assign(new Error(`${fields.M} (SQLSTATE ${fields.C})`), { code: fields.C });
      } else if (type === 'T') {
        result = rows = [];
      } else if (type === 'D') {
        const row = [];
        for (let i = 0, at = 2; i < body.readInt16BE(0); i++) {
          const length = body.readInt32BE(at);
          row.push(length < 0 ? null : body.toString('utf8', at + 4, at + 4 + length));
          at += 4 + Math.max(length, 0);
        }
        rows.push(row);
      } else if (type === 'Z') {
        if (queried) break;
        queried = true;
        send('Q', sql + '\0');
      } else if (type === 'R') {
        const method = body.readInt32BE(0);
        if (method === 3) send('p', password + '\0');
        else if (method === 5)
          send(
            'p',
            'md5' + md5(Buffer.concat([Buffer.from(md5(password + user)), body.subarray(4, 8)])) + '\0',
          );
        else if (method === 10) {
          if (!body.toString().split('\0').includes('SCRAM-SHA-256'))
            throw new Error('the database offers no SCRAM-SHA-256 login');
          nonce = crypto.randomBytes(18).toString('base64');
          first = `n=,r=${nonce}`;
          send(
            'p',
            Buffer.concat([
              Buffer.from('SCRAM-SHA-256\0'),
              int32(first.length + 3),
              Buffer.from('n,,' + first),
            ]),
          );
        } else if (method === 11) {
          const { r, s, i } = Object.fromEntries(text.split(',').map((kv) => [kv[0], kv.slice(2)]));
          if (!r.startsWith(nonce)) throw new Error('the database sent a bad SCRAM nonce');
          const salted = crypto.pbkdf2Sync(password, Buffer.from(s, 'base64'), Number(i), 32, 'sha256');
          const clientKey = hmac(salted, 'Client Key');
          const final = `c=biws,r=${r}`;
          const message = `${first},${text},${final}`;
          const signature = hmac(sha256(clientKey), message);
          const proof = Buffer.from(clientKey.map((b, k) => b ^ signature[k])).toString('base64');
          serverSignature = hmac(hmac(salted, 'Server Key'), message).toString('base64');
          send('p', `${final},p=${proof}`);
        } else if (method === 12) {
          if (text !== `v=${serverSignature}`) throw new Error('the database failed the SCRAM check');
        } else if (method !== 0) throw new Error(`unsupported database login method ${method}`);
      }
    }
    send('X');
    socket.end();
    return result || [];
  } catch (e) {
    socket.destroy();
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Reads a secret's string with the AWS CLI (the server's role): a database secret or the cache's
 * AUTH token. Errors never quote the value.
 */
function readSecret(arn, what) {
  const args = ['secretsmanager', 'get-secret-value', '--secret-id', arn];
  if (env.AWS_REGION) args.push('--region', env.AWS_REGION);
  return new Promise((resolve, reject) =>
    execFile(
      'aws',
      [...args, '--query', 'SecretString', '--output', 'text'],
      { timeout: 10000 },
      (error, out) =>
        error
          ? reject(new Error(`could not read the ${what} secret: ${error.message.split('\n')[0]}`))
          : resolve(out.trim()),
    ),
  );
}

/** Each database secret (JSON with username and password), read once per ARN. */
const credentials = new Map();
function databaseSecret(arn) {
  if (!credentials.has(arn)) {
    const read = readSecret(arn, 'database').then((text) => {
      try {
        return JSON.parse(text);
      } catch {
        throw new Error('the database secret is not JSON'); // JSON.parse's message quotes the text
      }
    });
    read.catch(() => credentials.get(arn) === read && credentials.delete(arn));
    credentials.set(arn, read);
  }
  return credentials.get(arn);
}

/**
 * Runs `sql` on the database at `host`:`port` with the credentials of `secretArn`; when the login
 * fails with a cached secret, reads the secret again once (the password was rotated).
 */
async function query({ host, port, secretArn, sql, state }) {
  const cached = credentials.has(secretArn);
  try {
    return await pgQuery(await databaseSecret(secretArn), { host, port, sql, state });
  } catch (e) {
    if (!cached || !['28P01', '28000'].includes(e.code)) throw e;
    credentials.delete(secretArn);
    return pgQuery(await databaseSecret(secretArn), { host, port, sql, state });
  }
}

module.exports = { pgQuery, query, literal, readSecret };
