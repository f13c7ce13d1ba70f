#!/usr/bin/env bash
# Runs Autobahn|Testsuite's fuzzingclient against rally-protocol's WebSocket codec (the
# ws_echo example, which drives the codec the way rally-server's session does) and fails
# on any FAILED case. Installs the suite under target/autobahn on first use.
#
#   scripts/autobahn.sh            all 517 cases (CI runs this: about 25 s on 2 cores)
#   scripts/autobahn.sh --quick    everything but 9.* (limits and performance, 13.5 s of it)
#
# AUTOBAHN_ECHO=path runs another echo server (listening on 127.0.0.1:$AUTOBAHN_PORT/ws,
# default port 9001) instead of building ws_echo, to compare codecs; AUTOBAHN_OUT sets
# the report directory (default target/autobahn/reports).
#
# Needs Python 2.7 (the suite has no Python 3 port): $AUTOBAHN_PYTHON, else pyenv's
# 2.7.18, else python2.7 on PATH. Exit 0: no FAILED case; 1: a case FAILED (or wstest
# failed); 2: the suite could not be installed; 3: no Python 2.7 here.
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=target/autobahn
VENV=$ROOT/venv
OUT=${AUTOBAHN_OUT:-$ROOT/reports}
PORT=${AUTOBAHN_PORT:-9001}

find_python() {
  local p
  for p in "${AUTOBAHN_PYTHON:-}" "$HOME/.pyenv/versions/2.7.18/bin/python" "$(command -v python2.7 || true)"; do
    if [ -n "$p" ] && [ -x "$p" ] && "$p" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

install_suite() {
  local py=$1
  echo "== installing Autobahn|Testsuite into $VENV"
  rm -rf "$VENV" "$ROOT/tool"
  mkdir -p "$ROOT"
  # virtualenv goes into a private directory, not into the interpreter's site-packages.
  # (Chained with &&: errexit does not apply inside a function called from `||`.)
  "$py" -m pip install --disable-pip-version-check -q --target "$ROOT/tool" 'virtualenv==20.15.1' &&
    PYTHONPATH=$ROOT/tool "$py" -m virtualenv -q -p "$py" "$VENV" &&
    "$VENV/bin/pip" install --disable-pip-version-check -q \
      -c scripts/autobahn-constraints.txt autobahntestsuite
}

PY=$(find_python) || {
  echo "autobahn: no Python 2.7 found (set AUTOBAHN_PYTHON, or install pyenv's 2.7.18); suite not run" >&2
  exit 3
}
if ! "$VENV/bin/wstest" --help >/dev/null 2>&1; then
  install_suite "$PY" || { echo "autobahn: could not install Autobahn|Testsuite" >&2; exit 2; }
fi

EXCLUDE='[]'
if [ "${1:-}" = "--quick" ]; then
  # 9.* send up to 16 MiB messages and 65,536 fragments (timed in docs/autobahn.md).
  EXCLUDE='["9.*"]'
fi

ECHO=${AUTOBAHN_ECHO:-}
if [ -z "$ECHO" ]; then
  echo "== building the echo harness (rally-protocol, example ws_echo)"
  cargo build -q --release -p rally-protocol --example ws_echo
  ECHO=target/release/examples/ws_echo
fi

rm -rf "$OUT"
mkdir -p "$OUT"
"$ECHO" "127.0.0.1:$PORT" >"$ROOT/ws_echo.log" 2>&1 &
ECHO_PID=$!
trap 'kill "$ECHO_PID" 2>/dev/null || true' EXIT
# Ready when ws_echo says it is listening (so a stranger on the port is never tested), or,
# for another echo server, when the port accepts.
ready=0
for _ in $(seq 100); do
  if ! kill -0 "$ECHO_PID" 2>/dev/null; then
    break
  elif grep -q "listening on" "$ROOT/ws_echo.log" ||
    { [ -n "${AUTOBAHN_ECHO:-}" ] && (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }; then
    ready=1
    break
  fi
  sleep 0.1
done
if [ "$ready" -ne 1 ]; then
  echo "autobahn: the echo server did not start; $ROOT/ws_echo.log:" >&2
  cat "$ROOT/ws_echo.log" >&2
  exit 1
fi

cat >"$ROOT/fuzzingclient.json" <<JSON
{
  "outdir": "$OUT",
  "servers": [{"agent": "rally-protocol", "url": "ws://127.0.0.1:$PORT/ws"}],
  "cases": ["*"],
  "exclude-cases": $EXCLUDE,
  "exclude-agent-cases": {}
}
JSON

echo "== wstest -m fuzzingclient (cases excluded: $EXCLUDE); log in $ROOT/wstest.log"
start=$(date +%s)
# wstest's own run is bounded: the suite times each case out itself, and the whole run
# gets an hour at most.
timeout 3600 "$VENV/bin/wstest" -m fuzzingclient -s "$ROOT/fuzzingclient.json" >"$ROOT/wstest.log" 2>&1 || {
  echo "autobahn: wstest failed; tail of $ROOT/wstest.log:" >&2
  tail -20 "$ROOT/wstest.log" >&2
  exit 1
}
echo "== done in $(( $(date +%s) - start )) s; HTML report: $OUT/index.html"

# Counts per verdict, the cases that are not OK, and the exit status (1 on any FAILED).
"$VENV/bin/python" - "$OUT/index.json" <<'PY'
import json, sys
index = json.load(open(sys.argv[1]))
failed = 0
for agent, cases in sorted(index.items()):
    counts = {}
    for case in cases.values():
        counts[case["behavior"]] = counts.get(case["behavior"], 0) + 1
    print("%s: %d cases: %s" % (agent, len(cases),
          ", ".join("%d %s" % (n, b) for b, n in sorted(counts.items()))))
    def key(c):
        return [int(p) for p in c.split(".")]
    wrong = [c for c in cases if cases[c]["behaviorClose"] not in ("OK", "INFORMATIONAL")]
    for cid in sorted(cases, key=key):
        r = cases[cid]
        if r["behavior"] in ("FAILED", "NON-STRICT") or cid in wrong:
            print("  %-8s %-10s close %-12s remote close code %s" % (
                cid, r["behavior"], r["behaviorClose"], r.get("remoteCloseCode")))
    print("  close verdicts not OK (wrong close code, unclean): %d" % len(wrong))
    failed += counts.get("FAILED", 0)
sys.exit(1 if failed else 0)
PY
