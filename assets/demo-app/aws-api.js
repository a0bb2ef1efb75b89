// The AWS API calls of the demo worker, with no dependencies, signed by aws.js: SQS (AWS JSON
// protocol), S3 (REST) and Auto Scaling (Query API). Endpoints come from AWS_ENDPOINT_URL_SQS,
// AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL_AUTO_SCALING when set (as in the SDKs: "Service-specific
// endpoints", AWS SDKs and Tools Reference Guide), else AWS's regional endpoints.
'use strict';
const { URLSearchParams } = require('url');
const { region, signedRequest, endpoint, uriEncode, tag, bucketUrl } = require('./aws');

const unescapeXml = (s) =>
  s.replace(/&(lt|gt|quot|apos|amp);/g, (_, e) => ({ lt: '<', gt: '>', quot: '"', apos: "'", amp: '&' })[e]);

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
