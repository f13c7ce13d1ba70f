#!/bin/bash
# usage: callgrind.sh NAME BIN KIND(rally|tasks|poll) TRANSPORT [BOTS] [WINDOW]
# Runs the server under callgrind with BOTS bots (default 160), zeroes the counters after the ramp, dumps after WINDOW s.
set -u
NAME=$1; BIN=$2; KIND=$3; TR=$4; BOTS=${5:-160}; WIN=${6:-20}
D=${OUT:-/tmp/rally-prof}; mkdir -p $D; P1=$((20000 + RANDOM % 20000)); P2=$((P1+1)); P3=$((P1+2))
rm -rf $D/db-$NAME; mkdir -p $D/db-$NAME
if [ $KIND = rally ]; then
  ARGS="serve --tcp 127.0.0.1:$P1 --http 127.0.0.1:$P2 --admin 127.0.0.1:$P3 --concurrency-limit 10000 --log-level warn --database-url sqlite://$D/db-$NAME/rally.db --auth-required false"
else
  ARGS="bench-worker $KIND-arena --tcp 127.0.0.1:$P1 --ws 127.0.0.1:$P2"
fi
valgrind --tool=callgrind --callgrind-out-file=$D/cg.$NAME.out $BIN $ARGS 2>$D/vg.$NAME.log &
VPID=$!
for i in $(seq 1 120); do (echo > /dev/tcp/127.0.0.1/$P1) 2>/dev/null && break; sleep 1; done
ADDR=127.0.0.1:$P1; [ $TR = ws ] && ADDR=127.0.0.1:$P2
$BIN bots --addr $ADDR --transport $TR --bots $BOTS --duration $((WIN+25)) --ramp 40 --json $D/bots.$NAME.json >/dev/null 2>&1 &
BPID=$!
sleep 15
callgrind_control -z $VPID >/dev/null
sleep $WIN
callgrind_control -d $VPID >/dev/null
sleep 1
kill -INT $VPID; wait $BPID; sleep 3; kill -TERM $VPID 2>/dev/null; wait $VPID
ls $D/cg.$NAME.out* 
