# shellcheck shell=bash
# The Freeze document: pre-freeze hooks, sync, fsfreeze in a stable order, under a watchdog that
# guards the command from its first step. stdout is exactly one JSON object; on any error
# everything this command froze is thawed.

# The result line; ecb_emit gives the budgets: $1 hook output, $2 warnings, $3 0 to drop detail.
ecb_freeze_line() {
  local status=$4 err=null watchdog=null frozen_at=null frozen_at_ms=null started=null hooks warnings
  local unmapped skipped volumes
  ECB_TRUNCATED=0
  [[ $status == error ]] && err=$(ecb_error_json)
  if [[ $status == frozen ]]; then
    frozen_at=$(ecb_json_str "$(ecb_iso_ms "$ECB_FROZEN_AT_MS")")
    frozen_at_ms=$ECB_FROZEN_AT_MS
    started=$ECB_FREEZE_START_MS
  fi
  if [[ -n ${ECB_WATCHDOG_PID:-} && -n ${ECB_WATCHDOG_DEADLINE_MS:-} ]]; then
    watchdog=$(printf '{"pid":%d,"seconds":%d,"deadline":%s}' "$ECB_WATCHDOG_PID" "$ECB_WATCHDOG_SECONDS" \
      "$(ecb_json_str "$(ecb_iso_ms "$ECB_WATCHDOG_DEADLINE_MS")")")
  fi
  ecb_hooks_json "$1"
  hooks=$ECB_JSON
  ecb_json_str_array_capped "$2" "${ECB_WARNINGS[@]}"
  warnings=$ECB_JSON
  unmapped=$(ecb_json_array "${ECB_UNMAPPED_JSON[@]}")
  skipped=$(ecb_json_array "${ECB_SKIPPED_JSON[@]}")
  volumes=$(ecb_json_array "${ECB_VOLUMES_JSON[@]}")
  if (($3 == 0)); then
    volumes='[]' skipped='[]' unmapped='[]' ECB_TRUNCATED=1
  fi
  printf '{"schemaVersion":1,"action":"freeze","status":%s,"executionId":%s,"duplicate":%s,"frozenAt":%s,"frozenAtMs":%s,"freezeStartedAtMs":%s,"targets":%s,"unmapped":%s,"skipped":%s,"volumes":%s,"hooksConfigured":%s,"hooks":%s,"watchdog":%s,"previous":%s,"warnings":%s,"truncated":%s,"fsfreeze":%s,"error":%s}' \
    "$(ecb_json_str "$status")" "$(ecb_json_str "$ECB_EXECUTION_ID")" "${ECB_DUPLICATE:-false}" \
    "$frozen_at" "$frozen_at_ms" "$started" \
    "${ECB_TARGETS_ARRAY:-$(ecb_json_array "${ECB_TARGETS_JSON[@]}")}" \
    "$unmapped" "$skipped" "$volumes" "${ECB_HOOKS_CONFIGURED:-false}" "$hooks" "$watchdog" \
    "${ECB_PREVIOUS_JSON:-null}" "$warnings" "$( ((ECB_TRUNCATED)) && echo true || echo false)" \
    "$( [[ -n ${ECB_FSFREEZE:-} ]] && ecb_json_str "$ECB_FSFREEZE" || printf 'null')" "$err"
}

