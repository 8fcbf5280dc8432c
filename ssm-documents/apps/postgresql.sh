# shellcheck shell=bash
# PostgreSQL: CHECKPOINT before the freeze. Guarantee: a copy of a running server always starts
# with crash recovery (its control file says "in production"), which is safe on an atomic snapshot
# of data and WAL; the checkpoint makes that recovery short (redo starts at it). Data and WAL on
# separate volumes are consistent only because every volume is frozen before the snapshots start
# and the snapshots share one point in time (both volumes must be on the instance's frozen list).
# Settings (apps/postgresql.conf): PG_USER (OS user and role, default postgres), PG_HOST (socket
# directory or host, default /var/run/postgresql), PG_PORT (5432), PG_BINDIR (directory of psql;
# default: the newest /usr/lib/postgresql/*/bin, else PATH), PG_TIMEOUT (seconds, default 20).
ECB_APP_KEYS='PG_USER PG_HOST PG_PORT PG_BINDIR PG_TIMEOUT'
PG_USER=postgres PG_HOST=/var/run/postgresql PG_PORT=5432 PG_BINDIR='' PG_TIMEOUT=20

ecb_pg_sql() {
  local bindir=$PG_BINDIR
  if [[ -z $bindir ]] && ! command -v psql >/dev/null 2>&1; then
    bindir=$(find /usr/lib/postgresql/*/bin /usr/pgsql-*/bin -maxdepth 0 2>/dev/null | sort -V | tail -1)
  fi
  [[ $PG_TIMEOUT =~ ^[0-9]{1,4}$ ]] || ecb_app_fail "PG_TIMEOUT '$PG_TIMEOUT' is not a number of seconds" 2
  # statement_timeout bounds the statement, timeout(1) a connection that hangs.
  timeout "$PG_TIMEOUT" runuser -u "$PG_USER" -- env PGOPTIONS="-c statement_timeout=${PG_TIMEOUT}s" \
    "${bindir:+$bindir/}psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -d postgres -c "$1" 2>&1
}

ecb_app_pre_freeze() {
  local out start
  start=$(date +%s%3N)
  rm -f -- "$ecb_app_state/checkpointed"
  out=$(ecb_pg_sql CHECKPOINT) || ecb_app_fail "CHECKPOINT failed on $PG_HOST:$PG_PORT as $PG_USER: ${out:0:300}"
  : >"$ecb_app_state/checkpointed"
  echo "postgresql: checkpoint done in $(($(date +%s%3N) - start)) ms"
}

ecb_app_post_thaw() {
  local out
  # Also run after a failed pre-freeze part, and by thaws of freezes this hook was not part of.
  [[ -e $ecb_app_state/checkpointed && -z ${ECB_ABORTED:-} ]] || {
    rm -f -- "$ecb_app_state/checkpointed"
    echo "postgresql: nothing to undo"
    return 0
  }
  rm -f -- "$ecb_app_state/checkpointed"
  out=$(ecb_pg_sql 'SELECT 1') || ecb_app_fail "not answering after the thaw on $PG_HOST:$PG_PORT: ${out:0:300}"
  echo "postgresql: answering after the thaw"
}

ecb_app_check() {
  local out
  # pg_checkpoint exists from PostgreSQL 15; before, only a superuser may CHECKPOINT.
  out=$(ecb_pg_sql "SELECT CASE WHEN rolsuper OR pg_has_role(current_user, 'pg_checkpoint', 'MEMBER') THEN 'ok' ELSE 'no' END FROM pg_roles WHERE rolname = current_user") ||
    out=$(ecb_pg_sql "SELECT CASE WHEN rolsuper THEN 'ok' ELSE 'no' END FROM pg_roles WHERE rolname = current_user")
  case $out in
    ok) echo "postgresql: reachable on $PG_HOST:$PG_PORT as $PG_USER, may CHECKPOINT" ;;
    no) ecb_app_fail "role $PG_USER may not CHECKPOINT (needs superuser or pg_checkpoint)" ;;
    *) ecb_app_fail "not reachable on $PG_HOST:$PG_PORT as $PG_USER: ${out:0:300}" ;;
  esac
}
