// The AWS basics of the demo app, with no dependencies: credentials (from the environment or the
// instance's role through IMDSv2), requests signed with Signature Version 4, DynamoDB calls, and S3
// presigned POST forms for uploads straight from the browser. This is all the web server loads (its
// user data is capped at 16 KB); the worker adds the calls of aws-api.js. Errors name the call and
// what the service answered (code and message), never the request or a credential.
'use strict';
const crypto = require('crypto');
const http = require('http');
const https = require('https');

const env = process.env;
const region = () => env.AWS_REGION || 'us-east-1';
const hmac = (key, data) => crypto.createHmac('sha256', key).update(data).digest();
/** The time as SigV4 writes it, 20260101T120000Z; its first 8 characters are the scope's date. */
const amzDate = () => new Date().toISOString().replace(/[-:]|\.\d+/g, '');

/** One HTTP(S) request; resolves `{ status, headers, body }` (body a Buffer) whatever the status. */
function request(url, { method = 'GET', headers, body, timeoutMs = 10000, signal } = {}) {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const options = { method, headers, timeout: timeoutMs, signal };
    const req = (u.protocol === 'https:' ? https : http).request(u, options, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c)).on('error', reject);
      res.on('end', () =>
        resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }),
      );
    });
    req.on('timeout', () => req.destroy(new Error(`${u.host} did not answer in ${timeoutMs} ms`)));
    req.on('error', reject).end(body);
  });
}

/**
 * GETs `path` under /latest/ from the instance metadata service with an IMDSv2 session token (PUT
 * first: the launch template requires tokens; EC2 User Guide, "Use the Instance Metadata Service to
 * access instance metadata"). AWS_EC2_METADATA_SERVICE_ENDPOINT, which the AWS SDKs read too, points
 * it elsewhere (tests).
 */
async function imds(path) {
  const base = env.AWS_EC2_METADATA_SERVICE_ENDPOINT || 'http://169.254.169.254';
  const ttl = { 'x-aws-ec2-metadata-token-ttl-seconds': 60 };
  let res = await request(`${base}/latest/api/token`, { method: 'PUT', headers: ttl, timeoutMs: 2000 });
  if (res.status === 200) {
    const headers = { 'x-aws-ec2-metadata-token': `${res.body}` };
    res = await request(`${base}/latest/${path}`, { headers, timeoutMs: 2000 });
  }
  if (res.status !== 200) throw new Error(`instance metadata ${path}: HTTP ${res.status}`);
  return `${res.body}`.trim();
}

/** Role credentials are fetched again this long before they expire (IMDS has new ones by then). */
const REFRESH_BEFORE_EXPIRY_MS = 5 * 60 * 1000;
let role;

/**
 * `{ id, secret, token }`: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN when
 * set, else the instance role's from IMDS, cached until five minutes before their Expiration.
 * Callers at the same time share one fetch; a failed fetch is not cached.
 */
function credentials() {
  if (env.AWS_ACCESS_KEY_ID) {
    return { id: env.AWS_ACCESS_KEY_ID, secret: env.AWS_SECRET_ACCESS_KEY, token: env.AWS_SESSION_TOKEN };
  }
  if (!role || Date.now() > role.refreshAt) {
    const entry = (role = { refreshAt: Infinity });
    entry.promise = (async () => {
      const name = (await imds('meta-data/iam/security-credentials/')).split('\n')[0];
      const text = await imds(`meta-data/iam/security-credentials/${name}`);
      let c;
      try {
        c = JSON.parse(text);
      } catch {
        // JSON.parse's message would quote the text, secret key included.
        throw new Error('instance metadata: the role credentials are not JSON');
      }
      if (!c.AccessKeyId) throw new Error(`instance metadata: no role credentials (${c.Code})`);
      entry.refreshAt = Date.parse(c.Expiration) - REFRESH_BEFORE_EXPIRY_MS || 0;
      return { id: c.AccessKeyId, secret: c.SecretAccessKey, token: c.Token };
    })();
    entry.promise.catch(() => role === entry && (role = undefined));
  }
  return role.promise;
}

/** The SigV4 signing key: HMACs of the date, region, service and "aws4_request", keyed "AWS4" + secret. */
const signingKey = (secret, date, service) =>
  [date.slice(0, 8), region(), service, 'aws4_request'].reduce(hmac, 'AWS4' + secret);

const sha256 = (data) => crypto.createHash('sha256').update(data).digest('hex');
/** UriEncode of SigV4: RFC 3986, where only A-Z a-z 0-9 - _ . ~ stay as they are. */
const uriEncode = (s) =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
const endpoint = (service, host) =>
  (env[`AWS_ENDPOINT_URL_${service}`] || `https://${host}`).replace(/\/$/, '');
const tag = (xml, name) => (new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml) || [])[1];

