#!/usr/bin/env bash
# Start (or restart) worker node N of the local cluster: 1 CPU, its own temp dir (nodes sharing one would
# unpack a job's working_dir over each other), its own dashboard-agent port, a pidfile for stop-node.sh.
set -euo pipefail
cd "$(dirname "$0")/../.." && ROOT=$PWD && cd - >/dev/null
source "$ROOT/deploy/local/common.sh"
i=${1:?usage: start-worker.sh N}
setsid ray start --block --node-ip-address 127.0.0.1 --num-gpus 0 --disable-usage-stats \
    --object-store-memory "${ESWEEP_OBJECT_STORE_BYTES:-150000000}" \
    --address "127.0.0.1:$ESWEEP_RAY_PORT" --num-cpus 1 --resources "{\"esweep_worker$i\": 1}" \
    --dashboard-agent-listen-port $((ESWEEP_AGENT_PORT + i)) --temp-dir "$ESWEEP_RAY_TEMP-w$i" \
    > "$ESWEEP_LOCAL_DIR/worker$i.log" 2>&1 &
echo $! > "$ESWEEP_LOCAL_DIR/worker$i.pid"
wait_for_line "$ESWEEP_LOCAL_DIR/worker$i.log" "block forever" 120 "$(cat "$ESWEEP_LOCAL_DIR/worker$i.pid")"
