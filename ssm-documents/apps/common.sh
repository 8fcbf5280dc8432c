# shellcheck shell=bash
# Shared prologue of every packaged application hook (ssm-documents/apps/<app>.sh). lib/documents.ts
# renders each installed hook as: shebang, ECB_APP=<app>, ECB_APP_VERSION=<hash>, this file, <app>.sh.
# One file serves three phases through ECB_PHASE: pre-freeze and post-thaw (the hook framework,
# ssm-documents/scripts/hooks.sh) and check (the Preflight document: is the server reachable and
# would the hook succeed). Settings: defaults in <app>.sh, overridden by an optional
# <config dir>/apps/<app>.conf of KEY=value lines (root's, writable by no one else; only the keys
# <app>.sh lists). Secrets go in files that setting names, never in tags or parameters.
set -uo pipefail
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# The command's working directory is root's alone: a client run as another user could not enter it.
cd / || exit 2
ecb_app_conf_dir=${ECB_APPS_CONF_DIR:-$(dirname -- "$(dirname -- "$(readlink -f -- "$0")")")/apps}
ecb_app_state=${ECB_HOOK_STATE_DIR:-/run/ec2-consistent-backup/hook-state/ecb-$ECB_APP}

ecb_app_fail() {
  printf '%s: %s\n' "$ECB_APP" "$1"
  exit "${2:-1}"
}

# A file only root can change: itself root's and not group/world-writable, and its directory too.
ecb_app_root_only() {
  local f uid mode
  for f in "$1" "$(dirname -- "$1")"; do
    read -r uid mode < <(stat -L -c '%u %a' -- "$f" 2>/dev/null) || return 1
    [[ $uid == 0 ]] && (((8#$mode & 8#022) == 0)) || return 1
  done
}

# Reads <app>.conf: KEY=value lines, '#' comments; a key outside $ECB_APP_KEYS is refused.
ecb_app_settings() {
  local conf=$ecb_app_conf_dir/$ECB_APP.conf key value
  [[ -e $conf ]] || return 0
  ecb_app_root_only "$conf" || ecb_app_fail "refusing $conf: it and its directory must be owned by root and writable by no one else" 2
  while IFS= read -r line || [[ -n $line ]]; do
    [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
    [[ $line =~ ^([A-Z_]+)=(.*)$ ]] || ecb_app_fail "$conf: cannot read line '$line' (KEY=value)" 2
    key=${BASH_REMATCH[1]} value=${BASH_REMATCH[2]}
    [[ " $ECB_APP_KEYS " == *" $key "* ]] || ecb_app_fail "$conf: unknown setting $key (allowed: $ECB_APP_KEYS)" 2
    printf -v "$key" '%s' "$value"
  done <"$conf"
}

ecb_app_main() {
  [[ -d $ecb_app_state ]] || mkdir -m 0700 -- "$ecb_app_state" 2>/dev/null
  ecb_app_settings
  case ${ECB_PHASE:-} in
    pre-freeze) ecb_app_pre_freeze ;;
    post-thaw) ecb_app_post_thaw ;;
    check) ecb_app_check && echo "($ECB_APP hook $ECB_APP_VERSION)" ;;
    *) ecb_app_fail "unknown phase '${ECB_PHASE:-}' (pre-freeze, post-thaw or check)" 2 ;;
  esac
}
