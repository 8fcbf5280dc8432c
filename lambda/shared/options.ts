/** Values shared by deploy-time config (lib/config.ts) and run-time tag options. */
export type FreezeFailurePolicy = 'crash-consistent' | 'skip';
export const FREEZE_FAILURE_POLICIES: readonly FreezeFailurePolicy[] = ['crash-consistent', 'skip'];
