#!/usr/bin/env bash
# A real Ray cluster on this machine: a head (no CPUs for trials, dashboard and Jobs API on 127.0.0.1) and
# ESWEEP_WORKERS (default 2) worker nodes of 1 CPU each, token authentication on. Each node is a
# `ray start --block` process whose pid is kept in $ESWEEP_LOCAL_DIR, so one node can be removed alone
# (stop-node.sh worker1) without touching other Ray instances on the machine (no `ray stop`).
# Trials inherit this shell's environment: export MLFLOW_TRACKING_USERNAME/PASSWORD before starting.
set -euo pipefail
cd "$(dirname "$0")/../.." && ROOT=$PWD && cd - >/dev/null
source "$ROOT/deploy/local/common.sh"
WORKERS=${ESWEEP_WORKERS:-2}

if [ ! -s "$RAY_AUTH_TOKEN_PATH" ]; then
    (umask 077 && python -c 'import secrets; print(secrets.token_hex(32))' > "$RAY_AUTH_TOKEN_PATH")
fi
setsid ray start --head --block --node-ip-address 127.0.0.1 --num-gpus 0 --disable-usage-stats \
    --object-store-memory "${ESWEEP_OBJECT_STORE_BYTES:-150000000}" --port "$ESWEEP_RAY_PORT" --ray-client-server-port "$ESWEEP_RAY_CLIENT_PORT" \
    --dashboard-host 127.0.0.1 --dashboard-port "$ESWEEP_DASHBOARD_PORT" --include-dashboard true \
    --num-cpus 0 --resources '{"esweep_head": 1}' --temp-dir "$ESWEEP_RAY_TEMP" \
    --dashboard-agent-listen-port "$ESWEEP_AGENT_PORT" \
    > "$ESWEEP_LOCAL_DIR/head.log" 2>&1 &
echo $! > "$ESWEEP_LOCAL_DIR/head.pid"
wait_for_line "$ESWEEP_LOCAL_DIR/head.log" "block forever" 120 "$(cat "$ESWEEP_LOCAL_DIR/head.pid")"

# one at a time: nodes sharing an IP that register at once can miss each other's startup
for i in $(seq 1 "$WORKERS"); do "$ROOT/deploy/local/start-worker.sh" "$i"; done

cat > "$ESWEEP_LOCAL_DIR/ray.env" <<ENV
export RAY_AUTH_MODE=token
export RAY_AUTH_TOKEN_PATH=$RAY_AUTH_TOKEN_PATH
export RAY_ADDRESS=127.0.0.1:$ESWEEP_RAY_PORT
export RAY_API_SERVER_ADDRESS=http://127.0.0.1:$ESWEEP_DASHBOARD_PORT
ENV
echo "Ray head 127.0.0.1:$ESWEEP_RAY_PORT + $WORKERS workers; Jobs API http://127.0.0.1:$ESWEEP_DASHBOARD_PORT"
echo "clients: source $ESWEEP_LOCAL_DIR/ray.env"