/** A service's error: its code and message (S3 and Query XML, or SQS JSON), not the request. */
function serviceError(what, res) {
  const text = res.body.toString('utf8', 0, 4000);
  let code = tag(text, 'Code');
  let message = tag(text, 'Message');
  if (!code && /^\s*\{/.test(text)) {
    try {
      const json = JSON.parse(text);
      code = String(json.__type).split('#').pop();
      message = json.message;
    } catch {
      // The status says enough.
    }
  }
  const detail = `${code ? ` ${code}` : ''}${message ? `: ${String(message).slice(0, 300)}` : ''}`;
  return Object.assign(new Error(`${what}: HTTP ${res.status}${detail}`), { status: res.status, code });
}

/**
 * Sends a request signed with Signature Version 4 in the Authorization header, as the IAM User
 * Guide's "Create a signed AWS API request" describes: a canonical request (method, URI, sorted
 * query, signed headers, payload hash), the string to sign with the credential scope, and its HMAC
 * with the derived signing key. Signed headers: host, content-type and every x-amz-* header; S3
 * also needs x-amz-content-sha256 (S3 API Reference, "Signature Calculations for the Authorization
 * Header"). The query is sent exactly as it was canonicalized. Rejects on HTTP >= 300.
 */
async function signedRequest(service, url, { method = 'POST', headers = {}, body = '', what, ...options }) {
  const creds = await credentials();
  const u = new URL(url);
  u.search = [...u.searchParams]
    .map(([k, v]) => [uriEncode(k), uriEncode(v)])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const date = amzDate();
  const payloadHash = sha256(body);
  const all = { ...headers, host: u.host, 'x-amz-date': date };
  if (service === 's3') all['x-amz-content-sha256'] = payloadHash;
  if (creds.token) all['x-amz-security-token'] = creds.token;
  if (method !== 'GET') all['content-length'] = Buffer.byteLength(body);
  const signed = Object.keys(all)
    .filter((name) => name === 'host' || name === 'content-type' || name.startsWith('x-amz-'))
    .sort();
  // S3's path is the key encoded once; other services encode each path segment twice.
  const path = service === 's3' ? u.pathname : u.pathname.split('/').map(uriEncode).join('/');
  const canonical = [
    method,
    path,
    u.search.slice(1),
    signed.map((name) => `${name}:${String(all[name]).trim().replace(/\s+/g, ' ')}\n`).join(''),
    signed.join(';'),
    payloadHash,
  ].join('\n');
  const scope = `${date.slice(0, 8)}/${region()}/${service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', date, scope, sha256(canonical)].join('\n');
  const signature = crypto
    .createHmac('sha256', signingKey(creds.secret, date, service))
    .update(toSign)
    .digest('hex');
  all.authorization = `AWS4-HMAC-SHA256 Credential=${creds.id}/${scope}, SignedHeaders=${signed.join(';')}, Signature=${signature}`;
  const res = await request(u.href, { method, headers: all, body, ...options });
  if (res.status >= 300) throw serviceError(what, res);
  return res;
}

/**
 * A DynamoDB action in the AWS JSON protocol 1.0: POST / with `X-Amz-Target:
 * DynamoDB_20120810.<Action>` (DynamoDB Developer Guide, "DynamoDB low-level API"), to the table's
 * replica in this region (AWS_ENDPOINT_URL_DYNAMODB when set).
 */
async function dynamodb(action, input) {
  const res = await signedRequest(
    'dynamodb',
    endpoint('DYNAMODB', `dynamodb.${region()}.amazonaws.com`) + '/',
    {
      headers: {
        'content-type': 'application/x-amz-json-1.0',
        'x-amz-target': `DynamoDB_20120810.${action}`,
      },
      body: JSON.stringify(input),
      what: `DynamoDB ${action}`,
    },
  );
  return JSON.parse(res.body);
}

/** A bucket's URL: path-style under AWS_ENDPOINT_URL_S3 when it is set (emulators), else virtual-hosted. */
const bucketUrl = (bucket) =>
  env.AWS_ENDPOINT_URL_S3
    ? `${env.AWS_ENDPOINT_URL_S3.replace(/\/$/, '')}/${bucket}/`
    : `https://${bucket}.s3.${region()}.amazonaws.com/`;

/**
 * A form for one browser upload straight to S3 (S3 API Reference, "Browser-Based Uploads Using
 * POST (AWS Signature Version 4)" and "POST Policy"): `{ url, fields }`; the browser posts the
 * fields, then the file last, as multipart/form-data. The policy allows exactly one new key,
 * `<keyPrefix><random UUID>`, of 1 to `maxBytes` bytes, with a Content-Type that starts with
 * `contentTypePrefix` (`contentType`, when given, is in the fields), until `expiresSeconds` from
 * now. Every field but policy and x-amz-signature has a condition, as S3 requires; the signature is
 * the HMAC of the base64 policy with the SigV4 signing key for s3.
 */
async function presignedPost(
  bucket,
  keyPrefix,
  { maxBytes, contentTypePrefix, contentType, expiresSeconds },
) {
  const creds = await credentials();
  const date = amzDate();
  const fields = {
    key: keyPrefix + crypto.randomUUID(),
    'x-amz-algorithm': 'AWS4-HMAC-SHA256',
    'x-amz-credential': `${creds.id}/${date.slice(0, 8)}/${region()}/s3/aws4_request`,
    'x-amz-date': date,
  };
  if (creds.token) fields['x-amz-security-token'] = creds.token;
  const conditions = [
    { bucket },
    ['content-length-range', 1, maxBytes],
    ['starts-with', '$Content-Type', contentTypePrefix],
    ...Object.entries(fields).map(([name, value]) => ({ [name]: value })),
  ];
  if (contentType) fields['Content-Type'] = contentType;
  const expiration = new Date(Date.now() + expiresSeconds * 1000).toISOString();
  fields.policy = Buffer.from(JSON.stringify({ expiration, conditions })).toString('base64');
  fields['x-amz-signature'] = hmac(signingKey(creds.secret, date, 's3'), fields.policy).toString('hex');
  return { url: bucketUrl(bucket), fields };
}

module.exports = {
  region,
  request,
  imds,
  credentials,
  signedRequest,
  endpoint,
  uriEncode,
  tag,
  dynamodb,
  bucketUrl,
  presignedPost,
};
