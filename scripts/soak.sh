#!/usr/bin/env bash
# Soak: does a long run leak? Builds the release binary, starts `rally serve` with its
# default config (a throwaway SQLite database, listeners on random free loopback ports),
# runs a swarm of arena bots for SOAK_MINUTES, and every interval records the server's
# RSS, open file descriptors (/proc/PID/fd), live tasks (async_tasks_active and tokio's
# rally_tokio_alive_tasks from /metrics) and the bots' p99 latency of that interval
# (`rally bots --report-every`). At the end it fits a least-squares line to each series
# after a warm-up and prints the slopes, a markdown fragment for docs/BENCHMARKS.md and
# the same as JSON. Not run in CI: it takes half an hour and wants a quiet machine.
#
#   scripts/soak.sh                                   # 30 minutes, 2,000 bots
#   SOAK_MINUTES=3 SOAK_BOTS=200 SOAK_WARMUP=1 scripts/soak.sh   # a quick check
#
# Environment (all optional):
#   SOAK_MINUTES   run length in intervals (default 30)
#   SOAK_INTERVAL  interval length in seconds (default 60: "minutes" below are intervals)
#   SOAK_BOTS      bots (default 2000)
#   SOAK_TRANSPORT tcp or ws (default tcp)
#   SOAK_WARMUP    intervals left out of the slopes (default 5: minutes 5..end are fitted)
#   SOAK_OUT       output directory (default target/soak/<UTC time>)
#   SERVER_ARGS    extra `rally serve` flags, e.g. "--input-rate 40 --max-connections-per-ip 64"
#   BOTS_ARGS      extra `rally bots` flags, e.g. "--ramp 200"
#   RALLY          a rally binary to use instead of building target/release/rally
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=${SOAK_MINUTES:-30}
interval=${SOAK_INTERVAL:-60}
bots=${SOAK_BOTS:-2000}
transport=${SOAK_TRANSPORT:-tcp}
warmup=${SOAK_WARMUP:-5}
out=${SOAK_OUT:-target/soak/$(date -u +%Y%m%dT%H%M%SZ)}
read -r -a server_args <<<"${SERVER_ARGS:-}"
read -r -a bots_args <<<"${BOTS_ARGS:-}"
# The default concurrency_limit (1,000) would refuse most of 2,000 bots: above 900 bots
# it is raised to fit them, unless SERVER_ARGS sets it.
if (( bots > 900 )) && [[ " ${SERVER_ARGS:-} " != *" --concurrency-limit"* ]]; then
  server_args+=(--concurrency-limit "$((bots + bots / 10 + 100))")
fi

for n in "$minutes" "$interval" "$bots" "$warmup"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "soak: not a number: $n" >&2; exit 2; }
done
(( minutes >= 2 && interval >= 5 && bots >= 1 )) || {
  echo "soak: SOAK_MINUTES >= 2, SOAK_INTERVAL >= 5 and SOAK_BOTS >= 1, please" >&2; exit 2; }

if [[ -z "${RALLY:-}" ]]; then
  echo "== cargo build --release -p rally" >&2
  cargo build --release -p rally >&2
  RALLY=target/release/rally
fi
mkdir -p "$out"
data=$(mktemp -d)
# Thousands of sockets on each side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# A loopback port nobody listens on now.
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
}
tcp=$(free_port); http=$(free_port); admin=$(free_port)

