// Deploy test: stage 1k, then the next stage in place (test/integ/stage-upgrade.ts). npm run integ:deploy -- 1k
import { UserStage } from '../../lib';
import { stageUpgradeTest } from './stage-upgrade';

export default stageUpgradeTest(UserStage.USERS_1K);
