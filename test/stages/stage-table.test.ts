import { UserStage } from '../../lib';
import { layersAt, sizingOf, STAGES, StageLayer } from '../../lib/stages/stage-table';

// Each sized layer has its sizing under this key of the stage's row.
const SIZED: Partial<Record<StageLayer, keyof (typeof STAGES)[number]['sizing']>> = {
  server: 'server',
  fleet: 'web',
  database: 'database',
  readReplicas: 'readReplicas',
  cache: 'cache',
  workers: 'workers',
  regions: 'secondaryRegion',
};

test('each stage is the previous stage plus the layers its row adds', () => {
  const added = STAGES.map(
    (row) => `${row.stage}: +${row.adds.join(' +')}${row.drops ? ` -${row.drops.join(' -')}` : ''}`,
  );
  expect(added).toEqual([
    '1: +network +server +cdn +operations',
    '10: +database',
    '100: +webClient',
    '1k: +fleet +edgeFirewall -server',
    '10k: +media',
    '100k: +readReplicas +cache',
    '1m: +workers +store',
    '10m: +regions',
  ]);
  expect([...layersAt(UserStage.USERS_10K)]).toEqual([...layersAt(UserStage.USERS_1K), 'media']);
  expect(layersAt(UserStage.USERS_1K).has('server')).toBe(false);
  expect(layersAt('nonsense' as UserStage).size).toBe(0);
});

test.each(STAGES.map((row) => [row.stage, row] as const))(
  'stage %s has sizing for exactly its sized layers',
  (stage, row) => {
    for (const [layer, key] of Object.entries(SIZED)) {
      expect({ layer, sized: row.sizing[key!] !== undefined }).toEqual({
        layer,
        sized: layersAt(stage).has(layer as StageLayer),
      });
    }
  },
);

test('a layer without sizing in the row is a bug in the stage table, named as such', () => {
  expect(() => sizingOf(STAGES[0], 'cache')).toThrow(/the stage table gives stage '1' no cache sizing/);
});
