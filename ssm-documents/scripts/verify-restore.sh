# shellcheck shell=bash
# The Verify Restore document: runs on an instance AWS Backup restored for a restore test (or, in the
# lab and the tests, against unmounted copies), and says whether the restored data is usable:
#   1. each data filesystem passes a read-only fsck (e2fsck -fn, xfs_repair -n) and mounts read-only;
#   2. each application verify hook (HooksDir, exit 0 = verified) passes against those mounts.
# stdout is one JSON object; logs go to stderr. Needs common.sh (ecb_init, ecb_log, JSON, mounts).

ECB_VERIFY_FSTYPES=' ext2 ext3 ext4 xfs '

ecb_verify_reset() {
  ECB_V_DEVICES=()
  ECB_V_MPS=()
  ECB_V_FS_JSON=()
  ECB_V_HOOK_JSON=()
  ECB_V_STOPPED=()
  ECB_V_MOUNTED=()
  ECB_V_CREATED=()
  ECB_V_FAILED=()
  ECB_V_INCONCLUSIVE=()
  ECB_V_UNVERIFIED=()
}

ecb_verify_valid_pairs() {
  [[ $1 =~ ^/dev/[A-Za-z0-9_./-]{1,64}=/[A-Za-z0-9._/-]{0,255}(,/dev/[A-Za-z0-9_./-]{1,64}=/[A-Za-z0-9._/-]{0,255}){0,39}$ ]] || return 1
  local IFS=, pair
  for pair in $1; do
    [[ /${pair#*=}/ == */../* || /${pair#*=}/ == */./* || ${pair%%=*}/ == */../* ]] && return 1
  done
  return 0
}

# Refuses anything not meant for this instance: the instance metadata must name ExpectedInstanceId.
ecb_verify_this_instance() {
  local base=${ECB_IMDS_URL:-http://169.254.169.254} token id
  token=$(curl -sf -m 3 -X PUT "$base/latest/api/token" -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' 2>/dev/null) || token=''
  id=$(curl -sf -m 3 ${token:+-H "X-aws-ec2-metadata-token: $token"} "$base/latest/meta-data/instance-id" 2>/dev/null) || id=''
  if [[ $id != "$1" ]]; then
    ecb_error WRONG_INSTANCE "refusing: the instance metadata says this is ${id:-no EC2 instance}, not the restored instance $1; auto mode stops processes and unmounts filesystems, so it runs only on the restore-test instance it was sent to"
    return 1
  fi
}

# Auto mode: the mounted ext2/3/4 and xfs filesystems on block devices that hold no part of the
# operating system or the SSM agent (the same protected paths as the freeze).
ecb_verify_discover() {
  local i mp under=${ECB_VERIFY_AUTO_UNDER:-}
  ecb_read_mounts
  ecb_build_protected
  for i in "${!M_MP[@]}"; do
    mp=${M_MP[$i]}
    [[ $ECB_VERIFY_FSTYPES == *" ${M_FSTYPE[$i]} "* && ${M_SRC[$i]} == /dev/* ]] || continue
    if [[ -n $under && $mp != "$under"/* ]]; then continue; fi
    if ecb_protected_by "${M_IDENT[$i]}" >/dev/null; then continue; fi
    ECB_V_DEVICES+=("$(readlink -f -- "${M_SRC[$i]}")")
    ECB_V_MPS+=("$mp")
  done
}

# PIDs with a file, a working directory or a root under $1 (but never this script or its parents).
# One find for the whole process table: a readlink per link would fork thousands of times.
ecb_verify_holders() {
  local mp=$1 path target pid self=" $$ $PPID "
  find /proc/[0-9]*/cwd /proc/[0-9]*/root /proc/[0-9]*/exe /proc/[0-9]*/fd -maxdepth 1 -type l \
    -printf '%p\t%l\n' 2>/dev/null |
    while IFS=$'\t' read -r path target; do
      [[ $target == "$mp" || $target == "$mp"/* ]] || continue
      pid=${path#/proc/}
      pid=${pid%%/*}
      [[ $self == *" $pid "* ]] || printf '%s\n' "$pid"
    done | sort -un
}

# Stops what uses a restored data filesystem (TERM, then KILL) and unmounts it. A service manager
# may restart what it stopped, so this tries three times.
ecb_verify_release() {
  local mp=$1 pid pids waited comm
  for _ in 1 2 3; do
    mapfile -t pids < <(ecb_verify_holders "$mp")
    for pid in "${pids[@]+"${pids[@]}"}"; do
      read -r comm <"/proc/$pid/comm" 2>/dev/null || comm='?'
      ecb_log "stopping $comm ($pid): it uses $mp"
      ECB_V_STOPPED+=("$(ecb_json_str "$comm ($pid) on $mp")")
      kill -TERM "$pid" 2>/dev/null || true
    done
    for ((waited = 0; waited < 30; waited++)); do
      [[ -z $(ecb_verify_holders "$mp") ]] && break
      sleep 1
    done
    for pid in $(ecb_verify_holders "$mp"); do kill -KILL "$pid" 2>/dev/null || true; done
    if umount -- "$mp" 2>/dev/null; then return 0; fi
    sleep 2
  done
  ecb_error UNMOUNT_FAILED "could not unmount $mp: $(umount -- "$mp" 2>&1)"
  return 1
}

# Indexes into ECB_V_MPS ordered by mount point length (sort flags $1): parents before children, or after.
ecb_verify_order() {
  local j
  for j in "${!ECB_V_MPS[@]}"; do printf '%d %d\n' "${#ECB_V_MPS[$j]}" "$j"; done | sort "$1" | cut -d' ' -f2
}

ecb_verify_fstype() {
  blkid -p -o value -s TYPE -- "$1" 2>/dev/null || blkid -o value -s TYPE -- "$1" 2>/dev/null
}

# Read-only fsck. Sets ECB_V_FSCK (clean|errors|needs-replay|error) and ECB_V_FSCK_DETAIL.
ecb_verify_fsck() {
  local dev=$1 fstype=$2 out rc
  ECB_V_FSCK_DETAIL=''
  if [[ $fstype == ext* ]]; then
    # A journal still to replay would make -n report what replay fixes: say so instead.
    if dumpe2fs -h -- "$dev" 2>/dev/null | grep -q '^Filesystem features:.*needs_recovery'; then
      ECB_V_FSCK=needs-replay
      ECB_V_FSCK_DETAIL='the journal still needs recovery (a restored instance replays it when it first mounts the filesystem)'
      return
    fi
    out=$(e2fsck -fn -- "$dev" 2>&1)
    rc=$?
    # e2fsck: 0 no errors, 4 errors left uncorrected (-n), 8 operational error.
    case $rc in
      0) ECB_V_FSCK=clean ;;
      4) ECB_V_FSCK=errors ;;
      *) ECB_V_FSCK=error ;;
    esac
  else
    out=$(xfs_repair -n -f -- "$dev" 2>&1)
    rc=$?
    # xfs_repair -n: 0 no corruption, 1 corruption found, others: could not check.
    case $rc in
      0) ECB_V_FSCK=clean ;;
      1) ECB_V_FSCK=errors ;;
      *) ECB_V_FSCK=error ;;
    esac
  fi
  if [[ $ECB_V_FSCK != clean ]]; then
    ECB_V_FSCK_DETAIL=$(printf '%s\n' "$out" | grep -v -E '^(Phase|Pass [0-9]|e2fsck [0-9]|\s+-|No modify flag set)' | head -n 8)
    ECB_V_FSCK_DETAIL="exit $rc: $ECB_V_FSCK_DETAIL"
  fi
}

# Root-owned, not group/other-writable executables in $1, in name order (like the freeze's hooks:
# the hook, its directory and every directory above it, with no symlink, by ecb_insecure_chain).
ecb_verify_load_hooks() {
  local dir=$1 reason file name
  ECB_V_HOOKS=()
  [[ -e $dir ]] || return 0
  reason=$(ecb_insecure_chain "$dir")
  if [[ -n $reason || ! -d $dir ]]; then
    ecb_error HOOK_INSECURE "refusing verify hooks: ${reason:-$dir is not a directory}"
    return 1
  fi
  for file in "$dir"/*; do
    [[ -e $file ]] || continue
    name=${file##*/}
    case $name in *.disabled | *~ | *.dpkg-* | *.rpmnew | *.rpmsave | *.swp) continue ;; esac
    reason=$(ecb_insecure_chain "$file")
    if [[ -n $reason || ! -f $file || ! -x $file || ! $name =~ ^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$ ]]; then
      ecb_error HOOK_INSECURE "refusing verify hook $name: ${reason:-not a root-owned executable regular file with a name of [A-Za-z0-9._-]}"
      return 1
    fi
    ECB_V_HOOKS+=("$file")
  done
}

ecb_verify_run_hook() {
  local file=$1 name=${1##*/} scratch out rc start text
  scratch=$(mktemp -d "$ECB_V_RUN/scratch-$name.XXXXXX")
  out=$ECB_V_RUN/hook-$name.out
  start=$(ecb_now_ms)
  ecb_log "running verify hook $name (limit ${ECB_V_HOOK_LIMIT}s)"
  (
    ECB_VERIFY_ROOT=$ECB_V_ROOT ECB_VERIFY_SCRATCH=$scratch ECB_CONFIG_DIR=$ECB_CONFIG_DIR \
      ECB_VERIFY_MOUNTS=$(printf '%s\n' "${ECB_V_MOUNTED[@]+"${ECB_V_MOUNTED[@]}"}") \
      ECB_RESTORE_JOB_ID=$ECB_V_JOB exec timeout -k 10 "$ECB_V_HOOK_LIMIT" "$file" </dev/null >"$out" 2>&1
  )
  rc=$?
  text=$(tail -c 2048 -- "$out" 2>/dev/null | tr -d '\000')
  sed "s/^/[verify $name] /" -- "$out" >&2 2>/dev/null || true
  ECB_V_HOOK_JSON+=("$(printf '{"name":%s,"exitCode":%d,"verified":%s,"ms":%d,"output":%s}' \
    "$(ecb_json_str "$name")" "$rc" "$([[ $rc == 0 ]] && echo true || echo false)" "$(($(ecb_now_ms) - start))" "$(ecb_json_str "$text")")")
  # A hook that leaves a mount under its scratch behind must not keep the cleanup from unmounting.
  umount -R -- "$scratch" 2>/dev/null || true
  rm -rf --one-file-system -- "$scratch" 2>/dev/null || true
  if ((rc == 0)); then return 0; fi
  ECB_V_FAILED+=("verify hook $name exited $rc$([[ $rc == 124 || $rc == 137 ]] && echo " (timed out after ${ECB_V_HOOK_LIMIT}s)")")
  return 1
}

# Packaged application hooks the AppHooks document installed for the freeze (50-ecb-<app> in the
# pre-freeze.d beside the verify hooks' directory) with no verify hook named after the application:
# their data was checked as a filesystem only, and the verdict says so instead of implying more.
ecb_verify_unverified_apps() {
  local etc=${1%/*} file app
  ECB_V_UNVERIFIED=()
  for file in "${etc:-}"/pre-freeze.d/50-ecb-*; do
    [[ -e $file ]] || continue
    app=${file##*/50-ecb-}
    [[ $app =~ ^[a-z0-9-]{1,40}$ ]] || continue
    if ! compgen -G "$1/*$app*" >/dev/null; then ECB_V_UNVERIFIED+=("$app"); fi
  done
}

ecb_verify_cleanup() {
  local i
  for ((i = ${#ECB_V_MOUNTED[@]} - 1; i >= 0; i--)); do
    umount -- "${ECB_V_MOUNTED[$i]}" 2>/dev/null || umount -l -- "${ECB_V_MOUNTED[$i]}" 2>/dev/null || true
  done
  for ((i = ${#ECB_V_CREATED[@]} - 1; i >= 0; i--)); do rmdir -- "${ECB_V_CREATED[$i]}" 2>/dev/null || true; done
  [[ -n ${ECB_V_RUN:-} ]] && rm -rf --one-file-system -- "$ECB_V_RUN" 2>/dev/null
  return 0
}

ecb_verify_report() {
  local status=$1 reason=$2
  local app unverified=()
  for app in "${ECB_V_UNVERIFIED[@]+"${ECB_V_UNVERIFIED[@]}"}"; do unverified+=("$(ecb_json_str "$app")"); done
  printf '{"status":%s,"restoreJobId":%s,"instanceId":%s,"mode":%s,"reason":%s,"filesystems":%s,"hooks":%s,"stopped":%s,"unverifiedApps":%s}\n' \
    "$(ecb_json_str "$status")" "$(ecb_json_str "$ECB_V_JOB")" "$(ecb_json_str "$ECB_V_INSTANCE")" \
    "$(ecb_json_str "$ECB_V_MODE")" "$(ecb_json_str "$reason")" \
    "$(ecb_json_array "${ECB_V_FS_JSON[@]+"${ECB_V_FS_JSON[@]}"}")" \
    "$(ecb_json_array "${ECB_V_HOOK_JSON[@]+"${ECB_V_HOOK_JSON[@]}"}")" \
    "$(ecb_json_array "${ECB_V_STOPPED[@]+"${ECB_V_STOPPED[@]}"}")" \
    "$(ecb_json_array "${unverified[@]+"${unverified[@]}"}")"
}

# The SSM allowedPattern guards the console and the API; this guards a direct call.
ecb_verify_params_ok() {
  local root=$1 hooks_dir=$2
  [[ $ECB_V_JOB =~ ^[A-Za-z0-9-]{1,64}$ && $ECB_V_INSTANCE =~ ^i-[0-9a-f]{8,17}$ ]] || return 1
  ecb_valid_int_range "$ECB_V_HOOK_LIMIT" 1 3000 || return 1
  ecb_valid_safe_dir "$hooks_dir" || return 1
  if [[ $root != / ]]; then ecb_valid_safe_dir "$root" || return 1; fi
  if [[ $ECB_V_MODE != auto ]]; then ecb_verify_valid_pairs "$ECB_V_MODE" || return 1; fi
  return 0
}

# Exits 0 whenever it could report: the verdict is the JSON's status. A non-zero exit (or none,
# when SSM kills it at the step timeout) means the check itself broke.
ecb_verify_main() {
  ecb_init
  ecb_verify_reset
  ECB_V_JOB=${ECB_P_RestoreJobId:-}
  ECB_V_INSTANCE=${ECB_P_ExpectedInstanceId:-}
  ECB_V_MODE=${ECB_P_Filesystems:-auto}
  local root=${ECB_P_MountRoot:-/} hooks_dir=${ECB_P_HooksDir:-/etc/ec2-consistent-backup/verify.d}
  ECB_V_HOOK_LIMIT=${ECB_P_HookTimeoutSeconds:-900}
  if ! ecb_verify_params_ok "$root" "$hooks_dir"; then
    ecb_verify_report inconclusive 'invalid parameters: see the allowedPattern of each in the document'
    return 0
  fi
  ECB_V_ROOT=${root%/}
  ECB_V_MODE_LABEL=$ECB_V_MODE
  [[ $ECB_V_MODE != auto ]] && ECB_V_MODE=explicit
  ECB_V_RUN=$(mktemp -d "${TMPDIR:-/tmp}/ecb-verify.XXXXXX") || {
    ecb_verify_report inconclusive 'could not create a working directory'
    return 0
  }
  # Traversable, not listable: a hook may hand a part of its scratch to a service user (postgres).
  chmod 0711 "$ECB_V_RUN"
  trap ecb_verify_cleanup EXIT

  local i dev mp fstype target pair IFS_SAVE
  if [[ $ECB_V_MODE == auto ]]; then
    if ! ecb_verify_this_instance "$ECB_V_INSTANCE"; then
      ecb_verify_report inconclusive "$ECB_ERROR_MESSAGE"
      return 0
    fi
    ecb_verify_discover
    # Deepest first, so a filesystem mounted inside another is released before its parent.
    for i in $(ecb_verify_order -rn); do
      if ! ecb_verify_release "${ECB_V_MPS[$i]}"; then
        ecb_verify_report inconclusive "$ECB_ERROR_MESSAGE"
        return 0
      fi
    done
  else
    IFS_SAVE=$IFS
    IFS=,
    for pair in $ECB_V_MODE_LABEL; do
      ECB_V_DEVICES+=("${pair%%=*}")
      ECB_V_MPS+=("${pair#*=}")
    done
    IFS=$IFS_SAVE
    for i in "${!ECB_V_DEVICES[@]}"; do
      dev=${ECB_V_DEVICES[$i]}
      if [[ ! -b $dev ]]; then
        ecb_verify_report inconclusive "$dev is not a block device"
        return 0
      fi
      if findmnt -rn -S "$dev" >/dev/null 2>&1; then
        ecb_verify_report inconclusive "$dev is mounted; explicit mode checks only unmounted devices"
        return 0
      fi
    done
  fi

  # Parents first, so a filesystem mounted inside another lands on the read-only parent's directory.
  for i in $(ecb_verify_order -n); do
    dev=${ECB_V_DEVICES[$i]}
    mp=${ECB_V_MPS[$i]}
    fstype=$(ecb_verify_fstype "$dev")
    target=$ECB_V_ROOT$mp
    [[ $mp == / ]] && target=${ECB_V_ROOT:-/}
    if [[ -z $fstype ]]; then
      # A data volume that restored without a recognizable filesystem is a failed restore.
      ECB_V_FAILED+=("$mp: no filesystem found on $dev")
      ECB_V_FS_JSON+=("$(printf '{"device":%s,"mountpoint":%s,"fstype":"","fsck":"no-filesystem","mounted":false,"detail":""}' \
        "$(ecb_json_str "$dev")" "$(ecb_json_str "$mp")")")
      continue
    fi
    if [[ $ECB_VERIFY_FSTYPES != *" $fstype "* ]]; then
      ECB_V_INCONCLUSIVE+=("$mp: no read-only check for filesystem type $fstype")
      ECB_V_FS_JSON+=("$(printf '{"device":%s,"mountpoint":%s,"fstype":%s,"fsck":"unchecked","mounted":false,"detail":%s}' \
        "$(ecb_json_str "$dev")" "$(ecb_json_str "$mp")" "$(ecb_json_str "$fstype")" "$(ecb_json_str "no read-only check for this type")")")
      continue
    fi
    ecb_log "checking $fstype on $dev ($mp)"
    ecb_verify_fsck "$dev" "$fstype"
    case $ECB_V_FSCK in
      errors) ECB_V_FAILED+=("$mp ($fstype on $dev): fsck found errors") ;;
      error | needs-replay) ECB_V_INCONCLUSIVE+=("$mp ($fstype on $dev): ${ECB_V_FSCK_DETAIL%%$'\n'*}") ;;
    esac
    local mounted=false mount_error='' opts=ro,noload
    [[ $fstype == xfs ]] && opts=ro,norecovery,nouuid
    if [[ $ECB_V_FSCK == clean ]]; then
      if [[ ! -d $target ]]; then
        mkdir -p -- "$target" && ECB_V_CREATED+=("$target")
      fi
      if mount_error=$(mount -t "$fstype" -o "$opts" -- "$dev" "$target" 2>&1); then
        mounted=true
        ECB_V_MOUNTED+=("$target")
        # Reading the directory tree proves more than the superblock: a metadata walk, no data reads.
        if ! find "$target" -xdev -maxdepth 4 >/dev/null 2>"$ECB_V_RUN/find.err"; then
          ECB_V_FAILED+=("$mp: reading the tree failed: $(head -c 300 "$ECB_V_RUN/find.err")")
        fi
      else
        ECB_V_FAILED+=("$mp ($fstype on $dev): mount read-only failed: $mount_error")
      fi
    fi
    ECB_V_FS_JSON+=("$(printf '{"device":%s,"mountpoint":%s,"fstype":%s,"fsck":%s,"mounted":%s,"detail":%s}' \
      "$(ecb_json_str "$dev")" "$(ecb_json_str "$mp")" "$(ecb_json_str "$fstype")" "$(ecb_json_str "$ECB_V_FSCK")" \
      "$mounted" "$(ecb_json_str "${ECB_V_FSCK_DETAIL}${mount_error:+ mount: $mount_error}")")")
  done

  if ! ecb_verify_load_hooks "$hooks_dir"; then
    ECB_V_INCONCLUSIVE+=("$ECB_ERROR_MESSAGE")
  elif ((${#ECB_V_FAILED[@]} == 0 && ${#ECB_V_INCONCLUSIVE[@]} == 0)); then
    # Hooks run only on filesystems that passed: a database on a broken filesystem proves nothing.
    for i in "${ECB_V_HOOKS[@]+"${ECB_V_HOOKS[@]}"}"; do ecb_verify_run_hook "$i" || true; done
  fi

  local n_fs=${#ECB_V_DEVICES[@]} n_hooks=${#ECB_V_HOOK_JSON[@]}
  if ((${#ECB_V_FAILED[@]} > 0)); then
    ecb_verify_report failed "$(printf '%s; ' "${ECB_V_FAILED[@]}")"
    return 0
  fi
  if ((${#ECB_V_INCONCLUSIVE[@]} > 0)); then
    ecb_verify_report inconclusive "$(printf '%s; ' "${ECB_V_INCONCLUSIVE[@]}")"
    return 0
  fi
  ecb_verify_unverified_apps "$hooks_dir"
  local not_checked=''
  if ((${#ECB_V_UNVERIFIED[@]} > 0)); then
    not_checked="; no verify hook for the packaged application(s) ${ECB_V_UNVERIFIED[*]}: their data was checked as files only"
  fi
  ecb_verify_report verified "$n_fs data filesystem(s) clean and mounted read-only, $n_hooks verify hook(s) passed$not_checked"
  return 0
}
