/**
 * Every stack of every built stage as a snapshot: a safety net that shows a reviewer what a change does
 * to the templates; the assertions in the other tests are the spec. Asset hashes are masked
 * (test/asset-hash-serializer.ts), so a snapshot changes only when a template does.
 */
import { BUILT_STAGES } from '../../lib/stages/stage-table';
import { stageTemplates } from '../stage-templates';

describe.each(BUILT_STAGES)('stage %s', (stage) => {
  const { primary, edge, secondaries } = stageTemplates(stage);
  const stacks: [string, object][] = [
    ['primary', primary.template],
    ...(edge ? [['edge', edge.template] as [string, object]] : []),
    ...secondaries.map((s) => [`region ${s.region}`, s.template] as [string, object]),
  ];

  test.each(stacks)('%s stack', (_name, template) => {
    expect(template).toMatchSnapshot();
  });
});
