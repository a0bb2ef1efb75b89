import { UserStage } from './user-stage';

/** Sizing of one stage; every value can be overridden through `StageStackProps`. */
export interface StageSizing {
  /** Instance type of the app server(s). */
  readonly serverInstanceType: string;
  /** Size of the stage-1 data volume, in GiB. */
  readonly dataVolumeGiB: number;
  /** RDS instance class without the `db.` prefix; absent before the database moves to RDS. */
  readonly databaseInstanceType?: string;
  /** Storage allocated to the RDS database at creation, in GiB. */
  readonly databaseStorageGiB?: number;
  /** Whether the RDS database is Multi-AZ. */
  readonly databaseMultiAz?: boolean;
}

/** One row of the stage table. */
export interface StageDefinition {
  readonly stage: UserStage;
  /** How many users the stage is sized for. */
  readonly users: number;
  /** The sizing; absent for stages this version does not build yet. */
  readonly sizing?: StageSizing;
}

/** The stages in upgrade order, with their sizing. */
export const STAGES: readonly StageDefinition[] = [
  {
    stage: UserStage.USERS_1,
    users: 1,
    sizing: { serverInstanceType: 't4g.micro', dataVolumeGiB: 20 },
  },
  {
    stage: UserStage.USERS_10,
    users: 10,
    sizing: {
      serverInstanceType: 't4g.micro',
      dataVolumeGiB: 20,
      databaseInstanceType: 't4g.micro',
      databaseStorageGiB: 20,
      databaseMultiAz: false,
    },
  },
  {
    stage: UserStage.USERS_100,
    users: 100,
    sizing: {
      serverInstanceType: 't4g.micro',
      dataVolumeGiB: 20,
      databaseInstanceType: 't4g.micro',
      databaseStorageGiB: 20,
      databaseMultiAz: false,
    },
  },
  { stage: UserStage.USERS_1K, users: 1_000 },
  { stage: UserStage.USERS_10K, users: 10_000 },
  { stage: UserStage.USERS_100K, users: 100_000 },
  { stage: UserStage.USERS_1M, users: 1_000_000 },
  { stage: UserStage.USERS_10M, users: 10_000_000 },
];

/** The stages this version builds, in upgrade order. */
export const BUILT_STAGES: readonly UserStage[] = STAGES.filter((s) => s.sizing).map((s) => s.stage);

/** Whether `stage` is `other` or later in the playbook. */
export function atLeast(stage: UserStage, other: UserStage): boolean {
  return STAGES.findIndex((s) => s.stage === stage) >= STAGES.findIndex((s) => s.stage === other);
}
