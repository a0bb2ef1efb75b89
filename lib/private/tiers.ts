import { IConstruct } from 'constructs';

/** What a box of the stage diagrams (`npm run diagrams`) stands for. */
export type Tier =
  | 'cdn'
  | 'firewall'
  | 'bucket'
  | 'server'
  | 'volume'
  | 'loadBalancer'
  | 'fleet'
  | 'database'
  | 'replica'
  | 'cache'
  | 'store'
  | 'queue'
  | 'schedule';

/** One box: its tier and the constructs drawn in it, the first of which names it. */
export interface TierMark {
  readonly tier: Tier;
  readonly parts: readonly IConstruct[];
}

/**
 * A symbol property, as aws-cdk-lib marks its stacks for `Stack.isStack`: unlike metadata it reaches
 * neither the templates nor the cloud assembly manifest, so marking a construct changes no output.
 */
const TIER_MARK = Symbol.for('cdk-scale-stages.tier');

/**
 * Marks `construct` as one box of the diagrams, with `parts` drawn inside it (an Elastic IP in its
 * server, a dead-letter queue in its queue), so the diagram script reads the tiers from the tree.
 */
export function markTier(construct: IConstruct, tier: Tier, ...parts: IConstruct[]): void {
  const mark: TierMark = { tier, parts: [construct, ...parts] };
  for (const part of mark.parts) Object.defineProperty(part, TIER_MARK, { value: mark, configurable: true });
}

/** The box a construct is drawn in, if it is marked. */
export function tierOf(construct: IConstruct): TierMark | undefined {
  return (construct as unknown as { [TIER_MARK]?: TierMark })[TIER_MARK];
}
