#!/usr/bin/env node
import { App, Stack } from 'aws-cdk-lib';
import { SeparatedDb, StageNetwork, StageStacks, TestedFeatureFlags, UserStage } from 'cdk-scale-stages';

// The feature flags cdk-scale-stages is tested with. Flags in cdk.json or given with -c win.
const app = new App({ context: TestedFeatureFlags.CONTEXT });

// The whole blueprint of one stage: the `Shop` stack and, from stage 1k, `Shop-Edge` in us-east-1.
// Move up one stage at a time: each deploy updates the same stacks in place.
new StageStacks(app, 'Shop', { stage: UserStage.USERS_1K });

// One construct on its own, in a stack of your own: a reporting database in its own network.
const reports = new Stack(app, 'Reports');
const network = new StageNetwork(reports, 'Network');
new SeparatedDb(reports, 'Database', {
  vpc: network.vpc,
  secretsManagerEndpoint: network.addSecretsManagerEndpoint(1),
});
