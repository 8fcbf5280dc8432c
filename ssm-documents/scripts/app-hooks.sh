# shellcheck shell=bash
# The AppHooks document: installs the packaged application hooks an instance's Apps tag names as
# ordinary hooks of the hook framework (hooks.sh), and removes the packaged hooks it no longer names.
# The hooks' text comes from ecb_app_text (rendered by lib/documents.ts from ssm-documents/apps/).
# Each file is written beside its final name under a name the loader never runs (a leading dot),
# made root's and 0700, then renamed into place: a freeze never sees half a hook.

ecb_app_hooks_line() {
  local apps=()
  IFS=, read -r -a apps <<<"$ECB_APPS"
  printf '{"schemaVersion":1,"action":"app-hooks","status":%s,"apps":%s,"version":%s,"installed":%s,"unchanged":%s,"removed":%s,"warnings":%s,"fsfreeze":%s,"error":%s}' \
    "$(ecb_json_str "$4")" "$(ecb_json_str_array "${apps[@]}")" "$(ecb_json_str "$ECB_APPS_VERSION")" \
    "$(ecb_json_str_array "${ECB_INSTALLED[@]}")" "$(ecb_json_str_array "${ECB_UNCHANGED[@]}")" \
    "$(ecb_json_str_array "${ECB_REMOVED[@]}")" "$(ecb_json_str_array "${ECB_WARNINGS[@]}")" \
    "$([[ -n ${ECB_FSFREEZE:-} ]] && ecb_json_str "$ECB_FSFREEZE" || printf null)" "$([[ $4 == error ]] && ecb_error_json || printf null)"
}

ecb_app_hooks_fail() {
  ecb_error "$1" "$2"
  ecb_emit ecb_app_hooks_line error
  exit 1
}

# Writes one packaged hook (text on stdin) to $1 unless it is there already, byte for byte.
ecb_app_hook_write() {
  local file=$1 tmp=${1%/*}/.${1##*/}.tmp
  rm -f -- "$tmp"
  if ! { cat >"$tmp" && chown 0:0 -- "$tmp" && chmod 0700 -- "$tmp"; }; then
    rm -f -- "$tmp"
    return 1
  fi
  if [[ -f $file && ! -L $file ]] && cmp -s -- "$tmp" "$file" && [[ $(stat -c '%u %a' -- "$file") == '0 700' ]]; then
    rm -f -- "$tmp"
    ECB_UNCHANGED+=("${file#"$ECB_CONFIG_DIR"/}")
    return 0
  fi
  mv -f -- "$tmp" "$file" || return 1
  ECB_INSTALLED+=("${file#"$ECB_CONFIG_DIR"/}")
}

ecb_app_hooks_main() {
  ecb_init
  ECB_WARNINGS=() ECB_INSTALLED=() ECB_UNCHANGED=() ECB_REMOVED=()
  ECB_APPS=$ECB_P_Apps
  local reason app phase file dir=$ECB_CONFIG_DIR
  reason=$(ecb_param_problem Apps "$ECB_APPS")
  if [[ -n $reason ]]; then
    ECB_APPS=''
    ecb_app_hooks_fail INVALID_PARAMETER "$reason"
  fi
  ecb_valid_safe_dir "$dir" || ecb_app_hooks_fail HOOK_INSECURE "hook directory $dir is not an absolute path of [A-Za-z0-9._/-]"
  # Missing ones are created as the install instructions do (existing ones keep their modes); any
  # not root's alone is refused, as the freeze refuses it.
  for file in "$dir" "$dir/pre-freeze.d" "$dir/post-thaw.d" "$dir/apps"; do
    [[ -e $file || -L $file ]] || install -d -o 0 -g 0 -m 0755 -- "$file" 2>/dev/null ||
      ecb_app_hooks_fail HOOK_INSECURE "cannot create $file"
    reason=$(ecb_insecure_chain "$file")
    [[ -z $reason ]] || ecb_app_hooks_fail HOOK_INSECURE "refusing to install hooks: $reason; the hook directories and every directory above them must be owned by root and writable by no one else"
  done
  # Hooks without fsfreeze would make nothing application-consistent: said here already.
  ecb_find_fsfreeze || ECB_WARNINGS+=("fsfreeze was not found: install util-linux, or the freeze fails and these hooks never run")
  for app in $ECB_APP_NAMES; do
    for phase in pre-freeze post-thaw; do
      file=$dir/$phase.d/50-ecb-$app
      if [[ ,$ECB_APPS, == *,$app,* ]]; then
        ecb_app_hook_write "$file" < <(ecb_app_text "$app") ||
          ecb_app_hooks_fail INSTALL_FAILED "cannot write $file"
      elif [[ -e $file || -L $file ]]; then
        # The post-thaw part of a freeze still active must stay until its thaw.
        if [[ $phase == post-thaw && -d $ECB_STATE_DIR/active ]]; then
          ECB_WARNINGS+=("kept ${file#"$dir"/}: a freeze is active; it is removed by a later run")
          continue
        fi
        rm -f -- "$file" || ecb_app_hooks_fail INSTALL_FAILED "cannot remove $file"
        ECB_REMOVED+=("${file#"$dir"/}")
      fi
    done
  done
  ecb_emit ecb_app_hooks_line installed
  exit 0
}
