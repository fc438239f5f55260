#!/usr/bin/env bash
# The node confined to one core against a bare fasthttp + ORT server on the
# same core (issue 13): the server under test on core 0 (taskset -c 0,
# GOMAXPROCS=1, one ORT session), the load generator on core 1, 64
# connections, closed loop, the demo model. Every round starts each system
# fresh, warms it 2 s and measures 10 s; systems alternate within a round.
# Besides requests/s it reads the server's CPU time around the measured run
# (/proc/PID/stat), which is steadier than requests/s when anything else
# shares core 0.
#
#   scripts/pinned.sh [ROUNDS]      (make build first; needs 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/modelgate}
ROUNDS=${1:-3}
DUR=${DUR:-10s}
W=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; wait 2>/dev/null || true; rm -rf "$W"' EXIT
P=${PORT_BASE:-18490} # below 32768: the generator's ephemeral ports never collide
TCK=$(getconf CLK_TCK)
$BIN demo model --out "$W/fraud.onnx" >/dev/null

start() { # start SYSTEM: the server on core 0, its pid in PID, its address in ADDR
	local d="$W/data-$RANDOM$RANDOM"
	ADDR=127.0.0.1:$P
	case $1 in
	bare) GOMAXPROCS=1 taskset -c 0 $BIN baseline bare --model "$W/fraud.onnx" --listen $ADDR --sessions 1 >"$W/$1.log" 2>&1 & ;;
	off) GOMAXPROCS=1 taskset -c 0 $BIN serve --model fraud="$W/fraud.onnx" --sessions 1 --data-dir "$d" --listen $ADDR \
		--admin-listen 127.0.0.1:$((P + 1)) --raft-listen 127.0.0.1:$((P + 2)) --drift=false --predlog=false >"$W/$1.log" 2>&1 & ;;
	on) GOMAXPROCS=1 taskset -c 0 $BIN serve --model fraud="$W/fraud.onnx" --sessions 1 --data-dir "$d" --listen $ADDR \
		--admin-listen 127.0.0.1:$((P + 1)) --raft-listen 127.0.0.1:$((P + 2)) >"$W/$1.log" 2>&1 & ;;
	esac
	PID=$!
	until curl -sf http://$ADDR/v2/health/ready >/dev/null; do sleep 0.2; done
}
cpu() { awk '{ print $14 + $15 }' /proc/$PID/stat; } # utime + stime, in ticks
measure() { # measure SYSTEM: prints "rps cpu-µs-per-request"
	start "$1"
	taskset -c 1 $BIN bench --target http://$ADDR --model fraud --connections 64 --duration 2s --quiet --out "$W/warm" >/dev/null
	local c0 c1 rps n
	c0=$(cpu)
	taskset -c 1 $BIN bench --target http://$ADDR --model fraud --connections 64 --duration $DUR --quiet --out "$W/run" >/dev/null
	c1=$(cpu)
	kill $PID && wait $PID 2>/dev/null || true
	PID=
	python3 - "$W/run/report.json" "$c0" "$c1" "$TCK" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))["phases"][-1]
n = p["ok"] if "ok" in p else p["requests"]
cpu = (float(sys.argv[3]) - float(sys.argv[2])) / float(sys.argv[4])
print(round(p["achieved_rps"]), "%.1f" % (1e6 * cpu / n))
PY
}
echo "| round | bare | drift and log off | drift + async log |"
echo "|---|---|---|---|"
for r in $(seq 1 "$ROUNDS"); do
	read -r b bc <<<"$(measure bare)"
	read -r f fc <<<"$(measure off)"
	read -r o oc <<<"$(measure on)"
	ratio() { python3 -c "print('%.2f' % ($1 / $2))"; }
	echo "| $r | $b / $bc µs | $f / $fc µs ($(ratio $f $b)×) | $o / $oc µs ($(ratio $o $b)×) |"
done
echo "(requests/s / server CPU per request; ratios of requests/s to bare in the same round)"