# Undoes whatever this command did: ends a hook still running, thaws what it froze, stops its
# watchdog, runs the post-thaw hooks of the pre-freeze hooks that ran, files the freeze as
# aborted, and ends the error message with what that left.
ecb_freeze_rollback() {
  local done='nothing was frozen'
  local n=$ECB_FROZEN_COUNT
  # Targets are frozen in order: the first n are the ones to thaw.
  ECB_TARGET_MPS=("${ECB_TARGET_MPS[@]:0:n}") ECB_TARGET_MAJMIN=("${ECB_TARGET_MAJMIN[@]:0:n}") ECB_TARGET_DEV=("${ECB_TARGET_DEV[@]:0:n}")
  ((n == 0)) || done='what this command froze was thawed'
  ECB_THAW_FAILED=()
  if ((ECB_OWN_ACTIVE == 1)); then
    ECB_OWN_ACTIVE=0
    [[ -s $ECB_ACTIVE/pre-ran ]] && done+=', and the post-thaw hooks of the pre-freeze hooks that ran were run'
    if mkdir -- "$ECB_ACTIVE/claim" 2>/dev/null; then
      [[ -n ${ECB_WATCHDOG_PID:-} ]] && ecb_stop_watchdog "$ECB_WATCHDOG_PID"
      : >"$ECB_ACTIVE/acknowledged"
      ecb_undo_active freeze-rollback "aborted:$ECB_ERROR_CODE"
    else
      # The watchdog or a thaw claimed it and runs the hooks; thawing twice is harmless.
      ecb_kill_hook_group
      ecb_thaw_targets
    fi
  fi
  ((${#ECB_THAW_FAILED[@]} == 0)) || done="thaw NOT CONFIRMED: ${ECB_THAW_WHY[*]}"
  ECB_ERROR_MESSAGE+="; $done"
}

ecb_freeze_fail() {
  ecb_error "$1" "$2"
  ecb_freeze_rollback
  ecb_emit ecb_freeze_line error
  exit 1
}

ecb_freeze_on_exit() {
  local rc=$?
  if ((ECB_EMITTED == 0)); then
    ecb_error INTERRUPTED "the freeze command stopped (exit $rc) before it finished"
    ecb_freeze_rollback
    ecb_emit ecb_freeze_line error
  fi
}

# A thaw that could not wait for this freeze leaves a marker, claims the freeze, or files it away.
ecb_freeze_cancelled() {
  [[ -e $ECB_ACTIVE/cancel || -e $ECB_ACTIVE/claim || ! -d $ECB_ACTIVE ]]
}

# Refuses when this execution has been thawed already, when a thaw has been requested meanwhile,
# when the state tmpfs is full, or when the not-after time has passed: at the start, after the
# hooks, and again just before the first fsfreeze.
ecb_freeze_still_wanted() {
  local now by at
  if [[ -e $ECB_EXECUTIONS/$ECB_EXECUTION_ID.thawed ]]; then
    by=$(ecb_record_get "$ECB_EXECUTIONS/$ECB_EXECUTION_ID.thawed" thawedBy) || by=unknown
    at=$(ecb_record_num "$ECB_EXECUTIONS/$ECB_EXECUTION_ID.thawed" thawedAtMs)
    ecb_freeze_fail THAWED_BEFORE_FREEZE "execution $ECB_EXECUTION_ID was thawed already ($by, at $(ecb_iso_ms "$at")): a freeze that arrives after its thaw never runs"
  fi
  if [[ ${1:-} != start ]] && ecb_freeze_cancelled; then
    ecb_freeze_fail CANCELLED "a thaw arrived while this freeze was in progress"
  fi
  by=$(ecb_state_full_reason)
  [[ -z $by ]] || ecb_freeze_fail STATE_DIR_FULL "$by"
  now=$(ecb_now_ms)
  if ((now > ECB_NOT_AFTER_MS)); then
    ecb_freeze_fail LATE "the not-after time $ECB_NOT_AFTER passed before the filesystems were frozen (instance clock $(ecb_iso_ms "$now"); if that is far from the time the command was sent, the instance clock is wrong)"
  fi
}

# Another freeze's state is here and no command holds the lock: a retry of this execution's
# frozen freeze (reported, changing nothing), another execution's freeze (refused), one whose
# command died (its watchdog is undoing it: given a moment), or one nobody guards (recovered).
ecb_freeze_existing() {
  local rec=$ECB_ACTIVE/record other stage i alive
  for ((i = 0; i < ECB_SAME_EXECUTION_WAIT * 10; i++)); do
    if [[ ! -d $ECB_ACTIVE ]]; then
      ECB_PREVIOUS_JSON=$(ecb_previous_json)
      return 0
    fi
    other=$(ecb_record_get "$rec" executionId) || other=unknown
    stage=$(ecb_record_get "$rec" stage) || stage=''
    alive=0
    ecb_watchdog_alive "$(ecb_record_get "$rec" watchdogPid)" && alive=1
    if ((alive == 0)) || [[ $stage == frozen ]]; then break; fi
    sleep 0.1
  done
  ((alive == 1)) || {
    ecb_recover_abandoned "$other"
    return 0
  }
  [[ $other == "$ECB_EXECUTION_ID" && $stage == frozen ]] && ecb_freeze_duplicate
  [[ $other == "$ECB_EXECUTION_ID" ]] &&
    ecb_freeze_fail BUSY_SAME_EXECUTION "an earlier freeze command of execution $other ended before it froze, and its watchdog is still undoing it"
  ecb_freeze_fail ALREADY_FROZEN "a freeze by execution $other is still active on this instance (not yet thawed); refusing to freeze again. Run the Thaw document to end it"
}

# A retry of this execution's freeze, which is frozen: report that freeze, changing nothing.
ecb_freeze_duplicate() {
  local rec=$ECB_ACTIVE/record
  ECB_DUPLICATE=true
  ECB_FROZEN_AT_MS=$(ecb_record_num "$rec" frozenAtMs)
  ECB_FREEZE_START_MS=$(ecb_record_num "$rec" freezeStartMs)
  ECB_WATCHDOG_PID=$(ecb_record_num "$rec" watchdogPid)
  ECB_WATCHDOG_DEADLINE_MS=$(ecb_record_num "$rec" watchdogDeadlineMs)
  ECB_HOOKS_CONFIGURED=$(ecb_record_get "$rec" hooksConfigured) || ECB_HOOKS_CONFIGURED=false
  ECB_TARGETS_ARRAY=$(<"$ECB_ACTIVE/targets.json")
  ecb_emit ecb_freeze_line frozen
  exit 0
}

# A freeze whose command and watchdog are gone (both killed) and whose state nobody will clean:
# thaw its targets (by device: a frozen filesystem is never the safer state), then undo it like a
# rollback. Refuses if a target stays unconfirmed.
ecb_recover_abandoned() {
  local other=$1 warnings=("${ECB_WARNINGS[@]}")
  ECB_TARGET_MPS=() ECB_TARGET_MAJMIN=() ECB_TARGET_DEV=()
  ecb_read_targets "$ECB_ACTIVE/targets"
  ecb_thaw_targets
  ((${#ECB_THAW_FAILED[@]} == 0)) ||
    ecb_freeze_fail ALREADY_FROZEN "an abandoned freeze of execution $other (its command and watchdog are gone) could not be confirmed thawed: ${ECB_THAW_WHY[*]}"
  ecb_undo_active "recovery:$ECB_EXECUTION_ID" aborted:ABANDONED
  ECB_HR=() ECB_HR_OUT=()
  ECB_WARNINGS=("${warnings[@]}" "recovered an abandoned freeze of execution $other: its command and watchdog were gone; thawed [${ECB_THAWED[*]}]")
  ECB_PREVIOUS_JSON=$(ecb_previous_json)
}

# Creates the active state, opens a descriptor on each target (what fsfreeze will act on, and what
# reaches it under any later mount), and starts the watchdog that guards the rest of the command.
ecb_freeze_begin() {
  local i fd pid='' adj
  mkdir -m 0700 -- "$ECB_ACTIVE" || ecb_freeze_fail ALREADY_FROZEN "another freeze became active at the same time"
  ECB_OWN_ACTIVE=1
  ECB_RUN_DIR=$ECB_ACTIVE
  ECB_WATCHDOG_DEADLINE_MS=''
  if ! { printf 'executionId=%s\ncreatedAtMs=%s\nwatchdogSeconds=%s\nhooksConfigured=%s\nstage=pre-freeze\n' \
    "$ECB_EXECUTION_ID" "$(ecb_now_ms)" "$ECB_WATCHDOG_SECONDS" "$ECB_HOOKS_CONFIGURED" >"$ECB_ACTIVE/record" &&
    ecb_write_targets "$ECB_ACTIVE/targets" && : >"$ECB_ACTIVE/pre-ran" &&
    ecb_json_array "${ECB_TARGETS_JSON[@]}" >"$ECB_ACTIVE/targets.json"; } 2>/dev/null; then
    ecb_freeze_state_failed STATE_DIR_UNSAFE "cannot write the freeze's record in $ECB_STATE_DIR"
  fi
  ECB_TARGET_FD=()
  for i in "${!ECB_TARGET_MPS[@]}"; do
    exec {fd}<"${ECB_TARGET_MPS[$i]}" || ecb_freeze_fail TARGET_REFUSED "cannot open ${ECB_TARGET_MPS[$i]}"
    ECB_TARGET_FD+=("$fd")
    ECB_FD_BY_DEV[${ECB_TARGET_DEV[$i]}]=/proc/$$/fd/$fd
    ecb_freeze_guard "$i" || ecb_freeze_fail TARGET_REFUSED "$ECB_GUARD_WHY"
  done
  if ! { mkfifo -m 0600 -- "$ECB_ACTIVE/control" && exec 8<>"$ECB_ACTIVE/control" &&
    printf '#!/bin/bash\n%s\necb_watchdog_main "$@"\n' "$(declare -f)" >"$ECB_ACTIVE/watchdog.sh"; } 2>/dev/null; then
    ecb_freeze_state_failed STATE_DIR_UNSAFE "cannot write the watchdog's files in $ECB_STATE_DIR"
  fi
  local args=()
  for i in "${!ECB_TARGET_MPS[@]}"; do
    args+=("${ECB_TARGET_MAJMIN[$i]}" "${ECB_TARGET_DEV[$i]}" "${ECB_TARGET_MPS[$i]}" "${ECB_TARGET_FD[$i]}")
  done
  # Its longest wait for "freezing": every hook at its limit plus a minute, and never past the
  # step timeout (SSM kills the command by then, which the watchdog sees at once).
  local arm=$((${#ECB_PRE_HOOKS[@]} * (ECB_HOOK_TIMEOUT + 5) + 60))
  ((arm <= 900)) || arm=900
  setsid "$BASH" "$ECB_ACTIVE/watchdog.sh" "$ECB_STATE_DIR" "$ECB_FSFREEZE" "$ECB_WATCHDOG_SECONDS" \
    "$ECB_HOOK_TIMEOUT" "$ECB_CONFIG_DIR" "$ECB_EXECUTION_ID" "$arm" \
    "${args[@]}" </dev/null >>"$ECB_ACTIVE/watchdog.log" 2>&1 8>&- 9>&- &
  for ((i = 0; i < 100; i++)); do
    if [[ -s $ECB_ACTIVE/watchdog.pid ]]; then
      read -r pid <"$ECB_ACTIVE/watchdog.pid"
      break
    fi
    sleep 0.05
  done
  if [[ -z $pid ]] || ! ecb_watchdog_alive "$pid"; then
    ecb_freeze_state_failed WATCHDOG_FAILED "the watchdog did not start: $(tail -c 400 -- "$ECB_ACTIVE/watchdog.log" 2>/dev/null | tr '\n' ' ')"
  fi
  ECB_WATCHDOG_PID=$pid
  read -r adj 2>/dev/null <"/proc/$pid/oom_score_adj"
  [[ $adj == -1000 ]] || ECB_WARNINGS+=("the watchdog could not protect itself from the OOM killer (oom_score_adj $adj; it needs CAP_SYS_RESOURCE)")
  ecb_record_set "$ECB_ACTIVE/record" watchdogPid "$pid" ||
    ecb_freeze_state_failed STATE_DIR_UNSAFE "cannot write the freeze's record in $ECB_STATE_DIR"
}

# Nothing stays frozen without its watchdog: checked before the first fsfreeze and after the last.
ecb_freeze_watchdog_alive() {
  ecb_watchdog_alive "$ECB_WATCHDOG_PID" ||
    ecb_freeze_fail WATCHDOG_FAILED "the watchdog (pid $ECB_WATCHDOG_PID) ended before the freeze did: $(tail -c 200 -- "$ECB_ACTIVE/watchdog.log" 2>/dev/null | tr '\n' ' ')"
}

# Something in the state directory failed: name the cause when it is a full tmpfs, else $1 $2.
ecb_freeze_state_failed() {
  local reason
  reason=$(ecb_state_full_reason)
  [[ -n $reason ]] && ecb_freeze_fail STATE_DIR_FULL "$reason"
  ecb_freeze_fail "$1" "$2"
}

# Sets ECB_PROT_DEVS to the devices the protected paths are on now (" d1 d2 ... "): the freeze
# compares each target with them again right before its fsfreeze.
ecb_protected_devs() {
  ECB_PROT_DEVS=" $(stat -L -c %d -- "${ECB_PROT_REAL[@]}" 2>/dev/null | tr '\n' ' ')"
}

# The last check before each fsfreeze, on the very path fsfreeze gets: the descriptor this command
# opened on the target's mount point. It must be on the filesystem discovered there, and on none
# that holds a protected path (compared by device, and for btrfs by filesystem).
ecb_freeze_guard() {
  local i=$1 dev want mp=${ECB_TARGET_MPS[$1]}
  ECB_FREEZE_PATH=/proc/$$/fd/${ECB_TARGET_FD[$i]}
  want=${ECB_TARGET_DEV[$i]}
  dev=$(stat -L -c %d -- "$ECB_FREEZE_PATH" 2>/dev/null) || dev=none
  if [[ $dev != "$want" ]]; then
    ECB_GUARD_WHY="refusing $mp: it no longer shows the filesystem discovered there (device $dev, not $want)"
    return 1
  fi
  if [[ ${ECB_PROT_DEVS:- } == *" $dev "* ]] || ecb_protected_by "${ECB_TARGET_IDENT[$i]}" >/dev/null; then
    ECB_GUARD_WHY="refusing $mp: its filesystem holds a protected path (/, /boot, /var, /tmp, /usr, /etc, /run, the SSM agent or this tool's own files), which is never frozen"
    return 1
  fi
}

ecb_freeze_main() {
  ecb_init
  ECB_DOCUMENT=freeze
  ECB_EMITTED=0
  ECB_OWN_ACTIVE=0
  ECB_FROZEN_COUNT=0
  ECB_PRE_HOOKS=()
  ECB_POST_HOOKS=()
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

  local name ref reason
  for name in ExecutionId VolumeIds VolumeDevices NotAfter WatchdogSeconds HookTimeoutSeconds Include Exclude; do
    ref=ECB_P_$name
    reason=$(ecb_param_problem "$name" "${!ref}")
    [[ -z $reason ]] && continue
    [[ $name == ExecutionId ]] && ECB_EXECUTION_ID=invalid
    ecb_freeze_fail INVALID_PARAMETER "$reason"
  done
  ECB_NOT_AFTER_MS=$(date -u -d "$ECB_NOT_AFTER" +%s%3N)
  ECB_WATCHDOG_SECONDS=$((10#$ECB_WATCHDOG_SECONDS))
  ECB_HOOK_TIMEOUT=$((10#$ECB_HOOK_TIMEOUT))
  if [[ -n $ECB_DEVICE_MAP && ! -r $ECB_DEVICE_MAP ]]; then
    ecb_freeze_fail INVALID_PARAMETER "ECB_DEVICE_MAP $ECB_DEVICE_MAP cannot be read"
  fi

  ecb_find_fsfreeze ||
    ecb_freeze_fail FSFREEZE_MISSING "fsfreeze was not found in /usr/sbin, /sbin or PATH; install util-linux. Nothing was frozen: this backup would only be crash-consistent"
  ecb_prepare_state_dir || ecb_freeze_fail "$ECB_ERROR_CODE" "$ECB_ERROR_MESSAGE"
  ecb_freeze_still_wanted start
  ecb_prune_executions

  if ! ecb_take_lock 0; then
    [[ $ECB_LOCK_SAME_EXECUTION == true ]] &&
      ecb_freeze_fail BUSY_SAME_EXECUTION "an earlier freeze command of execution $ECB_EXECUTION_ID is still running after ${ECB_SAME_EXECUTION_WAIT}s; this one changed nothing (its result is that command's)"
    ecb_freeze_fail BUSY "another freeze or thaw is running on this instance"
  fi
  # A thaw of this execution may have run while this command waited for the lock.
  ecb_freeze_still_wanted start
  ECB_PREVIOUS_JSON=$(ecb_previous_json)
  [[ -d $ECB_ACTIVE ]] && ecb_freeze_existing

  ecb_discover || ecb_freeze_fail "$ECB_ERROR_CODE" "$ECB_ERROR_MESSAGE"
  ecb_load_hooks || ecb_freeze_fail "$ECB_ERROR_CODE" "$ECB_ERROR_MESSAGE"
  ECB_HOOKS_CONFIGURED=false
  ((${#ECB_PRE_HOOKS[@]} > 0)) && ECB_HOOKS_CONFIGURED=true
  if ((${#ECB_TARGET_MPS[@]} == 0)); then
    ecb_log "no data filesystem to freeze on ${ECB_VOLUME_IDS}"
    ecb_emit ecb_freeze_line nothing-to-freeze
    exit 0
  fi

  ecb_freeze_begin
  local hook rc
  for hook in "${ECB_PRE_HOOKS[@]}"; do
    printf '%s\n' "${hook##*/}" >>"$ECB_ACTIVE/pre-ran"
    ecb_run_hook pre-freeze "$hook"
    rc=$?
    if ((rc == 126)); then
      ecb_freeze_fail HOOK_INSECURE "$ECB_ERROR_MESSAGE"
    elif ((rc == 124 || rc == 137)); then
      ecb_freeze_fail HOOK_FAILED "pre-freeze hook ${hook##*/} did not finish within ${ECB_HOOK_TIMEOUT}s and was killed"
    elif ((rc != 0)); then
      # Its output says why (a database down, a lock wait that timed out).
      ecb_freeze_fail HOOK_FAILED "pre-freeze hook ${hook##*/} failed with exit code $rc: ${ECB_HR_OUT[${#ECB_HR_OUT[@]}-1]:0:300}"
    fi
  done
  ecb_freeze_still_wanted

  # Flushing first keeps the freeze itself short. `sync -f` (syncfs) needs coreutils 8.24.
  sync -f -- "${ECB_TARGET_MPS[@]}" 2>/dev/null || sync

  ecb_freeze_still_wanted
  ecb_protected_devs
  ECB_FREEZE_START_MS=$(ecb_now_ms)
  ecb_freeze_watchdog_alive
  printf 'freezing\n' >&8
  ECB_WATCHDOG_DEADLINE_MS=$(($(ecb_now_ms) + ECB_WATCHDOG_SECONDS * 1000))
  if ! { ecb_record_set "$ECB_ACTIVE/record" freezeStartMono "$(ecb_mono_ms)" &&
    ecb_record_set "$ECB_ACTIVE/record" freezeStartMs "$ECB_FREEZE_START_MS" &&
    ecb_record_set "$ECB_ACTIVE/record" watchdogDeadlineMs "$ECB_WATCHDOG_DEADLINE_MS" &&
    ecb_record_set "$ECB_ACTIVE/record" stage freezing; }; then
    ecb_freeze_state_failed STATE_DIR_UNSAFE "cannot write the freeze's record in $ECB_STATE_DIR"
  fi
  local i msg
  for i in "${!ECB_TARGET_MPS[@]}"; do
    ecb_freeze_cancelled && ecb_freeze_fail CANCELLED "a thaw arrived while the filesystems were being frozen"
    ecb_freeze_guard "$i" || ecb_freeze_fail TARGET_REFUSED "$ECB_GUARD_WHY"
    if msg=$("$ECB_FSFREEZE" -f -- "$ECB_FREEZE_PATH" 2>&1); then
      ECB_FROZEN_COUNT=$((i + 1))
    elif [[ $msg == *"busy"* ]]; then
      ecb_freeze_fail ALREADY_FROZEN "${ECB_TARGET_MPS[$i]} is already frozen by something else (left as it is)"
    else
      ecb_freeze_fail FREEZE_FAILED "fsfreeze -f ${ECB_TARGET_MPS[$i]} failed: $msg"
    fi
  done
  # A thaw that filed this freeze away during the last fsfreeze would otherwise go unnoticed.
  ecb_freeze_cancelled && ecb_freeze_fail CANCELLED "a thaw arrived while the filesystems were being frozen"
  ecb_freeze_watchdog_alive
  ECB_FROZEN_AT_MS=$(ecb_now_ms)
  printf 'frozen\n' >&8
  ecb_record_set "$ECB_ACTIVE/record" frozenAtMs "$ECB_FROZEN_AT_MS"
  ecb_record_set "$ECB_ACTIVE/record" stage frozen
  ecb_log "froze ${ECB_TARGET_MPS[*]} in $((ECB_FROZEN_AT_MS - ECB_FREEZE_START_MS)) ms; watchdog $ECB_WATCHDOG_PID thaws by $(ecb_iso_ms "$ECB_WATCHDOG_DEADLINE_MS")"
  ECB_OWN_ACTIVE=0
  ecb_emit ecb_freeze_line frozen
  exit 0
}
