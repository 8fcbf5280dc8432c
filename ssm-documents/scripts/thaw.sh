# shellcheck shell=bash
# The Thaw document: idempotent and harmless, so it can be allowed on any instance. It leaves this
# execution's marker (a freeze that arrives later never runs), finds the frozen filesystems itself
# (the active record, and the arguments and descriptors of any live watchdog of ours), thaws them
# through whatever still reaches them, stops the watchdog only once every one is confirmed
# thawed, runs the post-thaw hooks, and reports how long the filesystems were frozen and who thawed them.

# The result line; ecb_emit gives the budgets: $1 hook output, $2 warnings.
ecb_thaw_line() {
  local status=$4 err=null thawed_at_ms hooks_ok=true hooks
  ECB_TRUNCATED=0
  [[ $status == error ]] && err=$(ecb_error_json)
  thawed_at_ms=${ECB_THAWED_AT_MS:-$(ecb_now_ms)}
  ecb_hooks_ok || hooks_ok=false
  [[ ${ECB_HOOKS_OK_FROM_RECORD:-true} == true ]] || hooks_ok=false
  ecb_hooks_json "$1"
  hooks=$ECB_JSON
  ecb_json_str_array_capped "$2" "${ECB_WARNINGS[@]}"
  printf '{"schemaVersion":1,"action":"thaw","status":%s,"executionId":%s,"frozenExecutionId":%s,"thawedAt":%s,"thawedAtMs":%d,"thawed":%s,"notFrozen":%s,"failed":%s,"freezeMs":%d,"watchdogFired":%s,"thawedBy":%s,"thawedByOtherExecution":%s,"hooks":%s,"postThawHooksOk":%s,"previous":%s,"warnings":%s,"truncated":%s,"error":%s}\n' \
    "$(ecb_json_str "$status")" "$(ecb_json_str "$ECB_EXECUTION_ID")" \
    "$( [[ -n ${ECB_FROZEN_EXECUTION_ID:-} ]] && ecb_json_str "$ECB_FROZEN_EXECUTION_ID" || printf 'null')" \
    "$(ecb_json_str "$(ecb_iso_ms "$thawed_at_ms")")" "$thawed_at_ms" \
    "$(ecb_json_str_array "${ECB_THAWED[@]}")" \
    "$(ecb_json_str_array "${ECB_NOT_FROZEN[@]}")" \
    "$(ecb_json_str_array "${ECB_THAW_FAILED[@]}")" \
    "${ECB_FREEZE_MS:-0}" "${ECB_WATCHDOG_FIRED:-false}" \
    "$( [[ -n ${ECB_THAWED_BY:-} ]] && ecb_json_str "$ECB_THAWED_BY" || printf 'null')" \
    "${ECB_THAWED_BY_OTHER:-false}" "$hooks" "$hooks_ok" "${ECB_PREVIOUS_JSON:-null}" "$ECB_JSON" \
    "$( ((ECB_TRUNCATED)) && echo true || echo false)" "$err"
}

ecb_thaw_fail() {
  ecb_error "$1" "$2"
  ecb_emit ecb_thaw_line error
  exit 1
}

ecb_thaw_on_exit() {
  local rc=$?
  if ((ECB_EMITTED == 0)); then
    ecb_error INTERRUPTED "the thaw command stopped (exit $rc) before it finished; run it again"
    ecb_emit ecb_thaw_line error
  fi
}

