#!/usr/bin/env bash
# The local stack: SafeTravel's own PostgreSQL + PostGIS cluster and Redis server, kept under
# .local/ in this checkout and listening on loopback ports of their own, so that they neither
# need nor disturb a server already on the machine.
#
#   deploy/local/stack.sh install   install PostgreSQL 15+, PostGIS 3 and Redis if missing
#   deploy/local/stack.sh up        install, then start both (idempotent; prints nothing new if running)
#   deploy/local/stack.sh down      stop both
#   deploy/local/stack.sh status    say what is running
#   deploy/local/stack.sh purge     stop both and delete their data (.local/, and the cluster if kept elsewhere)
#   deploy/local/stack.sh browser   install Debian's Chromium if missing (the dashboard's browser tests)
#   deploy/local/stack.sh env       print the environment (DATABASE_URL, REDIS_URL, ...) as `export` lines
#   deploy/local/stack.sh redis-stop | redis-start | pg-stop | pg-start   (fault drills)
#   deploy/local/stack.sh replica-start PORT   a streaming hot standby of the local cluster on PORT
#                                   (pg_basebackup; the read-replica test), replica-stop stops and deletes it
#
# DATABASE_URL / REDIS_URL given in the environment are honoured: the matching local server is then
# neither installed nor started. Ports default to values derived from the checkout's path (so two
# clones on one machine do not collide) and can be set with SAFETRAVEL_PG_PORT / SAFETRAVEL_REDIS_PORT.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LOCAL="$ROOT/.local"
path_hash=$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)
PG_PORT=${SAFETRAVEL_PG_PORT:-$((54000 + path_hash % 900))}
REDIS_PORT=${SAFETRAVEL_REDIS_PORT:-$((56000 + path_hash % 900))}
DB_NAME=safetravel
DB_USER=safetravel
PG_MIN_MAJOR=15

log() { printf 'stack: %s\n' "$*" >&2; }

want_pg() { [ -z "${DATABASE_URL:-}" ]; }
want_redis() { [ -z "${REDIS_URL:-}" ]; }

# The newest installed PostgreSQL server's bin directory (Debian keeps them side by side).
pg_bindir() {
  local dir best="" best_major=0 major
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/postgres" ] || continue
    major=$(basename "$(dirname "$dir")")
    if [ "$major" -ge "$best_major" ] 2>/dev/null; then best="$dir"; best_major="$major"; fi
  done
  [ "$best_major" -ge "$PG_MIN_MAJOR" ] && printf '%s' "$best"
}

postgis_installed() {
  local bindir=$1 sharedir
  sharedir=$("$bindir/pg_config" --sharedir 2>/dev/null || true)
  [ -n "$sharedir" ] || sharedir="/usr/share/postgresql/$(basename "$(dirname "$bindir")")"
  compgen -G "$sharedir/extension/postgis--3*.sql" >/dev/null
}

# pgRouting: the safer walking route (backend/routes) routes over the street network with it.
pgrouting_installed() {
  local bindir=$1 sharedir
  sharedir=$("$bindir/pg_config" --sharedir 2>/dev/null || true)
  [ -n "$sharedir" ] || sharedir="/usr/share/postgresql/$(basename "$(dirname "$bindir")")"
  compgen -G "$sharedir/extension/pgrouting--3*.sql" >/dev/null
}

missing_packages() {
  local bindir packages=()
  if want_pg; then
    bindir=$(pg_bindir || true)
    if [ -z "$bindir" ]; then
      packages+=(postgresql)  # PostGIS follows once the server's version is known
    elif ! postgis_installed "$bindir"; then
      packages+=("postgresql-$(basename "$(dirname "$bindir")")-postgis-3")
    fi
    if [ -n "$bindir" ] && ! pgrouting_installed "$bindir"; then
      packages+=("postgresql-$(basename "$(dirname "$bindir")")-pgrouting")
    fi
  fi
  if want_redis && ! command -v redis-server >/dev/null; then packages+=(redis-server); fi
  if [ "${#packages[@]}" -gt 0 ]; then printf '%s\n' "${packages[@]}"; fi
}

