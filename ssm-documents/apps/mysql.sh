# shellcheck shell=bash
# MySQL and MariaDB: FLUSH TABLES WITH READ LOCK, held by a live session from before the freeze
# until the post-thaw part ends it (after the thaw, or from the watchdog when no thaw comes).
# Guarantee: while the lock is held no write commits and tables are flushed, so InnoDB recovers
# the copy to exactly the last transaction committed before the lock (InnoDB still runs its redo
# on start) and MyISAM tables are closed and consistent. The wait for the lock is bounded by
# MYSQL_LOCK_WAIT_TIMEOUT (the session's lock_wait_timeout): a long query or transaction in the
# way makes the hook fail within that time, and nothing is frozen. The session ends itself after
# ECB_MAX_HOLD_SECONDS (DO SLEEP) even if nobody ends it.
# Settings (apps/mysql.conf): MYSQL_DEFAULTS (a [client] option file, root's, mode 0600, holding
# user/password/socket; default apps/mysql.cnf when it exists, else the client's defaults, e.g.
# root over the socket with unix_socket authentication as on Debian), MYSQL_LOCK_WAIT_TIMEOUT
# (seconds, default 10), MYSQL_CLIENT (default: mariadb, else mysql).
ECB_APP_KEYS='MYSQL_DEFAULTS MYSQL_LOCK_WAIT_TIMEOUT MYSQL_CLIENT'
MYSQL_DEFAULTS='' MYSQL_LOCK_WAIT_TIMEOUT=10 MYSQL_CLIENT=''

ecb_my_setup() {
  [[ -n $MYSQL_DEFAULTS || ! -e $ecb_app_conf_dir/mysql.cnf ]] || MYSQL_DEFAULTS=$ecb_app_conf_dir/mysql.cnf
  if [[ -n $MYSQL_DEFAULTS ]]; then
    [[ -r $MYSQL_DEFAULTS ]] || ecb_app_fail "MYSQL_DEFAULTS $MYSQL_DEFAULTS cannot be read" 2
    ecb_app_root_only "$MYSQL_DEFAULTS" || ecb_app_fail "refusing $MYSQL_DEFAULTS: it and its directory must be owned by root and writable by no one else" 2
  fi
  [[ -n $MYSQL_CLIENT ]] || MYSQL_CLIENT=$(command -v mariadb || command -v mysql) || ecb_app_fail "no mariadb or mysql client found" 2
  [[ $MYSQL_LOCK_WAIT_TIMEOUT =~ ^[1-9][0-9]{0,3}$ ]] || ecb_app_fail "MYSQL_LOCK_WAIT_TIMEOUT '$MYSQL_LOCK_WAIT_TIMEOUT' is not a number of seconds" 2
  ecb_my=("$MYSQL_CLIENT" ${MYSQL_DEFAULTS:+"--defaults-extra-file=$MYSQL_DEFAULTS"} --batch --skip-column-names --connect-timeout=5)
}

ecb_my_sql() {
  timeout 15 "${ecb_my[@]}" -e "$1" 2>&1
}

