# shellcheck shell=bash
# The state directory on tmpfs: the lock, the active freeze and its record, the last freeze, and
# small per-execution files (a thaw's marker, a freeze's final record) kept for a day.

# The state directory must be root's alone and on tmpfs: the watchdog lives there while
# filesystems are frozen, and a reboot (which thaws everything) must also forget the freeze.
ecb_prepare_state_dir() {
  local d=$ECB_STATE_DIR reason fstype
  ECB_ACTIVE=$d/active ECB_LAST=$d/last ECB_EXECUTIONS=$d/executions
  if ecb_valid_safe_dir "$d"; then
    # Two commands may create it at once (a preflight and a freeze): losing that race is fine.
    [[ -e $d || -L $d ]] || { mkdir -p -- "${d%/*}" && mkdir -m 0700 -- "$d"; } 2>/dev/null
    reason=$(ecb_insecure_chain "$d")
    fstype=$(stat -f -c %T -- "$d" 2>/dev/null) || fstype=unknown
    [[ -n $reason || $fstype == tmpfs || $fstype == ramfs ]] ||
      reason="it is on $fstype; it must be on tmpfs (like /run) so the watchdog never depends on a disk"
  else
    reason='it is not an absolute path of [A-Za-z0-9._/-]'
  fi
  if [[ -n $reason ]]; then
    ecb_error STATE_DIR_UNSAFE "state directory $d: $reason"
    return 1
  fi
  mkdir -m 0700 -- "$ECB_EXECUTIONS" 2>/dev/null
  return 0
}

