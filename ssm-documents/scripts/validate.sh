# shellcheck shell=bash
# Parameter validation: the SSM allowedPattern guards the console and the API; these guard direct calls.

ecb_valid_execution_id() { [[ $1 =~ ^[A-Za-z0-9_.:-]{1,128}$ ]]; }
ecb_valid_volume_ids() { [[ $1 =~ ^vol-[0-9a-f]{8,17}(,vol-[0-9a-f]{8,17}){0,39}$ ]]; }
ecb_valid_volume_devices() {
  [[ -z $1 || $1 =~ ^vol-[0-9a-f]{8,17}=/dev/[a-z0-9]{1,16}(,vol-[0-9a-f]{8,17}=/dev/[a-z0-9]{1,16}){0,39}$ ]]
}
ecb_valid_not_after() { [[ $1 =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,3})?Z$ ]]; }
ecb_valid_int_range() { [[ $1 =~ ^[0-9]{1,4}$ ]] && ((10#$1 >= $2 && 10#$1 <= $3)); }

# Include/Exclude: absolute paths of [A-Za-z0-9._/-] only, no `.` or `..` components, comma separated.
ecb_valid_path_list() {
  local list=$1 p
  [[ -z $list ]] && return 0
  [[ $list =~ ^/[A-Za-z0-9._/-]{0,255}(,/[A-Za-z0-9._/-]{0,255}){0,15}$ ]] || return 1
  local IFS=,
  for p in $list; do
    [[ /$p/ == */../* || /$p/ == */./* ]] && return 1
  done
  return 0
}

# The packaged application hooks (lambda/shared/apps.ts PACKAGED_APPS; a test keeps the two equal).
ecb_valid_apps() { [[ -z $1 || $1 =~ ^(postgresql|mysql|redis)(,(postgresql|mysql|redis)){0,2}$ ]]; }

ecb_valid_safe_dir() { [[ $1 =~ ^/[A-Za-z0-9._/-]{1,200}$ && /$1/ != */../* ]]; }

# Prints why a parameter's value is not allowed, naming the value and what is allowed, or nothing.
# The freeze and the preflight say the same.
ecb_param_problem() {
  local v=$2 allowed
  case $1 in
    ExecutionId) ecb_valid_execution_id "$v" && return; allowed='1-128 characters of A-Z a-z 0-9 _ . : -' ;;
    VolumeIds) ecb_valid_volume_ids "$v" && return; allowed='1-40 comma-separated volume ids like vol-0123456789abcdef0' ;;
    VolumeDevices) ecb_valid_volume_devices "$v" && return; allowed='empty or comma-separated vol-id=/dev/name pairs' ;;
    NotAfter) ecb_valid_not_after "$v" && date -u -d "$v" >/dev/null 2>&1 && return; allowed='a real UTC time like 2026-11-22T02:05:00Z' ;;
    WatchdogSeconds) ecb_valid_int_range "$v" 6 300 && return; allowed='a whole number from 6 to 300' ;;
    HookTimeoutSeconds) ecb_valid_int_range "$v" 1 600 && return; allowed='a whole number from 1 to 600' ;;
    Apps) ecb_valid_apps "$v" && return; allowed='empty or comma-separated postgresql, mysql, redis' ;;
    *) ecb_valid_path_list "$v" && return; allowed='empty or up to 16 comma-separated absolute paths of A-Z a-z 0-9 . _ / - without . or .. components' ;;
  esac
  printf '%s "%s" is not allowed; allowed: %s' "$1" "$v" "$allowed"
}