# Reads how a finished freeze ended from its record into the ECB_* report fields.
ecb_thaw_report_from() {
  local rec=$1 at by
  ECB_FROZEN_EXECUTION_ID=$(ecb_record_get "$rec" executionId) || ECB_FROZEN_EXECUTION_ID=''
  ECB_THAWED_BY=$(ecb_record_get "$rec" thawedBy) || ECB_THAWED_BY=''
  ECB_WATCHDOG_FIRED=$(ecb_record_get "$rec" watchdogFired) || ECB_WATCHDOG_FIRED=false
  [[ $ECB_WATCHDOG_FIRED == true ]] || ECB_WATCHDOG_FIRED=false
  ECB_HOOKS_OK_FROM_RECORD=$(ecb_record_get "$rec" postThawHooksOk) || ECB_HOOKS_OK_FROM_RECORD=true
  ECB_FREEZE_MS=$(ecb_record_freeze_ms "$rec")
  at=$(ecb_record_num "$rec" thawedAtMs)
  ((at > 0)) && ECB_THAWED_AT_MS=$at
  by=${ECB_THAWED_BY#thaw:}
  ECB_THAWED_BY_OTHER=false
  if [[ $ECB_THAWED_BY == thaw:* && $by != "$ECB_FROZEN_EXECUTION_ID" ]]; then
    ECB_THAWED_BY_OTHER=true
    [[ $ECB_FROZEN_EXECUTION_ID == "$ECB_EXECUTION_ID" ]] &&
      ECB_WARNINGS+=("this execution's freeze was ended at $(ecb_iso_ms "$at") by the thaw of execution $by, not by this one")
  fi
  return 0
}

# Live watchdogs of this state directory, found by their command lines (the state directory may
# have been deleted under them): sets ECB_WD_PIDS and ECB_WD_EXEC, adds their targets (their
# arguments: major:minor, device, mount point, fd, per target) to ECB_TARGET_*, their descriptors on the
# targets to ECB_FD_BY_DEV. A watchdog's arguments are a second record of the freeze, kept where
# no deleted file and no mount over a mount point can take it.
ecb_find_watchdogs() {
  local file pid argv=() a i dev
  ECB_WD_PIDS=() ECB_WD_EXEC=()
  while IFS= read -r file; do
    pid=${file#/proc/}
    pid=${pid%/cmdline}
    [[ $pid =~ ^[0-9]+$ && $(stat -c %u -- "/proc/$pid" 2>/dev/null) == 0 ]] || continue
    argv=()
    while IFS= read -r -d '' a; do argv+=("$a"); done <"$file"
    [[ ${argv[1]:-} == "$ECB_STATE_DIR/active/watchdog.sh" && ${#argv[@]} -ge 8 ]] || continue
    ECB_WD_PIDS+=("$pid")
    ECB_WD_EXEC+=("${argv[7]}")
    for ((i = 9; i + 3 < ${#argv[@]}; i += 4)); do
      ecb_add_target "${argv[i]}" "${argv[i + 1]}" "${argv[i + 2]}"
      dev=$(stat -L -c %d -- "/proc/$pid/fd/${argv[i + 3]}" 2>/dev/null) || continue
      [[ $dev == "${argv[i + 1]}" ]] && ECB_FD_BY_DEV["$dev"]=/proc/$pid/fd/${argv[i + 3]}
    done
  done < <(grep -l -s -a -F -- "$ECB_STATE_DIR/active/watchdog.sh" /proc/[0-9]*/cmdline 2>/dev/null)
}

ecb_hook_results_load() {
  local i meta
  for ((i = 0; i < 100; i++)); do
    read -r meta 2>/dev/null <"$1/$i" || break
    ECB_HR+=("$meta") ECB_HR_OUT+=("$(<"$1/$i.out")")
  done
}

# True when every hook result so far exited 0.
ecb_hooks_ok() {
  local entry rc
  for entry in "${ECB_HR[@]}"; do
    IFS='|' read -r _ _ rc _ <<<"$entry"
    [[ $rc == 0 ]] || return 1
  done
}

# The active freeze: claim it, thaw, and only once every target is confirmed thawed stop its
# watchdog, run the post-thaw hooks and file it. Returns 1 (watchdog left running) when not confirmed.
ecb_thaw_active() {
  local pid i hook hooks_ok=true
  printf '%s\n' "$ECB_EXECUTION_ID" 2>/dev/null >"$ECB_ACTIVE/cancel"
  # The watchdog may file the freeze away (active/ becomes last/) at any moment.
  ECB_FROZEN_EXECUTION_ID=$(ecb_record_get "$ECB_ACTIVE/record" executionId ||
    ecb_record_get "$ECB_LAST/record" executionId) || ECB_FROZEN_EXECUTION_ID=''
  if [[ -n $ECB_FROZEN_EXECUTION_ID && $ECB_FROZEN_EXECUTION_ID != "$ECB_EXECUTION_ID" ]]; then
    ECB_WARNINGS+=("the active freeze belongs to execution $ECB_FROZEN_EXECUTION_ID; thawing it anyway, because a frozen filesystem is never the safer state")
    ecb_mark_thawed "$ECB_FROZEN_EXECUTION_ID" "thaw:$ECB_EXECUTION_ID"
  fi
  if ! mkdir -- "$ECB_ACTIVE/claim" 2>/dev/null; then
    # The watchdog (or the freeze's own rollback) claimed it: let it finish its hooks.
    for ((i = 0; i < (ECB_HOOK_TIMEOUT + 5) * 20 + 200 && ${#ECB_TARGET_MPS[@]} > 0; i++)); do
      [[ -d $ECB_ACTIVE ]] || break
      sleep 0.1
    done
    ecb_thaw_targets
    ECB_THAWED_AT_MS=$(ecb_now_ms)
    ecb_thaw_report_finished "$ECB_FROZEN_EXECUTION_ID"
    return 0
  fi
  ecb_thaw_targets
  if ((${#ECB_THAW_FAILED[@]} > 0)); then
    rmdir -- "$ECB_ACTIVE/claim" 2>/dev/null
    ECB_WARNINGS+=("the watchdog was left running: it thaws by its deadline what it can reach")
    return 1
  fi
  pid=$(ecb_record_get "$ECB_ACTIVE/record" watchdogPid) || pid=''
  for pid in $pid "${ECB_WD_PIDS[@]}"; do ecb_stop_watchdog "$pid"; done
  ecb_record_end "thaw:$ECB_EXECUTION_ID" thawed
  ECB_RUN_DIR=$ECB_ACTIVE
  ecb_thaw_post_hooks
  ecb_record_set "$ECB_ACTIVE/record" postThawHooksOk "$ECB_HOOKS_OK_FROM_RECORD"
  [[ $ECB_FROZEN_EXECUTION_ID == "$ECB_EXECUTION_ID" ]] && : >"$ECB_ACTIVE/acknowledged"
  ecb_thaw_report_from "$ECB_ACTIVE/record"
  ecb_archive_active
}

ecb_thaw_post_hooks() {
  local hook
  ECB_HOOKS_OK_FROM_RECORD=true
  if ecb_load_hooks; then
    for hook in "${ECB_POST_HOOKS[@]}"; do
      ecb_run_hook post-thaw "$hook" || ECB_HOOKS_OK_FROM_RECORD=false
    done
  else
    ECB_HOOKS_OK_FROM_RECORD=false
    ECB_WARNINGS+=("post-thaw hooks not run: $ECB_ERROR_MESSAGE")
  fi
}

# A freeze that ended before this thaw (the watchdog, a rollback, another thaw): report it from
# its record, with the post-thaw hooks the watchdog ran if this thaw is the first to see them.
ecb_thaw_report_finished() {
  local id=$1 rec=$ECB_EXECUTIONS/$1.record
  [[ -r $rec ]] || {
    ECB_WATCHDOG_FIRED=true ECB_THAWED_BY=watchdog
    return 0
  }
  ecb_thaw_report_from "$rec"
  if [[ $(ecb_record_get "$ECB_LAST/record" executionId) == "$id" && ! -e $ECB_LAST/acknowledged ]]; then
    ecb_hook_results_load "$ECB_LAST/hooks"
    [[ $id == "$ECB_EXECUTION_ID" ]] && : >"$ECB_LAST/acknowledged"
  fi
}

# No active record, but a watchdog of ours is alive: the state directory was deleted (or its
# record lost) while frozen. The watchdog's arguments and descriptors say what to thaw.
ecb_thaw_orphans() {
  local pid ticks
  ECB_FROZEN_EXECUTION_ID=${ECB_WD_EXEC[0]}
  [[ $ECB_FROZEN_EXECUTION_ID == "$ECB_EXECUTION_ID" ]] || ecb_mark_thawed "$ECB_FROZEN_EXECUTION_ID" "thaw:$ECB_EXECUTION_ID"
  ECB_WARNINGS+=("the state directory held no record of the active freeze (deleted while frozen?); its watchdog (pid ${ECB_WD_PIDS[*]}) named what to thaw, and freezeMs counts from that watchdog's start, before the pre-freeze hooks")
  ecb_thaw_targets
  ((${#ECB_THAW_FAILED[@]} == 0)) || return 1
  ticks=$(ecb_proc_start "${ECB_WD_PIDS[0]}") || ticks=0
  ECB_FREEZE_MS=$(($(ecb_mono_ms) - ticks * 1000 / $(getconf CLK_TCK 2>/dev/null || echo 100)))
  ((ECB_FREEZE_MS >= 0)) || ECB_FREEZE_MS=0
  for pid in "${ECB_WD_PIDS[@]}"; do ecb_stop_watchdog "$pid"; done
  ECB_THAWED_AT_MS=$(ecb_now_ms) ECB_THAWED_BY=thaw:$ECB_EXECUTION_ID
  [[ $ECB_FROZEN_EXECUTION_ID == "$ECB_EXECUTION_ID" ]] || ECB_THAWED_BY_OTHER=true
  ecb_thaw_post_hooks
}

ecb_thaw_main() {
  ecb_init
  ECB_DOCUMENT=thaw
  ECB_EMITTED=0
  ECB_WARNINGS=()
  ECB_THAWED=() ECB_NOT_FROZEN=() ECB_THAW_FAILED=() ECB_THAW_WHY=()
  ECB_TARGET_MPS=() ECB_TARGET_MAJMIN=() ECB_TARGET_DEV=()
  ECB_EXECUTION_ID=$ECB_P_ExecutionId
  ECB_HOOK_TIMEOUT=$ECB_P_HookTimeoutSeconds
  ECB_WATCHDOG_SECONDS=0
  trap ecb_thaw_on_exit EXIT
  # A thaw must finish: an operator's Ctrl-C, a hang-up, or an agent that went away (broken pipe)
  # must not leave it half done.
  trap '' INT HUP PIPE

  ecb_valid_execution_id "$ECB_EXECUTION_ID" ||
    { ECB_EXECUTION_ID=invalid; ecb_thaw_fail INVALID_PARAMETER "ExecutionId must be 1-128 characters of A-Z a-z 0-9 _ . : -"; }
  ecb_valid_int_range "$ECB_HOOK_TIMEOUT" 1 600 ||
    ecb_thaw_fail INVALID_PARAMETER "HookTimeoutSeconds \"$ECB_HOOK_TIMEOUT\" is not allowed; allowed: a whole number from 1 to 600"
  ECB_HOOK_TIMEOUT=$((10#$ECB_HOOK_TIMEOUT))
  ecb_find_fsfreeze ||
    ecb_thaw_fail FSFREEZE_MISSING "fsfreeze was not found in /usr/sbin, /sbin or PATH; nothing could have been frozen by this tool"
  ecb_prepare_state_dir || ecb_thaw_fail "$ECB_ERROR_CODE" "$ECB_ERROR_MESSAGE"
  # Before the lock: a freeze of this execution still running its hooks sees it before its fsfreeze.
  ecb_mark_thawed "$ECB_EXECUTION_ID" "thaw:$ECB_EXECUTION_ID"
  ecb_prune_executions
  # A freeze still running holds the lock; the cancel marker below stops it before its next fsfreeze.
  ecb_take_lock 15 || ECB_WARNINGS+=("another freeze or thaw held the lock for 15 s; thawing anyway")
  ECB_PREVIOUS_JSON=null
  ECB_RUN_DIR=$ECB_STATE_DIR

  if [[ -d $ECB_ACTIVE ]]; then
    ecb_read_targets "$ECB_ACTIVE/targets"
    ecb_find_watchdogs
    ecb_thaw_active
  else
    ecb_find_watchdogs
    if ((${#ECB_WD_PIDS[@]} > 0)); then
      ecb_thaw_orphans
    elif [[ -r $ECB_EXECUTIONS/$ECB_EXECUTION_ID.record ]]; then
      # Nothing active: thaw this execution's filesystems again (a no-op when they are thawed)
      # and report how its freeze ended.
      ecb_read_targets "$ECB_EXECUTIONS/$ECB_EXECUTION_ID.targets"
      ecb_thaw_targets
      ecb_thaw_report_finished "$ECB_EXECUTION_ID"
    else
      ECB_PREVIOUS_JSON=$(ecb_previous_json)
      ecb_read_targets "$ECB_LAST/targets"
      ecb_thaw_targets
    fi
  fi
  if ((${#ECB_THAW_FAILED[@]} > 0)); then
    ecb_thaw_fail THAW_FAILED "not confirmed thawed: ${ECB_THAW_WHY[*]}"
  fi
  ecb_log "thaw done: thawed [${ECB_THAWED[*]}], not frozen [${ECB_NOT_FROZEN[*]}], frozen for ${ECB_FREEZE_MS:-0} ms"
  ecb_emit ecb_thaw_line thawed
  exit 0
}
