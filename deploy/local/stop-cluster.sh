#!/usr/bin/env bash
# Stop the local Ray cluster started by start-cluster.sh: workers first, then the head.
set -euo pipefail
cd "$(dirname "$0")/../.." && ROOT=$PWD && cd - >/dev/null
source "$ROOT/deploy/local/common.sh"
for pidfile in "$ESWEEP_LOCAL_DIR"/worker*.pid; do [ -e "$pidfile" ] && stop_pidfile "$pidfile"; done
stop_pidfile "$ESWEEP_LOCAL_DIR/head.pid"
