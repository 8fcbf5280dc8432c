# shellcheck shell=bash
# The watchdog: started by the freeze as soon as its state exists, before the pre-freeze hooks, in
# its own session, from a file on tmpfs that holds every function it needs. It guards the whole
# freeze command:
# - until the freeze says "freezing" (control FIFO): if the command dies first (SIGKILL by the
#   agent's timeout: the FIFO reaches EOF), it ends the running hook's process group, runs the
#   post-thaw hooks of the pre-freeze hooks that ran, and files the freeze as aborted;
# - from "freezing": it thaws after its seconds, or at once if the command dies before "frozen".
# It thaws through descriptors it holds on the targets (inherited from the freeze), which reach
# them even under a mount made over a mount point. Its arguments are a second record of the
# freeze that the thaw reads from /proc when the state directory is gone. The OOM killer never
# picks it. It reads and writes only the state directory (tmpfs) until the filesystems are thawed.

# Arguments: state dir, fsfreeze, seconds, hook timeout, config dir, execution id, seconds to wait
# for "freezing", then per target: major:minor, device (stat's), mount point, fd held open on it.
# shellcheck disable=SC2317 # called from the watchdog file the freeze writes with declare -f
ecb_watchdog_main() {
  ecb_init
  ECB_STATE_DIR=$1 ECB_FSFREEZE=$2 ECB_WATCHDOG_SECONDS=$3 ECB_HOOK_TIMEOUT=$4 ECB_CONFIG_DIR=$5
  ECB_EXECUTION_ID=$6
  local arm=$7 line rc deadline now fd=3 phase=arming
  shift 7
  ECB_ACTIVE=$ECB_STATE_DIR/active ECB_LAST=$ECB_STATE_DIR/last ECB_EXECUTIONS=$ECB_STATE_DIR/executions
  ECB_RUN_DIR=$ECB_ACTIVE
  ECB_TRIGGER=watchdog
  ECB_TARGET_MPS=() ECB_TARGET_MAJMIN=() ECB_TARGET_DEV=()
  printf '%s\n' -1000 >"/proc/$$/oom_score_adj" || ecb_log "watchdog: could not protect itself from the OOM killer"
  if ! ecb_valid_int_range "$ECB_WATCHDOG_SECONDS" 1 300 || ! ecb_valid_int_range "$ECB_HOOK_TIMEOUT" 1 600 ||
    ! ecb_valid_int_range "$arm" 1 9999; then
    ecb_log "watchdog: invalid arguments"
    return 2
  fi
  while (($# >= 4)); do
    ECB_TARGET_MAJMIN+=("$1") ECB_TARGET_DEV+=("$2") ECB_TARGET_MPS+=("$3")
    ECB_FD_BY_DEV[$2]=/proc/$$/fd/$4
    shift 4
  done
  # The freeze holds the control FIFO open read-write; when its command ends, this read end sees
  # EOF. The timer FIFO, opened read-write here, never delivers EOF: `read -t` on it is a sleep
  # that needs no process and ends at once when a thaw stops the watchdog.
  exec 3<"$ECB_ACTIVE/control" || return 1
  mkfifo -m 0600 -- "$ECB_ACTIVE/timer" && exec 4<>"$ECB_ACTIVE/timer" || return 1
  printf '%s\n' "$$" >"$ECB_ACTIVE/watchdog.pid.tmp" && mv -f -- "$ECB_ACTIVE/watchdog.pid.tmp" "$ECB_ACTIVE/watchdog.pid"
  ecb_log "watchdog guarding execution $ECB_EXECUTION_ID (thaws ${ECB_WATCHDOG_SECONDS}s after the freeze starts)"
  deadline=$(($(ecb_mono_ms) + arm * 1000))
  while now=$(ecb_mono_ms); ((now < deadline)) || [[ $phase == arming ]]; do
    if ((now >= deadline)); then
      ecb_watchdog_abort STALLED "the freeze command did not reach fsfreeze within ${arm}s"
      return 0
    fi
    read -r -t "$(ecb_seconds $((deadline - now)))" -u "$fd" line
    rc=$?
    if ((rc == 0)); then
      [[ $phase == arming && $line == freezing ]] && phase=freezing deadline=$(($(ecb_mono_ms) + ECB_WATCHDOG_SECONDS * 1000))
      [[ $line == frozen ]] && phase=frozen
    elif ((rc <= 128)); then
      # EOF: the command ended, as it does once it has frozen everything; before that, it died.
      if [[ $phase != frozen ]]; then
        ecb_watchdog_abort KILLED "the freeze command ended before it had frozen everything"
        return 0
      fi
      fd=4
    fi
  done
  ecb_watchdog_fire
}

# Milliseconds as the seconds `read -t` takes.
ecb_seconds() {
  printf '%d.%03d' "$(($1 / 1000))" "$(($1 % 1000))"
}

# The active freeze is still this watchdog's (a later freeze has its own watchdog), and nobody
# else has claimed its thaw. Claiming makes this watchdog the one that thaws and runs the hooks.
ecb_watchdog_claim() {
  local owner
  owner=$(ecb_record_get "$ECB_ACTIVE/record" executionId 2>/dev/null) || owner=''
  [[ -z $owner || $owner == "$ECB_EXECUTION_ID" ]] || return 1
  if ! mkdir -- "$ECB_ACTIVE/claim" 2>/dev/null; then
    # A thaw or the freeze's own rollback owns it. Thawing again is harmless and covers a
    # freeze that raced that thaw.
    ecb_thaw_targets
    return 1
  fi
}

# The freeze command died (or stalled) before it finished: undo it like its own rollback would.
ecb_watchdog_abort() {
  ecb_kill_hook_group
  ecb_watchdog_claim || return 0
  ecb_log "watchdog: $2; undoing the freeze"
  ecb_undo_active watchdog-rollback "aborted:$1"
}

# No thaw came within the seconds: thaw first, then (only then) touch other filesystems.
ecb_watchdog_fire() {
  local hooks_ok=true hook
  ecb_watchdog_claim || return 0
  ecb_thaw_targets
  ecb_log "watchdog fired after ${ECB_WATCHDOG_SECONDS}s without a thaw: thawed [${ECB_THAWED[*]}], not frozen [${ECB_NOT_FROZEN[*]}], failed [${ECB_THAW_FAILED[*]}]"
  ecb_record_end watchdog watchdog-thawed
  ecb_mark_thawed "$ECB_EXECUTION_ID" watchdog
  if ecb_load_hooks; then
    for hook in "${ECB_POST_HOOKS[@]}"; do
      ecb_run_hook post-thaw "$hook" || hooks_ok=false
    done
  else
    hooks_ok=false
    ecb_hook_result post-thaw '' -1 false 0 "$ECB_ERROR_MESSAGE"
  fi
  ecb_hook_results_save "$ECB_ACTIVE/hooks"
  ecb_record_set "$ECB_ACTIVE/record" postThawHooksOk "$hooks_ok"
  logger -t ec2-consistent-backup "watchdog thawed ${#ECB_THAWED[@]} filesystem(s) after ${ECB_WATCHDOG_SECONDS}s without a thaw command (execution $ECB_EXECUTION_ID)" 2>/dev/null || true
  ecb_archive_active
}
