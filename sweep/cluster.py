"""What changes when a sweep leaves one machine: where results live, and which MLflow stores all nodes can reach."""

from __future__ import annotations

from pathlib import Path

import ray

from sweep.tracking import is_local_store


class ClusterConfigError(ValueError):
    """A sweep that would run but lose or scatter its records on this cluster; the message says what to pass."""


def resolve_storage(path: str) -> str:
    """Remote URIs (s3://, gs://, file://) pass through untouched; a local or NFS folder becomes absolute."""
    if "://" in path:
        return path
    return str(Path(path).expanduser().resolve())


def storage_join(storage: str, name: str) -> str:
    return f"{storage.rstrip('/')}/{name}" if "://" in storage else str(Path(storage) / name)


def alive_nodes() -> int:
    return sum(1 for node in ray.nodes() if node["Alive"])


def check_tracking_store(uri: str) -> None:
    """Refuse a local-file store on several nodes: each node would write its own copy (or fail to open it)."""
    nodes = alive_nodes()
    if nodes > 1 and is_local_store(uri):
        raise ClusterConfigError(
            f"this Ray cluster has {nodes} nodes but the MLflow store {uri!r} is a local file that the other nodes "
            "cannot share; pass --tracking-uri http://MLFLOW_HOST:5000 (an MLflow server every node reaches), "
            "or set tracking_uri in the spec or MLFLOW_TRACKING_URI"
        )