server_pid=""; bots_pid=""
cleanup() {
  [[ -n "$bots_pid" ]] && kill "$bots_pid" 2>/dev/null || true
  [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT

# GET /metrics on the admin port, without curl.
metrics() {
  exec 3<>"/dev/tcp/127.0.0.1/$admin" || return 1
  printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  cat <&3
  exec 3<&-
}
# The sum of a metric over its label sets.
metric_sum() {
  awk -v name="$1" '
    $1 == name || index($1, name "{") == 1 { s += $NF; found = 1 }
    END { if (found) printf "%.0f", s; else printf "NA" }'
}

echo "== rally serve (tcp $tcp, http $http, admin $admin, SQLite in $data)" >&2
"$RALLY" serve --tcp "127.0.0.1:$tcp" --http "127.0.0.1:$http" --admin "127.0.0.1:$admin" \
  --database-url "sqlite://$data/rally.db" --log-level warn "${server_args[@]}" \
  >"$out/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  metrics >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { echo "soak: rally serve exited:" >&2; cat "$out/server.log" >&2; exit 1; }
  sleep 0.2
done
metrics >/dev/null 2>&1 || { echo "soak: no /metrics on 127.0.0.1:$admin" >&2; exit 1; }

# One line per interval: interval, RSS (KiB), open fds, async_tasks_active, tokio alive tasks.
sample() {
  local m rss fds
  m=$(metrics 2>/dev/null || true)
  rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$server_pid/status")
  fds=$(find "/proc/$server_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$rss" "$fds" \
    "$(metric_sum async_tasks_active <<<"$m")" "$(metric_sum rally_tokio_alive_tasks <<<"$m")"
}
printf 'interval\trss_kib\tfds\ttasks\talive\n' >"$out/server.tsv"
sample 0 >>"$out/server.tsv"

addr="127.0.0.1:$tcp"; [[ "$transport" == ws ]] && addr="127.0.0.1:$http"
# The bots outlast the last interval by a little, so the last sample (taken a moment
# after each interval ends, once the bots have written its line) still sees them all.
duration=$((minutes * interval + 10))
echo "== rally bots: $bots over $transport for $minutes x ${interval} s; output in $out" >&2
: >"$out/intervals.jsonl"
start=$SECONDS
"$RALLY" bots --addr "$addr" --transport "$transport" --bots "$bots" --duration "$duration" \
  --report-every "$interval" --report-file "$out/intervals.jsonl" --json "$out/bots.json" \
  "${bots_args[@]}" >"$out/bots.txt" 2>"$out/bots.err" &
bots_pid=$!
for i in $(seq "$minutes"); do
  left=$((start + i * interval + 2 - SECONDS))
  (( left > 0 )) && sleep "$left"
  kill -0 "$server_pid" 2>/dev/null || { echo "soak: rally serve died at interval $i" >&2; tail "$out/server.log" >&2; exit 1; }
  sample "$i" >>"$out/server.tsv"
  p99=$(tail -n 1 "$out/intervals.jsonl" | sed -n 's/.*"p99":\([0-9.eE+-]*\).*/\1/p')
  printf '[%s/%s] %s\n' "$i" "$minutes" "$(tail -n 1 "$out/server.tsv" | awk -v p="${p99:-?}" '{ printf "rss %.1f MiB, fds %s, tasks %s, alive %s, bots p99 %s ms", $2 / 1024, $3, $4, $5, p }')" >&2
done
bots_status=0
wait "$bots_pid" || bots_status=$?
bots_pid=""
# Once every bot has left, the server should be back where it started.
sleep 5
sample after >"$out/after.tsv"
kill -TERM "$server_pid"
server_status=0
wait "$server_pid" || server_status=$?
server_pid=""

# The bots' p99 of interval i is line i of intervals.jsonl.
sed -n 's/.*"p99":\([0-9.eE+-]*\).*/\1/p' "$out/intervals.jsonl" | awk '{ print NR "\t" $1 }' >"$out/p99.tsv"
connected=$(sed -n 's/^connected *//p' "$out/bots.txt")
errors=$(sed -n 's/^errors *//p' "$out/bots.txt")
kinds=$(awk '/^  [^ ]/ { printf "%s%s %s", sep, $1, $2; sep = ", " }' "$out/bots.txt")

# Least squares over intervals warmup..end (all but the first when the run is too short).
awk -v warmup="$warmup" -v minutes="$minutes" -v interval="$interval" -v bots="$bots" \
    -v transport="$transport" -v connected="${connected:-0}" -v errors="${errors:-NA}" \
    -v kinds="$kinds" -v server_status="$server_status" -v bots_status="$bots_status" \
    -v server_args="${server_args[*]}" -v md="$out/soak.md" -v json="$out/soak.json" \
    -v after="$(cat "$out/after.tsv")" '
  function num(x) { return (x ~ /^[0-9.]+$/ ? x : "null") }
  FNR == 1 && FILENAME ~ /server.tsv$/ { next }
  FILENAME ~ /server.tsv$/ {
    n = $1; last = (n > last ? n : last)
    v["rss", n] = $2 / 1024; v["fds", n] = $3; v["tasks", n] = $4; v["alive", n] = $5
    next
  }
  { v["p99", $1] = $2; last = ($1 > last ? $1 : last) }
  END {
    from = warmup
    if (last - from < 2) from = 1
    names["rss"] = "server RSS (MiB)"; names["fds"] = "open file descriptors"
    names["tasks"] = "async_tasks_active"; names["alive"] = "tokio alive tasks"
    names["p99"] = "bots p99 latency (ms)"
    split("rss fds tasks alive p99", order, " ")
    printf "%-24s %10s %10s %10s %14s %16s\n", "series", "at " from, "at end", "mean", "slope/interval", "per hour (% mean)"
    md_rows = ""; js = ""
    for (k = 1; k <= 5; k++) {
      s = order[k]; sx = sy = sxy = sxx = cnt = 0; first = lastv = "NA"; pts = ""
      for (x = 0; x <= last; x++) {
        if (!((s, x) in v) || v[s, x] == "NA" || v[s, x] == "") continue
        y = v[s, x] + 0
        pts = pts (pts == "" ? "" : ",") "[" x "," y "]"
        if (x < from) continue
        if (first == "NA") first = y
        lastv = y; cnt++; sx += x; sy += y; sxy += x * y; sxx += x * x
      }
      if (cnt >= 2 && cnt * sxx - sx * sx != 0) {
        slope = (cnt * sxy - sx * sy) / (cnt * sxx - sx * sx); mean = sy / cnt
        hour = (mean != 0 ? slope * (3600 / interval) / mean * 100 : 0)
        printf "%-24s %10.2f %10.2f %10.2f %14.4f %15.2f%%\n", names[s], first, lastv, mean, slope, hour
        md_rows = md_rows sprintf("| %s | %.2f | %.2f | %.2f | %.4f | %.2f%% |\n", names[s], first, lastv, mean, slope, hour)
        js = js (js == "" ? "" : ",") sprintf("\"%s\":{\"name\":\"%s\",\"first\":%s,\"last\":%s,\"mean\":%s,\"slope_per_interval\":%s,\"per_hour_pct_of_mean\":%s,\"points\":[%s]}", s, names[s], first, lastv, mean, slope, hour, pts)
      } else {
        printf "%-24s %10s\n", names[s], "not enough points"
        js = js (js == "" ? "" : ",") sprintf("\"%s\":{\"name\":\"%s\",\"points\":[%s]}", s, names[s], pts)
      }
    }
    split(after, a, "\t")
    idle = sprintf("RSS %.1f MiB, %s fds, %s async tasks, %s tokio tasks (before the bots: RSS %.1f MiB, %s fds, %s async tasks, %s tokio tasks)", a[2] / 1024, a[3], a[4], a[5], v["rss", 0], v["fds", 0], v["tasks", 0], v["alive", 0])
    printf "bots: %s joined of %s, %s errors%s; bots exit %s, rally serve exit %s after SIGTERM\n", connected, bots, errors, (kinds == "" ? "" : " (" kinds ")"), bots_status, server_status
    printf "5 s after the bots left: %s\n", idle
    unit = (interval == 60 ? "minute" : interval " s interval")
    extra = (server_args == "" ? "" : " except `" server_args "`")
    printf "## Soak\n\n" > md
    printf "`scripts/soak.sh`: %s bots over %s for %s intervals of %s s against `rally serve` with its default config%s (a fresh SQLite database). ", bots, transport, minutes, interval, extra >> md
    printf "Every interval the server'"'"'s RSS, open file descriptors (`/proc/PID/fd`) and live tasks (`async_tasks_active`, `rally_tokio_alive_tasks` from `/metrics`) were sampled, and the bots reported the p99 input-to-state latency of that interval (`rally bots --report-every`). " >> md
    printf "Slopes are least squares over intervals %s..%s (those before are warm-up); \"per hour\" is the slope over an hour as a share of the mean: a leak shows as a steady positive slope.\n\n", from, last >> md
    printf "| series | at %s %s | at end | mean | slope per %s | per hour, %% of mean |\n|---|---|---|---|---|---|\n%s\n", unit, from, unit, md_rows >> md
    printf "Bots: %s of %s joined, %s errors%s. 5 s after the bots left: %s. `rally serve` exited %s after SIGTERM.\n", connected, bots, errors, (kinds == "" ? "" : " (" kinds ")"), idle, server_status >> md
    errs = (errors ~ /^[0-9]+$/ ? errors : "null")
    printf "{\"bots\":%s,\"transport\":\"%s\",\"intervals\":%s,\"interval_secs\":%s,\"fit_from\":%s,\"fit_to\":%s,\"server_args\":\"%s\",\"connected\":%s,\"errors\":%s,\"errors_by_kind\":\"%s\",\"bots_exit\":%s,\"server_exit\":%s,\"after\":{\"rss_mib\":%.2f,\"fds\":%s,\"tasks\":%s,\"alive\":%s},\"series\":{%s}}\n", bots, transport, minutes, interval, from, last, server_args, (connected == "" ? 0 : connected), errs, kinds, bots_status, server_status, a[2] / 1024, num(a[3]), num(a[4]), num(a[5]), js > json
  }' "$out/server.tsv" "$out/p99.tsv"
echo "== wrote $out/soak.md and $out/soak.json (raw: server.tsv, intervals.jsonl, bots.json)" >&2
