"""The MLflow store: one parent run per sweep, one child run per trial, found by tags (never by memory).

A trial that is retried or resumed looks its run up by (sweep id, trial key) and writes into it, so restarts
never create duplicates. Metric steps already logged are skipped on replay, so row counts stay exact.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import TypeVar

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from evaluators import names

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no progress bars amid our own output
# closing a run on a server would print two links and fetch the run once more: 5,000 requests and 10,000 lines when
# a 10,000-trial sweep's configuration runs are closed
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
T = TypeVar("T")
DEFAULT_DB = "mlflow.db"
SPOOL_FILE = "mlflow-spool.jsonl"
SHORT_RETRY = 3  # ~0.6 s: rides out a blip; a longer outage goes to the spool instead of stalling training
DEFAULT_EXPERIMENT = "esweep"
SEARCH_PAGE = 1000  # runs per search request; the server caps a page, so larger sets are paged
PARALLEL_PAGES = 4  # search pages requested at once from a tracking server
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$")


class UnsafeNameError(ValueError):
    """An artifact or file name that could escape its folder."""


def safe_artifact_name(name: str) -> str:
    """Reject path traversal (``..``, absolute paths, backslashes, percent-encoded forms) before any write."""
    decoded = name
    for _ in range(3):  # catch double encoding such as %252e%252e
        decoded = urllib.parse.unquote(decoded)
    parts = decoded.replace("\\", "/").split("/")
    if (
        not name
        or decoded != name
        or decoded.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
        or not _SAFE_NAME.match(decoded)
    ):
        raise UnsafeNameError(
            f"artifact name {name!r} is not allowed: use letters, digits, '_', '.', '-' and '/' between parts, "
            "with no '..', no leading '/', and no percent-encoding"
        )
    return name


def default_tracking_uri(cwd: Path | None = None) -> str:
    """MLFLOW_TRACKING_URI if set, else a sqlite file in the working directory (absolute, so workers agree)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{(cwd or Path.cwd()).resolve() / DEFAULT_DB}"


def resolve_tracking_uri(uri: str | None) -> str:
    if uri is None:
        return default_tracking_uri()
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return f"sqlite:///{Path(uri.removeprefix('sqlite:///')).resolve()}"
    return uri


