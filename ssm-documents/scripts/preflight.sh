# shellcheck shell=bash
# The Preflight document: checks everything the freeze needs without freezing anything.
# Exit 0 and "ready": a freeze would run; exit 1 and "not-ready": `problems` says why.

ecb_preflight_main() {
  ecb_init
  ECB_PRE_HOOKS=()
  ECB_POST_HOOKS=()
  ECB_TARGET_MPS=()
  ECB_WARNINGS=()
  ECB_SELF_DIR=$(dirname -- "$(readlink -f -- "$0" 2>/dev/null || printf '%s' "$0")")
  ECB_VOLUME_IDS=$ECB_P_VolumeIds
  ECB_VOLUME_DEVICES=$ECB_P_VolumeDevices
  ECB_INCLUDE=$ECB_P_Include
  ECB_EXCLUDE=$ECB_P_Exclude
  local problems=() tool missing=() state_tmpfs=false active=null discovered=false
  problem() { problems+=("$(printf '{"code":%s,"message":%s}' "$(ecb_json_str "$1")" "$(ecb_json_str "$2")")"); }

  local name ref reason
  for name in VolumeIds VolumeDevices Include Exclude Apps; do
    ref=ECB_P_$name
    reason=$(ecb_param_problem "$name" "${!ref}")
    [[ -z $reason ]] || problem INVALID_PARAMETER "$reason"
  done
  ((BASH_VERSINFO[0] > 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] >= 2))) ||
    problem BASH_TOO_OLD "bash $BASH_VERSION is older than 4.2"
  ecb_find_fsfreeze ||
    problem FSFREEZE_MISSING "fsfreeze was not found in /usr/sbin, /sbin or PATH; install util-linux, or every backup of this instance is only crash-consistent"
  for tool in timeout setsid flock stat readlink sort tail tr mkfifo date sync grep find; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  ((${#missing[@]} == 0)) || problem TOOLS_MISSING "required commands not found: ${missing[*]}"
  command -v iconv >/dev/null 2>&1 || ECB_WARNINGS+=("iconv not found: non-ASCII hook output is replaced by ?")

  if ecb_prepare_state_dir; then
    state_tmpfs=true
    if [[ -d $ECB_ACTIVE ]]; then
      active=$(printf '{"executionId":%s}' "$(ecb_json_str "$(ecb_record_get "$ECB_ACTIVE/record" executionId || true)")")
      if ecb_watchdog_alive "$(ecb_record_get "$ECB_ACTIVE/record" watchdogPid)"; then
        problem ALREADY_FROZEN "a freeze is still active on this instance; the next freeze would be refused until a thaw runs or its watchdog ends it"
      else
        ECB_WARNINGS+=("a freeze whose command and watchdog are gone is on record; the next freeze recovers it")
      fi
    fi
    reason=$(ecb_state_full_reason)
    [[ -z $reason ]] || problem STATE_DIR_FULL "$reason"
  else
    problem "$ECB_ERROR_CODE" "$ECB_ERROR_MESSAGE"
  fi
  ecb_load_hooks || problem "$ECB_ERROR_CODE" "$ECB_ERROR_MESSAGE"
  if ecb_valid_volume_ids "$ECB_VOLUME_IDS" && ecb_valid_path_list "$ECB_INCLUDE" && ecb_valid_path_list "$ECB_EXCLUDE"; then
    discovered=true
    ecb_discover || problem "$ECB_ERROR_CODE" "$ECB_ERROR_MESSAGE"
  fi
  local protected=() p idx
  for p in "${!ECB_PROT_IDENT[@]}"; do
    for idx in "${!M_IDENT[@]}"; do
      if [[ ${M_IDENT[$idx]} == "${ECB_PROT_IDENT[$p]}" ]]; then
        protected+=("$(printf '{"mountpoint":%s,"holds":%s}' "$(ecb_json_str "${M_MP[$idx]}")" "$(ecb_json_str "${ECB_PROT_PATH[$p]}")")")
        break
      fi
    done
  done
  if [[ $discovered == true ]] && ((${#ECB_UNMAPPED_JSON[@]} > 0)); then
    ECB_WARNINGS+=("some volumes could not be mapped to a device: their filesystems will not be frozen")
  fi
  if [[ $discovered == true ]] && ((${#ECB_TARGET_MPS[@]} == 0)); then
    ECB_WARNINGS+=("no data filesystem to freeze on these volumes: backups of this instance are crash-consistent")
  fi

  # Each selected packaged application hook, installed by the AppHooks document, in its check
  # phase: is the server reachable and would the hook succeed (docs/hooks.md).
  local apps=() app hook out code
  if ecb_valid_apps "$ECB_P_Apps"; then
    for app in ${ECB_P_Apps//,/ }; do
      hook=$ECB_CONFIG_DIR/pre-freeze.d/50-ecb-$app
      if ! [[ -x $hook ]]; then
        out="not installed yet: the next backup installs it (the AppHooks document)" code=null
        ECB_WARNINGS+=("$app: $out")
      elif ! ecb_hook_resolve "$hook"; then
        out=$ECB_HOOK_REFUSED code=126
        problem HOOK_INSECURE "$app: $out"
      else
        out=$(ECB_PHASE=check ECB_HOOK_STATE_DIR=$ECB_STATE_DIR/hook-state/50-ecb-$app timeout 30 "$ECB_HOOK_EXE" </dev/null 2>&1)
        code=$?
        ((code == 0)) || problem APP_NOT_READY "$out"
      fi
      apps+=("$(printf '{"app":%s,"ready":%s,"exitCode":%s,"message":%s}' "$(ecb_json_str "$app")" \
        "$([[ $code == 0 ]] && echo true || echo false)" "$code" "$(ecb_json_str "${out:0:1000}")")")
    done
  fi

  local status=ready rc=0
  ((${#problems[@]} == 0)) || { status=not-ready; rc=1; }
  printf '{"schemaVersion":1,"action":"preflight","status":%s,"ready":%s,"problems":%s,"warnings":%s,"fsfreeze":%s,"bash":%s,"stateDir":{"path":%s,"tmpfs":%s},"active":%s,"targets":%s,"unmapped":%s,"skipped":%s,"volumes":%s,"protected":%s,"hooksConfigured":%s,"hooks":{"preFreeze":%s,"postThaw":%s},"apps":%s}\n' \
    "$(ecb_json_str "$status")" "$([[ $status == ready ]] && echo true || echo false)" \
    "$(ecb_json_array "${problems[@]}")" \
    "$(ecb_json_str_array "${ECB_WARNINGS[@]}")" \
    "$( [[ -n ${ECB_FSFREEZE:-} ]] && ecb_json_str "$ECB_FSFREEZE" || printf 'null')" "$(ecb_json_str "$BASH_VERSION")" \
    "$(ecb_json_str "$ECB_STATE_DIR")" "$state_tmpfs" "$active" \
    "$(ecb_json_array "${ECB_TARGETS_JSON[@]}")" \
    "$(ecb_json_array "${ECB_UNMAPPED_JSON[@]}")" \
    "$(ecb_json_array "${ECB_SKIPPED_JSON[@]}")" \
    "$(ecb_json_array "${ECB_VOLUMES_JSON[@]}")" \
    "$(ecb_json_array "${protected[@]}")" \
    "$( ((${#ECB_PRE_HOOKS[@]} > 0)) && echo true || echo false)" \
    "$(ecb_json_str_array "${ECB_PRE_HOOKS[@]##*/}")" "$(ecb_json_str_array "${ECB_POST_HOOKS[@]##*/}")" \
    "$(ecb_json_array "${apps[@]}")"
  exit "$rc"
}
