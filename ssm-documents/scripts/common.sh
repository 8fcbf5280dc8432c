# shellcheck shell=bash
# Shared by the Freeze, Thaw and Preflight documents and by the watchdog.
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

# --- validation: the SSM allowedPattern guards the console and the API; these guard direct calls ---

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

# --- ownership checks: root code runs only what only root can change ---

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

# --- mounts and block devices ---

ecb_unescape_mount() {
  local s=$1
  s=${s//\\040/ }
  s=${s//\\011/$'\t'}
  s=${s//\\012/$'\n'}
  s=${s//\\134/\\}
  printf '%s' "$s"
}

# Kernel name (e.g. nvme1n1, dm-0, md127, loop3) of a block device path, or nothing.
ecb_kname_of() {
  local dev real
  dev=$1
  real=$(readlink -f -- "$dev" 2>/dev/null) || return 1
  [[ -b $real || -d $ECB_SYSFS/class/block/${real##*/} ]] || return 1
  [[ -d $ECB_SYSFS/class/block/${real##*/} ]] || return 1
  printf '%s' "${real##*/}"
}

# Reads the mount table into parallel arrays. Identity is what fsfreeze acts on: the superblock.
# It is the device number, except for btrfs, whose every subvolume mount has its own anonymous
# device number: there the identity is the filesystem's first device.
ecb_read_mounts() {
  M_MP=()
  M_FSTYPE=()
  M_SRC=()
  M_KNAME=()
  M_IDENT=()
  M_ROOT=()
  local -A dev2k=()
  local d majmin
  for d in "$ECB_SYSFS"/class/block/*; do
    [[ -r $d/dev ]] || continue
    read -r majmin <"$d/dev" || continue
    dev2k[$majmin]=${d##*/}
  done
  local id root mp rest after fstype src kname ident
  while read -r id _ majmin root mp rest; do
    [[ -n $id ]] || continue
    after=${rest#* - }
    fstype=${after%% *}
    after=${after#* }
    src=${after%% *}
    mp=$(ecb_unescape_mount "$mp")
    kname=${dev2k[$majmin]:-}
    if [[ -z $kname && $src == /dev/* ]]; then
      kname=$(ecb_kname_of "$src") || kname=''
    fi
    ident=$majmin
    if [[ $fstype == btrfs && -n $kname ]]; then
      ident=btrfs:$(ecb_btrfs_first_device "$kname")
    fi
    M_MP+=("$mp")
    M_FSTYPE+=("$fstype")
    M_SRC+=("$src")
    M_KNAME+=("$kname")
    M_IDENT+=("$ident")
    M_ROOT+=("$root")
  done <"$ECB_MOUNTINFO"
}

# The devices of the btrfs filesystem a device belongs to (a btrfs filesystem can span volumes).
ecb_btrfs_devices() {
  local kname=$1 fsdir
  for fsdir in "$ECB_SYSFS"/fs/btrfs/*/devices; do
    if [[ -e $fsdir/$kname ]]; then
      (cd "$fsdir" && printf '%s\n' *) | sort
      return 0
    fi
  done
  printf '%s\n' "$kname"
}

ecb_btrfs_first_device() {
  ecb_btrfs_devices "$1" | head -n 1
}

# Index into M_* of the mount a path lives on: the longest mountpoint prefix of the real path of
# the path's nearest existing ancestor (so a missing SSM directory still protects its parent),
# the last such mount winning as the kernel's over-mount does.
ecb_mount_index_of() {
  local path=$1 real i best=-1 best_len=-1 mp
  while [[ ! -e $path && $path != / ]]; do path=$(dirname -- "$path"); done
  real=$(readlink -f -- "$path" 2>/dev/null) || real=$path
  for i in "${!M_MP[@]}"; do
    mp=${M_MP[$i]}
    if [[ $real == "$mp" || $mp == / || $real == "$mp"/* ]]; then
      if ((${#mp} >= best_len)); then
        best=$i
        best_len=${#mp}
      fi
    fi
  done
  ((best >= 0)) || return 1
  printf '%s' "$best"
}

# Every block device built on a disk: the disk, its partitions, and what holds them (LVM, md,
# dm-crypt, ...), transitively.
ecb_derived_devices() {
  local queue=("$1") seen=' ' d child
  while ((${#queue[@]} > 0)); do
    d=${queue[0]}
    queue=("${queue[@]:1}")
    [[ $seen == *" $d "* ]] && continue
    seen+="$d "
    printf '%s\n' "$d"
    for child in "$ECB_SYSFS/class/block/$d/$d"* "$ECB_SYSFS/class/block/$d/holders/"*; do
      [[ -e $child ]] || continue
      if [[ $child == */holders/* || -e $child/partition ]]; then
        queue+=("${child##*/}")
      fi
    done
  done
}

# Maps one EBS volume id to the kernel name of its disk, or returns 1 (never guesses).
# NVMe (Nitro): the controller serial is the volume id without its dash. /dev/disk/by-id carries
# it too when udev rules are installed. Xen: only the block device mapping name says which
# device a volume is, so the workflow passes it (VolumeDevices) and sdX is tried as xvdX.
ecb_map_volume() {
  local vol=$1 serial_want=${1/-/} d serial link dev line v rest name
  if [[ -n $ECB_DEVICE_MAP ]]; then
    while read -r v rest; do
      if [[ $v == "$vol" ]]; then
        ecb_kname_of "$rest" && return 0
      fi
    done <"$ECB_DEVICE_MAP"
    return 1
  fi
  for d in "$ECB_SYSFS"/class/block/nvme*; do
    [[ -e $d/partition || ! -r $d/device/serial ]] && continue
    read -r serial <"$d/device/serial" || continue
    if [[ $serial == "$serial_want" || $serial == "$vol" ]]; then
      printf '%s' "${d##*/}"
      return 0
    fi
  done
  for link in /dev/disk/by-id/*"$serial_want" /dev/disk/by-id/*"$vol"; do
    [[ -e $link ]] || continue
    ecb_kname_of "$link" && return 0
  done
  line=",$ECB_VOLUME_DEVICES,"
  if [[ $line == *",$vol=/dev/"* ]]; then
    name=${line#*",$vol=/dev/"}
    name=${name%%,*}
    for dev in "/dev/$name" "/dev/xvd${name#sd}" "/dev/xvd${name#xvd}"; do
      [[ -b $dev ]] || continue
      ecb_kname_of "$dev" && return 0
    done
  fi
  return 1
}

ecb_fstype_supported() { [[ $ECB_SUPPORTED_FSTYPES == *" $1 "* ]]; }

# Identities of filesystems that must never be frozen, with the path that made each protected.
ecb_protected_paths() {
  local p comm exe
  printf '%s\n' / /boot /var /tmp /usr /run /etc /var/lib/amazon/ssm /usr/bin/amazon-ssm-agent \
    /snap/amazon-ssm-agent /var/log/amazon /opt/aws "$ECB_STATE_DIR" "$ECB_CONFIG_DIR"
  [[ -n ${ECB_SELF_DIR:-} ]] && printf '%s\n' "$ECB_SELF_DIR"
  printf '%s\n' "$PWD"
  exe=$(readlink -f /proc/$$/exe 2>/dev/null) && printf '%s\n' "$exe"
  [[ -n ${ECB_FSFREEZE:-} ]] && printf '%s\n' "$ECB_FSFREEZE"
  # Wherever the running agent really is (snap, /opt, a custom build), its files stay writable.
  for p in /proc/[0-9]*; do
    read -r comm <"$p/comm" 2>/dev/null || continue
    case $comm in
      amazon-ssm-agen* | ssm-agent-worke* | ssm-document-wo* | ssm-session-wor*)
        exe=$(readlink -f "$p/exe" 2>/dev/null) && printf '%s\n' "$exe"
        ;;
    esac
  done
}

ecb_build_protected() {
  ECB_PROTECTED=()
  local -A seen=()
  local p idx ident
  while read -r p; do
    [[ -n $p ]] || continue
    idx=$(ecb_mount_index_of "$p") || continue
    ident=${M_IDENT[$idx]}
    [[ -n ${seen[$ident]:-} ]] && continue
    seen[$ident]=1
    ECB_PROTECTED+=("$ident=$p")
  done < <(ecb_protected_paths)
}

# Prints the path that protects an identity, or returns 1.
ecb_protected_by() {
  local entry
  for entry in "${ECB_PROTECTED[@]+"${ECB_PROTECTED[@]}"}"; do
    if [[ ${entry%%=*} == "$1" ]]; then
      printf '%s' "${entry#*=}"
      return 0
    fi
  done
  return 1
}

# The heart of the freeze and of the preflight: which filesystems are frozen, which are not, and why.
# Sets ECB_TARGET_MPS (freeze order), ECB_TARGETS_JSON, ECB_SKIPPED_JSON, ECB_UNMAPPED_JSON,
# ECB_VOLUMES_JSON, and appends to ECB_WARNINGS; returns 1 with ECB_ERROR_* when Include names something refused.
ecb_discover() {
  ecb_read_mounts
  ecb_build_protected
  ECB_TARGET_MPS=()
  ECB_TARGETS_JSON=()
  ECB_SKIPPED_JSON=()
  ECB_UNMAPPED_JSON=()
  ECB_VOLUMES_JSON=()
  local -A cand_vols=() cand_idx=() excluded=() reported=()
  local vol kname dev i ident devs fsdevs bdev p idx by reason vols_json
  local IFS=$' \t\n'
  local vol_list=${ECB_VOLUME_IDS//,/ }
  for vol in $vol_list; do
    if ! kname=$(ecb_map_volume "$vol"); then
      ECB_UNMAPPED_JSON+=("$(printf '{"volumeId":%s,"reason":%s}' "$(ecb_json_str "$vol")" \
        "$(ecb_json_str "no block device carries this volume id (NVMe serial, /dev/disk/by-id, or VolumeDevices)")")")
      continue
    fi
    devs=$(ecb_derived_devices "$kname")
    local fs_list=() fs_seen=' '
    for i in "${!M_MP[@]}"; do
      bdev=${M_KNAME[$i]}
      [[ -n $bdev ]] || continue
      fsdevs=$bdev
      [[ ${M_FSTYPE[$i]} == btrfs ]] && fsdevs=$(ecb_btrfs_devices "$bdev")
      # A multi-device btrfs is on this volume when any of its devices derives from it.
      local hit=0 fd
      for fd in $fsdevs; do
        if [[ $'\n'$devs$'\n' == *$'\n'"$fd"$'\n'* ]]; then hit=1; fi
      done
      ((hit)) || continue
      ident=${M_IDENT[$i]}
      if [[ -z ${cand_idx[$ident]:-} ]]; then
        cand_idx[$ident]=$i
      elif [[ ${M_ROOT[${cand_idx[$ident]}]} != / && ${M_ROOT[$i]} == / ]]; then
        cand_idx[$ident]=$i
      fi
      [[ " ${cand_vols[$ident]:-} " == *" $vol "* ]] || cand_vols[$ident]="${cand_vols[$ident]:-} $vol"
      if [[ $fs_seen != *" $ident "* ]]; then
        fs_seen+="$ident "
        fs_list+=("${M_MP[${cand_idx[$ident]}]}")
      fi
    done
    ECB_VOLUMES_JSON+=("$(printf '{"volumeId":%s,"device":%s,"filesystems":%s}' "$(ecb_json_str "$vol")" \
      "$(ecb_json_str "/dev/$kname")" "$(ecb_json_str_array "${fs_list[@]+"${fs_list[@]}"}")")")
  done

  if [[ -n $ECB_EXCLUDE ]]; then
    local IFS=,
    for p in $ECB_EXCLUDE; do
      if [[ ! -e $p ]]; then
        ECB_WARNINGS+=("Exclude path $p does not exist; nothing excluded for it")
        continue
      fi
      idx=$(ecb_mount_index_of "$p") || continue
      excluded[${M_IDENT[$idx]}]=$p
    done
    IFS=$' \t\n'
  fi

  if [[ -n $ECB_INCLUDE ]]; then
    local IFS=,
    for p in $ECB_INCLUDE; do
      if [[ ! -e $p ]]; then
        ecb_error INCLUDE_NOT_FOUND "Include path $p does not exist on this instance; allowed: mount points of data filesystems"
        return 1
      fi
      idx=$(ecb_mount_index_of "$p") || {
        ecb_error INCLUDE_NOT_FOUND "Include path $p is on no mounted filesystem"
        return 1
      }
      ident=${M_IDENT[$idx]}
      if by=$(ecb_protected_by "$ident"); then
        ecb_error INCLUDE_REFUSED "Include path $p is on the filesystem mounted at ${M_MP[$idx]}, which holds $by and is never frozen; allowed: data filesystems that hold none of /, /boot, /var, /tmp, /usr, /run, /etc or the SSM agent"
        return 1
      fi
      if ! ecb_fstype_supported "${M_FSTYPE[$idx]}"; then
        ecb_error INCLUDE_REFUSED "Include path $p is on a ${M_FSTYPE[$idx]} filesystem, which fsfreeze does not support; allowed types:$ECB_SUPPORTED_FSTYPES"
        return 1
      fi
      if [[ -n ${excluded[$ident]:-} ]]; then
        ecb_error INCLUDE_REFUSED "Include path $p and Exclude path ${excluded[$ident]} name the same filesystem; remove one of them"
        return 1
      fi
      [[ -n ${cand_idx[$ident]:-} ]] || cand_idx[$ident]=$idx
      cand_vols[$ident]=${cand_vols[$ident]:-}
    done
    IFS=$' \t\n'
  fi

  local order=()
  for ident in "${!cand_idx[@]}"; do
    order+=("${M_MP[${cand_idx[$ident]}]}"$'\t'"$ident")
  done
  local line mp fstype
  # Parents before children: a nested mount point is reached through its parent, and a lookup on
  # a frozen filesystem is a read, which does not block. Thaw runs in reverse.
  while IFS=$'\t' read -r mp ident; do
    [[ -n $ident ]] || continue
    i=${cand_idx[$ident]}
    fstype=${M_FSTYPE[$i]}
    local vols=()
    read -r -a vols <<<"${cand_vols[$ident]}"
    vols_json=$(ecb_json_str_array "${vols[@]+"${vols[@]}"}")
    reason=''
    if by=$(ecb_protected_by "$ident"); then
      reason="protected: holds $by"
    elif [[ -n ${excluded[$ident]:-} ]]; then
      reason="excluded by the Exclude tag (${excluded[$ident]})"
    elif ! ecb_fstype_supported "$fstype"; then
      reason="unsupported filesystem type $fstype"
    elif [[ $mp == *[[:cntrl:]]* ]]; then
      reason="mount point contains control characters"
    fi
    if [[ -n $reason ]]; then
      [[ -n ${reported[$ident]:-} ]] && continue
      reported[$ident]=1
      ECB_SKIPPED_JSON+=("$(printf '{"mountpoint":%s,"fstype":%s,"volumeIds":%s,"reason":%s}' "$(ecb_json_str "$mp")" \
        "$(ecb_json_str "$fstype")" "$vols_json" "$(ecb_json_str "$reason")")")
      continue
    fi
    ECB_TARGET_MPS+=("$mp")
    ECB_TARGETS_JSON+=("$(printf '{"mountpoint":%s,"fstype":%s,"source":%s,"volumeIds":%s}' "$(ecb_json_str "$mp")" \
      "$(ecb_json_str "$fstype")" "$(ecb_json_str "${M_SRC[$i]}")" "$vols_json")")
  done < <(printf '%s\n' "${order[@]+"${order[@]}"}" | sort)
  return 0
}

# --- state on tmpfs: the active freeze, and the record of the last one ---

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

# Thaws mount points in reverse order. A filesystem that is not frozen counts as success.
# Sets ECB_THAWED, ECB_NOT_FROZEN, ECB_THAW_FAILED (arrays of mount points).
ecb_thaw_list() {
  ECB_THAWED=()
  ECB_NOT_FROZEN=()
  ECB_THAW_FAILED=()
  local mps=("$@") i mp msg
  for ((i = ${#mps[@]} - 1; i >= 0; i--)); do
    mp=${mps[$i]}
    if msg=$("$ECB_FSFREEZE" -u -- "$mp" 2>&1); then
      ECB_THAWED+=("$mp")
    elif [[ $msg == *"Invalid argument"* || $msg == *"not frozen"* ]]; then
      ECB_NOT_FROZEN+=("$mp")
    else
      ECB_THAW_FAILED+=("$mp")
      ecb_log "thaw of $mp failed: $msg"
    fi
  done
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
