/**
 * The consistency a backup actually achieved. Every recovery point is tagged with one of these,
 * and every execution output states it, with a reason.
 *
 * - `application`: pre-freeze hooks ran and the data filesystems were frozen when the snapshots started
 *   (or, on Windows, VSS was used).
 * - `filesystem`: the data filesystems were frozen (no hooks configured), or the instance was stopped.
 * - `crash`: nothing was quiesced; restoring is like recovering from a power cut.
 * - `pending`: set when the backup job starts, replaced by the final label; a recovery point still
 *   labelled `pending` had its verdict lost and must be treated as crash-consistent.
 */
export type Consistency = 'application' | 'filesystem' | 'crash';
export type ConsistencyTag = Consistency | 'pending';
export const CONSISTENCY_LEVELS: readonly Consistency[] = ['application', 'filesystem', 'crash'];

export interface ConsistencyVerdict {
  readonly consistency: Consistency;
  /** Why this label, in a sentence an operator can act on. */
  readonly reason: string;
  /** How long the data filesystems were frozen, in milliseconds (0 when nothing was frozen). */
  readonly freezeMs: number;
}
