// The feed as a denormalized read model in the DynamoDB store (STORE_TABLE_NAME, stage 1m): one item
// per thumbnail, written by the worker of the region that made it and read newest first, without a
// join or a listing, by the pre-render and by `/api/feed` from the region's own replica. Items are
// grouped by day (pk `feed#<YYYY-MM-DD>`), so that no one partition takes every write for ever, sorted
// by time (sk `<ISO time>#<key>`), and expire FEED_ITEM_DAYS after their upload (TTL `expiresAt`).
'use strict';
const { dynamodb, region } = require('./aws');

const FEED_ITEM_DAYS = 30;
const DAY_MS = 24 * 60 * 60 * 1000;
const table = () => process.env.STORE_TABLE_NAME;
/** The path CloudFront serves an object of the media bucket at: each key segment URL-encoded. */
const mediaUrl = (key) => '/' + key.split('/').map(encodeURIComponent).join('/');

/**
 * Puts the feed item of one thumbnail at `createdAt` (the upload's time): a job that runs twice
 * writes the same item again.
 */
function putFeedItem({ key, size, createdAt }) {
  const time = new Date(createdAt);
  const expiresAt = Math.floor(time.getTime() / 1000) + FEED_ITEM_DAYS * 24 * 60 * 60;
  return dynamodb('PutItem', {
    TableName: table(),
    Item: {
      pk: { S: `feed#${time.toISOString().slice(0, 10)}` },
      sk: { S: `${time.toISOString()}#${key}` },
      key: { S: key },
      size: { N: String(size) },
      lastModified: { S: time.toISOString() },
      region: { S: region() },
      expiresAt: { N: String(expiresAt) },
    },
  });
}

/**
 * The newest `limit` items, newest first, from this region's replica: today's partition, then the
 * days before it, at most `days` of them. Each is `{ url, key, size, lastModified, region }`.
 */
async function newestFeedItems(limit, days = 7) {
  const items = [];
  for (let day = 0; day < days && items.length < limit; day++) {
    const pk = `feed#${new Date(Date.now() - day * DAY_MS).toISOString().slice(0, 10)}`;
    let start;
    do {
      const page = await dynamodb('Query', {
        TableName: table(),
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': { S: pk } },
        ScanIndexForward: false,
        Limit: limit - items.length,
        ExclusiveStartKey: start,
      });
      for (const item of page.Items || []) {
        items.push({
          url: mediaUrl(item.key.S),
          key: item.key.S,
          size: Number(item.size.N),
          lastModified: item.lastModified.S,
          region: item.region.S,
        });
      }
      start = page.LastEvaluatedKey;
    } while (start && items.length < limit);
  }
  return items;
}

module.exports = { mediaUrl, putFeedItem, newestFeedItems };
