// The AWS basics of the demo app, with no dependencies: credentials (from the environment or the
// instance's role through IMDSv2), the Signature Version 4 signing key, and S3 presigned POST forms
// for uploads straight from the browser. This is all the web server loads (its user data is capped
// at 16 KB); the worker adds the signed API calls of aws-api.js. Errors never quote a credential.
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

module.exports = { region, amzDate, request, imds, credentials, signingKey, bucketUrl, presignedPost };
