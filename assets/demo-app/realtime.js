// The cdk-scale-stages demo realtime service: a WebSocket server (RFC 6455) at `/ws/feed` that the
// load balancer sends the path prefix `/ws/*` to, beside the web server. Each browser keeps one
// connection open and is told at once when a new thumbnail enters the feed, instead of polling
// `/api/feed`: with the store (STORE_TABLE_NAME), one poll of the feed per process, not per
// connection, every REALTIME_POLL_SECONDS, and every item it has not seen before is broadcast to
// every connection. The connections are long-lived, so the server keeps them alive through the load
// balancer (pings), drops the ones whose client is gone (no pongs), and on SIGTERM (a deploy, a
// scale-in) closes each with 1001 "going away" so that the client reconnects to another server,
// rather than waiting for the instance to vanish under it. The conversation is JSON text: the
// server says `{"type":"hello",...}` first, answers `{"type":"echo","text":...}` with the same, and
// anything else with `{"type":"error",...}`. Plain Node.js with no dependencies: the handshake and
// the framing are written out here (http's `upgrade` event and crypto), with the sections of
// RFC 6455 they follow.
'use strict';
const crypto = require('crypto');
const http = require('http');
const os = require('os');
const { TextDecoder } = require('util');
const feed = require('./feed');

const env = process.env;
const storeTable = env.STORE_TABLE_NAME;
const pollSeconds = Number(env.REALTIME_POLL_SECONDS || 5);
/**
 * Below the load balancer's idle timeout (60 s unless configured; Elastic Load Balancing,
 * Application Load Balancers, "Edit load balancer attributes", "Connection idle timeout"), which
 * closes a connection that carried no data that long: a ping is data.
 */
const pingSeconds = Number(env.REALTIME_PING_SECONDS || 30);
const drainSeconds = Number(env.REALTIME_DRAIN_SECONDS || 20);

/** The path of the WebSocket endpoint. */
const PATH = '/ws/feed';
/** The GUID every server appends to the client's key (RFC 6455 section 1.3). */
const ACCEPT_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
/** The largest message, after reassembly of its fragments, the server takes (larger: 1009). */
const MAX_MESSAGE_BYTES = 64 * 1024;
/** A client that lets this much pile up unsent (it does not read) is dropped. */
const MAX_BUFFERED_BYTES = 1024 * 1024;
/** Missed pings in a row after which a connection is taken for dead. */
const MISSED_PINGS = 2;
/** How many of the newest feed items each poll reads, from today's and yesterday's partitions. */
const POLL_ITEMS = 20;
const POLL_DAYS = 2;

// Opcodes (section 5.2) and close codes (section 7.4.1).
const CONTINUATION = 0x0;
const TEXT = 0x1;
const BINARY = 0x2;
const CLOSE = 0x8;
const PING = 0x9;
const PONG = 0xa;
const GOING_AWAY = 1001;
const PROTOCOL_ERROR = 1002;
const INVALID_DATA = 1007;
const TOO_BIG = 1009;

const utf8 = new TextDecoder('utf-8', { fatal: true });
const hostname = os.hostname();
/** The open connections (until their socket closes). */
const connections = new Set();
let draining = false;

/** One server frame (section 5.2): FIN set, never masked (section 5.1), the length in 7, 16 or 64 bits. */
function frame(opcode, payload) {
  const length = payload.length;
  const header = Buffer.alloc(length < 126 ? 2 : length < 65536 ? 4 : 10);
  header[0] = 0x80 | opcode;
  if (length < 126) header[1] = length;
  else if (length < 65536) {
    header[1] = 126;
    header.writeUInt16BE(length, 2);
  } else {
    header[1] = 127;
    header.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    header.writeUInt32BE(length >>> 0, 6);
  }
  return Buffer.concat([header, payload]);
}

/** A close frame's payload: the code in 16 bits, then a UTF-8 reason (section 5.5.1). */
function closePayload(code, reason = '') {
  const payload = Buffer.alloc(2 + Buffer.byteLength(reason));
  payload.writeUInt16BE(code, 0);
  payload.write(reason, 2);
  return payload;
}

/** Close codes a peer may send (section 7.4.1; 1004, 1005, 1006 and 1015 never go on the wire). */
const validCloseCode = (code) =>
  (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);

