#!/usr/bin/env bash
# Stop the MLflow server started by start-mlflow.sh (and its PostgreSQL, if it started one).
set -euo pipefail
cd "$(dirname "$0")/../.." && ROOT=$PWD && cd - >/dev/null
source "$ROOT/deploy/local/common.sh"
stop_pidfile "$ESWEEP_LOCAL_DIR/mlflow.pid"
if [ "${1:-}" != --keep-db ] && [ -f "$ESWEEP_LOCAL_DIR/pg/postmaster.pid" ]; then
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    RUN_AS=(); [ "$(id -u)" = 0 ] && RUN_AS=(runuser -u postgres --)
    "${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$ESWEEP_LOCAL_DIR/pg" -m fast stop >/dev/null
fi
