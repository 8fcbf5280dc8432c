# shellcheck shell=bash
# Topology: mounts, block devices, volumes, and which filesystems are frozen, skipped or protected.

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
  M_MAJMIN=()
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
    M_MAJMIN+=("$majmin")
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

# Sets ECB_IDX to the index into M_* of the mount a path lives on: the longest mount point that
# prefixes ECB_REAL, the real path of the path's nearest existing ancestor (so a missing SSM
# directory still protects its parent), the last such mount winning as the kernel's over-mount
# does. Returns 1 when there is none.
ecb_mount_of() {
  local path=$1 i best_len=-1 mp
  ECB_IDX=-1
  while [[ ! -e $path && $path != / ]]; do
    path=${path%/*}
    path=${path:-/}
  done
  ECB_REAL=$(readlink -f -- "$path" 2>/dev/null) || ECB_REAL=$path
  for i in "${!M_MP[@]}"; do
    mp=${M_MP[$i]}
    if [[ $ECB_REAL == "$mp" || $mp == / || $ECB_REAL == "$mp"/* ]] && ((${#mp} >= best_len)); then
      ECB_IDX=$i
      best_len=${#mp}
    fi
  done
  ((ECB_IDX >= 0))
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

# Paths whose filesystems must never be frozen, into ECB_PROTECTED_PATHS (an array: a working
# directory may hold any character, a newline included).
ecb_protected_paths() {
  local p comm exe
  ECB_PROTECTED_PATHS=(/ /boot /var /tmp /usr /run /etc /var/lib/amazon/ssm /usr/bin/amazon-ssm-agent
    /snap/amazon-ssm-agent /var/log/amazon /opt/aws "$ECB_STATE_DIR" "$ECB_CONFIG_DIR" "$PWD")
  [[ -n ${ECB_SELF_DIR:-} ]] && ECB_PROTECTED_PATHS+=("$ECB_SELF_DIR")
  exe=$(readlink -f /proc/$$/exe 2>/dev/null) && ECB_PROTECTED_PATHS+=("$exe")
  [[ -n ${ECB_FSFREEZE:-} ]] && ECB_PROTECTED_PATHS+=("$ECB_FSFREEZE")
  # Wherever the running agent really is (snap, /opt, a custom build), its files stay writable.
  for p in /proc/[0-9]*; do
    read -r comm 2>/dev/null <"$p/comm" || continue
    case $comm in
      amazon-ssm-agen* | ssm-agent-worke* | ssm-document-wo* | ssm-session-wor*)
        exe=$(readlink -f "$p/exe" 2>/dev/null) && ECB_PROTECTED_PATHS+=("$exe")
        ;;
    esac
  done
}

# Identities (ECB_PROT_IDENT) of the filesystems holding a protected path, with that path
# (ECB_PROT_PATH) and the real path of its nearest existing ancestor (ECB_PROT_REAL), which the
# freeze stats again just before freezing.
ecb_build_protected() {
  ECB_PROT_IDENT=() ECB_PROT_PATH=() ECB_PROT_REAL=()
  local -A seen=()
  local p ident
  ecb_protected_paths
  for p in "${ECB_PROTECTED_PATHS[@]}"; do
    [[ -n $p ]] || continue
    ecb_mount_of "$p" || continue
    ECB_PROT_REAL+=("$ECB_REAL")
    ident=${M_IDENT[$ECB_IDX]}
    [[ -n ${seen[$ident]:-} ]] && continue
    seen[$ident]=1
    ECB_PROT_IDENT+=("$ident")
    ECB_PROT_PATH+=("$p")
  done
}

# Prints the path that protects an identity, or returns 1.
ecb_protected_by() {
  local i
  for i in "${!ECB_PROT_IDENT[@]}"; do
    if [[ ${ECB_PROT_IDENT[$i]} == "$1" ]]; then
      printf '%s' "${ECB_PROT_PATH[$i]}"
      return 0
    fi
  done
  return 1
}

# The device number (stat's %d) of a major:minor pair, for comparing with what a path is on.
ecb_makedev() {
  local major=${1%%:*} minor=${1#*:}
  printf '%s' "$(((major & 0xfff) << 8 | (major & ~0xfff) << 32 | (minor & 0xff) | (minor & ~0xff) << 12))"
}

# The heart of the freeze and of the preflight: which filesystems are frozen, which are not, and why.
# Sets ECB_TARGET_MPS (freeze order) with ECB_TARGET_MAJMIN, ECB_TARGET_DEV (what stat shows for
# the mount point) and ECB_TARGET_IDENT, ECB_TARGETS_JSON, ECB_SKIPPED_JSON, ECB_UNMAPPED_JSON,
# ECB_VOLUMES_JSON, and appends to ECB_WARNINGS; returns 1 with ECB_ERROR_* when Include names something refused.
ecb_discover() {
  ecb_read_mounts
  ecb_build_protected
  ECB_TARGET_MPS=() ECB_TARGET_MAJMIN=() ECB_TARGET_DEV=() ECB_TARGET_IDENT=()
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
      "$(ecb_json_str "/dev/$kname")" "$(ecb_json_str_array "${fs_list[@]}")")")
  done

  if [[ -n $ECB_EXCLUDE ]]; then
    local IFS=,
    for p in $ECB_EXCLUDE; do
      if [[ ! -e $p ]]; then
        ECB_WARNINGS+=("Exclude path $p does not exist; nothing excluded for it")
        continue
      fi
      ecb_mount_of "$p" || continue
      idx=$ECB_IDX
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
      ecb_mount_of "$p" || {
        ecb_error INCLUDE_NOT_FOUND "Include path $p is on no mounted filesystem"
        return 1
      }
      idx=$ECB_IDX
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

  # Parents before children: a nested mount point is reached through its parent, and a lookup on
  # a frozen filesystem is a read, which does not block. Thaw runs in reverse. Sorted here in
  # bash, byte-wise (C locale): a mount point may hold any character, a newline or a tab included.
  local order=() j k mp fstype dev
  for ident in "${!cand_idx[@]}"; do
    mp=${M_MP[${cand_idx[$ident]}]}
    for ((j = ${#order[@]}; j > 0; j--)); do
      k=${order[j - 1]}
      [[ ${M_MP[${cand_idx[$k]}]} > $mp ]] || break
      order[j]=$k
    done
    order[j]=$ident
  done
  for ident in "${order[@]}"; do
    i=${cand_idx[$ident]}
    mp=${M_MP[$i]}
    fstype=${M_FSTYPE[$i]}
    local vols=()
    read -r -a vols <<<"${cand_vols[$ident]}"
    vols_json=$(ecb_json_str_array "${vols[@]}")
    reason=''
    if by=$(ecb_protected_by "$ident"); then
      reason="protected: holds $by"
    elif [[ -n ${excluded[$ident]:-} ]]; then
      reason="excluded by the Exclude tag (${excluded[$ident]})"
    elif ! ecb_fstype_supported "$fstype"; then
      reason="unsupported filesystem type $fstype"
    elif [[ $mp == *[[:cntrl:]]* ]]; then
      reason="mount point contains control characters"
    else
      # What the mount point shows now, which the freeze checks again before its fsfreeze. A btrfs
      # subvolume has a device of its own; any other filesystem shows the one mountinfo lists.
      dev=$(stat -L -c %d -- "$mp" 2>/dev/null) || dev=''
      [[ -z $dev || $fstype == btrfs || $dev == "$(ecb_makedev "${M_MAJMIN[$i]}")" ]] ||
        reason="something else is mounted over its mount point"
    fi
    if [[ -n $reason ]]; then
      [[ -n ${reported[$ident]:-} ]] && continue
      reported[$ident]=1
      ECB_SKIPPED_JSON+=("$(printf '{"mountpoint":%s,"fstype":%s,"volumeIds":%s,"reason":%s}' "$(ecb_json_str "$mp")" \
        "$(ecb_json_str "$fstype")" "$vols_json" "$(ecb_json_str "$reason")")")
      continue
    fi
    ECB_TARGET_MPS+=("$mp")
    ECB_TARGET_MAJMIN+=("${M_MAJMIN[$i]}")
    ECB_TARGET_DEV+=("$dev")
    ECB_TARGET_IDENT+=("$ident")
    ECB_TARGETS_JSON+=("$(printf '{"mountpoint":%s,"fstype":%s,"source":%s,"volumeIds":%s}' "$(ecb_json_str "$mp")" \
      "$(ecb_json_str "$fstype")" "$(ecb_json_str "${M_SRC[$i]}")" "$vols_json")")
  done
  return 0
}