/** One WebSocket connection after the handshake: parses the client's frames and answers them. */
class Connection {
  constructor(socket) {
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    /** The fragments of the message being received, and its opcode (section 5.4). */
    this.fragments = [];
    this.fragmentBytes = 0;
    this.messageOpcode = undefined;
    this.missedPings = 0;
    /** When this server sent its close frame; after it, no data frames (section 5.5.1). */
    this.closeSentAt = undefined;
    /** Set once the client's close came, or the connection failed: what follows is dropped. */
    this.done = false;
  }

  get open() {
    return this.closeSentAt === undefined && !this.socket.destroyed;
  }

  write(opcode, payload) {
    if (!this.socket.writable) return;
    this.socket.write(frame(opcode, payload));
    if (this.socket.writableLength > MAX_BUFFERED_BYTES) this.socket.destroy();
  }

  send(message) {
    if (this.open) this.write(TEXT, Buffer.from(JSON.stringify(message)));
  }

  ping() {
    if (this.open) this.write(PING, Buffer.from(String(Date.now())));
  }

  /** Starts the closing handshake (section 7.1.2): our close frame, then wait for the client's. */
  close(code, reason) {
    if (this.closeSentAt !== undefined) return;
    this.closeSentAt = Date.now();
    this.write(CLOSE, closePayload(code, reason));
  }

  /**
   * _Fail the WebSocket Connection_ (section 7.1.7): a close frame with the code, then the TCP
   * connection closed without waiting for the client's answer.
   */
  fail(code, reason) {
    this.done = true;
    this.close(code, reason);
    this.socket.end();
  }

  /** Takes bytes from the socket and handles every complete frame in them. */
  receive(chunk) {
    if (this.done) return;
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    while (!this.done && !this.socket.destroyed) {
      const buf = this.buffer;
      if (buf.length < 2) return;
      const fin = (buf[0] & 0x80) !== 0;
      const opcode = buf[0] & 0x0f;
      const masked = (buf[1] & 0x80) !== 0;
      let length = buf[1] & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (buf.length < 4) return;
        length = buf.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (buf.length < 10) return;
        length = buf.readUInt32BE(2) * 2 ** 32 + buf.readUInt32BE(6);
        offset = 10;
      }
      // No extension was negotiated, so the RSV bits must be 0 (section 5.2).
      if (buf[0] & 0x70) return this.fail(PROTOCOL_ERROR, 'reserved bits set');
      // A client masks every frame it sends (section 5.1).
      if (!masked) return this.fail(PROTOCOL_ERROR, 'client frames must be masked');
      if (opcode >= CLOSE) {
        // Control frames: at most 125 bytes and never fragmented (section 5.5).
        if (opcode !== CLOSE && opcode !== PING && opcode !== PONG)
          return this.fail(PROTOCOL_ERROR, `unknown opcode ${opcode}`);
        if (!fin || length > 125) return this.fail(PROTOCOL_ERROR, 'bad control frame');
      } else {
        if (opcode !== CONTINUATION && opcode !== TEXT && opcode !== BINARY)
          return this.fail(PROTOCOL_ERROR, `unknown opcode ${opcode}`);
        // A continuation only inside a fragmented message, a new message only outside one (section 5.4).
        if ((opcode === CONTINUATION) !== (this.messageOpcode !== undefined))
          return this.fail(PROTOCOL_ERROR, 'unexpected continuation frame');
        // Refused from the frame's header, before its payload is buffered.
        if (this.fragmentBytes + length > MAX_MESSAGE_BYTES)
          return this.fail(TOO_BIG, `messages are limited to ${MAX_MESSAGE_BYTES} bytes`);
      }
      if (buf.length < offset + 4 + length) return;
      const mask = buf.subarray(offset, offset + 4);
      const payload = Buffer.from(buf.subarray(offset + 4, offset + 4 + length));
      // Unmasking: byte i XOR mask byte i mod 4 (section 5.3).
      for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
      this.buffer = buf.subarray(offset + 4 + length);
      if (opcode >= CLOSE) this.control(opcode, payload);
      else this.data(opcode, fin, payload);
    }
  }

  control(opcode, payload) {
    if (opcode === PING) {
      // A pong carries the ping's payload (section 5.5.3).
      if (this.open) this.write(PONG, payload);
    } else if (opcode === PONG) {
      this.missedPings = 0;
    } else {
      this.done = true;
      if (payload.length === 1) return this.fail(PROTOCOL_ERROR, 'bad close frame');
      if (payload.length >= 2) {
        const code = payload.readUInt16BE(0);
        if (!validCloseCode(code)) return this.fail(PROTOCOL_ERROR, `close code ${code}`);
        try {
          utf8.decode(payload.subarray(2));
        } catch {
          return this.fail(INVALID_DATA, 'close reason is not UTF-8');
        }
      }
      // Echo the close (with its code) unless ours went first, then close the TCP connection: the
      // server closes it first (section 7.1.1; 5.5.1).
      if (this.closeSentAt === undefined) {
        this.closeSentAt = Date.now();
        this.write(CLOSE, payload.subarray(0, 2));
      }
      this.socket.end();
    }
  }

  data(opcode, fin, payload) {
    if (opcode !== CONTINUATION) this.messageOpcode = opcode;
    this.fragments.push(payload);
    this.fragmentBytes += payload.length;
    if (!fin) return;
    const message = Buffer.concat(this.fragments);
    const type = this.messageOpcode;
    this.fragments = [];
    this.fragmentBytes = 0;
    this.messageOpcode = undefined;
    // After our close frame, data from the client is read and dropped (section 1.4).
    if (!this.open) return;
    if (type === BINARY) {
      return this.send({
        type: 'error',
        message: `expected JSON text, got ${message.length} bytes of binary`,
      });
    }
    let text;
    try {
      // Text messages are UTF-8, or the connection fails (section 8.1).
      text = utf8.decode(message);
    } catch {
      return this.fail(INVALID_DATA, 'text message is not UTF-8');
    }
    this.conversation(text);
  }

  /** The application's protocol: `{"type":"echo","text":"..."}` comes back as it is. */
  conversation(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch (e) {
      return this.send({ type: 'error', message: `not JSON: ${e.message}` });
    }
    if (message && message.type === 'echo' && typeof message.text === 'string') {
      return this.send({ type: 'echo', text: message.text });
    }
    this.send({ type: 'error', message: 'unknown message: expected {"type":"echo","text":"..."}' });
  }
}

