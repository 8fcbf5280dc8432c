# shellcheck shell=bash
# The hook runner: which hooks may run, how one runs, and what is kept of it.
#
# Contract (ssm-documents/README.md, "Application hooks"): executables in
# $ECB_CONFIG_DIR/pre-freeze.d/ and post-thaw.d/, run as root in lexical order, each under a time
# limit in a process group of its own, stdin /dev/null, stdout and stderr captured. Only what only
# root can change runs: the hook and every directory above it, checked when the hooks are loaded
# and again at the moment each one runs, which then runs by the path that check resolved.
# Results go to ECB_HR ("phase|name|exit code|timed out|ms") and ECB_HR_OUT (the output kept);
# ecb_hooks_json encodes them within a character budget.

# Prints why someone other than root could change what the resolved, absolute `path` is, or
# nothing: it and every directory up to / must be root's, writable by no one else (an ancestor
# may be world-writable with the sticky bit), and none may be a symlink. One stat for the chain.
ecb_insecure_chain() {
  local path=$1 p chain=() lines=() line uid mode type i
  [[ $path == /* ]] || {
    printf '%s is not an absolute path' "$path"
    return 0
  }
  p=$path
  while :; do
    chain+=("$p")
    [[ $p == / ]] && break
    p=${p%/*}
    [[ -n $p ]] || p=/
  done
  while IFS= read -r line; do lines+=("$line"); done < <(stat -c '%u %a %F' -- "${chain[@]}" 2>/dev/null)
  if ((${#lines[@]} != ${#chain[@]})); then
    for p in "${chain[@]}"; do [[ -e $p || -L $p ]] || break; done
    printf '%s cannot be read' "$p"
    return 0
  fi
  for i in "${!chain[@]}"; do
    read -r uid mode type <<<"${lines[$i]}"
    p=${chain[$i]}
    if [[ $type == 'symbolic link' ]]; then
      printf '%s is a symlink' "$p"
    elif [[ $uid != 0 ]]; then
      printf '%s is owned by uid %s, not root' "$p" "$uid"
    elif (((8#$mode & 8#022) != 0)) && ! ((i > 0 && (8#$mode & 8#1000) != 0)); then
      printf '%s is writable by group or others (mode %s)' "$p" "$mode"
    else
      continue
    fi
    return 0
  done
}

# Resolves a hook once and checks it: sets ECB_HOOK_EXE (the file to run: a symlink's target,
# never the link again) or ECB_HOOK_REFUSED (why not). The link's own directory is checked too.
ecb_hook_resolve() {
  local file=$1 reason
  ECB_HOOK_EXE='' ECB_HOOK_REFUSED=''
  reason=$(ecb_insecure_chain "${file%/*}")
  if [[ -z $reason ]]; then
    ECB_HOOK_EXE=$(readlink -e -- "$file") || ECB_HOOK_EXE=''
    if [[ -z $ECB_HOOK_EXE ]]; then
      reason="$file points to nothing"
    else
      reason=$(ecb_insecure_chain "$ECB_HOOK_EXE")
      [[ -n $reason || (-f $ECB_HOOK_EXE && -x $ECB_HOOK_EXE) ]] ||
        reason="$file is not an executable regular file (chmod 700 it, or add .disabled to its name to skip it)"
      [[ -z $reason || $ECB_HOOK_EXE == "$file" ]] || reason="$file is a symlink to $ECB_HOOK_EXE; $reason"
    fi
  fi
  [[ -z $reason ]] && return 0
  ECB_HOOK_EXE=''
  ECB_HOOK_REFUSED=$reason
  return 1
}

ecb_hook_refusal() {
  ecb_error HOOK_INSECURE "refusing hooks: $1; a hook and every directory above it must be owned by root and writable by no one else (chown root:root, chmod go-w)$2"
}

# Hooks: executables in pre-freeze.d/ and post-thaw.d/, validated as a whole before anything runs.
# Sets ECB_PRE_HOOKS and ECB_POST_HOOKS (absolute paths, lexical order); returns 1 with
# ECB_ERROR_* set when any file or directory on the way is unsafe.
ecb_load_hooks() {
  ECB_PRE_HOOKS=()
  ECB_POST_HOOKS=()
  local dir=$ECB_CONFIG_DIR reason phase file name
  if ! ecb_valid_safe_dir "$dir"; then
    ecb_error HOOK_INSECURE "hook directory $dir is not an absolute path of [A-Za-z0-9._/-]"
    return 1
  fi
  [[ -e $dir || -L $dir ]] || return 0
  reason=$(ecb_insecure_chain "$dir")
  [[ -n $reason || -d $dir ]] || reason="$dir is not a directory"
  if [[ -n $reason ]]; then
    ecb_hook_refusal "$reason"
    return 1
  fi
  for phase in pre-freeze post-thaw; do
    [[ -e $dir/$phase.d || -L $dir/$phase.d ]] || continue
    reason=$(ecb_insecure_chain "$dir/$phase.d")
    [[ -n $reason || -d $dir/$phase.d ]] || reason="$dir/$phase.d is not a directory"
    if [[ -n $reason ]]; then
      ecb_hook_refusal "$reason"
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
        ecb_hook_refusal "$phase.d/$name has a name outside [A-Za-z0-9._-] (rename it, or add .disabled to skip it)"
        return 1
      fi
      if ! ecb_hook_resolve "$file"; then
        ecb_hook_refusal "$ECB_HOOK_REFUSED"
        return 1
      fi
      if [[ $phase == pre-freeze ]]; then ECB_PRE_HOOKS+=("$file"); else ECB_POST_HOOKS+=("$file"); fi
    done
  done
  return 0
}

# The start time of a process (clock ticks since boot): with its pid, it names the process even
# after the pid is reused.
ecb_proc_start() {
  local stat f
  read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
  read -r -a f <<<"${stat##*) }"
  printf '%s' "${f[19]}"
}

# Ends the process group of a hook recorded in $ECB_RUN_DIR/hook.pid, if it is still that hook's.
ecb_kill_hook_group() {
  local pid start
  read -r pid start 2>/dev/null <"${1:-$ECB_RUN_DIR}/hook.pid" || return 0
  [[ $pid =~ ^[0-9]+$ && -n $start && $(ecb_proc_start "$pid") == "$start" ]] || return 0
  ecb_log "ending the process group of hook process $pid, which outlived the command that ran it"
  kill -KILL -- "-$pid" 2>/dev/null || true
}

# Adds one hook result: phase, name, exit code, timed out (true/false), milliseconds, output.
ecb_hook_result() {
  ECB_HR+=("$1|$2|$3|$4|$5") ECB_HR_OUT+=("$6")
}

# Runs one hook and records its result; returns its exit code (124 or 137: timed out; 126: refused,
# with ECB_ERROR_* set). The hook is checked again now and run by its resolved path. Its output goes
# through a FIFO (opened read-write, so neither side can block on opening it; on a numbered fd,
# because `declare -f`, which writes the watchdog, prints `1<>` as `<>`, stdin) to `tail`, which
# keeps the last ECB_HOOK_CAPTURE_BYTES on tmpfs and never blocks it;
# it runs under `timeout` (its own process group, recorded in hook.pid, so a rollback or the
# watchdog can end it if this command dies) without this command's descriptors: the state lock
# (9), the watchdog's control FIFO (8) and the target filesystems.
ecb_run_hook() {
  local phase=$1 file=$2 name=${2##*/} out=$ECB_RUN_DIR/hook.out fifo=$ECB_RUN_DIR/hook.fifo
  local start rc reader i fd text me
  if ! ecb_hook_resolve "$file"; then
    ecb_hook_refusal "$ECB_HOOK_REFUSED" " ($phase.d/$name was checked again at the moment it would run)"
    return 126
  fi
  mkdir -p -- "$ECB_STATE_DIR/hook-state/$name" 2>/dev/null
  rm -f -- "$fifo" "$out" "$ECB_RUN_DIR/hook.pid"
  mkfifo -m 0600 -- "$fifo" 2>/dev/null || {
    ecb_hook_result "$phase" "$name" 125 false 0 "not run: cannot create $fifo"
    return 125
  }
  start=$(ecb_mono_ms)
  ecb_log "running $phase hook $name (limit ${ECB_HOOK_TIMEOUT}s)"
  tail -c "$ECB_HOOK_CAPTURE_BYTES" <"$fifo" 2>/dev/null >"$out" &
  reader=$!
  (
    # The freeze and thaw ignore SIGPIPE; a hook gets the default back.
    trap - PIPE
    for fd in "${ECB_TARGET_FD[@]}"; do exec {fd}<&-; done
    # Its own pid and start time: inside $(...), BASHPID would be another process's.
    me=$BASHPID
    printf '%s %s\n' "$me" "$(ecb_proc_start "$me")" >"$ECB_RUN_DIR/hook.pid"
    ECB_PHASE=$phase ECB_EXECUTION_ID=$ECB_EXECUTION_ID ECB_HOOK_STATE_DIR=$ECB_STATE_DIR/hook-state/$name \
      ECB_MAX_HOLD_SECONDS=$((ECB_WATCHDOG_SECONDS + ECB_HOOK_TIMEOUT)) ECB_TRIGGER=${ECB_TRIGGER:-orchestrator} \
      ECB_TARGETS=$(printf '%s\n' "${ECB_TARGET_MPS[@]}") \
      exec timeout -k 5 "$ECB_HOOK_TIMEOUT" "$ECB_HOOK_EXE" </dev/null 7<>"$fifo" >&7 2>&7 7>&- 8>&- 9>&-
  ) &
  wait "$!"
  rc=$?
  # The reader ends when the hook and all it started have closed the output; a background
  # process that kept it open loses it after a second.
  for ((i = 0; i < 20; i++)); do kill -0 "$reader" 2>/dev/null || break; sleep 0.05; done
  kill "$reader" 2>/dev/null && ECB_WARNINGS+=("a process started by $phase hook $name kept its output open; only what it printed in time was captured")
  text=$(tr -d '\000' 2>/dev/null <"$out") || text=''
  (($(stat -c %s -- "$out" 2>/dev/null || echo 0) >= ECB_HOOK_CAPTURE_BYTES)) &&
    text="[truncated: kept the last $ECB_HOOK_CAPTURE_BYTES bytes] $text"
  # Everything kept also goes to stderr (SSM's StandardErrorContent) for the operator.
  sed "s/^/[$phase $name] /" -- "$out" >&2 2>/dev/null || true
  rm -f -- "$fifo" "$out" "$ECB_RUN_DIR/hook.pid"
  ecb_hook_result "$phase" "$name" "$rc" "$( ((rc == 124 || rc == 137)) && echo true || echo false)" \
    "$(($(ecb_mono_ms) - start))" "$text"
  ecb_log "$phase hook $name exited $rc after $(($(ecb_mono_ms) - start)) ms"
  return "$rc"
}

# A freeze abandoned before its thaw: runs, with ECB_ABORTED=1, the post-thaw hooks named like the
# pre-freeze hooks that ran (listed one per line in $1: names are [A-Za-z0-9._-]), so what they
# started (a lock, a paused service) ends. Post-thaw hooks must therefore be idempotent. Each is
# checked as it runs; one refused is skipped with a warning, the others still run.
ecb_run_undo_hooks() {
  local name code=${ECB_ERROR_CODE:-} message=${ECB_ERROR_MESSAGE:-}
  [[ -s $1 ]] || return 0
  while IFS= read -r name; do
    [[ -e $ECB_CONFIG_DIR/post-thaw.d/$name ]] || continue
    if ! ECB_ABORTED=1 ecb_run_hook post-thaw "$ECB_CONFIG_DIR/post-thaw.d/$name" && [[ -n $ECB_HOOK_REFUSED ]]; then
      ECB_WARNINGS+=("post-thaw hook $name not run: $ECB_HOOK_REFUSED")
      ECB_ERROR_CODE=$code ECB_ERROR_MESSAGE=$message
    fi
  done <"$1"
}

# Sets ECB_JSON to the hook results as a JSON array, outputs within `budget` characters in all
# (at most ECB_HOOK_OUTPUT_PER_HOOK each, their ends kept); sets ECB_TRUNCATED=1 when it cut.
ecb_hooks_json() {
  local budget=$1 n=${#ECB_HR[@]} i each items=() phase name rc timed_out ms
  for ((i = 0; i < n; i++)); do
    each=$((budget / (n - i)))
    ((each > ECB_HOOK_OUTPUT_PER_HOOK)) && each=$ECB_HOOK_OUTPUT_PER_HOOK
    ecb_json_capped "${ECB_HR_OUT[$i]}" "$((each > 48 ? each : 48))" tail
    budget=$((budget - ${#ECB_JSON}))
    IFS='|' read -r phase name rc timed_out ms <<<"${ECB_HR[$i]}"
    items+=("$(printf '{"phase":%s,"name":%s,"exitCode":%d,"timedOut":%s,"ms":%d,"output":%s}' \
      "$(ecb_json_str "$phase")" "$(ecb_json_str "$name")" "$rc" "$timed_out" "$ms" "$ECB_JSON")")
  done
  ECB_JSON=$(ecb_json_array "${items[@]}")
}

# Keeps the hook results in a directory (small: each output cut to its last 4 KiB), for the thaw
# that reports them later (ecb_hook_results_load).
ecb_hook_results_save() {
  local dir=$1 i
  mkdir -p -- "$dir" 2>/dev/null || return 0
  for i in "${!ECB_HR[@]}"; do
    printf '%s\n' "${ECB_HR[$i]}" 2>/dev/null >"$dir/$i"
    printf '%s' "${ECB_HR_OUT[$i]:$((${#ECB_HR_OUT[$i]} > 4096 ? ${#ECB_HR_OUT[$i]} - 4096 : 0))}" 2>/dev/null >"$dir/$i.out"
  done
}
