// Deploy test: stage 1m, then the next stage in place (test/integ/stage-upgrade.ts). npm run integ:deploy -- 1m
import { UserStage } from '../../lib';
import { stageUpgradeTest } from './stage-upgrade';

export default stageUpgradeTest(UserStage.USERS_1M);
