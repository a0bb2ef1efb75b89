import { Token } from 'aws-cdk-lib/core';
import { ScaleStagesError } from './errors';

/**
 * Two availability zone IDs per region of `VPC_ORIGIN_REGIONS` where CloudFront VPC origins reach
 * load balancers: the region's two lowest zone IDs that VPC origins do not exclude. A zone ID names
 * the same physical zone in every account, where a zone name does not ("AWS Availability Zones",
 * AWS Regions and Availability Zones guide). No AWS page lists the zones every account has; in the
 * regions where accounts differ these pairs are the ones other services name as open to all
 * (ECS Fargate: usw1-az1 and usw1-az3, apne1-az1 and apne1-az2, cac1-az1 and cac1-az2).
 */
export const VPC_ORIGIN_ZONE_IDS: { readonly [region: string]: readonly [string, string] } = {
  'us-east-1': ['use1-az1', 'use1-az2'],
  'us-east-2': ['use2-az1', 'use2-az2'],
  'us-west-1': ['usw1-az1', 'usw1-az3'],
  'us-west-2': ['usw2-az1', 'usw2-az2'],
  'af-south-1': ['afs1-az1', 'afs1-az2'],
  'ap-east-1': ['ape1-az1', 'ape1-az2'],
  'ap-east-2': ['ape2-az1', 'ape2-az2'],
  'ap-south-1': ['aps1-az1', 'aps1-az2'],
  'ap-south-2': ['aps2-az1', 'aps2-az2'],
  'ap-southeast-1': ['apse1-az1', 'apse1-az2'],
  'ap-southeast-2': ['apse2-az1', 'apse2-az2'],
  'ap-southeast-3': ['apse3-az1', 'apse3-az2'],
  'ap-southeast-4': ['apse4-az1', 'apse4-az2'],
  'ap-southeast-5': ['apse5-az1', 'apse5-az2'],
  'ap-southeast-7': ['apse7-az1', 'apse7-az2'],
  'ap-northeast-1': ['apne1-az1', 'apne1-az2'],
  'ap-northeast-2': ['apne2-az2', 'apne2-az3'],
  'ap-northeast-3': ['apne3-az1', 'apne3-az2'],
  'ca-central-1': ['cac1-az1', 'cac1-az2'],
  'ca-west-1': ['caw1-az1', 'caw1-az2'],
  'eu-central-1': ['euc1-az1', 'euc1-az2'],
  'eu-central-2': ['euc2-az1', 'euc2-az2'],
  'eu-west-1': ['euw1-az1', 'euw1-az2'],
  'eu-west-2': ['euw2-az1', 'euw2-az2'],
  'eu-west-3': ['euw3-az1', 'euw3-az2'],
  'eu-south-1': ['eus1-az1', 'eus1-az2'],
  'eu-south-2': ['eus2-az1', 'eus2-az2'],
  'eu-north-1': ['eun1-az1', 'eun1-az2'],
  'il-central-1': ['ilc1-az1', 'ilc1-az2'],
  'me-south-1': ['mes1-az1', 'mes1-az2'],
  'me-central-1': ['mec1-az1', 'mec1-az2'],
  'sa-east-1': ['sae1-az1', 'sae1-az2'],
  'mx-central-1': ['mxc1-az1', 'mxc1-az2'],
};

/**
 * The regions whose VPCs CloudFront VPC origins can reach, which every region of stage 10m needs
 * (its load balancer is internal). CloudFront Developer Guide, "Restrict access with VPC origins",
 * "Supported AWS Regions for VPC origins"; five of them exclude one availability zone each
 * (use1-az3, usw1-az2, apne1-az3, apne2-az1, cac1-az3), which `VPC_ORIGIN_ZONE_IDS` avoids.
 */
export const VPC_ORIGIN_REGIONS: readonly string[] = Object.keys(VPC_ORIGIN_ZONE_IDS);

