# shellcheck shell=bash
# The Thaw document: idempotent. Stops the watchdog, thaws in reverse order, runs post-thaw hooks,
# reports how long the filesystems were frozen and whether the watchdog had to do it.

ecb_thaw_emit() {
  local status=$1 err=null thawed_at_ms hooks_ok=true entry
  [[ $status == error ]] && err=$(ecb_error_json)
  thawed_at_ms=${ECB_THAWED_AT_MS:-$(ecb_now_ms)}
  for entry in "${ECB_HOOK_RESULTS[@]+"${ECB_HOOK_RESULTS[@]}"}"; do
    [[ $entry == *'"exitCode":0,'* ]] || hooks_ok=false
  done
  [[ ${ECB_HOOKS_OK_FROM_RECORD:-true} == true ]] || hooks_ok=false
  printf '{"schemaVersion":1,"action":"thaw","status":%s,"executionId":%s,"frozenExecutionId":%s,"thawedAt":%s,"thawedAtMs":%d,"thawed":%s,"notFrozen":%s,"failed":%s,"freezeMs":%d,"watchdogFired":%s,"thawedBy":%s,"hooks":%s,"postThawHooksOk":%s,"previous":%s,"warnings":%s,"error":%s}\n' \
    "$(ecb_json_str "$status")" "$(ecb_json_str "$ECB_EXECUTION_ID")" \
    "$( [[ -n ${ECB_FROZEN_EXECUTION_ID:-} ]] && ecb_json_str "$ECB_FROZEN_EXECUTION_ID" || printf 'null')" \
    "$(ecb_json_str "$(ecb_iso_ms "$thawed_at_ms")")" "$thawed_at_ms" \
    "$(ecb_json_str_array "${ECB_THAWED[@]+"${ECB_THAWED[@]}"}")" \
    "$(ecb_json_str_array "${ECB_NOT_FROZEN[@]+"${ECB_NOT_FROZEN[@]}"}")" \
    "$(ecb_json_str_array "${ECB_THAW_FAILED[@]+"${ECB_THAW_FAILED[@]}"}")" \
    "${ECB_FREEZE_MS:-0}" "${ECB_WATCHDOG_FIRED:-false}" \
    "$( [[ -n ${ECB_THAWED_BY:-} ]] && ecb_json_str "$ECB_THAWED_BY" || printf 'null')" \
    "${ECB_HOOKS_JSON:-$(ecb_json_array "${ECB_HOOK_RESULTS[@]+"${ECB_HOOK_RESULTS[@]}"}")}" "$hooks_ok" \
    "${ECB_PREVIOUS_JSON:-null}" "$(ecb_json_str_array "${ECB_WARNINGS[@]+"${ECB_WARNINGS[@]}"}")" "$err"
  ECB_EMITTED=1
}

ecb_thaw_fail() {
  ecb_error "$1" "$2"
  ecb_thaw_emit error
  exit 1
}

ecb_thaw_on_exit() {
  local rc=$?
  if ((ECB_EMITTED == 0)); then
    ecb_error INTERRUPTED "the thaw command stopped (exit $rc) before it finished; run it again"
    ecb_thaw_emit error
  fi
}

# Reads how a finished freeze ended from its record into the ECB_* report fields.
ecb_thaw_report_from() {
  local rec=$1 started thawed
  ECB_FROZEN_EXECUTION_ID=$(ecb_record_get "$rec" executionId) || ECB_FROZEN_EXECUTION_ID=''
  ECB_THAWED_BY=$(ecb_record_get "$rec" thawedBy) || ECB_THAWED_BY=''
  ECB_WATCHDOG_FIRED=$(ecb_record_get "$rec" watchdogFired) || ECB_WATCHDOG_FIRED=false
  [[ $ECB_WATCHDOG_FIRED == true ]] || ECB_WATCHDOG_FIRED=false
  ECB_HOOKS_OK_FROM_RECORD=$(ecb_record_get "$rec" postThawHooksOk) || ECB_HOOKS_OK_FROM_RECORD=true
  started=$(ecb_record_get "$rec" freezeStartMs) || started=0
  thawed=$(ecb_record_get "$rec" thawedAtMs) || thawed=0
  [[ $started =~ ^[0-9]+$ && $thawed =~ ^[0-9]+$ ]] || { started=0; thawed=0; }
  ECB_FREEZE_MS=0
  ((started > 0 && thawed >= started)) && ECB_FREEZE_MS=$((thawed - started))
  ((thawed > 0)) && ECB_THAWED_AT_MS=$thawed
  return 0
}

