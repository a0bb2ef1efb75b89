#!/usr/bin/env node
// Reads the context keys (stage, appName, regions) and creates the stacks they ask for.
import { App } from 'aws-cdk-lib/core';
import { StageStack } from '../lib';
import { ScaleStagesError } from '../lib/private/errors';
import { readStageContext } from '../lib/stages/context';

const app = new App();
try {
  for (const { stage, stackName } of readStageContext(app.node).stacks) {
    new StageStack(app, stackName, { stage });
  }
} catch (error) {
  if (!(error instanceof ScaleStagesError)) throw error;
  console.error(`cdk-scale-stages: ${error.message}`);
  process.exit(1);
}
