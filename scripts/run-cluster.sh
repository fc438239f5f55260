#!/usr/bin/env bash
# run-cluster.sh BIN MODEL ORT_LIB [DIR]: three modelgate nodes on 127.0.0.1.
# n1 bootstraps the cluster and registers MODEL as the champion; n2 and n3
# join it through its admin API with no model of their own: they learn the
# version from the registry, fetch its bytes from n1 (GET
# /api/v1/artifacts/{digest}), verify and validate them, report ready and
# serve. Ctrl-C stops all three; the data stays in DIR.
set -euo pipefail
BIN=$1 MODEL=$2 ORT=$3 DIR=${4:-cluster-data}
mkdir -p "$DIR"
# One token file for all three: a follower forwards the caller's token to
# the leader, so every node must know it.
if [[ ! -s $DIR/tokens ]]; then
	umask 077
	echo "admin admin $(head -c 24 /dev/urandom | base64 | tr -d '/+=')" >"$DIR/tokens"
fi
TOKEN=$(awk '{print $3}' "$DIR/tokens")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait; }
trap cleanup EXIT INT TERM

start() { # start ID PORT-PREFIX [serve flags...]
	local id=$1 p=$2; shift 2
	MODELGATE_TOKEN=$TOKEN "$BIN" serve --node-id "$id" --node "$id" --data-dir "$DIR/$id" \
		--listen "127.0.0.1:${p}0" --admin-listen "127.0.0.1:${p}1" --raft-listen "127.0.0.1:${p}2" \
		--tokens "$DIR/tokens" --ort-lib "$ORT" --sessions 1 "$@" >>"$DIR/$id.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 600); do
		if curl -sf "http://127.0.0.1:${p}0/v2/health/ready" >/dev/null; then
			echo "run-cluster: $id ready: scoring http://127.0.0.1:${p}0, admin http://127.0.0.1:${p}1, raft 127.0.0.1:${p}2 (log $DIR/$id.log)"
			return
		fi
		kill -0 "${pids[-1]}" 2>/dev/null || { echo "run-cluster: $id exited; its log:" >&2; tail -20 "$DIR/$id.log" >&2; exit 1; }
		sleep 0.1
	done
	echo "run-cluster: $id not ready after 60 s; its log: $DIR/$id.log" >&2
	exit 1
}

start n1 818 --model "fraud=$MODEL"
start n2 828 --join 127.0.0.1:8181
start n3 838 --join 127.0.0.1:8181
"$BIN" cluster status --admin http://127.0.0.1:8181 --token "$TOKEN"
echo "run-cluster: export MODELGATE_TOKEN=\$(awk '{print \$3}' $DIR/tokens) MODELGATE_ADMIN=http://127.0.0.1:8281"
echo "run-cluster: then modelgate cluster status; admin writes to any node go to the leader. Ctrl-C stops the three nodes."
wait