ecb_app_pre_freeze() {
  local hold=${ECB_MAX_HOLD_SECONDS:-120} deadline line id='' pid out
  ecb_my_setup
  rm -f -- "$ecb_app_state/holder.pid" "$ecb_app_state/connection-id" "$ecb_app_state/session.out"
  # Its own session: neither the hook's time limit nor the end of the freeze command reaches it.
  # shellcheck disable=SC2016 # expanded by the inner bash
  setsid bash -c 'echo $$ >"$1/holder.pid"; shift; exec "$@"' holder "$ecb_app_state" "${ecb_my[@]}" --unbuffered -e \
    "SELECT CONCAT('ECB_CONNECTION ', CONNECTION_ID()); SET SESSION lock_wait_timeout = $MYSQL_LOCK_WAIT_TIMEOUT; FLUSH TABLES WITH READ LOCK; SELECT 'ECB_LOCKED'; DO SLEEP($hold);" \
    </dev/null >"$ecb_app_state/session.out" 2>&1 &
  deadline=$(($(date +%s) + MYSQL_LOCK_WAIT_TIMEOUT + 5))
  while :; do
    line=$(grep -m1 '^ECB_CONNECTION ' "$ecb_app_state/session.out" 2>/dev/null) && id=${line#ECB_CONNECTION }
    if grep -q '^ECB_LOCKED$' "$ecb_app_state/session.out" 2>/dev/null; then
      printf '%s\n' "$id" >"$ecb_app_state/connection-id"
      echo "mysql: read lock held by connection $id for at most ${hold}s"
      return 0
    fi
    pid=$(cat -- "$ecb_app_state/holder.pid" 2>/dev/null)
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
      out=$(grep -v '^ECB_' "$ecb_app_state/session.out" | tr '\n' ' ')
      [[ $out == *"Lock wait timeout"* ]] &&
        ecb_app_fail "FLUSH TABLES WITH READ LOCK waited longer than lock_wait_timeout (${MYSQL_LOCK_WAIT_TIMEOUT}s), a long query or transaction held it off: ${out:0:300}"
      ecb_app_fail "the lock session ended before it held the lock: ${out:0:300}"
    fi
    if (($(date +%s) > deadline)); then
      # Not bounded by lock_wait_timeout (a server that does not answer): end it ourselves.
      [[ -n $id ]] && ecb_my_sql "KILL $id" >/dev/null
      [[ -n $pid ]] && kill -- "$pid" 2>/dev/null
      ecb_app_fail "no read lock after $((MYSQL_LOCK_WAIT_TIMEOUT + 5))s; the session was ended"
    fi
    sleep 0.1
  done
}

# Ends the session (KILL from a second connection: a client killed during DO SLEEP is noticed only
# when the sleep ends). Fails when the session had died before: the lock did not cover the snapshot.
ecb_app_post_thaw() {
  local pid id alive=false
  ecb_my_setup
  pid=$(cat -- "$ecb_app_state/holder.pid" 2>/dev/null)
  id=$(cat -- "$ecb_app_state/connection-id" 2>/dev/null)
  rm -f -- "$ecb_app_state/holder.pid" "$ecb_app_state/connection-id"
  if [[ -z $id ]]; then
    [[ -n $pid ]] && kill -- "$pid" 2>/dev/null
    echo "mysql: no read lock was held"
    return 0
  fi
  if [[ $(ecb_my_sql "SELECT ID FROM information_schema.PROCESSLIST WHERE ID = $id") == "$id" ]]; then
    alive=true
    ecb_my_sql "KILL $id" >/dev/null
  fi
  [[ -n $pid ]] && kill -- "$pid" 2>/dev/null
  [[ $alive == true ]] || ecb_app_fail "the session holding the read lock (connection $id) ended before the thaw: the lock did not cover the snapshot"
  echo "mysql: read lock released (connection $id, ${ECB_TRIGGER:-orchestrator})"
}

ecb_app_check() {
  local out
  ecb_my_setup
  out=$(ecb_my_sql "SELECT IF(SUM(PRIVILEGE_TYPE = 'RELOAD') > 0, 'ok', 'no') FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = CONCAT(\"'\", SUBSTRING_INDEX(CURRENT_USER(), '@', 1), \"'@'\", SUBSTRING_INDEX(CURRENT_USER(), '@', -1), \"'\")") ||
    ecb_app_fail "not reachable: ${out:0:300}"
  [[ $out == ok ]] || ecb_app_fail "the user lacks the RELOAD privilege FLUSH TABLES WITH READ LOCK needs"
  echo "mysql: reachable, may FLUSH TABLES WITH READ LOCK (lock wait bounded at ${MYSQL_LOCK_WAIT_TIMEOUT}s)"
}
