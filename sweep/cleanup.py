"""Close MLflow trial runs that no live trial will ever finish (their worker, node or driver died)."""

from __future__ import annotations

import time

from evaluators import names
from sweep.tracking import Store, with_retry

ORPHAN_STATUS = "KILLED"
DEFAULT_STALE_AFTER_S = 600.0  # while a driver may still be live, only runs silent this long count as orphans


def orphan_reason(sweep_id: str) -> str:
    return f"orphaned: left RUNNING with no live trial in sweep {sweep_id} (closed by cleanup)"


def _last_activity_ms(store: Store, run) -> int:
    history = with_retry(lambda: store.client.get_metric_history(run.info.run_id, names.TRAIN_LOSS))
    return max([run.info.start_time or 0, *(m.timestamp for m in history)])


def close_orphans(store: Store, sweep_id: str, stale_after_s: float = 0.0) -> list[str]:
    """Mark the sweep's RUNNING trial runs KILLED with a reason tag; returns their trial keys.

    ``stale_after_s=0`` is for when no trial of the sweep can be live (its Tuner has returned).
    """
    now_ms = time.time() * 1000
    closed = []
    for run in store.trial_runs(sweep_id):
        if run.info.status != "RUNNING":
            continue
        if stale_after_s > 0 and now_ms - _last_activity_ms(store, run) < stale_after_s * 1000:
            continue
        store.set_tags(run.info.run_id, {names.T_FAILURE: orphan_reason(sweep_id), names.T_STATUS: "killed"})
        with_retry(lambda run=run: store.client.set_terminated(run.info.run_id, status=ORPHAN_STATUS))
        closed.append(run.data.tags.get(names.T_TRIAL_KEY, run.info.run_id))
    return closed
