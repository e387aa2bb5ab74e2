"""The executing v2 stand-in runs a command job as AzureML's compute does (its storage Azurite)."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from himl_tasks import job_variables
from himl_tasks.backends.azureml_v2 import sdk
from himl_tasks.testing.azurite import Azurite
from tests.backends.azureml_v2_execution import (
    ExecutingAzureMLV2Service,
    executing_v2_service,
)
from tests.backends.azureml_v2_service import (
    ARTIFACT_DATASTORE,
    DEFAULT_DATASTORE,
    LOG_FILE,
    PREEMPTION_ERROR,
)
from tests.backends.job_process import Preemption
from tests.conftest import write_tree

# MLflow 3.17's SQL store (the stand-in's tracking server) uses loader options SQLAlchemy 2.1
# deprecates; the warnings are the library's.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"
)
DEADLINE_SECONDS = 180.0


@pytest.fixture
def service(azurite: Azurite) -> Iterator[ExecutingAzureMLV2Service]:
    yield from executing_v2_service(azurite)


def submit(
    service: ExecutingAzureMLV2Service, project: Path, name: str, body: str, **fields: Any
) -> str:
    """Submits `body` as `job.py`, run by `python job.py`, as the v2 backend builds jobs."""
    (project / "job.py").write_text(textwrap.dedent(body), encoding="utf-8")
    with sdk.quiet():
        job = sdk.ml().command(
            name=name,
            command=fields.pop("command", "python job.py"),
            code=str(project),
            environment="azureml:himl-env:1",
            compute="cpu-cluster",
            experiment_name="exp",
            environment_variables={job_variables.IN_JOB: job_variables.AZUREML_V2_IN_JOB},
            **fields,
        )
    service.create_job(job)
    return name


def poll_until(service: ExecutingAzureMLV2Service, name: str, statuses: set[str]) -> list[str]:
    """Polls the job's details until its status is one of `statuses`; returns those seen."""
    seen: list[str] = []
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        status = service.run_details(name)["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status in statuses:
            return seen
        time.sleep(0.2)
    raise AssertionError(f"job {name} still {seen[-1]} after {DEADLINE_SECONDS} s: {seen}")


def artifact(service: ExecutingAzureMLV2Service, job: str, name: str, tmp_path: Path) -> bytes:
    target = tmp_path / "fetched" / job
    service.store(ARTIFACT_DATASTORE).download(f"ExperimentRun/dcid.{job}/{name}", target)
    return (target / f"ExperimentRun/dcid.{job}/{name}").read_bytes()


def test_a_job_reads_its_input_writes_its_output_and_logs_to_mlflow(
    service: ExecutingAzureMLV2Service, tmp_path: Path
) -> None:
    service.store(DEFAULT_DATASTORE).upload_folder(
        write_tree(tmp_path / "raw", {"numbers.txt": b"1 2 3\n"}), "raw"
    )
    with sdk.quiet():
        entities, ml = sdk.entities(), sdk.ml()
        service.create_data(
            entities.Data(
                name="raw",
                version="1",
                type="uri_folder",
                path="azureml://datastores/workspaceblobstore/paths/raw",
            )
        )
        inputs = {"INPUT_0": ml.Input(type="uri_folder", path="azureml:raw:1", mode="download")}
        outputs = {
            "OUTPUT_0": ml.Output(
                type="uri_folder",
                path="azureml://datastores/workspaceblobstore/paths/total/${{name}}/",
                mode="rw_mount",
                name="total",
            )
        }
    project = tmp_path / "project"
    project.mkdir()
    name = submit(
        service,
        project,
        "sum-1",
        """
        import sys
        from himl_tasks.runtime import get_run_info, log_metrics
        info = get_run_info()
        numbers = (info.input_datasets[0] / "numbers.txt").read_text().split()
        total = sum(int(n) for n in numbers)
        print(f"total of {numbers}: {total}", flush=True)
        log_metrics({"total": total}, step=0)
        (info.output_datasets[0] / "total.txt").write_text(str(total))
        (info.output_folder / "result.txt").write_text(sys.argv[1])
        open("plot.png", "wb").write(b"png")
        info.run.log_image("sum plot", path="plot.png")  # hi-ml's RUN_CONTEXT
        """,
        command="python job.py ${{inputs.INPUT_0}}",
        inputs=inputs,
        outputs=outputs,
    )

    assert poll_until(service, name, {"Running"}) == ["Preparing", "Queued", "Running"]
    assert service.data("total", None) is None  # nothing registered while it runs
    seen = poll_until(service, name, {"Completed", "Failed"})

    assert seen[-2:] == ["Finalizing", "Completed"], service.run_details(name)
    assert b"total of ['1', '2', '3']: 6" in artifact(service, name, LOG_FILE, tmp_path)
    input_folder = artifact(service, name, "outputs/result.txt", tmp_path).decode()
    assert input_folder.endswith("/inputs/INPUT_0")  # ${{inputs.INPUT_0}}: its folder
    assert [(m.name, m.value, m.step) for m in service.metrics(name)] == [("total", 6.0, 0)]
    assert artifact(service, name, "images/sum_plot.png", tmp_path) == b"png"
    registered = service.data("total", None)
    assert registered is not None and registered.version == "1"
    assert str(registered.path).endswith(f"paths/total/{name}/")
    written = tmp_path / "written"
    service.store(DEFAULT_DATASTORE).download(f"total/{name}/", written)
    assert (written / "total" / name / "total.txt").read_text() == "6"


def test_a_failing_script_fails_the_job_with_the_services_error(
    service: ExecutingAzureMLV2Service, tmp_path: Path
) -> None:
    name = submit(service, tmp_path, "fails-1", "print('dividing')\n1 / 0\n")

    assert poll_until(service, name, {"Completed", "Failed"})[-1] == "Failed"
    error = service.run_details(name)["error"]["error"]
    assert error["code"] == "UserError"
    assert "exited with status code 1" in error["message"]
    assert error["message"].endswith("ZeroDivisionError: division by zero")
    assert service.data_names() == []


def test_a_cancel_kills_the_jobs_process(
    service: ExecutingAzureMLV2Service, tmp_path: Path
) -> None:
    name = submit(
        service,
        tmp_path,
        "sleeps-1",
        "import time\nprint('started', flush=True)\n"
        "open('outputs/partial.txt', 'w').write('x')\ntime.sleep(600)\n",
    )
    poll_until(service, name, {"Running"})
    job = service.executed[0]
    deadline = time.monotonic() + DEADLINE_SECONDS
    while b"started" not in (job.process.grown_log() or b"") and time.monotonic() < deadline:
        time.sleep(0.2)

    service.cancel_job(name)

    assert service.run_details(name)["status"] == "Canceled"
    assert job.process.return_code is not None  # the process is gone
    assert artifact(service, name, "outputs/partial.txt", tmp_path) == b"x"


def test_a_preempted_job_ends_failed_with_azuremls_preemption_error_and_keeps_its_outputs(
    service: ExecutingAzureMLV2Service, tmp_path: Path
) -> None:
    service.preemptions.append(Preemption("job.py", after_metric=("epoch", 2)))
    name = submit(
        service,
        tmp_path,
        "trains-1",
        """
        import time
        from himl_tasks.runtime import log_metric
        for epoch in range(100):
            open(f"outputs/recovery_epoch={epoch}.ckpt", "w").write(str(epoch))
            log_metric("epoch", epoch, step=epoch)
            time.sleep(0.3)
        """,
    )

    assert poll_until(service, name, {"Completed", "Failed"})[-1] == "Failed"
    assert service.run_details(name)["error"] == PREEMPTION_ERROR
    job = service.executed[0]
    assert job.process.return_code is not None
    assert artifact(service, name, "outputs/recovery_epoch=1.ckpt", tmp_path) == b"1"
    epochs = [m.value for m in service.metrics(name) if m.name == "epoch"]
    assert 2 <= len(epochs) < 100


def test_through_the_backend_the_log_streams_while_the_job_runs_and_a_cancel_kills_it(
    service: ExecutingAzureMLV2Service, azurite: Azurite, tmp_path: Path
) -> None:
    from himl_tasks.backends.azureml_v2 import AzureMLV2Backend
    from himl_tasks.job_spec import JobSpec
    from himl_tasks.testing.azurite import ACCOUNT_NAME

    backend = AzureMLV2Backend(service=service, account_urls={ACCOUNT_NAME: azurite.account_url})
    project = tmp_path / "project"
    project.mkdir()
    (project / "environment.yml").write_text("name: job\ndependencies:\n  - python=3.11\n")
    (project / "job.py").write_text(
        "import time\nprint('first line', flush=True)\ntime.sleep(600)\n", encoding="utf-8"
    )
    ref = backend.submit(
        JobSpec(entry_script="job.py", snapshot_root=project, compute="cpu-cluster")
    )

    log = b""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while b"first line" not in log and time.monotonic() < deadline:
        assert not backend.get_state(ref).is_terminal
        log = backend.read_log(ref, 0)
        time.sleep(0.2)
    assert backend.get_state(ref).status.value == "Running"  # streamed, not kept to the end

    backend.cancel(ref)

    assert backend.get_state(ref).status.value == "Canceled"
    assert service.executed[0].process.return_code is not None


def test_a_job_past_its_timeout_is_canceled_and_read_as_a_timeout(
    service: ExecutingAzureMLV2Service, azurite: Azurite, tmp_path: Path
) -> None:
    from himl_tasks.backends.azureml_v2 import AzureMLV2Backend
    from himl_tasks.job_spec import JobSpec
    from himl_tasks.testing.azurite import ACCOUNT_NAME

    backend = AzureMLV2Backend(service=service, account_urls={ACCOUNT_NAME: azurite.account_url})
    backend.max_poll_seconds = 0.5  # type: ignore[misc]  # the stand-in answers at once
    project = tmp_path / "project"
    project.mkdir()
    (project / "environment.yml").write_text("name: job\ndependencies:\n  - python=3.11\n")
    (project / "job.py").write_text("import time\ntime.sleep(600)\n", encoding="utf-8")
    spec = JobSpec(
        entry_script="job.py", snapshot_root=project, compute="cpu-cluster", max_run_duration=2
    )

    state = backend.wait(backend.submit(spec), timeout=DEADLINE_SECONDS)

    assert (state.status.value, getattr(state.failure_kind, "value", None)) == (
        "Canceled",
        "timeout",
    )
    assert service.executed[0].process.return_code is not None