/**
 * Where each region's data centres roughly are (latitude, longitude of the city AWS names the
 * region after), to tell which of the app's regions is nearest to a CloudFront regional edge
 * cache. Every region of `VPC_ORIGIN_REGIONS` is here, plus regions that host only edge caches.
 */
export const REGION_LOCATIONS: { readonly [region: string]: readonly [number, number] } = {
  'us-east-1': [38.9, -77.4], // Northern Virginia
  'us-east-2': [40.0, -83.0], // Ohio
  'us-west-1': [37.4, -121.9], // Northern California
  'us-west-2': [45.8, -119.7], // Oregon
  'af-south-1': [-33.9, 18.4], // Cape Town
  'ap-east-1': [22.3, 114.2], // Hong Kong
  'ap-east-2': [25.0, 121.5], // Taipei
  'ap-south-1': [19.1, 72.9], // Mumbai
  'ap-south-2': [17.4, 78.5], // Hyderabad
  'ap-southeast-1': [1.35, 103.8], // Singapore
  'ap-southeast-2': [-33.9, 151.2], // Sydney
  'ap-southeast-3': [-6.2, 106.8], // Jakarta
  'ap-southeast-4': [-37.8, 145.0], // Melbourne
  'ap-southeast-5': [3.1, 101.7], // Malaysia
  'ap-southeast-7': [13.8, 100.5], // Thailand
  'ap-northeast-1': [35.7, 139.7], // Tokyo
  'ap-northeast-2': [37.6, 127.0], // Seoul
  'ap-northeast-3': [34.7, 135.5], // Osaka
  'ca-central-1': [45.5, -73.6], // Montreal
  'ca-west-1': [51.0, -114.1], // Calgary
  'eu-central-1': [50.1, 8.7], // Frankfurt
  'eu-central-2': [47.4, 8.5], // Zurich
  'eu-west-1': [53.3, -6.3], // Dublin
  'eu-west-2': [51.5, -0.1], // London
  'eu-west-3': [48.9, 2.35], // Paris
  'eu-south-1': [45.5, 9.2], // Milan
  'eu-south-2': [41.6, -0.9], // Aragon
  'eu-north-1': [59.3, 18.1], // Stockholm
  'il-central-1': [32.1, 34.8], // Tel Aviv
  'me-south-1': [26.1, 50.6], // Bahrain
  'me-central-1': [25.2, 55.3], // United Arab Emirates
  'sa-east-1': [-23.5, -46.6], // Sao Paulo
  'mx-central-1': [20.6, -100.4], // Queretaro
};

/** Fails unless `region` can hold a region of stage 10m; `what` names the prop or context key. */
export function checkRegion(what: string, region: string): void {
  if (Token.isUnresolved(region)) {
    throw new ScaleStagesError(`${what} must be a region name such as eu-west-1, not a deploy-time value.`);
  }
  if (!VPC_ORIGIN_REGIONS.includes(region)) {
    throw new ScaleStagesError(
      `${what} must be a region where CloudFront VPC origins can reach the load balancer; got '${region}' (choices: ${VPC_ORIGIN_REGIONS.join(', ')}).`,
    );
  }
}

/**
 * The app's regions ordered by distance from `from` (great-circle), nearest first; ties keep the
 * order of `regions`.
 */
export function byDistance(from: string, regions: readonly string[]): string[] {
  const [lat, lon] = REGION_LOCATIONS[from];
  const distance = (region: string) => {
    const [lat2, lon2] = REGION_LOCATIONS[region];
    const rad = Math.PI / 180;
    const a =
      Math.sin(((lat2 - lat) * rad) / 2) ** 2 +
      Math.cos(lat * rad) * Math.cos(lat2 * rad) * Math.sin(((lon2 - lon) * rad) / 2) ** 2;
    return 2 * Math.asin(Math.sqrt(a));
  };
  return [...regions].sort((x, y) => distance(x) - distance(y));
}
