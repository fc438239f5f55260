#!/usr/bin/env bash
# What a shadow costs the champion's traffic (issue 13), measured with the
# bench harness against one node on loopback:
#   - closed loop (64 connections, 10 s): throughput with and without a
#     shadow, and the shadow's coverage (mirrored / served) at that load;
#   - open loop at half the no-shadow throughput: the champion's p99 with
#     and without a shadow, and coverage;
#   - a shadow far slower than the champion (an MLP with 1024-wide layers)
#     under the closed loop: the node's RSS sampled every 2 s stays flat,
#     because copies the queue cannot take are skipped and counted.
# Systems alternate within each round, so a busy machine hits both.
#
#   scripts/shadow-cost.sh [ROUNDS]      (make build first)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/modelgate}
ROUNDS=${1:-2}
DUR=${DUR:-10s}
W=$(mktemp -d)
trap 'kill $NODE 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$W"' EXIT
P=${PORT_BASE:-18380}
ADDR=127.0.0.1:$P ADMIN=127.0.0.1:$((P + 1))

$BIN demo model --out "$W/v1.onnx" >/dev/null
$BIN demo model --seed 7 --out "$W/v2.onnx" >/dev/null
$BIN demo model --kind mlp --hidden 1024 --out "$W/slow.onnx" >/dev/null
$BIN serve --data-dir "$W/data" --model fraud="$W/v1.onnx" --listen $ADDR --admin-listen $ADMIN \
	--raft-listen 127.0.0.1:$((P + 2)) 2>"$W/node.log" &
NODE=$!
until curl -sf http://$ADDR/v2/health/ready >/dev/null; do sleep 0.2; done
export MODELGATE_TOKEN=$(cat "$W/data/admin.token") MODELGATE_ADMIN=http://$ADMIN
$BIN model register fraud --file "$W/v2.onnx" >/dev/null   # v2
$BIN model register fraud --file "$W/slow.onnx" >/dev/null # v3

metric() { # the value of one sample of /metrics, 0 when absent
	curl -s http://$ADMIN/metrics -H "Authorization: Bearer $MODELGATE_TOKEN" |
		awk -v k="$1" '$1 == k { print $2; found = 1 } END { if (!found) print 0 }'
}
served() { metric 'modelgate_shadow_served_total{model="fraud"}'; }
mirrored() { metric 'modelgate_shadow_mirrored_total{model="fraud"}'; }
rss_mb() { awk '/VmRSS/ { printf "%.0f", $2 / 1024 }' /proc/$NODE/status; }
field() { # field of the run's last phase: rps or p99
	python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["phases"][-1]; print(round(p["achieved_rps"]) if sys.argv[2]=="rps" else round(p["latency"]["p99_us"]))' "$1" "$2"
}
run() { # run NAME ARGS...: one bench run; prints "rps p99 coverage"
	local name=$1
	shift
	local s0 m0 s1 m1
	s0=$(served) m0=$(mirrored)
	$BIN bench --target http://$ADDR --model fraud --duration $DUR --quiet --out "$W/$name" "$@" >/dev/null
	s1=$(served) m1=$(mirrored)
	python3 -c 'import sys; s=float(sys.argv[2])-float(sys.argv[1]); m=float(sys.argv[4])-float(sys.argv[3]); print(sys.argv[5], sys.argv[6], ("%.1f%%" % (100*m/s)) if s > 0 else "-")' \
		"$s0" "$s1" "$m0" "$m1" "$(field "$W/$name/report.json" rps)" "$(field "$W/$name/report.json" p99)"
}
shadow_on() { $BIN model stage fraud "$1" shadow >/dev/null; sleep 1; }
shadow_off() { $BIN model retire fraud "$1" >/dev/null; sleep 1; }

$BIN bench --target http://$ADDR --model fraud --connections 64 --duration 3s --quiet --out "$W/warm" >/dev/null
echo "| round | system | closed-loop rps | coverage | open loop at half: rps | p99 µs | coverage |"
echo "|---|---|---|---|---|---|---|"
for r in $(seq 1 "$ROUNDS"); do
	read -r rps0 _ _ <<<"$(run closed-off-$r --connections 64)"
	half=$((rps0 / 2))
	read -r orps0 p990 cov0 <<<"$(run open-off-$r --rate $half --poisson --connections 64)"
	echo "| $r | no shadow | $rps0 | - | $orps0 | $p990 | - |"
	shadow_on 2
	read -r rps1 _ ccov1 <<<"$(run closed-on-$r --connections 64)"
	read -r orps1 p991 cov1 <<<"$(run open-on-$r --rate $half --poisson --connections 64)"
	shadow_off 2
	echo "| $r | shadow v2 (same cost) | $rps1 ($((100 * rps1 / rps0))%) | $ccov1 | $orps1 | $p991 ($(python3 -c "print('%.2f' % ($p991/$p990))")×) | $cov1 |"
done

rss_run() { # rss_run NAME: a 20 s closed loop, printing the node's RSS every 2 s
	$BIN bench --target http://$ADDR --model fraud --connections 64 --duration 20s --quiet --out "$W/$1" >/dev/null &
	local b=$! samples=""
	while kill -0 $b 2>/dev/null; do
		samples="$samples $(rss_mb)"
		sleep 2
	done
	echo "$samples"
}
echo
echo "A shadow far slower than the champion ($(du -k "$W/slow.onnx" | cut -f1) KB MLP, v3) against none, closed loop, RSS in MB every 2 s:"
echo "- no shadow: before $(rss_mb), during:$(rss_run rss-off), after $(rss_mb)"
shadow_on 3
s0=$(served) m0=$(mirrored) d0=$(metric 'modelgate_shadow_dropped_total{model="fraud"}')
echo "- slow shadow: before $(rss_mb), during:$(rss_run rss-slow), after $(rss_mb)"
echo "  mirrored $(( $(mirrored) - m0 )) of $(( $(served) - s0 )) served, dropped $(( $(metric 'modelgate_shadow_dropped_total{model="fraud"}') - d0 ))"
