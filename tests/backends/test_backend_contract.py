"""The Backend contract (himl_tasks.testing) against the local backend and AzureML v1 and v2.

The local backend runs each contract job as a real script in a real subprocess. AzureML v1
runs against the service stand-in (azureml_service.py), AzureML v2 against its own
(azureml_v2_service.py); each gives a run the behaviour the job describes; waiting polls it,
and each poll moves a run one AzureML status on.
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from himl_tasks.backends.azureml_v1 import AzureMLV1Backend
from himl_tasks.backends.azureml_v2 import AzureMLV2Backend
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.job_spec import JobSpec
from himl_tasks.runs import RunRef, RunState
from himl_tasks.testing.backend_contract import (
    DEADLINE_SECONDS,
    BackendContract,
    BackendHarness,
    Job,
)
from tests.backends import azureml_v2_service as v2
from tests.backends.azureml_service import SCRIPT_ERROR, FakeAzureMLService, Outcome
from tests.backends.conftest import write_script

# The local job: does what its Job says, as a user's script would.
LOCAL_JOB = """
import base64, sys, time
from pathlib import Path
from himl_tasks.runtime import get_run_info, log_metrics

for line in {log_lines!r}:
    print(line, flush=True)
for name, data in {files!r}.items():
    Path(name).parent.mkdir(parents=True, exist_ok=True)
    Path(name).write_bytes(base64.b64decode(data))
for name, values in {metrics!r}.items():
    for step, value in enumerate(values):
        log_metrics({{name: value}}, step=step)
for folder in get_run_info().output_datasets:
    (folder / "part.txt").write_text("features")
if {keeps_running!r}:
    time.sleep(600)
if {exit_code!r}:
    print("the job failed", file=sys.stderr)
    sys.exit({exit_code!r})
"""


class LocalHarness(BackendHarness):
    """Jobs are scripts in a project folder, run by a local workspace."""

    def __init__(self, backend: LocalBackend, project: Path) -> None:
        self.local = backend
        self.project = project
        self.scripts = itertools.count(1)

    @property
    def backend(self) -> LocalBackend:
        return self.local

    def job_spec(self, job: Job, *, trials: int = 0) -> JobSpec:
        files = {name: base64.b64encode(data).decode() for name, data in job.files.items()}
        number = next(self.scripts)
        script = write_script(
            self.project / f"job{number}",
            f"job{number}.py",
            LOCAL_JOB.format(
                log_lines=job.log_lines,
                files=files,
                metrics=dict(job.metrics),
                keeps_running=job.keeps_running,
                exit_code=job.exit_code,
            ),
        )
        return JobSpec(
            entry_script=script.name,
            snapshot_root=script.parent,
            input_datasets=list(job.input_datasets),
            output_datasets=list(job.output_datasets),
        )

    def settle(self, ref: RunRef) -> RunState:
        return self.local.wait(ref, timeout=DEADLINE_SECONDS)


class StandInHarness(BackendHarness):
    """Jobs are behaviours an AzureML service stand-in gives the jobs of their entry script."""

    poll_seconds = 0.0  # the stand-in moves a run on when it is polled, not with time

    def __init__(
        self,
        backend: AzureMLV1Backend | AzureMLV2Backend,
        service: FakeAzureMLService | v2.FakeAzureMLV2Service,
        project: Path,
    ) -> None:
        self.aml = backend
        self.service = service
        self.project = project
        self.scripts = itertools.count(1)

    @property
    def backend(self) -> AzureMLV1Backend | AzureMLV2Backend:
        return self.aml

    def job_spec(self, job: Job, *, trials: int = 0) -> JobSpec:
        number = next(self.scripts)
        folder = self.project / f"job{number}"
        script = write_script(folder, f"job{number}.py", "print('job')\n")
        write_script(folder, "environment.yml", "name: job\ndependencies:\n  - python=3.11\n")
        run = self._outcome(job)
        self.service.outcomes[script.name] = dataclasses.replace(run, children=(run,) * trials)
        return JobSpec(
            entry_script=script.name,
            snapshot_root=folder,
            compute="cpu-cluster",
            input_datasets=list(job.input_datasets),
            output_datasets=list(job.output_datasets),
        )

    @staticmethod
    def _outcome(job: Job) -> Any:
        """The stand-in's behaviour for `job` (its service's Outcome)."""
        raise NotImplementedError

    def settle(self, ref: RunRef) -> RunState:
        return self.aml.wait(ref, timeout=DEADLINE_SECONDS, poll=0)


class AzureMLV1Harness(StandInHarness):
    """Jobs are behaviours the v1 service stand-in gives the runs of their entry script."""

    @staticmethod
    def _outcome(job: Job) -> Outcome:
        statuses = Outcome().statuses  # AzureML's path to Completed
        error = None
        if job.keeps_running:
            statuses = ("NotStarted", "Queued", "Preparing", "Running")  # until canceled
        elif job.exit_code:
            statuses = ("NotStarted", "Queued", "Preparing", "Running", "Failed")
            # The service's error for a script that exited non-zero, with this job's code.
            message = SCRIPT_ERROR["error"]["message"]
            code = f"status code {job.exit_code}"
            error = {
                "error": {
                    **SCRIPT_ERROR["error"],
                    "message": message.replace("status code 1", code),
                }
            }
        return Outcome(
            statuses=statuses,
            error=error,
            log_lines=job.log_lines,
            files=dict(job.files),
            metrics={name: list(values) for name, values in job.metrics.items()},
        )


class AzureMLV2Harness(StandInHarness):
    """Jobs are behaviours the v2 service stand-in gives the jobs of their entry script."""

    @staticmethod
    def _outcome(job: Job) -> v2.Outcome:
        statuses, error = v2.TO_COMPLETED, None  # the service's path to Completed
        if job.keeps_running:
            statuses = v2.KEEPS_RUNNING  # until canceled
        elif job.exit_code:
            statuses, error = v2.TO_FAILED, v2.script_error(job.exit_code)
        return v2.Outcome(
            statuses=statuses,
            error=error,
            log_lines=job.log_lines,
            files=dict(job.files),
            metrics={name: list(values) for name, values in job.metrics.items()},
        )


def local_harness(tmp_path: Path) -> Iterator[LocalHarness]:
    """A harness on a fresh local workspace; a test that failed half-way leaves no job running."""
    project = tmp_path / "project"
    project.mkdir()
    backend = LocalBackend(tmp_path / "workspace")
    yield LocalHarness(backend, project)
    for run in backend.registry.runs():
        if not run.status.is_terminal:
            backend.cancel(backend.get_run_ref(run.run_id))


class TestLocalBackend(BackendContract):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> Iterator[BackendHarness]:
        yield from local_harness(tmp_path)


class TestAzureMLV1Backend(BackendContract):
    @pytest.fixture
    def harness(
        self, aml: AzureMLV1Backend, aml_service: FakeAzureMLService, tmp_path: Path
    ) -> BackendHarness:
        project = tmp_path / "project"
        project.mkdir()
        return AzureMLV1Harness(aml, aml_service, project)


class TestAzureMLV2Backend(BackendContract):
    @pytest.fixture
    def harness(
        self, aml_v2: AzureMLV2Backend, aml_v2_service: v2.FakeAzureMLV2Service, tmp_path: Path
    ) -> BackendHarness:
        project = tmp_path / "project"
        project.mkdir()
        return AzureMLV2Harness(aml_v2, aml_v2_service, project)
