#!/usr/bin/env bash
# failover.sh BIN MODEL ORT_LIB [KILLS] [DIR]: cluster failover and
# throughput figures on this machine (BENCHMARKS.md, "Cluster: failover
# and throughput").
#
# 1. Three modelgate serve processes on 127.0.0.1 (ports 91x0-91x2, data in
#    DIR; n1 seeds the model, n2 and n3 join and fetch it). KILLS times:
#    ask a node who leads, SIGKILL the leader, and retry an admin write
#    (a policy PUT with one Idempotency-Key) through a survivor every
#    20 ms until it is acknowledged; the figure is the time
#    from the kill to that acknowledgement. The killed node is restarted on
#    its data dir and the next round waits until it is ready (caught up).
# 2. Aggregate scoring throughput, closed loop (modelgate bench, 12
#    connections in all, 10 s): all of it on one node, then split over the
#    three (4 connections each, three bench processes at once).
set -euo pipefail
BIN=$1 MODEL=$2 ORT=$3 KILLS=${4:-10} DIR=${5:-failover-data}
rm -rf "$DIR"
mkdir -p "$DIR"
umask 077
echo "admin admin $(head -c 24 /dev/urandom | base64 | tr -d '/+=')" >"$DIR/tokens"
TOKEN=$(awk '{print $3}' "$DIR/tokens")
declare -A pid port
port=([n1]=911 [n2]=912 [n3]=913)
cleanup() { for p in "${pid[@]}"; do kill -9 "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

start() { # start ID [serve flags...]: start (or restart) a node, wait until ready
	local id=$1 p=${port[$1]}; shift
	# n1 bootstraps the cluster with the model; the joiners learn it from
	# the registry and fetch its bytes from a holder.
	local role=(--model "fraud=$MODEL")
	[[ $id != n1 ]] && role=(--join 127.0.0.1:9111)
	MODELGATE_TOKEN=$TOKEN "$BIN" serve --node-id "$id" --node "$id" --data-dir "$DIR/$id" \
		--listen "127.0.0.1:${p}0" --admin-listen "127.0.0.1:${p}1" --raft-listen "127.0.0.1:${p}2" \
		--tokens "$DIR/tokens" --ort-lib "$ORT" --sessions 1 \
		"${role[@]}" "$@" >>"$DIR/$id.log" 2>&1 &
	pid[$id]=$!
	for _ in $(seq 1200); do
		curl -sf "http://127.0.0.1:${p}0/v2/health/ready" >/dev/null && return
		kill -0 "${pid[$id]}" 2>/dev/null || { echo "failover: $id exited; its log:" >&2; tail -20 "$DIR/$id.log" >&2; exit 1; }
		sleep 0.05
	done
	echo "failover: $id not ready after 60 s; its log: $DIR/$id.log" >&2
	exit 1
}

now() { date +%s.%N; }

start n1
start n2
start n3
figures=()
for round in $(seq "$KILLS"); do
	leader=$(curl -sf -H "Authorization: Bearer $TOKEN" http://127.0.0.1:9121/api/v1/cluster | jq -r .leader)
	[[ $leader == n2 ]] && leader=$(curl -sf -H "Authorization: Bearer $TOKEN" http://127.0.0.1:9111/api/v1/cluster | jq -r .leader)
	case $leader in n1 | n2 | n3) ;; *) echo "failover: no leader before round $round" >&2; exit 1 ;; esac
	survivor=n1
	[[ $leader == n1 ]] && survivor=n2
	kill -9 "${pid[$leader]}"
	t0=$(now)
	{ wait "${pid[$leader]}"; } 2>/dev/null || true
	code=0
	until [[ $code == 200 ]]; do
		code=$(curl -s -o /dev/null -w '%{http_code}' -m 30 -X PUT -H "Authorization: Bearer $TOKEN" \
			-H "Idempotency-Key: failover-$round" -H 'Content-Type: application/json' \
			-d "{\"validation\":{\"latency_budget_ms\":$((1000 + round))}}" \
			"http://127.0.0.1:${port[$survivor]}1/api/v1/models/fraud/policy" || true)
		[[ $code == 200 ]] || sleep 0.02
		if (($(echo "$(now) - $t0 > 60" | bc))); then echo "failover: no write within 60 s of the kill (last $code)" >&2; exit 1; fi
	done
	t1=$(now)
	took=$(echo "$t1 - $t0" | bc)
	new=$(curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:${port[$survivor]}1/api/v1/cluster" | jq -r .leader)
	figures+=("$took")
	printf 'failover: round %d: killed leader %s; %s leads; write acknowledged %.3f s after the kill\n' "$round" "$leader" "$new" "$took"
	start "$leader"
done
sorted=$(printf '%s\n' "${figures[@]}" | sort -g)
n=${#figures[@]}
median=$(echo "$sorted" | awk -v n="$n" '{a[NR]=$1} END {if (n%2) print a[(n+1)/2]; else print (a[n/2]+a[n/2+1])/2}')
printf 'failover: %d kills: median %.3f s, min %.3f s, max %.3f s\n' "$n" "$median" "$(echo "$sorted" | head -1)" "$(echo "$sorted" | tail -1)"

# Throughput: one node, then three.
bench() { # bench OUT PORT CONNS
	"$BIN" bench --target "http://127.0.0.1:${2}0" --model fraud --connections "$3" --duration 10s --quiet --out "$DIR/$1" >/dev/null
	jq -r '.phases[0].achieved_rps' "$DIR/$1/report.json"
}
one=$(bench one-node 911 12)
bench three-n1 911 4 >"$DIR/r1" &
b1=$!
bench three-n2 912 4 >"$DIR/r2" &
b2=$!
bench three-n3 913 4 >"$DIR/r3" &
b3=$!
wait $b1 $b2 $b3
three=$(cat "$DIR"/r1 "$DIR"/r2 "$DIR"/r3 | paste -sd+ | bc)
printf 'throughput: one node %.0f requests/s; three nodes %.0f requests/s (%s + %s + %s), 12 connections in all, %d cores\n' \
	"$one" "$three" "$(cat "$DIR/r1")" "$(cat "$DIR/r2")" "$(cat "$DIR/r3")" "$(nproc)"
