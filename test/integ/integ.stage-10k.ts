// Deploy test: stage 10k, then the next stage in place (test/integ/stage-upgrade.ts). npm run integ:deploy -- 10k
import { UserStage } from '../../lib';
import { stageUpgradeTest } from './stage-upgrade';

export default stageUpgradeTest(UserStage.USERS_10K);
