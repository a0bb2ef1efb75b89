// The cdk-scale-stages demo worker (stage 1m): takes jobs from the SQS queue at JOB_QUEUE_URL one at
// a time and answers `/healthz`. Jobs: S3 event notifications of browser uploads under `uploads/`
// in the media bucket (each gets a thumbnail under `media/thumbnails/`, served at /media/...), and
// `{"type":"prerender"}` from the pre-render schedule (writes `prerendered/feed.json` to the web
// bucket), both reading and writing the feed's items in the DynamoDB store when STORE_TABLE_NAME is
// set (feed.js). A message is deleted only after its job succeeded: a failed job, or a worker that dies
// mid-job, leaves it to come back after the visibility timeout, and after maxReceiveCount receives
// SQS moves it to the dead-letter queue. So every job must be safe to run twice (these are: they
// overwrite the same keys). Plain Node.js with no dependencies.
'use strict';
const http = require('http');
const aws = { ...require('./aws'), ...require('./aws-api') };
const png = require('./png');
const feed = require('./feed');

const env = process.env;
const queueUrl = env.JOB_QUEUE_URL;
const mediaBucket = env.MEDIA_BUCKET;
const webBucket = env.WEB_BUCKET;
const storeTable = env.STORE_TABLE_NAME;
const groupName = env.WORKER_AUTO_SCALING_GROUP;
/** The queue's visibility timeout: a job running longer than half of it has it extended. */
const visibilitySeconds = Number(env.JOB_VISIBILITY_TIMEOUT_SECONDS || 300);
/** Long polling (at most 20 s): fewer empty receives, which SQS bills like full ones. */
const waitSeconds = Math.min(20, Number(env.JOB_WAIT_SECONDS || 20));
const feedTtlSeconds = Number(env.PRERENDER_TTL_SECONDS || 300);

/** Thumbnails are at most this many pixels on their longer side. */
const THUMBNAIL_PX = 160;
/** Image types that are copied as they are when they are not PNGs this worker decodes. */
const RASTER = /^image\/(png|jpeg|gif|webp|avif)$/;
/** How many of the newest thumbnails the pre-rendered feed lists. */
const FEED_ITEMS = 50;
/** How long the worker waits after a failed receive before it polls again. */
const RETRY_MS = 5000;
/** How long after a failed SetInstanceProtection the worker tries again (API rate limits). */
const PROTECTION_RETRY_MS = 60000;

const stats = { done: 0, failed: 0, busy: false };
let stopping = false;
let polling;
let wake = () => {};
const sleep = (ms) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    wake = () => (clearTimeout(timer), resolve());
  });

/**
 * Scale-in protection, so that scaling in on a shrinking backlog never terminates a worker in the
 * middle of a job: on when the worker goes from idle to busy, off when a receive comes back empty
 * after work (not per job: SetInstanceProtection has API rate limits). Unknown (undefined) at
 * start and after a failed call, so the next change is sent. A failed call is logged; the work
 * goes on (a terminated worker's job comes back after the visibility timeout).
 */
let instanceId;
let protectedNow;
let protectionRetryAt = 0;
async function protect(value, force = false) {
  if (!groupName || protectedNow === value || (!force && Date.now() < protectionRetryAt)) return;
  try {
    instanceId = instanceId || (await aws.imds('meta-data/instance-id')).trim();
    await aws.setInstanceProtection(groupName, instanceId, value);
    protectedNow = value;
    console.log(`scale-in protection ${value ? 'on' : 'off'}`);
  } catch (e) {
    protectedNow = undefined;
    protectionRetryAt = Date.now() + PROTECTION_RETRY_MS;
    console.error(`scale-in protection: ${e.message}`);
  }
}

