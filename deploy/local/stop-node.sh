#!/usr/bin/env bash
# Remove one node of the local cluster (head, worker1, worker2, ...): SIGTERM its `ray start --block`.
set -euo pipefail
cd "$(dirname "$0")/../.." && ROOT=$PWD && cd - >/dev/null
source "$ROOT/deploy/local/common.sh"
stop_pidfile "$ESWEEP_LOCAL_DIR/${1:?usage: stop-node.sh head|worker1|worker2}.pid"
