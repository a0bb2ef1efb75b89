// Deploy test: stage 10, then the next stage in place (test/integ/stage-upgrade.ts). npm run integ:deploy -- 10
import { UserStage } from '../../lib';
import { stageUpgradeTest } from './stage-upgrade';

export default stageUpgradeTest(UserStage.USERS_10);
