import cf from 'cloudfront';

// CloudFront Function (viewer request) of stage 10m on the API's paths: reads go to the region
// nearest the viewer, with the next nearest as failover; writes go to the writer region.
//
// - GET, HEAD and OPTIONS: an origin group of the two regions nearest the regional edge cache that
//   serves the viewer (cf.edgeLocation.region), failing over on 5xx. CloudFront fails over only
//   these methods.
// - Every other method: the writer region, which is the key `writer-region` of the key value store,
//   or the stack's writer region (writerRegion, the primary by default) when the key is absent or
//   names no region of the app. Flipping the key (the promotion runbook) moves the writes without a
//   deploy.
// - Once a region other than the primary writes, every request goes there: the other regions'
//   replicas follow the primary's database, which no longer gets the writes.
// - /_region/<region>/...: pinned to that region, the prefix removed, so that an operator can check
//   one region through the front door.
//
// CONFIG is written at synth: the primary region, the writer region, the origin id of each region,
// and for each regional edge cache the two regions of the app nearest to it.
const CONFIG = {}; // CONFIG

const READS = { GET: true, HEAD: true, OPTIONS: true };

async function handler(event) {
  const request = event.request;
  const pinned = /^\/_region\/([a-z0-9-]+)(\/.*)$/.exec(request.uri);
  if (pinned && CONFIG.origins[pinned[1]]) {
    request.uri = pinned[2];
    cf.selectRequestOriginById(CONFIG.origins[pinned[1]]);
    return request;
  }
  const writer = await writerRegion();
  if (writer !== CONFIG.primary || !READS[request.method]) {
    cf.selectRequestOriginById(CONFIG.origins[writer]);
    return request;
  }
  const edge = cf.edgeLocation && cf.edgeLocation.region;
  const nearest = CONFIG.nearest[edge] || CONFIG.regions;
  cf.createRequestOriginGroup({
    originIds: [{ originId: CONFIG.origins[nearest[0]] }, { originId: CONFIG.origins[nearest[1]] }],
    failoverCriteria: { statusCodes: [500, 502, 503, 504] },
  });
  return request;
}

// The store's writer-region, or the stack's writer region when the key is absent (get rejects) or
// names no region of the app.
async function writerRegion() {
  const region = await cf
    .kvs()
    .get('writer-region', { format: 'string' })
    .catch(() => CONFIG.writer);
  return CONFIG.origins[region] ? region : CONFIG.writer;
}