ecb_thaw_main() {
  ecb_init
  ECB_EMITTED=0
  ECB_HOOK_RESULTS=()
  ECB_WARNINGS=()
  ECB_THAWED=()
  ECB_NOT_FROZEN=()
  ECB_THAW_FAILED=()
  ECB_TARGET_MPS=()
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

  exec 9>"$ECB_STATE_DIR/lock"
  if ! flock -w 15 9; then
    # A freeze still running holds the lock; the cancel marker below stops it before its next fsfreeze.
    ECB_WARNINGS+=("another freeze or thaw held the lock for 15 s; thawing anyway")
  fi
  ECB_PREVIOUS_JSON=null
  ECB_RUN_DIR=$ECB_STATE_DIR

  if [[ -d $ECB_ACTIVE ]]; then
    printf '%s\n' "$ECB_EXECUTION_ID" >"$ECB_ACTIVE/cancel" 2>/dev/null || true
    ECB_FROZEN_EXECUTION_ID=$(ecb_record_get "$ECB_ACTIVE/record" executionId) || ECB_FROZEN_EXECUTION_ID=''
    if [[ -n $ECB_FROZEN_EXECUTION_ID && $ECB_FROZEN_EXECUTION_ID != "$ECB_EXECUTION_ID" ]]; then
      ECB_WARNINGS+=("the active freeze belongs to execution $ECB_FROZEN_EXECUTION_ID; thawing it anyway, because a frozen filesystem is never the safer state")
    fi
    ecb_read_targets "$ECB_ACTIVE/targets"
    if mkdir -- "$ECB_ACTIVE/claim" 2>/dev/null; then
      local pid hook hooks_ok=true
      pid=$(ecb_record_get "$ECB_ACTIVE/record" watchdogPid) || pid=''
      [[ -n $pid ]] && ecb_stop_watchdog "$pid"
      ecb_thaw_list "${ECB_TARGET_MPS[@]+"${ECB_TARGET_MPS[@]}"}"
      ECB_THAWED_AT_MS=$(ecb_now_ms)
      ecb_record_set "$ECB_ACTIVE/record" thawedAtMs "$ECB_THAWED_AT_MS"
      ecb_record_set "$ECB_ACTIVE/record" thawedBy "thaw:$ECB_EXECUTION_ID"
      ecb_record_set "$ECB_ACTIVE/record" watchdogFired false
      ecb_record_set "$ECB_ACTIVE/record" outcome thawed
      ECB_RUN_DIR=$ECB_ACTIVE
      if ecb_load_hooks; then
        for hook in "${ECB_POST_HOOKS[@]+"${ECB_POST_HOOKS[@]}"}"; do
          ecb_run_hook post-thaw "$hook" || hooks_ok=false
        done
      else
        hooks_ok=false
        ECB_WARNINGS+=("post-thaw hooks not run: $ECB_ERROR_MESSAGE")
      fi
      ecb_record_set "$ECB_ACTIVE/record" postThawHooksOk "$hooks_ok"
      ECB_HOOKS_OK_FROM_RECORD=$hooks_ok
      [[ $ECB_FROZEN_EXECUTION_ID == "$ECB_EXECUTION_ID" ]] && : >"$ECB_ACTIVE/acknowledged"
      local started
      started=$(ecb_record_get "$ECB_ACTIVE/record" freezeStartMs) || started=0
      ECB_FREEZE_MS=0
      [[ $started =~ ^[0-9]+$ ]] && ((started > 0)) && ECB_FREEZE_MS=$((ECB_THAWED_AT_MS - started))
      ECB_THAWED_BY=thaw:$ECB_EXECUTION_ID
      ECB_WATCHDOG_FIRED=false
      ecb_archive_active
    else
      # The watchdog claimed it: let it finish its hooks, then report what it did.
      local i waited=$(((ECB_HOOK_TIMEOUT + 5) * 20 + 200))
      for ((i = 0; i < waited && ${#ECB_TARGET_MPS[@]} > 0; i++)); do
        [[ -d $ECB_ACTIVE ]] || break
        sleep 0.1
      done
      ecb_thaw_list "${ECB_TARGET_MPS[@]+"${ECB_TARGET_MPS[@]}"}"
      ECB_THAWED_AT_MS=$(ecb_now_ms)
      if [[ -r $ECB_LAST/record && $(ecb_record_get "$ECB_LAST/record" executionId) == "$ECB_FROZEN_EXECUTION_ID" ]]; then
        ecb_thaw_report_from "$ECB_LAST/record"
        [[ -r $ECB_LAST/post-thaw-hooks.json ]] && ECB_HOOKS_JSON=$(<"$ECB_LAST/post-thaw-hooks.json")
        [[ $ECB_FROZEN_EXECUTION_ID == "$ECB_EXECUTION_ID" ]] && : >"$ECB_LAST/acknowledged"
      else
        ECB_WATCHDOG_FIRED=true
        ECB_THAWED_BY=watchdog
      fi
    fi
  elif [[ -r $ECB_LAST/record ]]; then
    # Nothing active: thaw the last freeze's filesystems again (a no-op when they are thawed) and
    # report how that freeze ended, if it was this execution's.
    ecb_read_targets "$ECB_LAST/targets"
    ecb_thaw_list "${ECB_TARGET_MPS[@]+"${ECB_TARGET_MPS[@]}"}"
    if [[ $(ecb_record_get "$ECB_LAST/record" executionId) == "$ECB_EXECUTION_ID" ]]; then
      ecb_thaw_report_from "$ECB_LAST/record"
      [[ -r $ECB_LAST/post-thaw-hooks.json && ! -e $ECB_LAST/acknowledged ]] && ECB_HOOKS_JSON=$(<"$ECB_LAST/post-thaw-hooks.json")
      : >"$ECB_LAST/acknowledged"
    else
      ECB_PREVIOUS_JSON=$(ecb_previous_json)
    fi
  fi

  if ((${#ECB_THAW_FAILED[@]} > 0)); then
    ecb_thaw_fail THAW_FAILED "fsfreeze -u failed for ${ECB_THAW_FAILED[*]}; the watchdog keeps retrying nothing, so run the Thaw document again or fsfreeze -u by hand"
  fi
  ecb_log "thaw done: thawed [${ECB_THAWED[*]+"${ECB_THAWED[*]}"}], not frozen [${ECB_NOT_FROZEN[*]+"${ECB_NOT_FROZEN[*]}"}], frozen for ${ECB_FREEZE_MS:-0} ms"
  ecb_thaw_emit thawed
  exit 0
}
