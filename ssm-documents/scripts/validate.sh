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
  [[ $list =~ ^/[A-Za-z0-9._/-]{0,255}(,/[A-Za-z0-9._/-]{0,255}){0,19}$ ]] || return 1
  local IFS=,
  for p in $list; do
    [[ /$p/ == */../* || /$p/ == */./* ]] && return 1
  done
  return 0
}

ecb_valid_safe_dir() { [[ $1 =~ ^/[A-Za-z0-9._/-]{1,200}$ && /$1/ != */../* ]]; }
