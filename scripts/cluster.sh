#!/usr/bin/env bash
# A local Rally cluster on loopback: nats-server with JetStream (scripts/nats.sh), the
# throwaway PostgreSQL (scripts/postgres.sh), and three `rally serve` nodes sharing both.
#
#   scripts/cluster.sh            # build rally, start everything, print the addresses; Ctrl-C stops the nodes
#   scripts/cluster.sh stop       # stop nats-server and PostgreSQL too (the nodes stop with Ctrl-C)
#
# Nodes a, b and c listen on 127.0.0.1: raw TCP 7101/7102/7103, HTTP (WebSocket /ws) 8101/
# 8102/8103, admin 9101/9102/9103 (admin token "local-cluster-admin-token"). A player may
# connect to any node; a client that follows redirects (the Rust SDK's `Client`) is
# placed wherever the cluster has room. (`rally bots` drives the low-level connection,
# which does not follow redirects yet: point it at one node per swarm.) Without PostgreSQL (it cannot be installed or started
# here) each node falls back to its own SQLite file under target/cluster (player data is
# then per node: say so when you test logins). Logs: target/cluster/<node>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DIR="$ROOT/target/cluster"
TOKEN=local-cluster-admin-token
# Shared by every node: session tokens and seat tickets signed on one are good on all.
SECRET=local-cluster-auth-secret-0123456789abcdef

log() { echo "cluster.sh: $*" >&2; }

if [[ "${1:-start}" == stop ]]; then
  scripts/nats.sh stop || true
  scripts/postgres.sh stop || true
  exit 0
fi

mkdir -p "$DIR"
eval "$(scripts/nats.sh)"
NATS_URL=$RALLY_TEST_NATS_URL
if pg_env=$(scripts/postgres.sh); then
  eval "$pg_env"
  DB_FOR() { echo "$RALLY_TEST_POSTGRES_URL"; }
else
  log "no PostgreSQL: each node uses its own SQLite file under $DIR"
  DB_FOR() { echo "sqlite://$DIR/$1.db"; }
fi
log "building rally"
cargo build --quiet -p rally
RALLY="$ROOT/target/debug/rally"

PIDS=()
stop_nodes() {
  [[ ${#PIDS[@]} -gt 0 ]] || return 0
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
  log "nodes stopped (nats-server and PostgreSQL still run: scripts/cluster.sh stop)"
}
trap stop_nodes EXIT INT TERM

i=0
for node in a b c; do
  i=$((i + 1))
  "$RALLY" serve \
    --node-id "$node" --cluster-nats-url "$NATS_URL" \
    --tcp "127.0.0.1:710$i" --http "127.0.0.1:810$i" --admin "127.0.0.1:910$i" \
    --admin-token "$TOKEN" --auth-secret "$SECRET" \
    --database-url "$(DB_FOR "$node")" \
    >"$DIR/$node.log" 2>&1 &
  PIDS+=("$!")
done

# Bounded wait: every node counts three live nodes.
for port in 9101 9102 9103; do
  for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$port/metrics" 2>/dev/null | grep -q '^rally_cluster_nodes_alive 3'; then
      break
    fi
    sleep 0.1
  done
done
curl -fsS -H "Authorization: Bearer $TOKEN" http://127.0.0.1:9101/admin/cluster >&2 && echo >&2 || log "node a's /admin/cluster did not answer; see $DIR/a.log"
cat >&2 <<EOF
cluster.sh: three nodes up ($("$RALLY_NATS_SERVER" --version)):
  a: tcp 127.0.0.1:7101  ws ws://127.0.0.1:8101/ws  admin 127.0.0.1:9101
  b: tcp 127.0.0.1:7102  ws ws://127.0.0.1:8102/ws  admin 127.0.0.1:9102
  c: tcp 127.0.0.1:7103  ws ws://127.0.0.1:8103/ws  admin 127.0.0.1:9103
  admin token: $TOKEN   (curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:9101/admin/cluster)
Ctrl-C stops the nodes.
EOF
wait
