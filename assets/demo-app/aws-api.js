// The signed AWS API calls of the demo worker, with no dependencies: Signature Version 4 in the
// Authorization header, and the calls the worker makes to SQS (AWS JSON protocol), S3 (REST) and
// Auto Scaling (Query API). Endpoints come from AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL_S3 and
// AWS_ENDPOINT_URL_AUTO_SCALING when set (as in the SDKs: "Service-specific endpoints", AWS SDKs and
// Tools Reference Guide), else AWS's regional endpoints.
// Errors name the call and what the service answered (code and message), never the request.
'use strict';
const crypto = require('crypto');
const { URLSearchParams } = require('url');
const { region, amzDate, request, credentials, signingKey, bucketUrl } = require('./aws');

const env = process.env;
const sha256 = (data) => crypto.createHash('sha256').update(data).digest('hex');
/** UriEncode of SigV4: RFC 3986, where only A-Z a-z 0-9 - _ . ~ stay as they are. */
const uriEncode = (s) =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
const endpoint = (service, host) =>
  (env[`AWS_ENDPOINT_URL_${service}`] || `https://${host}`).replace(/\/$/, '');
const tag = (xml, name) => (new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml) || [])[1];
const unescapeXml = (s) =>
  s.replace(/&(lt|gt|quot|apos|amp);/g, (_, e) => ({ lt: '<', gt: '>', quot: '"', apos: "'", amp: '&' })[e]);

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
 * An SQS action in the AWS JSON protocol: POST / with `X-Amz-Target: AmazonSQS.<Action>` and a JSON
 * body (SQS Developer Guide, "Making query API requests using AWS JSON protocol in Amazon SQS").
 */
async function sqs(action, input, options) {
  const res = await signedRequest('sqs', endpoint('SQS', `sqs.${region()}.amazonaws.com`) + '/', {
    headers: { 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': `AmazonSQS.${action}` },
    body: JSON.stringify(input),
    what: `SQS ${action}`,
    ...options,
  });
  return res.body.length ? JSON.parse(res.body) : {};
}

/**
 * Long-polls for at most one message: `[]` when none came within `waitSeconds` (0 to 20). Its
 * Attributes carry ApproximateReceiveCount. `signal` (an AbortSignal) abandons the poll.
 */
async function receiveMessage(queueUrl, { waitSeconds = 20, visibilitySeconds, signal } = {}) {
  const input = {
    QueueUrl: queueUrl,
    MaxNumberOfMessages: 1,
    WaitTimeSeconds: waitSeconds,
    VisibilityTimeout: visibilitySeconds,
    MessageSystemAttributeNames: ['ApproximateReceiveCount'],
  };
  const out = await sqs('ReceiveMessage', input, { timeoutMs: (waitSeconds + 10) * 1000, signal });
  return out.Messages || [];
}

const deleteMessage = (queueUrl, receiptHandle) =>
  sqs('DeleteMessage', { QueueUrl: queueUrl, ReceiptHandle: receiptHandle });
const changeMessageVisibility = (queueUrl, receiptHandle, seconds) =>
  sqs('ChangeMessageVisibility', {
    QueueUrl: queueUrl,
    ReceiptHandle: receiptHandle,
    VisibilityTimeout: seconds,
  });
const sendMessage = (queueUrl, body) => sqs('SendMessage', { QueueUrl: queueUrl, MessageBody: body });

/** An object's URL: each key segment URI-encoded once, as S3 signs it. */
const objectUrl = (bucket, key) => bucketUrl(bucket) + key.split('/').map(uriEncode).join('/');

/** `{ body, contentType }` of an object. */
async function getObject(bucket, key) {
  const what = `S3 GetObject ${bucket}/${key}`;
  const res = await signedRequest('s3', objectUrl(bucket, key), { method: 'GET', what, timeoutMs: 30000 });
  return { body: res.body, contentType: res.headers['content-type'] };
}

/** Writes an object with its Content-Type, Cache-Control and user metadata (x-amz-meta-*). */
function putObject(bucket, key, body, { contentType, cacheControl, metadata = {} }) {
  const headers = { 'content-type': contentType || 'application/octet-stream' };
  if (cacheControl) headers['cache-control'] = cacheControl;
  for (const [name, value] of Object.entries(metadata)) headers[`x-amz-meta-${name}`] = value;
  const what = `S3 PutObject ${bucket}/${key}`;
  return signedRequest('s3', objectUrl(bucket, key), {
    method: 'PUT',
    headers,
    body,
    what,
    timeoutMs: 30000,
  });
}

/** `[{ key, size, lastModified }]` of the objects under `prefix`: at most `maxPages` pages of 1,000. */
async function listObjectsV2(bucket, prefix, maxPages = 10) {
  const items = [];
  let token;
  for (let page = 0; page < maxPages; page++) {
    const query = new URLSearchParams({ 'list-type': '2', prefix });
    if (token) query.set('continuation-token', token);
    const what = `S3 ListObjectsV2 ${bucket}`;
    const res = await signedRequest('s3', `${bucketUrl(bucket)}?${query}`, { method: 'GET', what });
    const xml = res.body.toString();
    for (const [, c] of xml.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)) {
      const key = unescapeXml(tag(c, 'Key'));
      items.push({ key, size: Number(tag(c, 'Size')), lastModified: tag(c, 'LastModified') });
    }
    token = tag(xml, 'NextContinuationToken');
    if (tag(xml, 'IsTruncated') !== 'true' || !token) break;
  }
  return items;
}

/** Auto Scaling's SetInstanceProtection in the Query API (form-encoded, Version 2011-01-01). */
function setInstanceProtection(groupName, instanceId, protectedFromScaleIn) {
  const body = new URLSearchParams({
    Action: 'SetInstanceProtection',
    Version: '2011-01-01',
    AutoScalingGroupName: groupName,
    'InstanceIds.member.1': instanceId,
    ProtectedFromScaleIn: String(protectedFromScaleIn),
  }).toString();
  return signedRequest(
    'autoscaling',
    endpoint('AUTO_SCALING', `autoscaling.${region()}.amazonaws.com`) + '/',
    {
      headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
      body,
      what: 'Auto Scaling SetInstanceProtection',
    },
  );
}

module.exports = {
  receiveMessage,
  deleteMessage,
  changeMessageVisibility,
  sendMessage,
  getObject,
  putObject,
  listObjectsV2,
  setInstanceProtection,
};
