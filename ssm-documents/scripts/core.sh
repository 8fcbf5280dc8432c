# shellcheck shell=bash
# Shared by every document and by the watchdog: environment, logging, time, JSON, errors, tools.
#
# Everything here is a function: the watchdog is written to tmpfs from `declare -f`, so it carries
# these definitions in its own file and never reads a script from a filesystem that may be frozen.
# Portable to bash 4.2 (Amazon Linux 2, RHEL 7): no namerefs, no EPOCHREALTIME, no `wait -n`.
# Paths are never passed through newline- or tab-separated text: arrays, NUL-separated files, fds.

# shellcheck disable=SC2034 # budgets and seams each document uses some of
ecb_init() {
  # A fixed PATH: a root shell started by SSM may lack /sbin, and a missing fsfreeze once made
  # backups silently crash-consistent for months. C locale: byte-wise globs, sort and messages.
  export LC_ALL=C
  export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  umask 077
  ECB_STATE_DIR=${ECB_STATE_DIR:-/run/ec2-consistent-backup}
  ECB_CONFIG_DIR=${ECB_CONFIG_DIR:-/etc/ec2-consistent-backup}
  ECB_DEVICE_MAP=${ECB_DEVICE_MAP:-}
  ECB_SYSFS=${ECB_SYSFS:-/sys}
  ECB_MOUNTINFO=${ECB_MOUNTINFO:-/proc/self/mountinfo}
  ECB_SUPPORTED_FSTYPES=' ext2 ext3 ext4 xfs btrfs f2fs jfs reiserfs nilfs2 '
  # SSM keeps the first 24,000 characters of stdout, all the orchestrator reads: the one JSON line
  # stays below this once escaped. Hook output and warnings give way first, never the structure.
  ECB_OUTPUT_LIMIT=22000
  ECB_HOOK_OUTPUT_PER_HOOK=2048
  ECB_HOOK_OUTPUT_TOTAL=12000
  ECB_WARNINGS_TOTAL=4000
  # What the tmpfs holds of one hook's output while it runs, whatever the hook prints.
  ECB_HOOK_CAPTURE_BYTES=16384
  # The state directory's tmpfs (shared with every service, like /run) must keep this much free.
  ECB_STATE_MIN_FREE_KB=1024
  # How long a command waits for another command of the same execution to let go of the lock.
  ECB_SAME_EXECUTION_WAIT=5
  ECB_HR=() ECB_HR_OUT=()
  declare -gA ECB_FD_BY_DEV=()
}

ecb_log() {
  printf '%s ec2-consistent-backup[%s]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$$" "$*" >&2
}

# Wall-clock milliseconds: for times people and AWS compare (frozenAt, NotAfter). Never for durations.
ecb_now_ms() {
  date -u +%s%3N
}

# Milliseconds since boot, in 10 ms steps, from /proc/uptime (no process started): durations and
# deadlines, which a clock set back or forward must not change.
ecb_mono_ms() {
  local up
  read -r up _ </proc/uptime 2>/dev/null || up=0.00
  printf '%s' "$((10#${up/./} * 10))"
}

ecb_iso_ms() {
  local ms=$1
  printf '%s.%03dZ' "$(date -u -d "@$((ms / 1000))" +%Y-%m-%dT%H:%M:%S)" "$((ms % 1000))"
}

