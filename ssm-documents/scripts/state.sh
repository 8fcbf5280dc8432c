# shellcheck shell=bash
# The state directory on tmpfs: the active freeze, its record, its watchdog, and the last freeze.

# The state directory must be root's alone and on tmpfs: the watchdog lives there while
# filesystems are frozen, and a reboot (which thaws everything) must also forget the freeze.
ecb_prepare_state_dir() {
  local reason fstype
  if ! ecb_valid_safe_dir "$ECB_STATE_DIR"; then
    ecb_error STATE_DIR_UNSAFE "state directory $ECB_STATE_DIR is not an absolute path of [A-Za-z0-9._/-]"
    return 1
  fi
  if [[ -L $ECB_STATE_DIR ]]; then
    ecb_error STATE_DIR_UNSAFE "state directory $ECB_STATE_DIR is a symlink"
    return 1
  fi
  # Two commands may create it at once (a preflight and a freeze): losing that race is fine.
  if [[ ! -d $ECB_STATE_DIR ]] && ! { mkdir -p -- "$(dirname -- "$ECB_STATE_DIR")" &&
    { mkdir -m 0700 -- "$ECB_STATE_DIR" 2>/dev/null || [[ -d $ECB_STATE_DIR && ! -L $ECB_STATE_DIR ]]; }; }; then
    ecb_error STATE_DIR_UNSAFE "cannot create state directory $ECB_STATE_DIR"
    return 1
  fi
  reason=$(ecb_insecure_reason "$ECB_STATE_DIR" dir)
  if [[ -n $reason ]]; then
    ecb_error STATE_DIR_UNSAFE "state directory: $reason"
    return 1
  fi
  fstype=$(stat -f -c %T -- "$ECB_STATE_DIR" 2>/dev/null) || fstype=unknown
  if [[ $fstype != tmpfs && $fstype != ramfs ]]; then
    ecb_error STATE_DIR_UNSAFE "state directory $ECB_STATE_DIR is on $fstype; it must be on tmpfs (like /run) so the watchdog never depends on a disk"
    return 1
  fi
  ECB_ACTIVE=$ECB_STATE_DIR/active
  ECB_LAST=$ECB_STATE_DIR/last
  return 0
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
  } >"$tmp" && mv -f -- "$tmp" "$file"
}

# shellcheck disable=SC2317 # the freeze reaches it only through the watchdog it writes with declare -f
ecb_read_targets() {
  ECB_TARGET_MPS=()
  local mp
  [[ -r $1 ]] || return 0
  while IFS= read -r mp; do
    [[ -n $mp ]] && ECB_TARGET_MPS+=("$mp")
  done <"$1"
}

# A process is our watchdog only if its command line names this freeze's watchdog file; a pid
# alone could have been reused.
ecb_watchdog_alive() {
  local pid=$1 cmdline
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  cmdline=$(tr '\000' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *"$ECB_ACTIVE/watchdog.sh"* ]]
}

# Ends the watchdog of the active freeze so it can never fire later, into another freeze.
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

# Moves the active freeze to `last`. The caller writes how it ended first.
ecb_archive_active() {
  rm -rf -- "$ECB_LAST"
  mv -f -- "$ECB_ACTIVE" "$ECB_LAST"
}

# The record of a freeze that ended without its own thaw seeing it (watchdog, or another
# execution's thaw), as JSON, or `null`.
ecb_previous_json() {
  local rec=$ECB_LAST/record
  if [[ ! -r $rec || -e $ECB_LAST/acknowledged ]]; then
    printf 'null'
    return 0
  fi
  ecb_freeze_record_json "$rec"
}

ecb_freeze_record_json() {
  local rec=$1 exec_id started thawed by fired outcome
  exec_id=$(ecb_record_get "$rec" executionId) || exec_id=''
  started=$(ecb_record_get "$rec" freezeStartMs) || started=0
  thawed=$(ecb_record_get "$rec" thawedAtMs) || thawed=0
  by=$(ecb_record_get "$rec" thawedBy) || by=''
  fired=$(ecb_record_get "$rec" watchdogFired) || fired=false
  outcome=$(ecb_record_get "$rec" outcome) || outcome=''
  [[ $started =~ ^[0-9]+$ ]] || started=0
  [[ $thawed =~ ^[0-9]+$ ]] || thawed=0
  [[ $fired == true ]] || fired=false
  local freeze_ms=0
  ((started > 0 && thawed >= started)) && freeze_ms=$((thawed - started))
  printf '{"executionId":%s,"outcome":%s,"thawedBy":%s,"watchdogFired":%s,"freezeMs":%d,"thawedAt":%s}' \
    "$(ecb_json_str "$exec_id")" "$(ecb_json_str "$outcome")" "$(ecb_json_str "$by")" "$fired" "$freeze_ms" \
    "$( ((thawed > 0)) && ecb_json_str "$(ecb_iso_ms "$thawed")" || printf 'null')"
}
