# shellcheck shell=bash
# Shared by every document and by the watchdog: environment, logging, time, JSON, errors, tools.
#
# Everything here is a function: the watchdog is written to tmpfs from `declare -f`, so it carries
# these definitions in its own file and never reads a script from a filesystem that may be frozen.
# Portable to bash 4.2 (Amazon Linux 2, RHEL 7): no namerefs, no EPOCHREALTIME, no `wait -n`.

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
  # SSM keeps at most 24,000 characters of stdout: hook output gets a share well below that.
  ECB_HOOK_OUTPUT_PER_HOOK=2048
  ECB_HOOK_OUTPUT_TOTAL=12000
  ECB_HOOK_OUTPUT_USED=0
}

ecb_log() {
  printf '%s ec2-consistent-backup[%s]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$$" "$*" >&2
}

ecb_now_ms() {
  date -u +%s%3N
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

# Joins already-encoded JSON values with commas into an array.
ecb_json_array() {
  local IFS=,
  printf '[%s]' "$*"
}

ecb_json_str_array() {
  local items=() v
  for v in "$@"; do items+=("$(ecb_json_str "$v")"); done
  ecb_json_array "${items[@]+"${items[@]}"}"
}

# Records an error code and message; the caller decides whether it is fatal.
ecb_error() {
  ECB_ERROR_CODE=$1
  ECB_ERROR_MESSAGE=$2
  ecb_log "error $1: $2"
}

ecb_error_json() {
  printf '{"code":%s,"message":%s}' "$(ecb_json_str "$ECB_ERROR_CODE")" "$(ecb_json_str "$ECB_ERROR_MESSAGE")"
}

# --- tools resolved before any freeze, so nothing is looked up on a frozen filesystem ---

ecb_find_fsfreeze() {
  ECB_FSFREEZE=''
  local candidate
  for candidate in /usr/sbin/fsfreeze /sbin/fsfreeze; do
    if [[ -x $candidate ]]; then
      ECB_FSFREEZE=$candidate
      return 0
    fi
  done
  candidate=$(command -v fsfreeze 2>/dev/null) || true
  if [[ -n $candidate && -x $candidate ]]; then
    ECB_FSFREEZE=$candidate
    return 0
  fi
  return 1
}