/** The client's key, base64 of 16 bytes (section 4.1), gives the accept value (section 4.2.2). */
const acceptKey = (key) =>
  crypto
    .createHash('sha1')
    .update(key + ACCEPT_GUID)
    .digest('base64');

/** Answers an upgrade request on its raw socket with an HTTP error, and closes it. */
function refuse(socket, status, message, headers = {}) {
  const body = message + '\n';
  const lines = [
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}`,
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
    'Content-Type: text/plain',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
  ];
  socket.end(lines.join('\r\n') + '\r\n\r\n' + body);
}

/** The opening handshake (section 4.2): checks the client's request, then 101 and the accept key. */
function upgrade(req, socket, head) {
  socket.on('error', () => socket.destroy());
  const route = new URL(req.url, 'http://localhost').pathname;
  if (route !== PATH) return refuse(socket, 404, 'not found');
  if (draining) return refuse(socket, 503, 'shutting down: connect again');
  const key = req.headers['sec-websocket-key'];
  const tokens = (value) =>
    String(value || '')
      .toLowerCase()
      .split(/\s*,\s*/);
  // Section 4.2.1: GET, "Upgrade: websocket", "Connection" with the token "Upgrade", version 13, a key.
  if (req.method !== 'GET') return refuse(socket, 400, 'bad handshake: not a GET');
  if (!tokens(req.headers.upgrade).includes('websocket'))
    return refuse(socket, 400, 'bad handshake: Upgrade is not websocket');
  if (!tokens(req.headers.connection).includes('upgrade'))
    return refuse(socket, 400, 'bad handshake: Connection has no Upgrade');
  // A version the server does not speak: 426 with the versions it does (section 4.4).
  if (req.headers['sec-websocket-version'] !== '13')
    return refuse(socket, 426, 'bad handshake: WebSocket version 13 only', { 'Sec-WebSocket-Version': 13 });
  if (!/^[A-Za-z0-9+/]{21}[AQgw]==$/.test(key || ''))
    return refuse(socket, 400, 'bad handshake: Sec-WebSocket-Key is not 16 bytes in base64');
  // No subprotocol and no extension (such as permessage-deflate) is offered back (sections 4.2.2, 9.1).
  socket.write(
    [
      'HTTP/1.1 101 Switching Protocols',
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Accept: ${acceptKey(key)}`,
    ].join('\r\n') + '\r\n\r\n',
  );
  socket.setNoDelay(true);
  const connection = new Connection(socket);
  connections.add(connection);
  socket.on('data', (chunk) => connection.receive(chunk));
  // The server's sockets allow half-open connections: a client's FIN is answered with ours.
  socket.on('end', () => socket.end());
  socket.on('close', () => {
    connections.delete(connection);
    if (draining && connections.size === 0) stopped('every connection closed');
  });
  connection.send({ type: 'hello', server: hostname, store: Boolean(storeTable) });
  if (head.length) connection.receive(head);
}

