#!/usr/bin/env bash
# Runs Autobahn|Testsuite's fuzzingclient against rally-protocol's WebSocket codec (the
# ws_echo example, which drives the codec the way rally-server's session does) and fails
# on any FAILED case. Installs the suite under target/autobahn on first use.
#
#   scripts/autobahn.sh            all cases (the 9.* performance cases take minutes)
#   scripts/autobahn.sh --quick    everything but 9.* (what CI runs)
#
# Needs Python 2.7 (the suite has no Python 3 port): $AUTOBAHN_PYTHON, else pyenv's
# 2.7.18, else python2.7 on PATH. Exit 0: no FAILED case; 1: a case FAILED; 2: no Python 2.7
# or the suite could not be installed.
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=target/autobahn
VENV=$ROOT/venv
OUT=$ROOT/reports
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
  "$py" -m pip install --disable-pip-version-check -q --target "$ROOT/tool" 'virtualenv==20.15.1'
  PYTHONPATH=$ROOT/tool "$py" -m virtualenv -q -p "$py" "$VENV"
  "$VENV/bin/pip" install --disable-pip-version-check -q -c scripts/autobahn-constraints.txt autobahntestsuite
}

PY=$(find_python) || {
  echo "autobahn: no Python 2.7 found (set AUTOBAHN_PYTHON, or install pyenv's 2.7.18); suite not run" >&2
  exit 2
}
if ! "$VENV/bin/wstest" --help >/dev/null 2>&1; then
  install_suite "$PY" || { echo "autobahn: could not install Autobahn|Testsuite" >&2; exit 2; }
fi

EXCLUDE='[]'
if [ "${1:-}" = "--quick" ]; then
  # 9.* send up to 16 MiB messages and 65,536 fragments (measured in docs/autobahn.md).
  EXCLUDE='["9.*"]'
fi

echo "== building the echo harness (rally-protocol, example ws_echo)"
cargo build -q --release -p rally-protocol --example ws_echo
ECHO=target/release/examples/ws_echo

rm -rf "$OUT"
mkdir -p "$OUT"
"$ECHO" "127.0.0.1:$PORT" >"$ROOT/ws_echo.log" 2>&1 &
ECHO_PID=$!
trap 'kill "$ECHO_PID" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done

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
