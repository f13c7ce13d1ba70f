#!/bin/bash
# usage: flamegraph.sh NAME BIN KIND TRANSPORT BOTS SECS -> $D/NAME.folded (perf cpu-clock, dwarf stacks)
set -u
NAME=$1; BIN=$2; KIND=$3; TR=$4; BOTS=${5:-1000}; SECS=${6:-10}
D=${OUT:-/tmp/rally-prof}; mkdir -p $D; P1=$((20000 + RANDOM % 20000)); P2=$((P1+1)); P3=$((P1+2))
rm -rf $D/db-$NAME; mkdir -p $D/db-$NAME
if [ $KIND = rally ]; then
  ARGS="serve --tcp 127.0.0.1:$P1 --http 127.0.0.1:$P2 --admin 127.0.0.1:$P3 --concurrency-limit 10000 --log-level warn --database-url sqlite://$D/db-$NAME/rally.db --auth-required false"
else
  ARGS="bench-worker $KIND-arena --tcp 127.0.0.1:$P1 --ws 127.0.0.1:$P2"
fi
taskset -c 0 $BIN $ARGS 2>$D/srv.$NAME.log &
SPID=$!
for i in $(seq 1 60); do (echo > /dev/tcp/127.0.0.1/$P1) 2>/dev/null && break; sleep 0.5; done
ADDR=127.0.0.1:$P1; [ $TR = ws ] && ADDR=127.0.0.1:$P2
taskset -c 1 $BIN bots --addr $ADDR --transport $TR --bots $BOTS --duration $((SECS+15)) --ramp 500 --json $D/bots.$NAME.json >/dev/null 2>&1 &
BPID=$!
sleep 8
perf record -F 499 -g --call-graph dwarf,16384 -p $SPID -o $D/perf.$NAME.data -- sleep $SECS >/dev/null 2>&1
wait $BPID
kill -TERM $SPID; wait $SPID
perf script -i $D/perf.$NAME.data 2>/dev/null | inferno-collapse-perf > $D/$NAME.folded
wc -l $D/$NAME.folded
