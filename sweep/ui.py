"""`esweep ui`: links into MLflow's UI (3.17) that open on one sweep's configuration runs, sorted by a metric.

The experiment runs page (hash route ``#/experiments/<id>/runs``) reads its search facets from the URL's query:
``searchFilter``, ``orderByKey`` (a column key such as ``metrics.`eval/recon_mse```) and ``orderByAsc``. The visible
columns (``selectedColumns``) are not facets but the page's UI state, which a URL sets only through a saved view: an
experiment tag ``mlflow.sharedViewState.<key>`` holding the facets and the columns, opened by
``?viewStateShareKey=<key>``. The page ignores a saved view when facets are in the URL too, so there are two links:
the saved view (filter, sort and the metric's column) and the plain one (filter and sort, nothing written). Both
carry ``workflowType=machine_learning``, the sidebar's mode for a model-training experiment.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import urllib.parse
import webbrowser

from evaluators import names
from sweep.aggregate import GROUP_COLUMNS, SUFFIX_CI95, SUFFIX_N
from sweep.shutdown import start_child, stop_child
from sweep.tracking import Store, config_runs_filter, with_retry

RUNS_TAB = "runs"
SHARED_VIEW_TAG_PREFIX = "mlflow.sharedViewState."
SHARE_KEY_PARAM = "viewStateShareKey"
WORKFLOW_PARAM, WORKFLOW_TRAINING = "workflowType", "machine_learning"
SERVER_START_TIMEOUT_S = 120.0


def metric_column(metric: str) -> str:
    """The runs table's key for a metric column, as its orderByKey and selectedColumns spell it."""
    return f"metrics.`{metric}`"


def param_column(param: str) -> str:
    return f"params.`{param}`"


def runs_filter(sweep_id: str, front: bool = False) -> str:
    """The sweep's configuration runs; with ``front``, only those its published Pareto front holds."""
    flt = config_runs_filter(sweep_id)
    return f"{flt} and tags.`{names.T_PARETO}` = '{names.PARETO_FRONT}'" if front else flt


def facets(sweep_id: str, metric: str | None, ascending: bool, front: bool = False) -> dict[str, str]:
    """The URL query that filters the page to the sweep's configuration runs (``front``: on its Pareto front),
    sorted by ``metric`` (if any)."""
    query = {"searchFilter": runs_filter(sweep_id, front)}
    if metric:
        query.update(orderByKey=metric_column(metric), orderByAsc="true" if ascending else "false")
    return query


def columns(metric: str | None) -> list[str]:
    """What a configuration row shows: its parameters, and the metric's mean, 95% half-width and n."""
    shown = [param_column(p) for p in GROUP_COLUMNS]
    if metric:
        shown += [metric_column(m) for m in (metric, metric + SUFFIX_CI95, metric + SUFFIX_N)]
    return shown


def runs_url(base: str, experiment_id: str, query: dict[str, str]) -> str:
    """The runs page with ``query``, in the sidebar's model-training mode (else it keeps the browser's last mode)."""
    query = {**query, WORKFLOW_PARAM: WORKFLOW_TRAINING}
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/{RUNS_TAB}?{urllib.parse.urlencode(query, quote_via=urllib.parse.quote)}"


def view_state(sweep_id: str, metric: str | None, ascending: bool, front: bool = False) -> dict:
    """A saved view's state: the facets (orderByAsc as a boolean, as the page keeps it) and the visible columns."""
    state: dict = {"searchFilter": runs_filter(sweep_id, front), "selectedColumns": columns(metric)}
    if metric:
        state.update(orderByKey=metric_column(metric), orderByAsc=ascending)
    return state


def saved_view(
    sweep_id: str, metric: str | None, ascending: bool, now_ms: int, front: bool = False
) -> tuple[str, str, str]:
    """(share key, experiment tag key, tag value) of the saved view; the key is the state's hash, so publishing the
    same view again rewrites one tag instead of adding another."""
    state = json.dumps(view_state(sweep_id, metric, ascending, front), sort_keys=True)
    key = "esweep-" + hashlib.sha256(state.encode()).hexdigest()[:16]
    title = f"esweep {sweep_id}: {'the Pareto front' if front else 'configurations'}" + (f" by {metric}" if metric else "")
    envelope = {"name": title, "createdAt": now_ms, "updatedAt": now_ms, "state": state}
    return key, SHARED_VIEW_TAG_PREFIX + key, json.dumps(envelope)


def view_url(base: str, experiment_id: str, key: str) -> str:
    return runs_url(base, experiment_id, {SHARE_KEY_PARAM: key})


def publish_view(
    store: Store, experiment_id: str, sweep_id: str, metric: str | None, ascending: bool, front: bool = False
) -> str:
    """Write the saved view onto the experiment; returns its share key."""
    key, tag, value = saved_view(sweep_id, metric, ascending, int(time.time() * 1000), front)
    with_retry(lambda: store.client.set_experiment_tag(experiment_id, tag, value))
    return key


def experiment_of(store: Store, sweep_id: str) -> str:
    return store.sweep_run(sweep_id).info.experiment_id


def server_command(python: str, uri: str, port: int, artifact_root: str | None) -> list[str]:
    # one worker: a UI on loopback has one reader, and each of MLflow's default four imports MLflow anew
    # (36 s to the first answer on 2 busy cores against 7 s with one)
    cmd = [python, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port),
           "--workers", "1"]
    return cmd + (["--default-artifact-root", artifact_root] if artifact_root else [])


def server_env() -> dict[str, str]:
    """The server's environment: without MLflow's GenAI job runner (seven more processes) unless asked for."""
    return {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def serve(cmd: list[str], port: int, open_url: str | None) -> int:
    """Run the MLflow server in the foreground; with ``open_url``, open it in a browser once the port answers.

    The server runs in its own process group, stopped whole (its uvicorn workers too) however this command ends:
    on SIGINT, SIGTERM or SIGHUP (``Interrupted``), or on an error."""
    proc = start_child(cmd, env=server_env())
    try:
        if open_url:
            deadline = time.monotonic() + SERVER_START_TIMEOUT_S
            while proc.poll() is None and time.monotonic() < deadline and not port_in_use(port):
                time.sleep(0.5)
            if proc.poll() is None and port_in_use(port):
                webbrowser.open(open_url)
        return proc.wait()
    finally:
        stop_child(proc)