# A JSON string literal for any bytes: quotes, backslashes and control characters escaped;
# a value that is not valid UTF-8 has its non-ASCII bytes replaced so the JSON stays parseable.
ecb_json_str() {
  local s=$1 out='' c i
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//$'\t'/\\t}
  if [[ $s == *[[:cntrl:]]* ]]; then
    for ((i = 0; i < ${#s}; i++)); do
      c=${s:i:1}
      if [[ $c == [[:cntrl:]] ]]; then
        printf -v c '\\u%04x' "'$c"
      fi
      out+=$c
    done
    s=$out
  fi
  if [[ $s == *[$'\x80'-$'\xff']* ]]; then
    if ! printf '%s' "$s" | iconv -f UTF-8 -t UTF-8 >/dev/null 2>&1; then
      s=${s//[$'\x80'-$'\xff']/?}
    fi
  fi
  printf '"%s"' "$s"
}

# shellcheck disable=SC2034 # ECB_TRUNCATED is read by the documents that report it
# Sets ECB_JSON to the JSON string of $1 in at most $2 characters once escaped: what does not fit
# is cut (keeping the end with `tail`, the start otherwise), a marker says so, and ECB_TRUNCATED=1.
# The cut is made on the text before escaping, so no escape sequence or UTF-8 character is split.
ecb_json_capped() {
  local s=$1 max=$2 keep=${3:-head} n=${#1} part k
  if ((n <= max)); then
    ECB_JSON=$(ecb_json_str "$s")
    ((${#ECB_JSON} <= max)) && return 0
  fi
  ECB_TRUNCATED=1
  # Escaping never shortens text: more than max bytes cannot fit, so never escape more.
  ((n <= max)) || n=$max
  while :; do
    if [[ $keep == tail ]]; then
      part=${s:${#s}-n}
      for ((k = 0; k < 3; k++)); do [[ $part == [$'\x80'-$'\xbf']* ]] && part=${part:1}; done
      part="[truncated: kept the last ${#part} bytes] $part"
    else
      part=${s:0:n}
      for ((k = 0; k < 3; k++)); do [[ $part == *[$'\x80'-$'\xbf'] ]] && part=${part:0:${#part}-1}; done
      [[ $part == *[$'\xc0'-$'\xff'] ]] && part=${part:0:${#part}-1}
      part="$part [truncated: kept the first ${#part} bytes]"
    fi
    ECB_JSON=$(ecb_json_str "$part")
    ((${#ECB_JSON} > max && n > 0)) || break
    # Escaping grows text about evenly: shrink in proportion (always by at least one byte).
    n=$((n * (max - 48) / ${#ECB_JSON}))
    ((n > 0)) || n=0
  done
  ((${#ECB_JSON} <= max)) || ECB_JSON='"[truncated]"'
}

# Joins already-encoded JSON values with commas into an array.
ecb_json_array() {
  local IFS=,
  printf '[%s]' "$*"
}

ecb_json_str_array() {
  local items=() v
  for v in "$@"; do items+=("$(ecb_json_str "$v")"); done
  ecb_json_array "${items[@]}"
}

# shellcheck disable=SC2034 # as above
# Sets ECB_JSON to a JSON array of strings in about $1 characters: strings in order, each cut to
# at most 1,000 characters, until no room is left; those left out are counted in a last entry.
ecb_json_str_array_capped() {
  local left=$(($1 - 2)) items=() v each n=$(($# - 1)) i=0
  shift
  for v in "$@"; do
    each=$((left - 48 < 1000 ? left - 48 : 1000))
    ((each >= 64)) || break
    ecb_json_capped "$v" "$each"
    items+=("$ECB_JSON")
    left=$((left - ${#ECB_JSON} - 1))
    i=$((i + 1))
  done
  if ((i < n)); then
    ECB_TRUNCATED=1
    items+=("\"[truncated: $((n - i)) more not shown]\"")
  fi
  ECB_JSON=$(ecb_json_array "${items[@]}")
}

# shellcheck disable=SC2034 # ECB_EMITTED is read by the document's EXIT trap
# Prints the one result line of a document, made by the function $1 (with $2... after its budgets)
# within ECB_OUTPUT_LIMIT characters: hook output gives way first, then warnings, then per-volume
# detail; never the status, the targets, the watchdog or the error.
ecb_emit() {
  local fn=$1 line hooks=$ECB_HOOK_OUTPUT_TOTAL warnings=$ECB_WARNINGS_TOTAL detail=1 pass over
  shift
  for pass in 1 2 3 4; do
    line=$("$fn" "$hooks" "$warnings" "$detail" "$@")
    ((${#line} <= ECB_OUTPUT_LIMIT)) && break
    over=$((${#line} - ECB_OUTPUT_LIMIT + 64))
    case $pass in
      1) hooks=$((hooks > over ? hooks - over : 0)) ;;
      2) warnings=$((warnings > over ? warnings - over : 0)) ;;
      3) detail=0 ;;
    esac
  done
  printf '%s\n' "$line"
  ECB_EMITTED=1
}

# Records an error code and message; the caller decides whether it is fatal.
ecb_error() {
  ECB_ERROR_CODE=$1
  ECB_ERROR_MESSAGE=$2
  ecb_log "error $1: $2"
}

ecb_error_json() {
  ecb_json_capped "$ECB_ERROR_MESSAGE" 2000
  printf '{"code":%s,"message":%s}' "$(ecb_json_str "$ECB_ERROR_CODE")" "$ECB_JSON"
}

# --- tools resolved before any freeze, so nothing is looked up on a frozen filesystem ---

ecb_find_fsfreeze() {
  local c
  for c in /usr/sbin/fsfreeze /sbin/fsfreeze "$(command -v fsfreeze)"; do
    ECB_FSFREEZE=$c
    [[ -n $c && -x $c ]] && return 0
  done
  ECB_FSFREEZE=''
  return 1
}
