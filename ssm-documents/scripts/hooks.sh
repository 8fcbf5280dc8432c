# shellcheck shell=bash
# The hook runner: which hooks may run (only what only root can change), and how one runs.

# Prints a reason when the path is not owned by root or is writable by group or others.
# Ancestors may be world-writable only with the sticky bit (like /tmp), where others cannot
# replace an entry root owns.
ecb_insecure_reason() {
  local path=$1 kind=$2 info uid mode type
  info=$(stat -L -c '%u %a %F' -- "$path" 2>/dev/null) || {
    printf '%s cannot be read' "$path"
    return 0
  }
  read -r uid mode type <<<"$info"
  if [[ $uid != 0 ]]; then
    printf '%s is owned by uid %s, not root' "$path" "$uid"
    return 0
  fi
  if (((8#$mode & 8#022) != 0)); then
    if [[ $kind == ancestor && $type == directory && $(((8#$mode & 8#1000) != 0)) == 1 ]]; then
      return 0
    fi
    printf '%s is writable by group or others (mode %s)' "$path" "$mode"
    return 0
  fi
  return 0
}

# Hooks: executables in pre-freeze.d/ and post-thaw.d/, validated as a whole before anything runs.
# Sets ECB_PRE_HOOKS and ECB_POST_HOOKS (absolute paths, lexical order); returns 1 with
# ECB_ERROR_* set when any file or directory on the way is unsafe.
ecb_load_hooks() {
  ECB_PRE_HOOKS=()
  ECB_POST_HOOKS=()
  local dir=$ECB_CONFIG_DIR reason ancestor phase file name target
  if ! ecb_valid_safe_dir "$dir"; then
    ecb_error HOOK_INSECURE "hook directory $dir is not an absolute path of [A-Za-z0-9._/-]"
    return 1
  fi
  [[ -e $dir ]] || return 0
  ancestor=$dir
  while [[ $ancestor != / && -n $ancestor ]]; do
    ancestor=$(dirname -- "$ancestor")
    reason=$(ecb_insecure_reason "$ancestor" ancestor)
    if [[ -n $reason ]]; then
      ecb_error HOOK_INSECURE "refusing hooks: $reason; every directory above $ECB_CONFIG_DIR must be owned by root and not writable by group or others"
      return 1
    fi
  done
  reason=$(ecb_insecure_reason "$dir" dir)
  if [[ -n $reason || ! -d $dir || -L $dir ]]; then
    ecb_error HOOK_INSECURE "refusing hooks: ${reason:-$dir is not a directory}; it must be a root-owned directory not writable by group or others (chown root:root, chmod 755)"
    return 1
  fi
  for phase in pre-freeze post-thaw; do
    [[ -e $dir/$phase.d ]] || continue
    reason=$(ecb_insecure_reason "$dir/$phase.d" dir)
    if [[ -n $reason || ! -d $dir/$phase.d || -L $dir/$phase.d ]]; then
      ecb_error HOOK_INSECURE "refusing hooks: ${reason:-$dir/$phase.d is not a directory}; it must be a root-owned directory not writable by group or others (chmod 755)"
      return 1
    fi
    for file in "$dir/$phase.d"/*; do
      [[ -e $file || -L $file ]] || continue
      name=${file##*/}
      # Package-manager leftovers and editor backups are never run, and never silently either.
      case $name in
        *.disabled | *~ | *.dpkg-* | *.rpmnew | *.rpmsave | *.swp)
          ecb_log "hook $phase.d/$name ignored (disabled or backup file)"
          continue
          ;;
      esac
      if [[ ! $name =~ ^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$ ]]; then
        ecb_error HOOK_INSECURE "refusing hooks: $phase.d/$name has a name outside [A-Za-z0-9._-] (rename it, or add .disabled to skip it)"
        return 1
      fi
      target=$file
      if [[ -L $file ]]; then
        target=$(readlink -f -- "$file") || target=''
        reason=$(ecb_insecure_reason "$(dirname -- "$target")" dir)
        if [[ -z $target || -n $reason ]]; then
          ecb_error HOOK_INSECURE "refusing hooks: $phase.d/$name is a symlink to ${target:-nothing}; ${reason:-the target does not exist}"
          return 1
        fi
      fi
      reason=$(ecb_insecure_reason "$target" file)
      if [[ -n $reason ]]; then
        ecb_error HOOK_INSECURE "refusing hooks: $reason (chown root:root and chmod 700 $file)"
        return 1
      fi
      if [[ ! -f $target || ! -x $target ]]; then
        ecb_error HOOK_INSECURE "refusing hooks: $file is not an executable regular file (chmod 700 it, or add .disabled to its name to skip it)"
        return 1
      fi
      if [[ $phase == pre-freeze ]]; then ECB_PRE_HOOKS+=("$file"); else ECB_POST_HOOKS+=("$file"); fi
    done
  done
  return 0
}

# Runs one hook with a time limit, its output captured to tmpfs. Appends a JSON entry to
# ECB_HOOK_RESULTS and returns the hook's exit code (124 when it timed out).
ecb_run_hook() {
  local phase=$1 file=$2 name=${2##*/} out start end rc text limit timed_out=false
  out=$ECB_RUN_DIR/hook-$phase-$name.out
  mkdir -p -- "$ECB_STATE_DIR/hook-state/$name"
  start=$(ecb_now_ms)
  ecb_log "running $phase hook $name (limit ${ECB_HOOK_TIMEOUT}s)"
  # timeout signals the hook's whole process group; a lock holder must start its own session.
  # fd 9 is the state lock: a holder that inherited it would block every later thaw.
  # SIGPIPE, ignored by the freeze and thaw themselves, gets its default back for the hook.
  (
    trap - PIPE
    ECB_PHASE=$phase ECB_EXECUTION_ID=$ECB_EXECUTION_ID ECB_HOOK_STATE_DIR=$ECB_STATE_DIR/hook-state/$name \
      ECB_MAX_HOLD_SECONDS=$((ECB_WATCHDOG_SECONDS + ECB_HOOK_TIMEOUT)) ECB_TRIGGER=${ECB_TRIGGER:-orchestrator} \
      ECB_TARGETS=$(printf '%s\n' "${ECB_TARGET_MPS[@]+"${ECB_TARGET_MPS[@]}"}") \
      exec timeout -k 5 "$ECB_HOOK_TIMEOUT" "$file" </dev/null >"$out" 2>&1 9>&-
  )
  rc=$?
  end=$(ecb_now_ms)
  if ((rc == 124 || rc == 137)); then timed_out=true; fi
  limit=$ECB_HOOK_OUTPUT_PER_HOOK
  if ((ECB_HOOK_OUTPUT_TOTAL - ECB_HOOK_OUTPUT_USED < limit)); then
    limit=$((ECB_HOOK_OUTPUT_TOTAL - ECB_HOOK_OUTPUT_USED))
  fi
  text=''
  if ((limit > 0)); then
    text=$(tail -c "$limit" -- "$out" 2>/dev/null | tr -d '\000')
  fi
  ECB_HOOK_OUTPUT_USED=$((ECB_HOOK_OUTPUT_USED + ${#text}))
  # The whole output also goes to stderr (SSM's StandardErrorContent) for the operator.
  sed "s/^/[$phase $name] /" -- "$out" >&2 2>/dev/null || true
  ECB_HOOK_RESULTS+=("$(printf '{"phase":%s,"name":%s,"exitCode":%d,"timedOut":%s,"ms":%d,"output":%s}' \
    "$(ecb_json_str "$phase")" "$(ecb_json_str "$name")" "$rc" "$timed_out" "$((end - start))" "$(ecb_json_str "$text")")")
  ecb_log "$phase hook $name exited $rc after $((end - start)) ms"
  return "$rc"
}
