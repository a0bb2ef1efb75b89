// Deploy test: stage 1, then the next stage in place (test/integ/stage-upgrade.ts). npm run integ:deploy -- 1
import { UserStage } from '../../lib';
import { stageUpgradeTest } from './stage-upgrade';

export default stageUpgradeTest(UserStage.USERS_1);
