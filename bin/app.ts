#!/usr/bin/env node
// Reads the context keys (stage, appName, regions) and creates the stacks they ask for: each stage's
// primary stack and, where it has one, its <name>-Edge stack in us-east-1.
import { App } from 'aws-cdk-lib/core';
import { StageStacks } from '../lib';
import { ScaleStagesError } from '../lib/private/errors';
import { readStageContext } from '../lib/stages/context';

const app = new App();
try {
  for (const { stage, stackName } of readStageContext(app.node).stacks) {
    new StageStacks(app, stackName, { stage });
  }
} catch (error) {
  if (!(error instanceof ScaleStagesError)) throw error;
  console.error(`cdk-scale-stages: ${error.message}`);
  process.exit(1);
}
