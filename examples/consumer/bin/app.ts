#!/usr/bin/env node
import { App, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import {
  AppSource,
  MultiRegion,
  QueueWorkers,
  SeparatedDb,
  StageNetwork,
  StagePipeline,
  StageStacks,
  TestedFeatureFlags,
  UserStage,
} from 'cdk-scale-stages';

// The feature flags cdk-scale-stages is tested with. Flags in cdk.json or given with -c win.
const app = new App({ context: TestedFeatureFlags.CONTEXT });

// The whole blueprint of one stage: the `Shop` stack and, from stage 1k, `Shop-Edge` in us-east-1.
// Move up one stage at a time: each deploy updates the same stacks in place.
new StageStacks(app, 'Shop', { stage: UserStage.USERS_1K });

// Stage 1k deployed on every push to your repository by a pipeline (CDK Pipelines), after a person
// approves the release, into stacks of its own (ShopPipeline-Shop, ShopPipeline-Shop-Edge). The connection
// is an AWS CodeConnections connection to your repository's host, created once in the console.
new StagePipeline(app, 'ShopPipeline', {
  env: { account: '111111111111', region: 'eu-west-1' },
  repository: 'example/shop',
  connectionArn:
    'arn:aws:codeconnections:eu-west-1:111111111111:connection/abcd1234-ab12-cd34-ef56-abcdef123456',
  deploy: { stage: UserStage.USERS_1K },
  appName: 'Shop',
  manualApproval: true,
});

// The same stage in a VPC your team already has: here one of your own stacks (ec2.Vpc.fromLookup finds
// a deployed one). The tiers take its subnets by type; synth says what is missing if it lacks any.
const platform = new Stack(app, 'Platform');
const vpc = new ec2.Vpc(platform, 'Vpc', { maxAzs: 2, natGateways: 1 });
new StageStacks(app, 'Intranet', { stage: UserStage.USERS_1K, vpc });

// Stage 10m composed directly: `Global` in eu-west-1 (the primary; deploy it there), a
// `Global-eu-central-1` stack with a replica of its database, and `Global-Edge` in us-east-1. It runs a
// second service: the demo's realtime service (WebSockets at /ws/*) on servers of its own in each region,
// behind the same load balancers and distribution, scaled, alarmed and released on its own.
new MultiRegion(app, 'Global', {
  stage: UserStage.USERS_10M,
  regions: ['eu-west-1', 'eu-central-1'],
  services: [{ name: 'realtime', app: AppSource.demoRealtime(), pathPattern: '/ws/*' }],
});

// Constructs on their own, in a stack of your own: a reporting database, and workers that build
// the reports from a job queue, in their own network (with a NAT, for the workers).
const reports = new Stack(app, 'Reports');
const network = new StageNetwork(reports, 'Network', { natGateways: 1 });
const database = new SeparatedDb(reports, 'Database', {
  vpc: network.vpc,
  secretsManagerEndpoint: network.addSecretsManagerEndpoint(1),
});
const workers = new QueueWorkers(reports, 'Workers', { vpc: network.vpc, maxCapacity: 4 });
database.connectApp(workers);