/** Makes the thumbnail of one uploaded object from an S3 event record. */
async function makeThumbnail(record) {
  const bucket = record.s3 && record.s3.bucket && record.s3.bucket.name;
  // S3 URL-encodes keys in event messages, a space as '+' (S3 User Guide, "Event message structure").
  const key = decodeURIComponent(
    String(record.s3 && record.s3.object && record.s3.object.key).replace(/\+/g, ' '),
  );
  if (record.eventSource !== 'aws:s3' || !/^ObjectCreated:/.test(record.eventName) || !bucket) {
    throw new Error(`not an S3 object-created event: ${record.eventSource} ${record.eventName}`);
  }
  if (!key.startsWith('uploads/')) throw new Error(`${key} is not under uploads/`);
  const upload = await aws.getObject(bucket, key);
  const name = key.slice('uploads/'.length);
  // Thumbnail keys never change content (upload keys are new UUIDs), so caches may keep them.
  const cacheControl = 'public, max-age=31536000, immutable';
  try {
    const image = png.thumbnail(png.decode(upload.body), THUMBNAIL_PX);
    const target = `media/thumbnails/${name.replace(/\.png$/i, '')}.png`;
    const body = png.encode(image);
    await aws.putObject(mediaBucket, target, body, { contentType: 'image/png', cacheControl });
    await addToFeed(target, body.length, record.eventTime);
    return `thumbnail ${target} (${image.width}x${image.height})`;
  } catch (e) {
    if (!(e instanceof png.PngUnsupported)) throw e;
    // Fallback: raster images this worker cannot decode (JPEG, GIF, WebP, AVIF, interlaced PNG) are
    // copied as they are, with their content type and a note; the page scales them. A real app
    // would use an image library (sharp, libvips) here. Anything else (SVG can carry scripts, and
    // /media/ is the app's own origin) is refused: the job fails and ends in the dead-letter queue.
    if (!RASTER.test(upload.contentType))
      throw new Error(`${key} is ${upload.contentType}, not a raster image`);
    const target = `media/thumbnails/${name}`;
    await aws.putObject(mediaBucket, target, upload.body, {
      contentType: upload.contentType,
      cacheControl,
      metadata: { thumbnail: 'original' },
    });
    await addToFeed(target, upload.body.length, record.eventTime);
    return `${target} copied as it is (${e.message})`;
  }
}

/**
 * With the store (STORE_TABLE_NAME), the thumbnail's item in the feed, written to this region's
 * replica at the upload's time (the S3 event's eventTime), so that the feed is read without listing
 * the bucket. A failed write fails the job, which runs again; but a region whose replica the primary's
 * deploy has not added yet (stage 10m deploys the regions first) keeps its thumbnail without an item.
 */
async function addToFeed(key, size, eventTime) {
  if (!storeTable) return;
  try {
    await feed.putFeedItem({ key, size, createdAt: eventTime || new Date().toISOString() });
  } catch (e) {
    if (e.code !== 'ResourceNotFoundException') throw e;
    console.error(`${key}: not in the feed, the store has no replica in ${aws.region()} yet (${e.message})`);
  }
}

/** The newest thumbnails: from the store when there is one, else by listing the media bucket. */
async function newestThumbnails() {
  if (storeTable) return feed.newestFeedItems(FEED_ITEMS);
  const objects = await aws.listObjectsV2(mediaBucket, 'media/thumbnails/');
  objects.sort((a, b) => (a.lastModified < b.lastModified ? 1 : a.lastModified > b.lastModified ? -1 : 0));
  return objects.slice(0, FEED_ITEMS).map(({ key, size, lastModified }) => ({
    url: feed.mediaUrl(key),
    key,
    size,
    lastModified,
  }));
}

/**
 * Pre-renders the feed: the newest thumbnails, as `prerendered/feed.json` in the web bucket with
 * `Cache-Control: public, max-age=PRERENDER_TTL_SECONDS`. CloudFront serves it from its default
 * behaviour at /prerendered/feed.json and keeps a copy at most that long (its cache policy honours
 * the origin's max-age), so the next render replaces it within the TTL with no invalidation (which
 * would be billed per path past the free 1,000 a month, at every run of the schedule).
 */
async function prerender() {
  if (!webBucket || !mediaBucket) throw new Error('pre-rendering needs WEB_BUCKET and MEDIA_BUCKET');
  const items = await newestThumbnails();
  const rendered = { renderedAt: new Date().toISOString(), maxAgeSeconds: feedTtlSeconds, items };
  await aws.putObject(webBucket, 'prerendered/feed.json', JSON.stringify(rendered), {
    contentType: 'application/json',
    cacheControl: `public, max-age=${feedTtlSeconds}`,
  });
  return `prerendered/feed.json with ${items.length} thumbnails`;
}