# Prints why the state directory's tmpfs cannot take a freeze (less than ECB_STATE_MIN_FREE_KB
# free), naming what of ours uses it most, or nothing.
ecb_state_full_reason() {
  local avail bsize kb
  read -r avail bsize < <(stat -f -c '%a %S' -- "$ECB_STATE_DIR" 2>/dev/null) || return 0
  kb=$((avail * bsize / 1024))
  ((kb < ECB_STATE_MIN_FREE_KB)) || return 0
  printf '%s has %s KiB free, below the %s KiB a freeze needs (its tmpfs is shared by every service on the host); using most:' \
    "$ECB_STATE_DIR" "$kb" "$ECB_STATE_MIN_FREE_KB"
  (cd "$ECB_STATE_DIR" && du -sk -- hook-state/* active last) 2>/dev/null | sort -rn | head -n 3 | tr '\t\n' '= '
}

# key=value lines; values never contain newlines (they are validated ids, numbers and flags).
ecb_record_get() {
  local file=$1 key=$2 k v
  [[ -r $file ]] || return 1
  while IFS='=' read -r k v; do
    if [[ $k == "$key" ]]; then
      printf '%s' "$v"
      return 0
    fi
  done <"$file"
  return 1
}

# A record's numeric value, or 0.
ecb_record_num() {
  local v
  v=$(ecb_record_get "$1" "$2") || v=0
  [[ $v =~ ^[0-9]{1,18}$ ]] || v=0
  printf '%s' "$((10#$v))"
}

# Returns non-zero when the record could not be written (a full tmpfs): callers that need it say so.
ecb_record_set() {
  local file=$1 key=$2 value=$3 tmp k v
  tmp=$file.tmp
  {
    if [[ -r $file ]]; then
      while IFS='=' read -r k v; do
        [[ $k == "$key" || -z $k ]] || printf '%s=%s\n' "$k" "$v"
      done <"$file"
    fi
    printf '%s=%s\n' "$key" "$value"
  } 2>/dev/null >"$tmp" && mv -f -- "$tmp" "$file"
}

# Targets as NUL-separated (major:minor, device, mount point) triples: a mount point may hold a newline.
ecb_write_targets() {
  local i
  for i in "${!ECB_TARGET_MPS[@]}"; do
    printf '%s\0%s\0%s\0' "${ECB_TARGET_MAJMIN[$i]}" "${ECB_TARGET_DEV[$i]}" "${ECB_TARGET_MPS[$i]}"
  done >"$1"
}

# Adds the targets in a targets file to ECB_TARGET_MPS/_MAJMIN/_DEV, each device once.
ecb_read_targets() {
  local majmin dev mp
  [[ -r $1 ]] || return 0
  while IFS= read -r -d '' majmin && IFS= read -r -d '' dev && IFS= read -r -d '' mp; do
    ecb_add_target "$majmin" "$dev" "$mp"
  done <"$1"
}

ecb_add_target() {
  [[ " ${ECB_TARGET_DEV[*]} " == *" $2 "* ]] && return 0
  ECB_TARGET_MAJMIN+=("$1") ECB_TARGET_DEV+=("$2") ECB_TARGET_MPS+=("$3")
}

# --- the lock: one freeze or thaw at a time ---

# shellcheck disable=SC2034,SC2153 # the freeze reads ECB_LOCK_SAME_EXECUTION; each main sets ECB_DOCUMENT
# Takes the state lock on fd 9, waiting up to $1 seconds, or up to ECB_SAME_EXECUTION_WAIT when the
# holder is a command of this same execution (an orchestrator retry); then says who holds it.
ecb_take_lock() {
  local wait=$1 holder=''
  exec 9>"$ECB_STATE_DIR/lock"
  read -r _ holder 2>/dev/null <"$ECB_STATE_DIR/lock.owner"
  ECB_LOCK_SAME_EXECUTION=false
  [[ $holder == "$ECB_EXECUTION_ID" ]] && ECB_LOCK_SAME_EXECUTION=true wait=$((wait > ECB_SAME_EXECUTION_WAIT ? wait : ECB_SAME_EXECUTION_WAIT))
  flock -w "$wait" 9 || return 1
  printf '%s %s\n' "$ECB_DOCUMENT" "$ECB_EXECUTION_ID" 2>/dev/null >"$ECB_STATE_DIR/lock.owner"
}

# --- per-execution files, pruned after a day ---

# The thaw's marker: any later freeze of that execution refuses (THAWED_BEFORE_FREEZE).
ecb_mark_thawed() {
  local file=$ECB_EXECUTIONS/$1.thawed
  [[ -e $file ]] && return 0
  printf 'thawedAtMs=%s\nthawedBy=%s\n' "$(ecb_now_ms)" "$2" 2>/dev/null >"$file.tmp" &&
    mv -f -- "$file.tmp" "$file"
}

ecb_prune_executions() {
  find "$ECB_EXECUTIONS" -maxdepth 1 -type f -mmin +1440 -delete 2>/dev/null || true
}

# --- the watchdog ---

# A process is our watchdog only if its command line names this freeze's watchdog file; a pid
# alone could have been reused.
ecb_watchdog_alive() {
  local pid=$1 cmdline
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  cmdline=$(tr '\000' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  [[ $cmdline == *"$ECB_ACTIVE/watchdog.sh"* ]]
}

# Ends a watchdog so it can never fire later, into another freeze.
ecb_stop_watchdog() {
  local pid=$1 i
  ecb_watchdog_alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 20; i++)); do
    ecb_watchdog_alive "$pid" || return 0
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
}

# --- how a freeze ended ---

# Records how the active freeze ended: who, when (wall clock for people, monotonic for durations),
# and the outcome. Whether the watchdog fired is true only when it thawed at its deadline.
ecb_record_end() {
  local rec=$ECB_ACTIVE/record
  ecb_record_set "$rec" thawedAtMs "$(ecb_now_ms)"
  ecb_record_set "$rec" thawedAtMono "$(ecb_mono_ms)"
  ecb_record_set "$rec" thawedBy "$1"
  ecb_record_set "$rec" outcome "$2"
  ecb_record_set "$rec" watchdogFired "$([[ $2 == watchdog-thawed ]] && echo true || echo false)"
}

# Moves the active freeze to `last`, keeping only its small files, and a copy of its record and
# targets under executions/ for that execution's own thaw, however many freezes come after.
ecb_archive_active() {
  local id
  id=$(ecb_record_get "$ECB_ACTIVE/record" executionId) || id=''
  rm -f -- "$ECB_ACTIVE"/watchdog.sh "$ECB_ACTIVE"/control "$ECB_ACTIVE"/timer "$ECB_ACTIVE"/hook.* 2>/dev/null
  if [[ -n $id ]]; then
    cp -f -- "$ECB_ACTIVE/record" "$ECB_EXECUTIONS/$id.record" 2>/dev/null
    cp -f -- "$ECB_ACTIVE/targets" "$ECB_EXECUTIONS/$id.targets" 2>/dev/null
  fi
  rm -rf -- "$ECB_LAST"
  mv -f -- "$ECB_ACTIVE" "$ECB_LAST"
}

# From the first fsfreeze to the thaw, on the monotonic clock; 0 when either is unknown.
ecb_record_freeze_ms() {
  local started thawed
  started=$(ecb_record_num "$1" freezeStartMono)
  thawed=$(ecb_record_num "$1" thawedAtMono)
  ((started > 0 && thawed >= started)) && printf '%s' "$((thawed - started))" || printf 0
}

# The record of a freeze that ended without its own thaw seeing it (watchdog, another
# execution's thaw, a rollback), as JSON, or `null`.
ecb_previous_json() {
  local rec=$ECB_LAST/record
  if [[ ! -r $rec || -e $ECB_LAST/acknowledged ]]; then
    printf 'null'
    return 0
  fi
  ecb_freeze_record_json "$rec"
}

ecb_freeze_record_json() {
  local rec=$1 exec_id thawed by fired outcome
  exec_id=$(ecb_record_get "$rec" executionId) || exec_id=''
  thawed=$(ecb_record_num "$rec" thawedAtMs)
  by=$(ecb_record_get "$rec" thawedBy) || by=''
  fired=$(ecb_record_get "$rec" watchdogFired) || fired=false
  outcome=$(ecb_record_get "$rec" outcome) || outcome=''
  [[ $fired == true ]] || fired=false
  printf '{"executionId":%s,"outcome":%s,"thawedBy":%s,"watchdogFired":%s,"freezeMs":%d,"thawedAt":%s}' \
    "$(ecb_json_str "$exec_id")" "$(ecb_json_str "$outcome")" "$(ecb_json_str "$by")" "$fired" \
    "$(ecb_record_freeze_ms "$rec")" "$( ((thawed > 0)) && ecb_json_str "$(ecb_iso_ms "$thawed")" || printf 'null')"
}
