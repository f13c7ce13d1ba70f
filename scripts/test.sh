#!/usr/bin/env bash
# Every test Rally has, on a fresh machine: installs what the tests need if it is missing,
# runs the Rust workspace's tests, then runs the Python client (written from
# docs/protocol.md alone) against a real `rally serve` over TCP and WebSocket.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo test --workspace"
cargo test --workspace

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
./target/debug/rally serve --tcp "127.0.0.1:$TCP_PORT" --http "127.0.0.1:$HTTP_PORT" \
  --admin "127.0.0.1:$ADMIN_PORT" --log-level warn --shutdown-grace-ms 3000 &
SERVER=$!
trap 'kill -9 $SERVER 2>/dev/null || true' EXIT
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
