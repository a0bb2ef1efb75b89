// The cdk-scale-stages demo app: answers `/`, `/healthz` and `/api/status` (the path the example
// web client calls through CloudFront) and reports whether its database is reachable. Plain
// Node.js with no dependencies, so it runs on a fresh server with only `node`.
'use strict';
const http = require('http');
const net = require('net');

const port = Number(process.env.APP_PORT || 80);
const dbHost = process.env.DATABASE_HOST;
const dbPort = Number(process.env.DATABASE_PORT || 5432);

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

const server = http.createServer(async (req, res) => {
  const path = new URL(req.url, 'http://localhost').pathname;
  if (!['/', '/healthz', '/api/status'].includes(path)) {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    return;
  }
  const reachable = await databaseReachable();
  const body = {
    app: 'cdk-scale-stages demo',
    database: { configured: Boolean(dbHost), reachable },
  };
  // The server is healthy when it answers; the database state is reported, not required, so that
  // a database failover does not make a load balancer take every server out of service.
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body) + '\n');
});

server.listen(port, () => console.log(`demo app listening on port ${server.address().port}`));
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