cmd_install() {
  local packages
  mapfile -t packages < <(missing_packages)
  [ "${#packages[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    log "missing system packages: ${packages[*]}"
    log "install them with:  sudo apt-get update && sudo apt-get install -y ${packages[*]/#postgresql/postgresql postgresql-15-postgis-3}"
    exit 1
  fi
  # policy-rc.d stops the packages from starting the distribution's own servers: we run our own.
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; created_policy=1; fi
  log "apt-get update"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # Two passes: the PostGIS and pgRouting packages' names carry the server's major version.
  local pass
  for pass in 1 2; do
    [ "${#packages[@]}" -gt 0 ] || break
    log "installing ${packages[*]} (apt-get, pass $pass)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
    mapfile -t packages < <(missing_packages)
  done
  if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi
  if [ "${#packages[@]}" -gt 0 ]; then log "still missing after apt-get: ${packages[*]}"; exit 1; fi
}

# The dashboard tests drive Debian's Chromium through Playwright (Playwright's own download needs the
# internet); only `make test` needs it.
cmd_browser() {
  [ -x /usr/bin/chromium ] && return 0
  if [ "$(id -u)" != 0 ]; then
    log "missing: Debian's chromium (for the dashboard's browser tests)"
    log "install it with:  sudo apt-get update && sudo apt-get install -y chromium"
    exit 1
  fi
  log "installing chromium (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
}

# PostgreSQL will not run as root: as root the cluster belongs to the `postgres` system user.
as_pg_user() {
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# Where the cluster lives. Normally .local/pg; when the checkout is not reachable by the `postgres`
# user (a clone inside a private temporary directory, say) the data goes to a directory of its own
# under /var/lib/safetravel, named after this checkout, and .local/pg records where.
pg_home() {
  if [ -f "$LOCAL/pg.location" ]; then cat "$LOCAL/pg.location"; return; fi
  local home="$LOCAL/pg"
  mkdir -p "$LOCAL"
  if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$LOCAL"; then
    home="/var/lib/safetravel/$path_hash"
  fi
  printf '%s\n' "$home" >"$LOCAL/pg.location"
  printf '%s' "$home"
}

pg_running() { as_pg_user "$(pg_bindir)/pg_ctl" -D "$(pg_home)/data" status >/dev/null 2>&1; }

psql_admin() { "$(pg_bindir)/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"; }

cmd_pg_start() {
  local bindir home
  bindir=$(pg_bindir)
  home=$(pg_home)
  if [ ! -f "$home/data/PG_VERSION" ]; then
    log "creating PostgreSQL cluster in $home/data (port $PG_PORT)"
    mkdir -p "$home"
    [ "$(id -u)" = 0 ] && chown postgres: "$home"
    as_pg_user "$bindir/initdb" -D "$home/data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  fi
  if ! pg_running; then
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    as_pg_user "$bindir/pg_ctl" -D "$home/data" -l "$home/postgres.log" -w -t 60 \
      -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories='$home' -c max_connections=200 -c shared_preload_libraries=pg_stat_statements" \
      start >/dev/null
  fi
  # pg_stat_statements is loaded (cheap) so that `make bench-ingest BENCH_ARGS=--pg-profile` can say which
  # statements a report's PostgreSQL CPU goes to (docs/benchmarks.md); the view is created on demand.
  # Role and databases: idempotent. The role is a superuser of this development-only cluster so
  # that tests can create scratch databases with PostGIS (an untrusted extension).
  psql_admin -d postgres <<SQL
SELECT 'CREATE ROLE $DB_USER LOGIN SUPERUSER' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER')\gexec
SELECT 'CREATE DATABASE $DB_NAME OWNER $DB_USER' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DB_NAME')\gexec
SELECT 'CREATE DATABASE ${DB_NAME}_test OWNER $DB_USER' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '${DB_NAME}_test')\gexec
SQL
  local db
  for db in "$DB_NAME" "${DB_NAME}_test"; do
    psql_admin -d "$db" -c 'SET client_min_messages = warning' -c 'CREATE EXTENSION IF NOT EXISTS postgis' \
      -c 'CREATE EXTENSION IF NOT EXISTS pgrouting'
  done
}

cmd_pg_stop() {
  if [ -f "$LOCAL/pg.location" ] && pg_running; then
    log "stopping PostgreSQL"
    as_pg_user "$(pg_bindir)/pg_ctl" -D "$(pg_home)/data" -m fast -w stop >/dev/null
  fi
}

# A hot standby of the local cluster, streaming from it over loopback (initdb's pg_hba.conf lets
# replication connections in from 127.0.0.1), with the same binaries; its data in <cluster>/replica.
cmd_replica_start() {
  local port=${1:?usage: stack.sh replica-start PORT} bindir home
  bindir=$(pg_bindir)
  home=$(pg_home)
  cmd_replica_stop
  log "pg_basebackup into $home/replica"
  as_pg_user "$bindir/pg_basebackup" -h 127.0.0.1 -p "$PG_PORT" -U postgres -D "$home/replica" \
    --write-recovery-conf --wal-method=stream --checkpoint=fast
  log "starting the standby on 127.0.0.1:$port"
  # max_connections as on the primary: a standby needs at least as many.
  as_pg_user "$bindir/pg_ctl" -D "$home/replica" -l "$home/replica.log" -w -t 60 \
    -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories='$home' -c max_connections=200 -c hot_standby=on" \
    start >/dev/null
}

cmd_replica_stop() {
  local home
  home=$(pg_home)
  if [ -f "$home/replica/postmaster.pid" ]; then
    log "stopping the standby"
    as_pg_user "$(pg_bindir)/pg_ctl" -D "$home/replica" -m immediate -w stop >/dev/null || true
  fi
  rm -rf "$home/replica"
}

redis_cli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

cmd_redis_start() {
  mkdir -p "$LOCAL/redis"
  if redis_cli ping >/dev/null 2>&1; then return 0; fi
  log "starting Redis on 127.0.0.1:$REDIS_PORT"
  # appendonly: queued jobs survive a Redis restart (the database stays the source of truth).
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes --dir "$LOCAL/redis" \
    --pidfile "$LOCAL/redis/redis.pid" --logfile "$LOCAL/redis/redis.log" --appendonly yes \
    --protected-mode no
  local _
  for _ in $(seq 50); do redis_cli ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  log "Redis did not start: see $LOCAL/redis/redis.log"
  exit 1
}

cmd_redis_stop() {
  if redis_cli ping >/dev/null 2>&1; then
    log "stopping Redis"
    redis_cli shutdown nosave >/dev/null 2>&1 || true
    local _
    for _ in $(seq 50); do redis_cli ping >/dev/null 2>&1 || return 0; sleep 0.1; done
  fi
}

cmd_env() {
  if want_pg; then
    echo "export DATABASE_URL='postgresql+psycopg://$DB_USER@127.0.0.1:$PG_PORT/$DB_NAME'"
    echo "export TEST_DATABASE_URL='${TEST_DATABASE_URL:-postgresql+psycopg://$DB_USER@127.0.0.1:$PG_PORT/${DB_NAME}_test}'"
  fi
  if want_redis; then
    echo "export REDIS_URL='redis://127.0.0.1:$REDIS_PORT/0'"
    echo "export TEST_REDIS_URL='${TEST_REDIS_URL:-redis://127.0.0.1:$REDIS_PORT/1}'"
  fi
}

cmd_up() {
  cmd_install
  if want_pg; then cmd_pg_start; fi
  if want_redis; then cmd_redis_start; fi
}

cmd_down() {
  cmd_pg_stop
  cmd_redis_stop
}

cmd_purge() {
  cmd_down
  if [ -f "$LOCAL/pg.location" ]; then
    local home
    home=$(cat "$LOCAL/pg.location")
    case "$home" in
      "$LOCAL"/*|/var/lib/safetravel/*) rm -rf "$home" ;;
    esac
  fi
  rm -rf "$LOCAL"
  log "local PostgreSQL and Redis data deleted"
}

cmd_status() {
  if want_pg; then
    if [ -n "$(pg_bindir || true)" ] && [ -f "$LOCAL/pg.location" ] && pg_running; then
      echo "postgresql: running on 127.0.0.1:$PG_PORT ($(pg_home)/data)"
    else echo "postgresql: stopped"; fi
  else echo "postgresql: external (DATABASE_URL)"; fi
  if want_redis; then
    if command -v redis-cli >/dev/null && redis_cli ping >/dev/null 2>&1; then
      echo "redis: running on 127.0.0.1:$REDIS_PORT"
    else echo "redis: stopped"; fi
  else echo "redis: external (REDIS_URL)"; fi
}

case "${1:-}" in
  install) cmd_install ;;
  browser) cmd_browser ;;
  up) cmd_up ;;
  down) cmd_down ;;
  purge) cmd_purge ;;
  status) cmd_status ;;
  env) cmd_env ;;
  pg-start) cmd_pg_start ;;
  pg-stop) cmd_pg_stop ;;
  redis-start) cmd_redis_start ;;
  redis-stop) cmd_redis_stop ;;
  replica-start) cmd_replica_start "${2:-}" ;;
  replica-stop) cmd_replica_stop ;;
  *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2 ;;
esac