/**
 * Keepalive, one timer for every connection: a ping each REALTIME_PING_SECONDS. A connection that
 * missed MISSED_PINGS pongs in a row is closed with 1001 and destroyed (its client is gone, or a
 * network path dropped it without a FIN); one that sent its close a tick ago and got none back too.
 */
function keepalive() {
  if (draining) return;
  for (const connection of connections) {
    const { socket } = connection;
    if (connection.closeSentAt !== undefined) {
      if (Date.now() - connection.closeSentAt >= pingSeconds * 1000) socket.destroy();
    } else if (connection.missedPings >= MISSED_PINGS) {
      connection.close(GOING_AWAY, 'no pong');
      socket.end(() => socket.destroy());
    } else {
      connection.missedPings++;
      connection.ping();
    }
  }
  setTimeout(keepalive, pingSeconds * 1000);
}

/**
 * Live notifications: one poll of the feed per process every REALTIME_POLL_SECONDS (the store is
 * billed per read, so not one per connection). The first poll only remembers the items there are,
 * so that a new connection is not flooded with old ones; each later poll broadcasts the items it has
 * not seen, oldest first. `seen` holds the ids of the last poll's window (bounded memory). An item
 * written late with an older time, behind POLL_ITEMS newer ones, is not announced (it is in
 * /api/feed). A failed poll is logged; the next tick tries again.
 */
let seen;
let pollTimer;
async function poll() {
  try {
    const items = await feed.newestFeedItems(POLL_ITEMS, POLL_DAYS);
    const id = (item) => `${item.lastModified}#${item.key}`;
    if (seen) {
      const fresh = items.filter((item) => !seen.has(id(item))).reverse();
      for (const item of fresh) {
        for (const connection of connections) connection.send({ type: 'feed-item', item });
      }
      if (fresh.length)
        console.log(`feed: ${fresh.length} new items sent to ${connections.size} connections`);
    } else {
      console.log(`feed: watching the store, ${items.length} items there already`);
    }
    seen = new Set(items.map(id));
  } catch (e) {
    console.error(`feed poll failed, trying again in ${pollSeconds} s: ${e.message}`);
  }
  if (!draining) pollTimer = setTimeout(poll, pollSeconds * 1000);
}

const server = http.createServer((req, res) => {
  const route = new URL(req.url, 'http://localhost').pathname;
  const json = (status, body) =>
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body) + '\n');
  if (route === '/healthz') {
    // Draining: out of the load balancer's rotation, so that new clients go to another server.
    if (draining) return json(503, { ok: false, draining: true, connections: connections.size });
    return json(200, { ok: true, connections: connections.size });
  }
  // Node sends a request here, not to `upgrade`, when its Connection header lacks "Upgrade".
  if (route === PATH && req.headers.upgrade) {
    return res
      .writeHead(400, { 'content-type': 'text/plain' })
      .end('bad handshake: Connection has no Upgrade\n');
  }
  // A request for the endpoint without the upgrade headers (RFC 9110 section 15.5.22).
  if (route === PATH) {
    res.writeHead(426, { upgrade: 'websocket', connection: 'Upgrade', 'content-type': 'text/plain' });
    return res.end('this is a WebSocket endpoint: send Upgrade: websocket\n');
  }
  res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
});
server.on('upgrade', upgrade);
server.listen(Number(env.APP_PORT || 80), () => {
  console.log(`realtime listening on port ${server.address().port}`);
  setTimeout(keepalive, pingSeconds * 1000);
  if (storeTable) poll();
});

function stopped(why) {
  console.log(`realtime stopped: ${why}`);
  process.exit(0);
}

// SIGTERM (systemd stop, instance shutdown): refuse new upgrades (503), close every connection with
// 1001 so that its client reconnects (through the load balancer, to another server), and exit when
// they are all closed, or after REALTIME_DRAIN_SECONDS with whatever is left destroyed.
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    if (draining) return;
    draining = true;
    clearTimeout(pollTimer);
    console.log(`${signal}: closing ${connections.size} connections`);
    if (connections.size === 0) return stopped('no connections');
    for (const connection of connections) connection.close(GOING_AWAY, 'server shutting down');
    setTimeout(
      () => stopped(`${connections.size} connections left after ${drainSeconds} s`),
      drainSeconds * 1000,
    );
  });
}
