import { IConstruct } from 'constructs';
import { subtreeCost } from './private/cost-model';

/**
 * What a construct costs a month before traffic, in US dollars: the resources it creates, at
 * on-demand list prices in us-east-1, from the library's one price table (the same estimate as
 * `StageStacks.estimatedMonthlyCost` and the README's stage table). Requests, bytes and backups
 * come on top. Synthesizes the app when it has not been synthesized yet.
 */
export class CostEstimate {
  /**
   * The monthly baseline of `scope`: any construct of this library (a `CachedTier`, a
   * `QueueWorkers`...), or a stack. Instance types, database classes and cache node types of the
   * Graviton families the table lists are priced in any size (scaled by EC2's size normalization
   * factors); another family fails with a `ScaleStagesError` that names it.
   */
  public static monthlyBaseline(scope: IConstruct): number {
    return subtreeCost(scope);
  }

  private constructor() {}
}
