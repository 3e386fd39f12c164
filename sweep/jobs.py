"""`esweep submit / jobs / logs / stop`: a sweep as a Ray Job, its driver running on the cluster, not here.

The job carries this project's code and the spec file in its runtime_env, so the cluster runs exactly what was
submitted; credentials are not sent along (they would be readable through the Jobs API): the cluster's nodes hold
them in their own environment.
"""

from __future__ import annotations

import asyncio
import secrets
import shlex
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from ray.exceptions import RayError
from ray.job_submission import JobStatus, JobSubmissionClient

from sweep.spec import SweepSpec, builtin_specs, load_spec

PACKAGES = ("sweep", "trainers", "evaluators")
PROJECT_FILES = ("pyproject.toml",)
SPEC_IN_JOB = "esweep-spec.yaml"
TERMINAL = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}


class JobsError(RuntimeError):
    """The Jobs API could not be reached or refused us (e.g. no token); the message is Ray's."""


def _client(address: str) -> JobSubmissionClient:
    try:
        return JobSubmissionClient(address)
    except (ConnectionError, RuntimeError, RayError) as exc:  # unreachable, refused, or no/wrong token
        raise JobsError(f"Ray Jobs API at {address}: {str(exc).strip().splitlines()[-1]}") from None


def project_root() -> Path:
    return Path(__file__).resolve().parent.parent


def _source_files(root: Path) -> Iterator[Path]:
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                yield path
    for name in PROJECT_FILES:
        if (root / name).exists():
            yield root / name


def build_working_dir(spec: str, dest: Path) -> tuple[Path, str]:
    """A zip of the project's packages plus the spec file; returns it and the spec argument for the job."""
    root = project_root()
    archive = dest / "esweep-job.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in _source_files(root):
            zf.write(path, path.relative_to(root).as_posix())
        if spec in builtin_specs() and not Path(spec).exists():
            spec_arg = spec
        else:
            zf.write(Path(spec), SPEC_IN_JOB)
            spec_arg = SPEC_IN_JOB
    return archive, spec_arg


def entrypoint(spec_arg: str, tracking_uri: str | None, storage_path: str | None) -> str:
    cmd = ["esweep", "run", spec_arg, "--address", "auto"]
    if tracking_uri:
        cmd += ["--tracking-uri", tracking_uri]
    if storage_path:
        cmd += ["--storage-path", storage_path]
    return shlex.join(cmd)


def submit(address: str, spec: str, tracking_uri: str | None = None, storage_path: str | None = None) -> str:
    """Validate the spec here, then submit it; returns the job id."""
    parsed: SweepSpec = load_spec(spec)
    client = _client(address)
    with tempfile.TemporaryDirectory() as tmp:
        archive, spec_arg = build_working_dir(spec, Path(tmp))
        return client.submit_job(
            entrypoint=entrypoint(spec_arg, tracking_uri, storage_path),
            submission_id=f"esweep-{parsed.name}-{secrets.token_hex(4)}",
            runtime_env={"working_dir": str(archive)},
            metadata={"esweep.spec_name": parsed.name},
        )


def list_jobs(address: str) -> list[tuple[str, str, str]]:
    """(job id, status, entrypoint), newest first."""
    jobs = _client(address).list_jobs()
    jobs.sort(key=lambda j: j.start_time or 0, reverse=True)
    return [(j.submission_id or j.job_id or "-", str(j.status.value), j.entrypoint) for j in jobs]


def job_logs(address: str, job_id: str) -> str:
    return _client(address).get_job_logs(job_id)


def follow_logs(address: str, job_id: str, write) -> None:
    async def tail() -> None:
        async for chunk in _client(address).tail_job_logs(job_id):
            write(chunk)

    asyncio.run(tail())


def stop_job(address: str, job_id: str) -> bool:
    return _client(address).stop_job(job_id)


def job_status(address: str, job_id: str) -> JobStatus:
    return _client(address).get_job_status(job_id)
