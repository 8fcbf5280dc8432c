# shellcheck shell=bash
# Thaw helpers, shared by the freeze (rollback), the watchdog and the thaw.

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
