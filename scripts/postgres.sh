#!/usr/bin/env bash
# A throwaway PostgreSQL for Rally's storage tests (crates/rally-store), on any Debian box.
#
#   eval "$(scripts/postgres.sh)"       # install if missing, start, print the env below
#   scripts/postgres.sh stop            # fast shutdown (connections are cut)
#   scripts/postgres.sh status          # exit 0 if running
#
# `start` (the default) is idempotent: it installs PostgreSQL from Debian's packages only if
# initdb/pg_ctl are nowhere to be found (PATH, then /usr/lib/postgresql/*/bin), creates a
# cluster under target/pg owned by the `postgres` user (PostgreSQL refuses to run as root),
# starts it on 127.0.0.1 only, on a fixed port, waits (bounded) until it accepts
# connections, and creates the database and a password user. Human messages go to stderr;
# stdout is only these lines:
#
#   export RALLY_TEST_POSTGRES_URL=postgres://rally_test:rally_test@127.0.0.1:54329/rally_test
#   export RALLY_TEST_PG_CTL=env\ RALLY_PG_PORT=54329\ RALLY_PG_DIR=...\ /path/to/scripts/postgres.sh
#
# RALLY_TEST_PG_CTL is a command that stops and starts this very server (the recovery test
# runs `bash -c "$RALLY_TEST_PG_CTL stop"`, then `... start`).
#
# Settings: RALLY_PG_PORT (default 54329), RALLY_PG_DIR (default <repo>/target/pg; if the
# postgres user cannot reach it, a directory under /tmp is used instead).
set -euo pipefail

# runuser, useradd and friends live in sbin, which a non-login root shell may lack.
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SELF="$ROOT/scripts/postgres.sh"
PORT=${RALLY_PG_PORT:-54329}
REQUESTED_DIR=${RALLY_PG_DIR:-$ROOT/target/pg}
DB=rally_test
ROLE=rally_test
PASSWORD=rally_test
WAIT_SECONDS=60

