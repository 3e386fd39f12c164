#!/usr/bin/env bash
# A real MLflow tracking server on 127.0.0.1 with basic auth (mlflow server --app-name basic-auth).
# Backend: sqlite in $ESWEEP_LOCAL_DIR, or ESWEEP_MLFLOW_BACKEND=postgres for a private PostgreSQL cluster
# from Debian's packages (/usr/lib/postgresql/*/bin) where installed. The admin password comes only from
# the environment; nothing here has a default password.
set -euo pipefail
cd "$(dirname "$0")/../.." && ROOT=$PWD && cd - >/dev/null
source "$ROOT/deploy/local/common.sh"
: "${MLFLOW_TRACKING_PASSWORD:?export MLFLOW_TRACKING_PASSWORD (the MLflow admin password) first}"
MLFLOW_TRACKING_USERNAME=${MLFLOW_TRACKING_USERNAME:-admin}
STATE=$ESWEEP_LOCAL_DIR
BACKEND=${ESWEEP_MLFLOW_BACKEND:-sqlite}

if [ "$BACKEND" = postgres ]; then
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    [ -n "$PG_BIN" ] || { echo "PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 2; }
    PG_PORT=${ESWEEP_PG_PORT:-5433}
    RUN_AS=(); [ "$(id -u)" = 0 ] && RUN_AS=(runuser -u postgres --)  # postgres refuses to run as root
    if [ ! -d "$STATE/pg" ]; then
        install -d -m 700 "$STATE/pg" && [ "$(id -u)" = 0 ] && chown postgres "$STATE/pg"
        "${RUN_AS[@]}" "$PG_BIN/initdb" -D "$STATE/pg" -A trust -U mlflow >/dev/null
    fi
    "${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$STATE/pg" -l "$STATE/pg/server.log" -w \
        -o "-p $PG_PORT -k /tmp -c listen_addresses=127.0.0.1" start >/dev/null
    "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U mlflow -d postgres -tc "SELECT 1 FROM pg_database WHERE datname='mlflow'" \
        | grep -q 1 || "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U mlflow mlflow
    STORE_URI="postgresql+psycopg2://mlflow@127.0.0.1:$PG_PORT/mlflow"  # pip install psycopg2-binary
else
    STORE_URI="sqlite:///$STATE/mlflow.db"
fi

# The auth app's own config: users in their own sqlite file; no password in the file (the env supplies it).
cat > "$STATE/basic_auth.ini" <<INI
[mlflow]
default_permission = NO_PERMISSIONS
database_uri = sqlite:///$STATE/mlflow-auth.db
admin_username = $MLFLOW_TRACKING_USERNAME
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
# a verified password is remembered for a minute instead of hashed again (scrypt, ~0.1 s of CPU) on every request;
# with one worker a password changed over the API takes effect at once
auth_cache_ttl_seconds = 60
INI

# CSRF key for the auth app's forms: from the environment, else generated once and kept private here.
if [ -z "${MLFLOW_FLASK_SERVER_SECRET_KEY:-}" ]; then
    [ -s "$STATE/flask-secret" ] || (umask 077 && python -c 'import secrets; print(secrets.token_hex(32))' > "$STATE/flask-secret")
    MLFLOW_FLASK_SERVER_SECRET_KEY=$(cat "$STATE/flask-secret")
fi
export MLFLOW_FLASK_SERVER_SECRET_KEY
MLFLOW_AUTH_CONFIG_PATH="$STATE/basic_auth.ini" MLFLOW_AUTH_ADMIN_PASSWORD="$MLFLOW_TRACKING_PASSWORD" \
setsid mlflow server --app-name basic-auth --host 127.0.0.1 --port "$ESWEEP_MLFLOW_PORT" --workers "$ESWEEP_MLFLOW_WORKERS" \
    --backend-store-uri "$STORE_URI" --artifacts-destination "$STATE/mlartifacts" \
    --allowed-hosts "127.0.0.1:$ESWEEP_MLFLOW_PORT,localhost:$ESWEEP_MLFLOW_PORT" \
    --cors-allowed-origins "http://127.0.0.1:$ESWEEP_MLFLOW_PORT" \
    >> "$STATE/mlflow.log" 2>&1 &
echo $! > "$STATE/mlflow.pid"
for _ in $(seq 1 240); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ESWEEP_MLFLOW_PORT/health" || true)
    [ "$code" = 200 ] && { echo "MLflow on http://127.0.0.1:$ESWEEP_MLFLOW_PORT ($STORE_URI), basic auth on"; exit 0; }
    kill -0 "$(cat "$STATE/mlflow.pid")" 2>/dev/null || { tail -20 "$STATE/mlflow.log" >&2; exit 1; }
    sleep 0.5
done
echo "MLflow did not answer on port $ESWEEP_MLFLOW_PORT" >&2; tail -20 "$STATE/mlflow.log" >&2; exit 1
