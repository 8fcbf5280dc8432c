# shellcheck shell=bash
# Thaw helpers, shared by the freeze (rollback), the watchdog and the thaw.
#
# A target is a filesystem, known by its device (major:minor) and the mount point it was found
# at. A thaw must reach the filesystem itself, not whatever that path shows now: something may
# have been mounted over it since. It uses, in order, a descriptor held open on the filesystem
# (ECB_FD_BY_DEV: the freeze's own, or the watchdog's through /proc/<pid>/fd), the mount point if
# it still shows that device, or another mount of the same device. `fsfreeze -u` succeeding, or
# failing with EINVAL (not frozen), confirms the filesystem thawed; anything else does not.

# Sets ECB_REACH to a path on the target's filesystem (mount point, major:minor, device), or
# empty with ECB_REACH_WHY (unreachable) or without it (not mounted any more: nothing to thaw).
ecb_reach() {
  local mp=$1 majmin=$2 dev=$3 i
  ECB_REACH='' ECB_REACH_WHY=''
  if [[ -n ${ECB_FD_BY_DEV[$dev]:-} ]]; then
    ECB_REACH=${ECB_FD_BY_DEV[$dev]}
    return 0
  fi
  if [[ $(stat -L -c %d -- "$mp" 2>/dev/null) == "$dev" ]]; then
    ECB_REACH=$mp
    return 0
  fi
  [[ -n ${M_MAJMIN[*]+set} ]] || ecb_read_mounts
  for i in "${!M_MAJMIN[@]}"; do
    [[ ${M_MAJMIN[$i]} == "$majmin" ]] || continue
    if [[ $(stat -L -c %d -- "${M_MP[$i]}" 2>/dev/null) == "$dev" ]]; then
      ECB_REACH=${M_MP[$i]}
      return 0
    fi
    ECB_REACH_WHY="something is mounted over it at $mp, and no other path reaches it; unmount what is mounted there and run the Thaw document again"
  done
  return 0
}

# Thaws the targets in reverse order. Sets ECB_THAWED, ECB_NOT_FROZEN and ECB_THAW_FAILED (mount
# points) and ECB_THAW_WHY (one reason per failure): every target not in ECB_THAW_FAILED is
# confirmed thawed.
ecb_thaw_targets() {
  ECB_THAWED=() ECB_NOT_FROZEN=() ECB_THAW_FAILED=() ECB_THAW_WHY=()
  local i mp msg dev try
  for ((i = ${#ECB_TARGET_MPS[@]} - 1; i >= 0; i--)); do
    mp=${ECB_TARGET_MPS[$i]} dev=${ECB_TARGET_DEV[$i]}
    for try in 1 2; do
      ecb_reach "$mp" "${ECB_TARGET_MAJMIN[$i]}" "$dev"
      if [[ -z $ECB_REACH ]]; then
        if [[ -n $ECB_REACH_WHY ]]; then
          ECB_THAW_FAILED+=("$mp") ECB_THAW_WHY+=("$mp: $ECB_REACH_WHY")
        else
          ECB_NOT_FROZEN+=("$mp")
        fi
      elif msg=$("$ECB_FSFREEZE" -u -- "$ECB_REACH" 2>&1); then
        ECB_THAWED+=("$mp")
      elif [[ $msg == *"Invalid argument"* || $msg == *"not frozen"* ]]; then
        ECB_NOT_FROZEN+=("$mp")
      elif [[ $try == 1 && $ECB_REACH == /proc/* ]]; then
        # Another process's descriptor went with it (a watchdog that just finished): try the paths.
        unset "ECB_FD_BY_DEV[$dev]"
        continue
      else
        ECB_THAW_FAILED+=("$mp") ECB_THAW_WHY+=("$mp: fsfreeze -u failed: $msg")
      fi
      break
    done
  done
  ((${#ECB_THAW_FAILED[@]} == 0)) || ecb_log "thaw not confirmed: ${ECB_THAW_WHY[*]}"
}

# Ends a freeze that will not complete (the caller holds its claim): its hook's process group,
# whatever of ECB_TARGET_* is frozen, and what its pre-freeze hooks started (their post-thaw
# hooks, ECB_ABORTED=1); then records who ended it ($1) and how ($2), and files it.
ecb_undo_active() {
  ecb_kill_hook_group "$ECB_ACTIVE"
  ecb_thaw_targets
  ECB_RUN_DIR=$ECB_ACTIVE
  ecb_run_undo_hooks "$ECB_ACTIVE/pre-ran"
  ecb_hook_results_save "$ECB_ACTIVE/hooks"
  ecb_record_end "$1" "$2"
  ecb_archive_active
}
