#!/bin/bash
# usage: cpu.sh BIN N TRANSPORT -> server cores/1000 and RSS per player, pinned
BIN=$1; N=$2; TR=$3; D=${OUT:-/tmp/rally-prof}; mkdir -p $D; P1=$((20000 + RANDOM % 20000)); P2=$((P1+1)); P3=$((P1+2))
rm -rf $D/db-cpu; mkdir -p $D/db-cpu
taskset -c 0 $BIN serve --tcp 127.0.0.1:$P1 --http 127.0.0.1:$P2 --admin 127.0.0.1:$P3 --concurrency-limit 10000 --log-level warn --database-url sqlite://$D/db-cpu/rally.db --auth-required false 2>/dev/null &
S=$!
for i in $(seq 1 60); do (echo > /dev/tcp/127.0.0.1/$P1) 2>/dev/null && break; sleep 0.5; done
sleep 1; E=$(awk '/VmRSS/{print $2}' /proc/$S/status)
ADDR=127.0.0.1:$P1; [ $TR = ws ] && ADDR=127.0.0.1:$P2
taskset -c 1 $BIN bots --addr $ADDR --transport $TR --bots $N --duration 28 --ramp 1000 --json $D/cpu.json >/dev/null 2>&1 &
B=$!; sleep 8
t0=$(awk '{print $14+$15}' /proc/$S/stat); sleep 15; t1=$(awk '{print $14+$15}' /proc/$S/stat)
L=$(awk '/VmRSS/{print $2}' /proc/$S/status)
wait $B; kill -TERM $S; wait $S
python3 -c "print('cores/1000 %.3f  rss/player %.2f KiB' % (($t1-$t0)/100/15*1000/$N, ($L-$E)/$N))"