def is_local_store(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:", "/", ".")) or "://" not in uri


def artifact_root_for(uri: str) -> str | None:
    """Artifacts beside a local sqlite file (absolute), so trials running in other folders agree."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
    return None


@lru_cache(maxsize=1)
def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent.parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_version() -> str:
    try:
        return metadata.version("eccentric-sweep")
    except metadata.PackageNotFoundError:
        return "unknown"


# distribution behind each version tag: the packages whose versions can change a run's numbers
_ENV_PACKAGES = {
    names.T_ENV_TORCH: "torch",
    names.T_ENV_TORCHVISION: "torchvision",
    names.T_ENV_RAY: "ray",
    names.T_ENV_MLFLOW: "mlflow",
    names.T_ENV_TORCH_FIDELITY: "torch-fidelity",
    names.T_ENV_NUMPY: "numpy",
    names.T_ENV_SCIKIT_LEARN: "scikit-learn",
}


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    out = {names.T_ENV_PYTHON: platform.python_version()}
    for tag, dist in _ENV_PACKAGES.items():
        try:
            out[tag] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[tag] = "absent"
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


@lru_cache(maxsize=8)
def environment_tags(device: str) -> dict[str, str]:
    """The ENV_TAGS of a run in this process that computes on ``device`` ('auto' resolved as training does)."""
    import torch  # here, not at the top: the CLI's read-only commands never load torch

    from trainers.loop import resolve_device

    dev = resolve_device(device)
    if dev.type == "cuda":
        gpu = torch.cuda.get_device_name(dev)
        hardware = {names.T_ENV_DEVICE: f"cuda: {gpu}", names.T_ENV_CUDA: torch.version.cuda or "unknown"}
    else:
        hardware = {names.T_ENV_DEVICE: f"{dev.type}: {cpu_model()}", names.T_ENV_CUDA: "none"}
    return {**package_versions(), **hardware}


def is_transient(exc: Exception) -> bool:
    return isinstance(exc, (MlflowException, OSError)) and any(
        s in str(exc).lower()
        for s in ("database is locked", "connection", "temporarily", "timed out", "503", "502", "max retries")
    )


def bound_http_retries() -> None:
    """MLflow's own HTTP backoff (7 retries, factor 2) would stall a trial for minutes; we retry and spool."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


def with_retry(fn: Callable[[], T], attempts: int = 8, base_delay: float = 0.2) -> T:
    """Retry transient store errors (sqlite 'database is locked', a server briefly away)."""
    for i in range(attempts):
        try:
            return fn()
        except (MlflowException, OSError) as exc:
            if not is_transient(exc) or i == attempts - 1:
                raise
            time.sleep(base_delay * 2**i)
    raise AssertionError("unreachable")


def config_runs_filter(sweep_id: str) -> str:
    """MLflow's search filter for a sweep's configuration runs: the leaderboard's rows, and `esweep ui`'s."""
    return f"tags.`{names.T_SWEEP_ID}` = '{sweep_id}' and tags.`{names.T_ROLE}` = '{names.ROLE_CONFIG}'"


class Store:
    def __init__(self, tracking_uri: str, spool_path: Path | None = None):
        """``spool_path``: a JSONL file where metric batches wait while the server is unreachable."""
        self.uri = tracking_uri
        if tracking_uri.startswith(("http://", "https://")):
            bound_http_retries()
        self.client = MlflowClient(tracking_uri)
        self.spool_path = spool_path

    # experiments and runs -------------------------------------------------------------------------
    def experiment_id(self, name: str = DEFAULT_EXPERIMENT) -> str:
        exp = with_retry(lambda: self.client.get_experiment_by_name(name))
        if exp is None:
            try:
                exp_id = with_retry(
                    lambda: self.client.create_experiment(name, artifact_location=artifact_root_for(self.uri))
                )
            except MlflowException:  # created concurrently by another process
                exp_id = self.client.get_experiment_by_name(name).experiment_id
        else:
            exp_id = exp.experiment_id
        if exp is None or exp.tags.get(names.T_EXPERIMENT_KIND) != names.EXPERIMENT_KIND_TRAINING:
            with_retry(
                lambda: self.client.set_experiment_tag(exp_id, names.T_EXPERIMENT_KIND, names.EXPERIMENT_KIND_TRAINING)
            )
        return exp_id

    def find_runs(self, filter_string: str, experiment_ids: list[str] | None = None, max_results: int | None = None):
        """Every run matching the filter, page by page (a 10,000-trial sweep is more than one page)."""
        ids = experiment_ids or [e.experiment_id for e in self.client.search_experiments()]

        def page(token: str | None):
            return with_retry(
                lambda: self.client.search_runs(ids, filter_string, max_results=SEARCH_PAGE, page_token=token)
            )

        first = page(None)
        if max_results is None and first.token and self.uri.startswith(("http://", "https://")):
            return self._pages_at_once(page, first)
        runs, token = list(first), first.token
        while token and (max_results is None or len(runs) < max_results):
            runs.extend(more := page(token))
            token = more.token
        return runs[:max_results] if max_results is not None else runs

    @staticmethod
    def _pages_at_once(page, first):
        """The pages after ``first``, PARALLEL_PAGES requests at a time, where the server's page tokens are its SQL
        store's offsets (checked on the first one): a server spends ~5 s of CPU per 1,000 configuration runs, and
        while it builds one page this process decodes another (and a server with several workers builds several)."""
        from mlflow.utils.search_utils import SearchUtils

        def offset_token(offset: int) -> str:
            return SearchUtils.create_page_token(offset).decode()

        if first.token != offset_token(SEARCH_PAGE):  # another kind of token: one page after another
            runs, token = list(first), first.token
            while token:
                runs.extend(more := page(token))
                token = more.token
            return runs
        runs, offset = list(first), SEARCH_PAGE
        with ThreadPoolExecutor(PARALLEL_PAGES) as pool:
            while True:
                pages = list(pool.map(page, [offset_token(offset + i * SEARCH_PAGE) for i in range(PARALLEL_PAGES)]))
                for p in pages:
                    runs.extend(p)
                if not all(p.token for p in pages):
                    break
                offset += PARALLEL_PAGES * SEARCH_PAGE
        seen: set[str] = set()  # a run created while reading shifts the offsets: keep each run once
        return [r for r in runs if not (r.info.run_id in seen or seen.add(r.info.run_id))]

    def sweep_run(self, sweep: str):
        """The parent run of a sweep, by sweep id or (newest) by name."""
        role = f"tags.`{names.T_ROLE}` = '{names.ROLE_SWEEP}'"
        for flt in (f"tags.`{names.T_SWEEP_ID}` = '{sweep}'", f"attributes.run_name = '{sweep}'"):
            runs = self.find_runs(f"{role} and {flt}")
            if runs:
                return max(runs, key=lambda r: r.info.start_time)
        return None

    def latest_sweep_run(self):
        runs = self.find_runs(f"tags.`{names.T_ROLE}` = '{names.ROLE_SWEEP}'")
        return max(runs, key=lambda r: r.info.start_time) if runs else None

    def trial_runs(self, sweep_id: str, config_key: str | None = None):
        flt = f"tags.`{names.T_SWEEP_ID}` = '{sweep_id}' and tags.`{names.T_ROLE}` = '{names.ROLE_TRIAL}'"
        if config_key is not None:
            flt += f" and tags.`{names.T_CONFIG_KEY}` = '{config_key}'"
        return self.find_runs(flt)

    def config_runs(self, sweep_id: str):
        return self.find_runs(config_runs_filter(sweep_id))

    def find_or_create_config_run(
        self,
        experiment_id: str,
        sweep_id: str,
        parent_run_id: str,
        config_key: str,
        run_name: str,
        params: dict[str, str],
        description: str,
    ) -> str:
        """A configuration's run, found again by its tags on a resume, so restarts never duplicate it."""
        flt = (
            f"tags.`{names.T_SWEEP_ID}` = '{sweep_id}' and tags.`{names.T_ROLE}` = '{names.ROLE_CONFIG}' "
            f"and tags.`{names.T_CONFIG_KEY}` = '{config_key}'"
        )
        existing = self.find_runs(flt, [experiment_id])
        if existing:
            return min(existing, key=lambda r: r.info.start_time).info.run_id
        run = with_retry(
            lambda: self.client.create_run(
                experiment_id,
                run_name=run_name,
                tags={
                    names.T_SWEEP_ID: sweep_id,
                    names.T_ROLE: names.ROLE_CONFIG,
                    names.T_CONFIG_KEY: config_key,
                    names.T_DESCRIPTION: description,
                    "mlflow.parentRunId": parent_run_id,
                    **self.provenance(),
                },
            )
        )
        self.log_params(run.info.run_id, params)
        return run.info.run_id

    def create_sweep_run(self, experiment_id: str, sweep_id: str, params: dict[str, str], tags: dict[str, str]) -> str:
        run = with_retry(
            lambda: self.client.create_run(
                experiment_id,
                run_name=sweep_id,
                # the driver trains nothing: its environment is its CPU's
                tags={names.T_SWEEP_ID: sweep_id, names.T_ROLE: names.ROLE_SWEEP, **self.provenance("cpu"), **tags},
            )
        )
        self.log_params(run.info.run_id, params)
        return run.info.run_id

    def find_or_create_trial_run(
        self,
        experiment_id: str,
        sweep_id: str,
        parent_run_id: str,
        trial_key: str,
        run_name: str,
        params: dict[str, str],
        tags: dict[str, str],
        device: str = "auto",
    ):
        """The trial's run, created (tagged with the environment of this process training on ``device``) or found
        again by its key; a run found again keeps the tags of the attempt that created it."""
        flt = f"tags.`{names.T_SWEEP_ID}` = '{sweep_id}' and tags.`{names.T_TRIAL_KEY}` = '{trial_key}'"
        existing = self.find_runs(flt, [experiment_id])
        if existing:
            run = min(existing, key=lambda r: r.info.start_time)
            with_retry(lambda: self.client.update_run(run.info.run_id, status="RUNNING"))
            return run
        run = with_retry(
            lambda: self.client.create_run(
                experiment_id,
                run_name=run_name,
                tags={
                    names.T_SWEEP_ID: sweep_id,
                    names.T_TRIAL_KEY: trial_key,
                    names.T_ROLE: names.ROLE_TRIAL,
                    "mlflow.parentRunId": parent_run_id,
                    **self.provenance(device),
                    **tags,
                },
            )
        )
        self.log_params(run.info.run_id, params)
        return run

    @staticmethod
    def provenance(device: str = "cpu") -> dict[str, str]:
        """What a run ran: the code (git commit, package version) and its environment (ENV_TAGS) on ``device``."""
        return {names.T_GIT_COMMIT: git_commit(), names.T_VERSION: package_version(), **environment_tags(device)}

    # logging --------------------------------------------------------------------------------------
    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        batch = [Param(k, str(v)) for k, v in params.items()]
        if batch:
            with_retry(lambda: self.client.log_batch(run_id, params=batch))

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        with_retry(lambda: self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()]))

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0, model_id: str | None = None) -> None:
        """With a spool, an unreachable server does not stop training: the batch waits in the spool. ``model_id``
        links the metrics to the run's logged model as well (its Models tab lists them)."""
        ts = int(time.time() * 1000)
        batch = [Metric(k, float(v), ts, step, model_id=model_id) for k, v in metrics.items()]
        if self.spool_path is None:
            self._send_metrics(run_id, batch)
            return
        try:
            self.flush_spool(SHORT_RETRY)
            self._send_metrics(run_id, batch, SHORT_RETRY)
        except (MlflowException, OSError) as exc:
            if not is_transient(exc):
                raise
            self.spool_path.parent.mkdir(parents=True, exist_ok=True)
            with self.spool_path.open("a") as f:
                rows = [[m.key, m.value, m.timestamp, m.step, *([m.model_id] if m.model_id else [])] for m in batch]
                f.write(json.dumps({"run_id": run_id, "metrics": rows}))
                f.write("\n")

    def log_summary(self, run_id: str, metrics: dict[str, float], tags: dict[str, str], step: int = 0) -> None:
        """Metrics and tags in one request (a configuration's summaries and flags), or as log_metrics then set_tags
        where metrics may have to wait in a spool."""
        if self.spool_path is not None or len(metrics) > 900 or len(tags) > 90:
            self.log_metrics(run_id, metrics, step)
            self.set_tags(run_id, tags)
            return
        ts = int(time.time() * 1000)
        batch = [Metric(k, float(v), ts, step) for k, v in metrics.items()]
        labels = [RunTag(k, str(v)) for k, v in tags.items()]
        with_retry(lambda: self.client.log_batch(run_id, metrics=batch, tags=labels))

    def _send_metrics(self, run_id: str, batch: list[Metric], attempts: int = 8) -> None:
        for i in range(0, len(batch), 900):  # MLflow's per-batch limit is 1000 metrics
            chunk = batch[i : i + 900]
            with_retry(lambda chunk=chunk: self.client.log_batch(run_id, metrics=chunk), attempts)

    def flush_spool(self, attempts: int = 8) -> int:
        """Deliver spooled batches in order; what is not delivered stays spooled. Returns batches sent."""
        if self.spool_path is None or not self.spool_path.exists():
            return 0
        lines = [ln for ln in self.spool_path.read_text().splitlines() if ln.strip()]
        for sent, line in enumerate(lines):
            entry = json.loads(line)
            try:
                self._send_metrics(entry["run_id"], [Metric(*m) for m in entry["metrics"]], attempts)
            except Exception:
                self.spool_path.write_text("".join(f"{ln}\n" for ln in lines[sent:]))
                raise
        self.spool_path.unlink()
        return len(lines)

    def last_logged_step(self, run_id: str, key: str) -> int:
        self.flush_spool()  # a restarted trial compares against everything it logged, spooled or not
        history = with_retry(lambda: self.client.get_metric_history(run_id, key))
        return max((m.step for m in history), default=-1)

    def log_artifact_bytes(self, run_id: str, name: str, data: bytes) -> None:
        safe_artifact_name(name)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(name).name
            path.write_bytes(data)
            parent = str(Path(name).parent)
            with_retry(lambda: self.client.log_artifact(run_id, str(path), None if parent == "." else parent))

    def read_artifact_bytes(self, run_id: str, name: str) -> bytes:
        """One artifact of a run, downloaded with retry into a temporary folder that is removed again."""
        with tempfile.TemporaryDirectory() as tmp:
            return Path(with_retry(lambda: self.client.download_artifacts(run_id, name, tmp))).read_bytes()

    def log_table(self, run_id: str, name: str, frame) -> None:
        """A DataFrame as an MLflow table artifact (what ``MlflowClient.log_table`` writes), replaced rather than
        appended to when logged again, so a refreshed table never doubles its rows."""
        if not name.endswith(".json"):
            raise ValueError(f"table artifact {name!r}: the name must end in .json")
        self.log_artifact_bytes(run_id, name, frame.to_json(orient="split", index=False, date_format="iso").encode())
        run = with_retry(lambda: self.client.get_run(run_id))
        listed = json.loads(run.data.tags.get(names.T_LOGGED_ARTIFACTS, "[]"))
        entry = {"path": name, "type": "table"}
        if entry not in listed:
            self.set_tags(run_id, {names.T_LOGGED_ARTIFACTS: json.dumps([*listed, entry])})

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        self.flush_spool()  # a run is closed only once its spooled metrics are in
        with_retry(lambda: self.client.set_terminated(run_id, status=status))

    def mark_failed(self, run_id: str, reason: str) -> None:
        self.set_tags(run_id, {names.T_FAILURE: reason[:4000], names.T_STATUS: "failed"})
        self.finish(run_id, "FAILED")
