# Shared settings for the local-cluster scripts; every value can be overridden from the environment.
ESWEEP_LOCAL_DIR=${ESWEEP_LOCAL_DIR:-$PWD/.esweep-local}
ESWEEP_RAY_PORT=${ESWEEP_RAY_PORT:-6390}
ESWEEP_DASHBOARD_PORT=${ESWEEP_DASHBOARD_PORT:-8265}
ESWEEP_RAY_CLIENT_PORT=${ESWEEP_RAY_CLIENT_PORT:-10001}
ESWEEP_MLFLOW_PORT=${ESWEEP_MLFLOW_PORT:-5000}
# MLflow server processes: a search of 1,000 configuration runs is ~5 s of one core's CPU, so a store read by many
# (or a 10,000-trial leaderboard, whose pages esweep requests 4 at a time) answers faster with one per core
ESWEEP_MLFLOW_WORKERS=${ESWEEP_MLFLOW_WORKERS:-1}
# Dashboard agents listen on this port (head) and the next ones (workers): fixed, so two clusters on one
# machine must be given different values.
ESWEEP_AGENT_PORT=${ESWEEP_AGENT_PORT:-52365}
# Ray's own temp dir, short (unix socket paths) and per cluster, so a plain `ray.init()` elsewhere on this
# machine does not find and join this cluster through /tmp/ray/ray_current_cluster.
ESWEEP_RAY_TEMP=${ESWEEP_RAY_TEMP:-/tmp/esweep-ray-$ESWEEP_RAY_PORT}
# Seconds a stopped node keeps running its trials (Ray's graceful drain, 30 by default in Ray 2.60) before its
# processes are killed. 0: stop-node.sh removes the node at once, as a lost machine goes, and its trials restart
# elsewhere from their checkpoints; with 30, a trial near its end could finish on the "removed" node.
ESWEEP_NODE_DRAIN_S=${ESWEEP_NODE_DRAIN_S:-0}
export RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=$ESWEEP_NODE_DRAIN_S
export ESWEEP_LOCAL_DIR ESWEEP_RAY_PORT ESWEEP_DASHBOARD_PORT ESWEEP_RAY_CLIENT_PORT ESWEEP_MLFLOW_PORT ESWEEP_MLFLOW_WORKERS ESWEEP_AGENT_PORT ESWEEP_RAY_TEMP ESWEEP_NODE_DRAIN_S
mkdir -p "$ESWEEP_LOCAL_DIR"

# Token authentication for every Ray process started here and every client that sources this file.
export RAY_AUTH_MODE=token
export RAY_AUTH_TOKEN_PATH="$ESWEEP_LOCAL_DIR/ray-token"

wait_for_line() {  # wait_for_line FILE TEXT SECONDS PID: until TEXT is in FILE, failing if PID exits first
    local deadline=$((SECONDS + $3))
    until grep -q "$2" "$1" 2>/dev/null; do
        if ((SECONDS > deadline)) || ! kill -0 "$4" 2>/dev/null; then
            echo "no '$2' in $1" >&2; tail -20 "$1" >&2; return 1
        fi
        sleep 0.5
    done
}

session_pids() {  # session_pids SID: the processes of the session SID (every script here starts one with setsid)
    ps -e -o pid=,sid= | awk -v sid="$1" '$2 == sid { print $1 }'
}

stop_pidfile() {  # stop_pidfile FILE: SIGTERM the session it names, wait for its leader, then SIGKILL the rest
    local pid left
    [ -s "$1" ] || return 0
    pid=$(cat "$1")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    # Ray's worker processes (the trials) run in process groups of their own: the group's signal misses them, and
    # a trial outliving its node would not be a node lost. Everything of the session goes.
    for _ in $(seq 1 20); do
        left=$(session_pids "$pid")
        [ -n "$left" ] || break
        kill -KILL $left 2>/dev/null || true
        sleep 0.5
    done
    rm -f "$1"
}
