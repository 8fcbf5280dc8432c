/** The fault suite (sim/fault-schedules.ts), shard 4 of 4: a file of its own so that vitest's workers share the shards out. */

import { describe } from 'vitest';
import { shardTests } from './fault-shard';

describe('fault schedules, shard 4 of 4, judged by what the instance experienced', () => {
  shardTests(3);
});
