# shellcheck shell=bash
# Redis: stops writes from before the freeze until the thaw (CLIENT PAUSE ... WRITE, Redis 6.2 and
# later; it ends itself after ECB_MAX_HOLD_SECONDS), then makes the persistence files hold every
# write acknowledged before the pause. With the append-only file on, those writes are already in
# it (Redis writes the AOF before it replies; the freeze flushes the page cache): the copy loads
# them all. With RDB only, a BGSAVE completed under the pause writes them into the dump (renamed
# into place atomically). Reads go on while paused; writers wait, and no write reaches the frozen
# filesystem (without the pause an AOF write would stall Redis's main thread until the thaw).
# Redis that persists nothing (no AOF, no save points) has nothing on disk to back up: the hook
# fails and says so. Settings (apps/redis.conf): REDIS_HOST (127.0.0.1), REDIS_PORT (6379),
# REDIS_SOCKET (a unix socket, used instead when set), REDIS_AUTH_FILE (a root-only file holding the
# password, passed through the environment, never on a command line).
ECB_APP_KEYS='REDIS_HOST REDIS_PORT REDIS_SOCKET REDIS_AUTH_FILE'
REDIS_HOST=127.0.0.1 REDIS_PORT=6379 REDIS_SOCKET='' REDIS_AUTH_FILE=''

ecb_redis() {
  local auth=''
  if [[ -n $REDIS_AUTH_FILE ]]; then
    ecb_app_root_only "$REDIS_AUTH_FILE" || ecb_app_fail "refusing $REDIS_AUTH_FILE: it and its directory must be owned by root and writable by no one else" 2
    auth=$(<"$REDIS_AUTH_FILE")
  fi
  if [[ -n $REDIS_SOCKET ]]; then
    env ${auth:+REDISCLI_AUTH="$auth"} timeout 10 redis-cli --no-auth-warning -s "$REDIS_SOCKET" "$@" 2>&1
  else
    env ${auth:+REDISCLI_AUTH="$auth"} timeout 10 redis-cli --no-auth-warning -h "$REDIS_HOST" -p "$REDIS_PORT" "$@" 2>&1
  fi
}

# One field of INFO persistence.
ecb_redis_info() {
  local line
  line=$(grep -m1 "^$1:" <<<"$ecb_redis_persistence") || return 1
  line=${line#*:}
  printf '%s' "${line%$'\r'}"
}

ecb_redis_mode() {
  local aof save
  aof=$(ecb_redis CONFIG GET appendonly) || ecb_app_fail "not reachable at ${REDIS_SOCKET:-$REDIS_HOST:$REDIS_PORT}: ${aof:0:300}"
  [[ $aof == *$'\n'* ]] || ecb_app_fail "CONFIG GET appendonly failed (CONFIG renamed or denied?): ${aof:0:300}"
  save=$(ecb_redis CONFIG GET save)
  if [[ ${aof##*$'\n'} == yes ]]; then ecb_redis_mode=aof
  elif [[ -n ${save#*$'\n'} && ${save#*$'\n'} != save ]]; then ecb_redis_mode=rdb
  else ecb_app_fail "persists nothing (appendonly no and no save points): there is no Redis data on disk to back up; remove redis from the ConsistentBackup:Apps tag"
  fi
}

ecb_app_pre_freeze() {
  local hold=${ECB_MAX_HOLD_SECONDS:-120} out start started i
  ecb_redis_mode
  start=$(date +%s%3N)
  out=$(ecb_redis CLIENT PAUSE $((hold * 1000)) WRITE)
  [[ $out == OK ]] || ecb_app_fail "CLIENT PAUSE ... WRITE failed (Redis 6.2 or later needed): ${out:0:300}"
  printf '%s %s\n' "$start" "$hold" >"$ecb_app_state/paused"
  if [[ $ecb_redis_mode == rdb ]]; then
    # A save already running may have started before the pause: let it end, then save again.
    while ecb_redis_persistence=$(ecb_redis INFO persistence) && [[ $(ecb_redis_info rdb_bgsave_in_progress) == 1 ]]; do
      sleep 0.05
    done
    out=$(ecb_redis BGSAVE SCHEDULE)
    [[ $out == Background* ]] || { ecb_redis CLIENT UNPAUSE >/dev/null; rm -f -- "$ecb_app_state/paused"; ecb_app_fail "BGSAVE refused: ${out:0:300}"; }
    # "started": Redis forked the save before it replied, so it is in progress now and done when
    # rdb_bgsave_in_progress is 0. "scheduled" (an AOF rewrite runs): done once it has been seen
    # running and then not. (LASTSAVE has a resolution of one second: a save that ends in the
    # same second as the one before would never be seen to change it.)
    started=0
    [[ $out == 'Background saving started' ]] && started=1
    while :; do
      ecb_redis_persistence=$(ecb_redis INFO persistence)
      i=$(ecb_redis_info rdb_bgsave_in_progress) || i=''
      [[ $i == 1 ]] && started=1
      if [[ $started == 1 && $i == 0 ]]; then break; fi
      sleep 0.05
    done
    if [[ $(ecb_redis_info rdb_last_bgsave_status) != ok ]]; then
      ecb_redis CLIENT UNPAUSE >/dev/null
      rm -f -- "$ecb_app_state/paused"
      ecb_app_fail "BGSAVE failed (rdb_last_bgsave_status $(ecb_redis_info rdb_last_bgsave_status))"
    fi
    echo "redis: writes paused, dump saved in $(($(date +%s%3N) - start)) ms"
  else
    ecb_redis_persistence=$(ecb_redis INFO persistence)
    [[ $(ecb_redis_info aof_last_write_status) == ok ]] || {
      ecb_redis CLIENT UNPAUSE >/dev/null
      rm -f -- "$ecb_app_state/paused"
      ecb_app_fail "the append-only file's last write failed (aof_last_write_status $(ecb_redis_info aof_last_write_status))"
    }
    echo "redis: writes paused (append-only file holds every acknowledged write) in $(($(date +%s%3N) - start)) ms"
  fi
}

# Lifts the pause; fails when it had run out before the thaw (writes could reach the snapshot's
# files mid-way: the copy is then only as good as Redis's own crash recovery).
ecb_app_post_thaw() {
  local start hold now out
  read -r start hold 2>/dev/null <"$ecb_app_state/paused" || { echo "redis: no pause to lift"; return 0; }
  rm -f -- "$ecb_app_state/paused"
  now=$(date +%s%3N)
  out=$(ecb_redis CLIENT UNPAUSE)
  [[ $out == OK ]] || ecb_app_fail "CLIENT UNPAUSE failed: ${out:0:300} (the pause ends by itself $hold s after it began)"
  ((now - start < hold * 1000)) || ecb_app_fail "the write pause ran out (${hold}s) before the thaw: writes may have reached the snapshot"
  echo "redis: writes resumed after $((now - start)) ms (${ECB_TRIGGER:-orchestrator})"
}

ecb_app_check() {
  local out
  ecb_redis_mode
  ecb_redis_persistence=$(ecb_redis INFO server)
  out=$(ecb_redis_info redis_version) || ecb_app_fail "INFO server gave no redis_version"
  [[ $(printf '%s\n' 6.2.0 "$out" | sort -V | head -1) == 6.2.0 ]] || ecb_app_fail "Redis $out has no CLIENT PAUSE ... WRITE (6.2 or later needed)"
  echo "redis: reachable, version $out, persistence $ecb_redis_mode"
}