/** Runs the job of a message body; resolves a line for the log, rejects when it failed. */
async function runJob(body) {
  let job;
  try {
    job = JSON.parse(body);
  } catch {
    throw new Error('the message is not JSON');
  }
  // S3 sends this once when a notification is configured: nothing to do.
  if (job && job.Event === 's3:TestEvent') return 'S3 test event';
  if (job && job.type === 'prerender') return prerender();
  if (job && Array.isArray(job.Records)) {
    const done = [];
    for (const record of job.Records) done.push(await makeThumbnail(record));
    return done.join('; ');
  }
  throw new Error('unknown job: neither an S3 event nor {"type":"prerender"}');
}

/**
 * Runs one message's job and deletes the message when it succeeded. While the job runs longer
 * than half the visibility timeout, a heartbeat extends it (ChangeMessageVisibility), so no other
 * worker receives the message while this one still works on it.
 */
async function handle(message) {
  const id = message.MessageId;
  let running = true;
  let heartbeat;
  const beat = () => {
    heartbeat = setTimeout(
      async () => {
        try {
          await aws.changeMessageVisibility(queueUrl, message.ReceiptHandle, visibilitySeconds);
          console.log(`job ${id}: still running; visible again in ${visibilitySeconds} s at the earliest`);
        } catch (e) {
          console.error(`job ${id}: could not extend its visibility timeout: ${e.message}`);
        }
        if (running) beat();
      },
      (visibilitySeconds * 1000) / 2,
    );
  };
  beat();
  try {
    const result = await runJob(message.Body);
    await aws.deleteMessage(queueUrl, message.ReceiptHandle);
    stats.done++;
    console.log(`job ${id} done: ${result}`);
  } catch (e) {
    stats.failed++;
    const receives = (message.Attributes || {}).ApproximateReceiveCount;
    console.error(
      `job ${id} failed (receive ${receives}): ${e.message}; the message stays, to be received again after the visibility timeout (the dead-letter queue takes it after maxReceiveCount receives)`,
    );
  } finally {
    running = false;
    clearTimeout(heartbeat);
  }
}

/** Receives and runs jobs until SIGTERM; then clears the protection and exits 0. */
async function run() {
  while (!stopping) {
    let messages;
    // eslint-disable-next-line no-undef -- a global of Node, not in the lint config's list
    polling = new AbortController();
    try {
      messages = await aws.receiveMessage(queueUrl, {
        waitSeconds,
        visibilitySeconds,
        signal: polling.signal,
      });
    } catch (e) {
      if (stopping) break;
      console.error(`receive: ${e.message}`);
      await sleep(RETRY_MS);
      continue;
    } finally {
      polling = undefined;
    }
    if (messages.length === 0) {
      await protect(false);
      continue;
    }
    stats.busy = true;
    await protect(true);
    await handle(messages[0]);
    stats.busy = false;
  }
  await protect(false, true);
  console.log('worker stopped');
  process.exit(0);
}

if (!queueUrl) {
  console.error('JOB_QUEUE_URL is not set: the worker needs the job queue, which stage 1m adds');
  process.exit(1);
}
const server = http.createServer((req, res) => {
  const route = new URL(req.url, 'http://localhost').pathname;
  if (route !== '/' && route !== '/healthz') return res.writeHead(404).end('not found\n');
  const body = {
    app: 'cdk-scale-stages worker',
    jobs: { done: stats.done, failed: stats.failed },
    busy: stats.busy,
  };
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body) + '\n');
});
server.listen(Number(env.APP_PORT || 80), () => {
  console.log(`worker listening on port ${server.address().port}`);
  run();
});
// SIGTERM (systemd stop, instance shutdown): stop receiving, finish the job in hand, then exit. A
// message that SQS hands to the abandoned poll comes back after the visibility timeout.
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: ${stats.busy ? 'finishing the current job, then stopping' : 'stopping'}`);
    if (polling) polling.abort();
    wake();
  });
}
