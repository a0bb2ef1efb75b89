// Draws each built stage's architecture: `npm run diagrams` writes docs/diagrams/stage-<id>.svg
// (and, with --dot, the DOT text beside it). The constructs mark the tiers they stand for; the
// templates tell who talks to whom (diagrams/parse.ts, region.ts, nodes.ts, edges.ts, stage.ts), and
// diagrams/render.ts draws them. IAM, policies, log groups, custom resources, security groups and
// routes are left out, but security group rules and IAM grants decide which tier talks to which.
import * as fs from 'fs';
import * as path from 'path';
import { BUILT_STAGES } from '../lib/stages/stage-table';
import { synthStageTemplates, ROOT } from './diagrams/parse';
import { DIAGRAM_DIR, diagramFile, renderSvgs, toDot } from './diagrams/render';
import { tierGraph } from './diagrams/stage';

const start = Date.now();
const dots = Object.fromEntries(
  BUILT_STAGES.map((stage) => [stage, toDot(tierGraph(stage, synthStageTemplates(stage)))]),
);
const svgs = renderSvgs(dots);
fs.mkdirSync(DIAGRAM_DIR, { recursive: true });
for (const [stage, svg] of Object.entries(svgs)) {
  fs.writeFileSync(diagramFile(stage), svg);
  if (process.argv.includes('--dot'))
    fs.writeFileSync(diagramFile(stage).replace(/\.svg$/, '.dot'), dots[stage]);
  console.log(`wrote ${path.relative(ROOT, diagramFile(stage))}`);
}
console.log(`${Object.keys(svgs).length} diagrams in ${((Date.now() - start) / 1000).toFixed(1)} s`);
