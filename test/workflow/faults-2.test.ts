/** The fault suite (sim/fault-schedules.ts), second half of the seeds: a file of its own so it runs on the other core. */

import { describe } from 'vitest';
import { shardTests } from './fault-shard';

describe('fault schedules, second half, judged by what the instance experienced', () => {
  shardTests(1);
});
