import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

// .ci/run sets VITEST_JSON to a path and reads the counts from it.
const json = process.env.VITEST_JSON;

/**
 * Folders whose files spend their time waiting, not computing: real loop-mounted filesystems and
 * freezes, watchdog timers, database servers, the lab's demo and experiment. Listed longest first.
 */
const WAITING = ['test/lab/', 'test/ssm-documents/', 'test/hooks/'];

/**
 * Starts the waiting files first, so the longest of them overlap with the CPU-bound rest (synth,
 * the state-machine simulator) instead of being left for last. Within each part vitest's own order
 * stands: longest first from its cache, else largest file first.
 */
class WaitingFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rank = (f: TestSpecification) => {
      const i = WAITING.findIndex((dir) => f.moduleId.includes(`/${dir}`));
      return i === -1 ? WAITING.length : i;
    };
    return sorted
      .map((f, i) => ({ f, i }))
      .sort((a, b) => rank(a.f) - rank(b.f) || a.i - b.i)
      .map(({ f }) => f);
  }
}

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // vitest's default is one worker per core but one: a single worker on CI's 2 cores, although
    // most of the suite's time is spent waiting (see WAITING). Every file is independent: each lab
    // run, loop device, mount, tmpfs, database socket and port is its own. More than three buys
    // nothing on 2 cores and one disk: the real-filesystem files then contend for both.
    maxWorkers: 3,
    sequence: { sequencer: WaitingFirst },
    reporters: json ? ['default', ['json', { outputFile: json }]] : ['default'],
  },
});
