# shellcheck shell=bash
# The watchdog: started by the freeze before the first fsfreeze, in its own session, from a file
# on tmpfs that holds every function it needs. If no thaw stops it within its seconds, it thaws
# every target, runs the post-thaw hooks and leaves a record the next thaw or freeze reports.
# It reads and writes only the state directory (tmpfs) until the filesystems are thawed.

# Arguments: state dir, fsfreeze path, seconds, hook timeout, config dir, execution id.
# shellcheck disable=SC2317 # called from the watchdog file the freeze writes with declare -f
ecb_watchdog_main() {
  ecb_init
  ECB_STATE_DIR=$1
  ECB_FSFREEZE=$2
  ECB_WATCHDOG_SECONDS=$3
  ECB_HOOK_TIMEOUT=$4
  ECB_CONFIG_DIR=$5
  ECB_EXECUTION_ID=$6
  ECB_ACTIVE=$ECB_STATE_DIR/active
  ECB_LAST=$ECB_STATE_DIR/last
  ECB_RUN_DIR=$ECB_ACTIVE
  ECB_TRIGGER=watchdog
  ECB_HOOK_RESULTS=()
  local fifo=$ECB_ACTIVE/watchdog.fifo now hooks_ok=true hook
  if ! ecb_valid_int_range "$ECB_WATCHDOG_SECONDS" 1 300 || ! ecb_valid_int_range "$ECB_HOOK_TIMEOUT" 1 600; then
    ecb_log "watchdog: invalid arguments"
    return 2
  fi
  mkfifo -m 0600 -- "$fifo" || return 1
  # A FIFO opened read-write never delivers EOF, so `read -t` is a timer that needs no process
  # (no `sleep` binary to load) and is ended at once by the thaw's SIGTERM.
  exec 3<>"$fifo"
  # The targets are read now and kept in memory: at expiry the record may have been moved by a
  # thaw that raced the freeze, and the watchdog must still thaw what that freeze went on to freeze.
  ecb_read_targets "$ECB_ACTIVE/targets"
  printf '%s\n' "$$" >"$ECB_ACTIVE/watchdog.pid.tmp" && mv -f -- "$ECB_ACTIVE/watchdog.pid.tmp" "$ECB_ACTIVE/watchdog.pid"
  ecb_log "watchdog armed for ${ECB_WATCHDOG_SECONDS}s (execution $ECB_EXECUTION_ID)"
  read -r -t "$ECB_WATCHDOG_SECONDS" -u 3 _ || true

  local owner
  owner=$(ecb_record_get "$ECB_ACTIVE/record" executionId 2>/dev/null) || owner=''
  if [[ -n $owner && $owner != "$ECB_EXECUTION_ID" ]]; then
    # A later freeze is active: ours ended long ago, and that freeze has its own watchdog.
    return 0
  fi
  if ! mkdir -- "$ECB_ACTIVE/claim" 2>/dev/null; then
    # A thaw claimed or filed this freeze while the time ran out: it owns the hooks. Thawing our
    # own targets again is harmless and covers a freeze that raced that thaw.
    ecb_thaw_list "${ECB_TARGET_MPS[@]+"${ECB_TARGET_MPS[@]}"}"
    return 0
  fi
  ecb_thaw_list "${ECB_TARGET_MPS[@]+"${ECB_TARGET_MPS[@]}"}"
  now=$(ecb_now_ms)
  ecb_log "watchdog fired after ${ECB_WATCHDOG_SECONDS}s without a thaw: thawed [${ECB_THAWED[*]+"${ECB_THAWED[*]}"}], not frozen [${ECB_NOT_FROZEN[*]+"${ECB_NOT_FROZEN[*]}"}], failed [${ECB_THAW_FAILED[*]+"${ECB_THAW_FAILED[*]}"}]"
  ecb_record_set "$ECB_ACTIVE/record" thawedAtMs "$now"
  ecb_record_set "$ECB_ACTIVE/record" thawedBy watchdog
  ecb_record_set "$ECB_ACTIVE/record" watchdogFired true
  ecb_record_set "$ECB_ACTIVE/record" outcome watchdog-thawed
  # Only now, with everything thawed, may the watchdog touch other filesystems (hooks, syslog).
  if ecb_load_hooks; then
    for hook in "${ECB_POST_HOOKS[@]+"${ECB_POST_HOOKS[@]}"}"; do
      ecb_run_hook post-thaw "$hook" || hooks_ok=false
    done
  else
    hooks_ok=false
    ECB_HOOK_RESULTS+=("$(printf '{"phase":"post-thaw","name":"","exitCode":-1,"timedOut":false,"ms":0,"output":%s}' \
      "$(ecb_json_str "$ECB_ERROR_MESSAGE")")")
  fi
  ecb_json_array "${ECB_HOOK_RESULTS[@]+"${ECB_HOOK_RESULTS[@]}"}" >"$ECB_ACTIVE/post-thaw-hooks.json"
  ecb_record_set "$ECB_ACTIVE/record" postThawHooksOk "$hooks_ok"
  logger -t ec2-consistent-backup "watchdog thawed ${#ECB_THAWED[@]} filesystem(s) after ${ECB_WATCHDOG_SECONDS}s without a thaw command (execution $ECB_EXECUTION_ID)" 2>/dev/null || true
  ecb_archive_active
  return 0
}
