import { Stack } from 'aws-cdk-lib/core';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import { CdnStatic } from '../constructs/cdn-static';
import { readAsset } from '../private/assets';
import { ScaleStagesError } from '../private/errors';
import { byDistance, REGION_LOCATIONS } from '../private/regions';

/** The key of the routing key value store that names the region taking the writes. */
export const WRITER_REGION_KEY = 'writer-region';

/** The name of stage 10m's routing key value store. */
export function routingStoreName(stackName: string): string {
  return `${stackName}-routing`;
}

/** The origin id of a region's app, which the routing function selects by. */
export function regionalOriginId(region: string): string {
  return `app-${region}`;
}

/** One region's app behind the distribution; its origin's `originId` is `regionalOriginId(region)`. */
export interface RegionalApp {
  readonly region: string;
  readonly origin: cloudfront.IOrigin;
}

/**
 * Stage 10m's routing at the edge, on the API's paths: reads to the region nearest the viewer with
 * failover to the next, writes to the writer region that a key value store names (the primary until
 * the promotion runbook flips it), and `/_region/<region>/*` pinned to one region. The primary's
 * app must come first. Returns the function association, for the API behavior, and the store.
 */
export function regionalRouting(
  cdn: CdnStatic,
  apps: RegionalApp[],
  writerRegion: string,
): { association: cloudfront.FunctionAssociation; store: cloudfront.KeyValueStore } {
  const regions = apps.map((a) => a.region);
  const storeName = routingStoreName(Stack.of(cdn).stackName);
  if (storeName.length > 64) {
    throw new ScaleStagesError(
      `at stage 10m the stack name must be at most 56 characters: its routing key value store is named '<stack name>-routing', which CloudFront allows 64 characters; got '${Stack.of(cdn).stackName}' (${Stack.of(cdn).stackName.length}).`,
    );
  }
  // Named, so that the promotion runbook finds it while the primary's region (and its stack) is down.
  const routing = new cloudfront.KeyValueStore(cdn, 'Routing', {
    keyValueStoreName: storeName,
    comment: `${WRITER_REGION_KEY}: the region that takes the writes (absent: ${writerRegion})`,
  });
  const fn = new cloudfront.Function(cdn, 'RegionalRouting', {
    comment: 'Stage 10m: reads to the nearest region, writes to the writer region',
    code: cloudfront.FunctionCode.fromInline(routingCode(regions, writerRegion)),
    runtime: cloudfront.FunctionRuntime.JS_2_0,
    keyValueStore: routing,
  });
  return {
    association: { function: fn, eventType: cloudfront.FunctionEventType.VIEWER_REQUEST },
    store: routing,
  };
}

/** Adds `/_region/<region>/*` for each app: that region only, for checks through the front door. */
export function pinRegions(
  cdn: CdnStatic,
  apps: RegionalApp[],
  routing: cloudfront.FunctionAssociation,
): void {
  for (const app of apps) cdn.addApiOrigin(app.origin, `/_region/${app.region}/*`, [routing]);
}

/**
 * The routing function's code with its configuration: the primary region, the writer region, each
 * region's origin id, and for every region that can host a regional edge cache, the app's two
 * regions nearest to it.
 */
export function routingCode(regions: string[], writerRegion: string = regions[0]): string {
  const nearest: { [edge: string]: string[] } = {};
  for (const edge of Object.keys(REGION_LOCATIONS)) nearest[edge] = byDistance(edge, regions).slice(0, 2);
  const config = {
    primary: regions[0],
    writer: writerRegion,
    regions: regions.slice(0, 2),
    origins: Object.fromEntries(regions.map((r) => [r, regionalOriginId(r)])),
    nearest,
  };
  // Without its comments: CloudFront Functions take at most 10 KB of code.
  return readAsset('cloudfront/regional-routing.js')
    .split('\n')
    .filter((line) => !/^\s*\/\//.test(line))
    .join('\n')
    .replace('const CONFIG = {}; // CONFIG', `const CONFIG = ${JSON.stringify(config)};`);
}
