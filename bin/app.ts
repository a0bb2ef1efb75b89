#!/usr/bin/env node
// Reads the context keys (stage, appName, regions) and creates the stacks they ask for: each stage's
// primary stack and, where it has one, its <name>-Edge stack in us-east-1, and at stage 10m a
// <name>-<region> stack per further region. The feature flags come from TestedFeatureFlags, as in a
// user's app; cdk.json and -c override them.
import { App } from 'aws-cdk-lib/core';
import { ScaleStagesError, StageStacks, TestedFeatureFlags, UserStage } from '../lib';
import { readStageContext } from '../lib/stages/context';

const app = new App({ context: TestedFeatureFlags.CONTEXT });
try {
  const { regions, stacks } = readStageContext(app.node);
  for (const { stage, stackName } of stacks) {
    new StageStacks(app, stackName, { stage, regions: stage === UserStage.USERS_10M ? regions : undefined });
  }
} catch (error) {
  if (!(error instanceof ScaleStagesError)) throw error;
  console.error(`cdk-scale-stages: ${error.message}`);
  process.exit(1);
}
