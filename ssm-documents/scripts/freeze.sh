# shellcheck shell=bash
# The Freeze document: pre-freeze hooks, sync, watchdog, fsfreeze in a stable order.
# stdout is exactly one JSON object; on any error everything this command froze is thawed.

ecb_freeze_emit() {
  local status=$1 err=null watchdog=null frozen_at=null frozen_at_ms=null started=null hooks_configured=false
  [[ $status == error ]] && err=$(ecb_error_json)
  if [[ $status == frozen ]]; then
    frozen_at=$(ecb_json_str "$(ecb_iso_ms "$ECB_FROZEN_AT_MS")")
    frozen_at_ms=$ECB_FROZEN_AT_MS
    started=$ECB_FREEZE_START_MS
  fi
  if [[ -n ${ECB_WATCHDOG_PID:-} ]]; then
    watchdog=$(printf '{"pid":%d,"seconds":%d,"deadline":%s}' "$ECB_WATCHDOG_PID" "$ECB_WATCHDOG_SECONDS" \
      "$(ecb_json_str "$(ecb_iso_ms "$ECB_WATCHDOG_DEADLINE_MS")")")
  fi
  ((${#ECB_PRE_HOOKS[@]} > 0)) && hooks_configured=true
  printf '{"schemaVersion":1,"action":"freeze","status":%s,"executionId":%s,"frozenAt":%s,"frozenAtMs":%s,"freezeStartedAtMs":%s,"targets":%s,"unmapped":%s,"skipped":%s,"volumes":%s,"hooksConfigured":%s,"hooks":%s,"watchdog":%s,"previous":%s,"warnings":%s,"fsfreeze":%s,"error":%s}\n' \
    "$(ecb_json_str "$status")" "$(ecb_json_str "$ECB_EXECUTION_ID")" "$frozen_at" "$frozen_at_ms" "$started" \
    "$(ecb_json_array "${ECB_TARGETS_JSON[@]+"${ECB_TARGETS_JSON[@]}"}")" \
    "$(ecb_json_array "${ECB_UNMAPPED_JSON[@]+"${ECB_UNMAPPED_JSON[@]}"}")" \
    "$(ecb_json_array "${ECB_SKIPPED_JSON[@]+"${ECB_SKIPPED_JSON[@]}"}")" \
    "$(ecb_json_array "${ECB_VOLUMES_JSON[@]+"${ECB_VOLUMES_JSON[@]}"}")" \
    "$hooks_configured" "$(ecb_json_array "${ECB_HOOK_RESULTS[@]+"${ECB_HOOK_RESULTS[@]}"}")" \
    "$watchdog" "${ECB_PREVIOUS_JSON:-null}" \
    "$(ecb_json_str_array "${ECB_WARNINGS[@]+"${ECB_WARNINGS[@]}"}")" \
    "$( [[ -n ${ECB_FSFREEZE:-} ]] && ecb_json_str "$ECB_FSFREEZE" || printf 'null')" "$err"
  ECB_EMITTED=1
}

# Undoes whatever this command did: thaws what it froze (reverse order), stops its watchdog, runs
# the post-thaw hooks of the pre-freeze hooks that ran, and files the freeze as aborted.
ecb_freeze_rollback() {
  ((ECB_OWN_ACTIVE == 1)) || return 0
  ECB_OWN_ACTIVE=0
  if ! mkdir -- "$ECB_ACTIVE/claim" 2>/dev/null; then
    # The watchdog fired meanwhile and owns the thaw and the hooks; thawing twice is harmless.
    ecb_thaw_list "${ECB_FROZEN[@]+"${ECB_FROZEN[@]}"}"
    return 0
  fi
  [[ -n ${ECB_WATCHDOG_PID:-} ]] && ecb_stop_watchdog "$ECB_WATCHDOG_PID"
  ecb_thaw_list "${ECB_FROZEN[@]+"${ECB_FROZEN[@]}"}"
  ((${#ECB_THAW_FAILED[@]} > 0)) && ECB_ERROR_MESSAGE+="; thaw FAILED for: ${ECB_THAW_FAILED[*]} (run fsfreeze -u on them)"
  local ran name
  for ran in "${ECB_PRE_RAN[@]+"${ECB_PRE_RAN[@]}"}"; do
    name=${ran##*/}
    if [[ -x $ECB_CONFIG_DIR/post-thaw.d/$name ]]; then
      ECB_ABORTED=1 ecb_run_hook post-thaw "$ECB_CONFIG_DIR/post-thaw.d/$name" || true
    fi
  done
  ecb_record_set "$ECB_ACTIVE/record" thawedAtMs "$(ecb_now_ms)"
  ecb_record_set "$ECB_ACTIVE/record" thawedBy freeze-rollback
  ecb_record_set "$ECB_ACTIVE/record" outcome "aborted:$ECB_ERROR_CODE"
  : >"$ECB_ACTIVE/acknowledged"
  ecb_archive_active
}

ecb_freeze_fail() {
  ecb_error "$1" "$2"
  ecb_freeze_rollback
  ecb_freeze_emit error
  exit 1
}

ecb_freeze_on_exit() {
  local rc=$?
  if ((ECB_EMITTED == 0)); then
    ecb_error INTERRUPTED "the freeze command stopped (exit $rc) before it finished; what it froze was thawed"
    ecb_freeze_rollback
    ecb_freeze_emit error
  fi
}

# A thaw that could not wait for this freeze leaves a marker, claims the freeze, or files it away.
ecb_freeze_cancelled() {
  [[ -e $ECB_ACTIVE/cancel || -e $ECB_ACTIVE/claim || ! -d $ECB_ACTIVE ]]
}

# Refuses when a thaw has been requested meanwhile or the not-after time has passed.
ecb_freeze_still_wanted() {
  if ecb_freeze_cancelled; then
    ecb_freeze_fail CANCELLED "a thaw arrived while this freeze was in progress; nothing is left frozen"
  fi
  if (($(ecb_now_ms) > ECB_NOT_AFTER_MS)); then
    ecb_freeze_fail LATE "the not-after time $ECB_NOT_AFTER passed before the filesystems were frozen (now $(ecb_iso_ms "$(ecb_now_ms)")); nothing is left frozen"
  fi
}

ecb_freeze_main() {
  ecb_init
  ECB_EMITTED=0
  ECB_OWN_ACTIVE=0
  ECB_FROZEN=()
  ECB_PRE_RAN=()
  ECB_PRE_HOOKS=()
  ECB_POST_HOOKS=()
  ECB_HOOK_RESULTS=()
  ECB_TARGET_MPS=()
  ECB_WARNINGS=()
  ECB_SELF_DIR=$(dirname -- "$(readlink -f -- "$0" 2>/dev/null || printf '%s' "$0")")
  ECB_EXECUTION_ID=$ECB_P_ExecutionId
  ECB_VOLUME_IDS=$ECB_P_VolumeIds
  ECB_VOLUME_DEVICES=$ECB_P_VolumeDevices
  ECB_NOT_AFTER=$ECB_P_NotAfter
  ECB_WATCHDOG_SECONDS=$ECB_P_WatchdogSeconds
  ECB_HOOK_TIMEOUT=$ECB_P_HookTimeoutSeconds
  ECB_INCLUDE=$ECB_P_Include
  ECB_EXCLUDE=$ECB_P_Exclude
  trap ecb_freeze_on_exit EXIT
  trap 'exit 143' TERM
  trap 'exit 130' INT
  trap 'exit 129' HUP
  # If the agent goes away, writing to its pipe must fail, not kill this script before its rollback.
  trap '' PIPE

  ecb_valid_execution_id "$ECB_EXECUTION_ID" ||
    { ECB_EXECUTION_ID=invalid; ecb_freeze_fail INVALID_PARAMETER "ExecutionId must be 1-128 characters of A-Z a-z 0-9 _ . : -"; }
  ecb_valid_volume_ids "$ECB_VOLUME_IDS" ||
    ecb_freeze_fail INVALID_PARAMETER "VolumeIds \"$ECB_VOLUME_IDS\" is not allowed; allowed: 1-40 comma-separated volume ids like vol-0123456789abcdef0"
  ecb_valid_volume_devices "$ECB_VOLUME_DEVICES" ||
    ecb_freeze_fail INVALID_PARAMETER "VolumeDevices \"$ECB_VOLUME_DEVICES\" is not allowed; allowed: empty or comma-separated vol-id=/dev/name pairs"
  ecb_valid_not_after "$ECB_NOT_AFTER" ||
    ecb_freeze_fail INVALID_PARAMETER "NotAfter \"$ECB_NOT_AFTER\" is not allowed; allowed: a UTC time like 2026-11-22T02:05:00Z"
  ECB_NOT_AFTER_MS=$(date -u -d "$ECB_NOT_AFTER" +%s%3N 2>/dev/null) ||
    ecb_freeze_fail INVALID_PARAMETER "NotAfter \"$ECB_NOT_AFTER\" is not a real date"
  ecb_valid_int_range "$ECB_WATCHDOG_SECONDS" 6 300 ||
    ecb_freeze_fail INVALID_PARAMETER "WatchdogSeconds \"$ECB_WATCHDOG_SECONDS\" is not allowed; allowed: a whole number from 6 to 300"
  ecb_valid_int_range "$ECB_HOOK_TIMEOUT" 1 600 ||
    ecb_freeze_fail INVALID_PARAMETER "HookTimeoutSeconds \"$ECB_HOOK_TIMEOUT\" is not allowed; allowed: a whole number from 1 to 600"
  ECB_WATCHDOG_SECONDS=$((10#$ECB_WATCHDOG_SECONDS))
  ECB_HOOK_TIMEOUT=$((10#$ECB_HOOK_TIMEOUT))
  ecb_valid_path_list "$ECB_INCLUDE" ||
    ecb_freeze_fail INVALID_PARAMETER "Include \"$ECB_INCLUDE\" is not allowed; allowed: empty or comma-separated absolute paths of A-Z a-z 0-9 . _ / - without . or .. components"
  ecb_valid_path_list "$ECB_EXCLUDE" ||
    ecb_freeze_fail INVALID_PARAMETER "Exclude \"$ECB_EXCLUDE\" is not allowed; allowed: empty or comma-separated absolute paths of A-Z a-z 0-9 . _ / - without . or .. components"
  if [[ -n $ECB_DEVICE_MAP && ! -r $ECB_DEVICE_MAP ]]; then
    ecb_freeze_fail INVALID_PARAMETER "ECB_DEVICE_MAP $ECB_DEVICE_MAP cannot be read"
  fi

  if (($(ecb_now_ms) > ECB_NOT_AFTER_MS)); then
    ecb_freeze_fail LATE "the command arrived after its not-after time $ECB_NOT_AFTER (now $(ecb_iso_ms "$(ecb_now_ms)")); nothing was frozen"
  fi
  ecb_find_fsfreeze ||
    ecb_freeze_fail FSFREEZE_MISSING "fsfreeze was not found in /usr/sbin, /sbin or PATH; install util-linux. Nothing was frozen: this backup would only be crash-consistent"
  ecb_prepare_state_dir || ecb_freeze_fail "$ECB_ERROR_CODE" "$ECB_ERROR_MESSAGE"

  exec 9>"$ECB_STATE_DIR/lock"
  flock -n 9 || ecb_freeze_fail BUSY "another freeze or thaw is running on this instance; nothing was frozen"
  ECB_PREVIOUS_JSON=$(ecb_previous_json)
  if [[ -d $ECB_ACTIVE ]]; then
    local other
    other=$(ecb_record_get "$ECB_ACTIVE/record" executionId) || other=unknown
    ecb_freeze_fail ALREADY_FROZEN "a freeze by execution $other is still active on this instance (not yet thawed); refusing to freeze again. Run the Thaw document to end it"
  fi

  ecb_discover || ecb_freeze_fail "$ECB_ERROR_CODE" "$ECB_ERROR_MESSAGE"
  ecb_load_hooks || ecb_freeze_fail "$ECB_ERROR_CODE" "$ECB_ERROR_MESSAGE (nothing was frozen)"
  if ((${#ECB_TARGET_MPS[@]} == 0)); then
    ecb_log "no data filesystem to freeze on ${ECB_VOLUME_IDS}"
    ecb_freeze_emit nothing-to-freeze
    exit 0
  fi

  mkdir -m 0700 -- "$ECB_ACTIVE" || ecb_freeze_fail ALREADY_FROZEN "another freeze became active at the same time"
  ECB_OWN_ACTIVE=1
  ECB_RUN_DIR=$ECB_ACTIVE
  {
    printf 'executionId=%s\n' "$ECB_EXECUTION_ID"
    printf 'createdAtMs=%s\n' "$(ecb_now_ms)"
    printf 'watchdogSeconds=%s\n' "$ECB_WATCHDOG_SECONDS"
    printf 'stage=pre-freeze\n'
  } >"$ECB_ACTIVE/record"
  printf '%s\n' "${ECB_TARGET_MPS[@]}" >"$ECB_ACTIVE/targets"

  local hook rc
  for hook in "${ECB_PRE_HOOKS[@]+"${ECB_PRE_HOOKS[@]}"}"; do
    ECB_PRE_RAN+=("$hook")
    ecb_run_hook pre-freeze "$hook"
    rc=$?
    if ((rc == 124 || rc == 137)); then
      ecb_freeze_fail HOOK_FAILED "pre-freeze hook ${hook##*/} did not finish within ${ECB_HOOK_TIMEOUT}s and was killed; nothing was frozen, and the post-thaw hooks of the hooks that ran were run"
    elif ((rc != 0)); then
      ecb_freeze_fail HOOK_FAILED "pre-freeze hook ${hook##*/} failed with exit code $rc; nothing was frozen, and the post-thaw hooks of the hooks that ran were run"
    fi
  done
  ecb_freeze_still_wanted

  # Flushing first keeps the freeze itself short. `sync -f` (syncfs) needs coreutils 8.24.
  sync -f -- "${ECB_TARGET_MPS[@]}" 2>/dev/null || sync

  {
    printf '#!/bin/bash\n'
    declare -f
    printf 'ecb_watchdog_main "$@"\n'
  } >"$ECB_ACTIVE/watchdog.sh"
  ECB_WATCHDOG_DEADLINE_MS=$(($(ecb_now_ms) + ECB_WATCHDOG_SECONDS * 1000))
  setsid "$BASH" "$ECB_ACTIVE/watchdog.sh" "$ECB_STATE_DIR" "$ECB_FSFREEZE" "$ECB_WATCHDOG_SECONDS" \
    "$ECB_HOOK_TIMEOUT" "$ECB_CONFIG_DIR" "$ECB_EXECUTION_ID" </dev/null >>"$ECB_ACTIVE/watchdog.log" 2>&1 9>&- &
  local i pid=''
  for ((i = 0; i < 100; i++)); do
    if [[ -s $ECB_ACTIVE/watchdog.pid ]]; then
      read -r pid <"$ECB_ACTIVE/watchdog.pid"
      break
    fi
    sleep 0.05
  done
  if [[ -z $pid ]] || ! ecb_watchdog_alive "$pid"; then
    ecb_freeze_fail WATCHDOG_FAILED "the watchdog did not start (see $ECB_ACTIVE/watchdog.log); nothing was frozen"
  fi
  ECB_WATCHDOG_PID=$pid
  ecb_record_set "$ECB_ACTIVE/record" watchdogPid "$pid"
  ecb_record_set "$ECB_ACTIVE/record" stage freezing
  ecb_freeze_still_wanted

  local mp msg
  ECB_FREEZE_START_MS=$(ecb_now_ms)
  ecb_record_set "$ECB_ACTIVE/record" freezeStartMs "$ECB_FREEZE_START_MS"
  for mp in "${ECB_TARGET_MPS[@]}"; do
    ecb_freeze_cancelled && ecb_freeze_fail CANCELLED "a thaw arrived while the filesystems were being frozen; everything this command froze was thawed"
    if msg=$("$ECB_FSFREEZE" -f -- "$mp" 2>&1); then
      ECB_FROZEN+=("$mp")
    elif [[ $msg == *"busy"* ]]; then
      ecb_freeze_fail ALREADY_FROZEN "$mp is already frozen by something else; refusing, and everything this command froze was thawed"
    else
      ecb_freeze_fail FREEZE_FAILED "fsfreeze -f $mp failed: $msg; everything this command froze was thawed"
    fi
  done
  # A thaw that filed this freeze away during the last fsfreeze would otherwise go unnoticed.
  ecb_freeze_cancelled && ecb_freeze_fail CANCELLED "a thaw arrived while the filesystems were being frozen; everything this command froze was thawed"
  ECB_FROZEN_AT_MS=$(ecb_now_ms)
  ecb_record_set "$ECB_ACTIVE/record" frozenAtMs "$ECB_FROZEN_AT_MS"
  ecb_record_set "$ECB_ACTIVE/record" stage frozen
  ecb_log "froze ${ECB_TARGET_MPS[*]} in $((ECB_FROZEN_AT_MS - ECB_FREEZE_START_MS)) ms; watchdog $pid thaws by $(ecb_iso_ms "$ECB_WATCHDOG_DEADLINE_MS")"
  ecb_freeze_emit frozen
  ECB_OWN_ACTIVE=0
  exit 0
}
