// Routing for sharded PostgreSQL (docs/resharding.md): a user's rows live on one shard, chosen by
// the user's bucket, one of 1024, in the directory table scale_stages_shard_map on shard 0 (which
// assets/scripts/reshard.sh maintains). Plain Node.js with no dependencies.
'use strict';
const crypto = require('crypto');

const BUCKETS = 1024;

/** The bucket of a user id: the first 4 bytes of sha256(utf8(id)), big-endian, modulo 1024. */
function bucketOf(userId) {
  return crypto.createHash('sha256').update(String(userId), 'utf8').digest().readUInt32BE(0) % BUCKETS;
}

/**
 * The shard map, cached for SHARD_MAP_TTL_SECONDS (reshard.sh waits that long, plus a margin, for
 * every server to see a change). Call `await map.load(query)` before `route`: it reloads the map
 * through `query` (which resolves to rows `{ bucket, shard, moving }`) once the cached one is older
 * than half the TTL. `route` refuses a map older than the TTL (a failed reload): a server must never
 * write with a map that may miss a move. A `moving` bucket is being copied: read from `shard`,
 * refuse writes (503 with Retry-After) until the move is done.
 */
class ShardMap {
  constructor({ ttlSeconds = Number(process.env.SHARD_MAP_TTL_SECONDS || 10), now = Date.now } = {}) {
    this.ttlMs = ttlSeconds * 1000;
    this.now = now;
    this.loadedAt = -Infinity;
    this.pending = undefined;
  }

  async load(query) {
    // Reloaded at half the TTL, so that the map `route` gets after a load has half a TTL left: a server
    // slowed down between the two does not find it stale.
    if (this.now() - this.loadedAt < this.ttlMs / 2) return;
    if (!this.pending) {
      // The map's age counts from before the query: it is at least as fresh as that.
      const started = this.now();
      this.pending = Promise.resolve()
        .then(query)
        .then((rows) => {
          const shards = new Int16Array(BUCKETS).fill(-1);
          const moving = new Uint8Array(BUCKETS);
          for (const row of rows) {
            shards[Number(row.bucket)] = Number(row.shard);
            moving[Number(row.bucket)] = row.moving === true || row.moving === 't' ? 1 : 0;
          }
          if (rows.length !== BUCKETS || shards.includes(-1)) {
            throw new Error(`the shard map has ${rows.length} rows, not one for each of ${BUCKETS} buckets`);
          }
          Object.assign(this, { shards, moving, loadedAt: started });
        })
        .finally(() => (this.pending = undefined));
    }
    await this.pending;
  }

  route(userId) {
    if (this.now() - this.loadedAt >= this.ttlMs) throw new Error('the shard map is stale: load it first');
    const bucket = bucketOf(userId);
    return { bucket, shard: this.shards[bucket], moving: this.moving[bucket] === 1 };
  }
}

module.exports = { BUCKETS, bucketOf, ShardMap };