log() { echo "postgres.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# The directory holding initdb, pg_ctl, postgres and psql: PATH first (following symlinks,
# e.g. /usr/local/bin/pg_ctl -> /usr/lib/postgresql/15/bin/pg_ctl), then the newest Debian one.
find_bindir() {
  local p
  if p=$(command -v pg_ctl 2>/dev/null) && command -v initdb >/dev/null 2>&1; then
    p=$(dirname "$(readlink -f "$p")")
    if [[ -x "$p/initdb" && -x "$p/postgres" ]]; then
      echo "$p"
      return 0
    fi
  fi
  for p in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
    if [[ -x "$p/pg_ctl" && -x "$p/initdb" && -x "$p/postgres" ]]; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

install_postgres() {
  [[ $(id -u) -eq 0 ]] || die "PostgreSQL is not installed and installing it needs root (apt-get install postgresql)"
  command -v apt-get >/dev/null || die "PostgreSQL is not installed and this is not a Debian-like system"
  log "installing PostgreSQL from Debian's packages"
  # Only the binaries are wanted: no default cluster on port 5432.
  mkdir -p /etc/postgresql-common/createcluster.conf.d
  echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf.d/rally-no-main.conf
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
}

BIN=$(find_bindir) || { install_postgres; BIN=$(find_bindir) || die "no initdb/pg_ctl after installing"; }

# PostgreSQL runs as `postgres` when we are root, else as ourselves.
if [[ $(id -u) -eq 0 ]]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
  as_owner() { runuser -u postgres -- "$@"; }
else
  as_owner() { "$@"; }
fi

choose_dir() {
  local dir=$REQUESTED_DIR
  mkdir -p "$dir"
  if [[ $(id -u) -eq 0 ]]; then
    chown postgres: "$dir"
    if ! runuser -u postgres -- test -w "$dir"; then
      # A parent directory is closed to other users (e.g. a repo under /root).
      dir=/tmp/rally-pg-$(printf %s "$ROOT" | cksum | cut -d' ' -f1)
      mkdir -p "$dir"
      chown postgres: "$dir"
      chmod 700 "$dir"
    fi
  fi
  echo "$dir"
}

DIR=$(choose_dir)
DATA="$DIR/data"
RUN="$DIR/run"
LOGFILE="$DIR/postgres.log"

pg() { as_owner "$BIN/pg_ctl" -D "$DATA" "$@"; }
# The postmaster in postmaster.pid is a live process (a killed one can linger as a zombie
# where nothing reaps it, which pg_ctl status still counts as running).
postmaster_alive() {
  local pid
  pid=$(head -n 1 "$DATA/postmaster.pid" 2>/dev/null) || return 1
  [[ -n "$pid" && -r "/proc/$pid/status" ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status"
}
running() { [[ -f "$DATA/PG_VERSION" ]] && pg status >/dev/null 2>&1 && postmaster_alive; }
ready() { "$BIN/pg_isready" -q -h "$RUN" -p "$PORT" -U postgres -t 2; }
# Any live process of this cluster (postgres processes run in the data directory).
cluster_processes() {
  local d
  for d in /proc/[0-9]*; do
    [[ $(readlink "$d/cwd" 2>/dev/null) == "$DATA" ]] || continue
    grep -q '^State:[[:space:]]*Z' "$d/status" 2>/dev/null || return 0
  done
  return 1
}

start() {
  local version
  version=$("$BIN/pg_ctl" --version | sed -E 's/.* ([0-9]+)[.].*/\1/')
  if [[ -f "$DATA/PG_VERSION" && $(cat "$DATA/PG_VERSION") != "$version" ]]; then
    if running; then pg -m fast stop >&2; fi
    log "cluster in $DATA is from PostgreSQL $(cat "$DATA/PG_VERSION"), binaries are $version: recreating it"
    rm -rf "$DATA"
  fi
  if [[ ! -f "$DATA/PG_VERSION" ]]; then
    rm -rf "$DATA"
    as_owner mkdir -p "$DATA"
    log "creating a PostgreSQL $version cluster in $DATA"
    as_owner "$BIN/initdb" -D "$DATA" -U postgres -E UTF8 --no-locale \
      --auth-local=trust --auth-host=scram-sha-256 >"$DIR/initdb.log" 2>&1 \
      || { cat "$DIR/initdb.log" >&2; die "initdb failed"; }
  fi
  as_owner mkdir -p "$RUN"
  if running; then
    log "already running on 127.0.0.1:$PORT ($DATA)"
    local waited=0
    until ready; do
      ((waited++ < WAIT_SECONDS)) || die "running but not accepting connections after ${WAIT_SECONDS}s; see $LOGFILE"
      sleep 1
    done
  else
    if [[ -f "$DATA/postmaster.pid" ]]; then
      # A server that died (e.g. killed): its backends exit when they notice; only then
      # are its lock files safe to remove.
      local waited=0
      while cluster_processes; do
        ((waited++ < WAIT_SECONDS)) || die "processes of a dead server still run in $DATA"
        sleep 1
      done
      log "removing the lock files of a server that died"
      rm -f "$DATA/postmaster.pid" "$RUN/.s.PGSQL.$PORT.lock" "$RUN/.s.PGSQL.$PORT"
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
      die "port $PORT is taken by another server; set RALLY_PG_PORT"
    fi
    log "starting on 127.0.0.1:$PORT"
    # -w -t: wait until it accepts connections, at most WAIT_SECONDS.
    pg -l "$LOGFILE" -w -t "$WAIT_SECONDS" \
      -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$RUN -c max_connections=200" \
      start >&2 || { tail -n 20 "$LOGFILE" >&2 || true; die "PostgreSQL did not start"; }
  fi
  as_owner "$BIN/psql" -h "$RUN" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt >&2 <<SQL
SELECT 'CREATE ROLE $ROLE LOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$ROLE')\gexec
ALTER ROLE $ROLE LOGIN PASSWORD '$PASSWORD';
SELECT 'CREATE DATABASE $DB OWNER $ROLE' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$DB')\gexec
SQL
  log "ready: database $DB, user $ROLE"
  echo "export RALLY_TEST_POSTGRES_URL=postgres://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DB"
  # The command carries this instance's settings, so it stops and starts this one.
  local ctl
  ctl="env RALLY_PG_PORT=$(printf %q "$PORT") RALLY_PG_DIR=$(printf %q "$REQUESTED_DIR") $(printf %q "$SELF")"
  echo "export RALLY_TEST_PG_CTL=$(printf %q "$ctl")"
}

stop() {
  if running; then
    pg -m fast -w -t "$WAIT_SECONDS" stop >&2
  else
    log "not running"
  fi
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) running ;;
  *) die "usage: $0 [start|stop|status]" ;;
esac
