"""AzureML SDK v2 against a real workspace, when one is configured (else skipped, saying why).

Set HIML_SUBSCRIPTION_ID, HIML_RESOURCE_GROUP, HIML_WORKSPACE_NAME (and a service principal:
HIML_SERVICE_PRINCIPAL_ID, HIML_SERVICE_PRINCIPAL_PASSWORD, HIML_TENANT_ID, or sign in with
`az login`) and HIML_TEST_COMPUTE (a CPU cluster's name, or `serverless`), then run
`pytest -m azure tests/backends/test_azureml_v2_live.py`. Without them these tests are
skipped, and the skip says why. Reading the job's metrics here also needs the
`azureml-mlflow` plugin installed (not a dependency of himl-tasks); that test says so.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import uuid
from pathlib import Path

import pytest

from himl_tasks.datasets import DatasetConfig
from himl_tasks.job_spec import JobSpec
from himl_tasks.runs import RunRef, RunStatus
from tests.backends.conftest import write_script
from tests.conftest import read_tree, write_tree

NEEDED = ("HIML_SUBSCRIPTION_ID", "HIML_RESOURCE_GROUP", "HIML_WORKSPACE_NAME", "HIML_TEST_COMPUTE")
PACKAGE = Path(__file__).resolve().parents[2] / "himl_tasks"
MISSING = [name for name in NEEDED if not os.environ.get(name)]

pytestmark = [
    pytest.mark.azure,
    pytest.mark.skipif(
        bool(MISSING), reason=f"no AzureML workspace configured: {', '.join(MISSING)} not set"
    ),
]


@pytest.fixture(scope="module")
def live() -> object:
    from himl_tasks.backends.azureml_v2 import AzureMLV2Backend

    return AzureMLV2Backend()  # the workspace and sign-in found as the README says


@pytest.fixture(scope="module")
def completed(live: object, tmp_path_factory: pytest.TempPathFactory) -> tuple[RunRef, JobSpec]:
    """A command job that read an input data asset, wrote a file and logged a metric."""
    from himl_tasks.backends.azureml_v2 import AzureMLV2Backend

    assert isinstance(live, AzureMLV2Backend)
    tmp_path = tmp_path_factory.mktemp("live")
    name = f"himl_live_{uuid.uuid4().hex[:8]}"
    write_tree(tmp_path / "data", {"a.txt": b"hello"})
    live.datastore("").upload_folder(tmp_path / "data", name)
    project = tmp_path / "project"
    write_script(project, "job.py", """\
        from pathlib import Path
        from himl_tasks.runtime import get_run_info, log_metric
        info = get_run_info()
        text = (info.input_datasets[0] / "a.txt").read_text()
        Path("outputs").mkdir(exist_ok=True)
        Path("outputs/echo.txt").write_text(text)
        log_metric("length", len(text))
    """)  # fmt: skip
    shutil.copytree(PACKAGE, project / "himl_tasks")  # the job imports himl_tasks.runtime
    (project / "environment.yml").write_text(
        "name: live\ndependencies:\n  - python=3.11\n  - pip\n  - pip:\n"
        "    - mlflow-skinny\n    - azureml-mlflow\n"
    )
    spec = JobSpec(
        entry_script="job.py", snapshot_root=project, compute=os.environ["HIML_TEST_COMPUTE"],
        input_datasets=[DatasetConfig(name)], max_run_duration="1h",
    )  # fmt: skip
    ref = live.submit(spec)
    state = live.wait(ref, timeout=3600, poll=15)
    assert state.status is RunStatus.COMPLETED, state.error
    return ref, spec


def test_a_command_job_reads_a_data_asset_and_its_files_come_back(
    live: object, completed: tuple[RunRef, JobSpec], tmp_path: Path
) -> None:
    from himl_tasks.backends.azureml_v2 import AzureMLV2Backend

    assert isinstance(live, AzureMLV2Backend)
    ref, spec = completed
    live.download_files(ref, "outputs/", tmp_path / "run", validate_checksum=True)
    assert read_tree(tmp_path / "run/outputs") == {"echo.txt": b"hello"}
    assert live.submitted_spec(ref) == spec  # kept for `himl resubmit`
    assert ref.run_id in [r.state.ref.run_id for r in live.list_runs(ref.experiment)]


@pytest.mark.skipif(
    importlib.util.find_spec("azureml.mlflow") is None,
    reason="reading a v2 job's metrics needs the azureml-mlflow plugin: pip install azureml-mlflow",
)
def test_the_job_s_metric_comes_back_from_mlflow(
    live: object, completed: tuple[RunRef, JobSpec]
) -> None:
    from himl_tasks.backends.azureml_v2 import AzureMLV2Backend

    assert isinstance(live, AzureMLV2Backend)
    ref, _ = completed
    assert [m.value for m in live.get_metrics(ref) if m.name == "length"] == [5.0]


# ---- pipelines (issue 16): what the stand-in's pipeline behaviour rests on -----------------

PREP_SCRIPT = """\
    from himl_tasks.runtime import get_run_info
    info = get_run_info()
    text = (info.input_datasets[0] / "a.txt").read_text()
    (info.output_datasets[0] / "features.txt").write_text(text.upper())
"""
TRAIN_SCRIPT = """\
    from pathlib import Path
    from himl_tasks.runtime import get_run_info
    text = (get_run_info().input_datasets[0] / "features.txt").read_text()
    Path("outputs").mkdir(exist_ok=True)
    Path("outputs/trained.txt").write_text(text)
"""


@pytest.fixture(scope="module")
def live_pipeline(live: object, tmp_path_factory: pytest.TempPathFactory) -> object:
    """prep (reads a data asset, writes `features`) then train (reads `features`)."""
    from himl_tasks.backends.azureml_v2 import AzureMLV2Backend
    from himl_tasks.pipelines import PipelineSpec, PipelineStep

    assert isinstance(live, AzureMLV2Backend)
    tmp_path = tmp_path_factory.mktemp("live-pipeline")
    suffix = uuid.uuid4().hex[:8]
    raw, features = f"himl_live_raw_{suffix}", f"himl_live_features_{suffix}"
    write_tree(tmp_path / "data", {"a.txt": b"hello"})
    live.datastore("").upload_folder(tmp_path / "data", raw)
    steps = []
    for step, script, inputs, outputs in (
        ("prep", PREP_SCRIPT, [raw], [features]),
        ("train", TRAIN_SCRIPT, [features], []),
    ):
        project = tmp_path / step
        write_script(project, f"{step}.py", script)
        shutil.copytree(PACKAGE, project / "himl_tasks")
        (project / "environment.yml").write_text("name: live\ndependencies:\n  - python=3.11\n")
        spec = JobSpec(
            entry_script=f"{step}.py", snapshot_root=project,
            compute=os.environ["HIML_TEST_COMPUTE"], max_run_duration="1h",
            input_datasets=[DatasetConfig(n) for n in inputs],
            output_datasets=[DatasetConfig(n) for n in outputs],
        )  # fmt: skip
        steps.append(PipelineStep(step, spec))
    return PipelineSpec(f"himl_live_{suffix}", steps, existing_datasets=[raw])


def test_a_pipeline_runs_its_steps_as_child_jobs_and_hands_on_the_version(
    live: object, live_pipeline: object
) -> None:
    from himl_tasks.backends.azureml_v2 import AzureMLV2Backend
    from himl_tasks.pipelines import PipelineSpec

    assert isinstance(live, AzureMLV2Backend) and isinstance(live_pipeline, PipelineSpec)
    ref = live.submit_pipeline(live_pipeline)
    state = live.wait(ref, timeout=3600, poll=15)
    assert state.status is RunStatus.COMPLETED, state.error

    steps = live.pipeline_steps(ref)
    assert [s.step for s in steps] == ["prep", "train"]
    prep, train = (s.run for s in steps)
    assert prep is not None and train is not None
    assert set(live.child_runs(ref)) == {prep, train}
    # Rests on: node tags reach the child jobs; the run details name inputs and outputs.
    (features,) = live.run_outputs(prep)
    assert live.run_inputs(train) == [features]
    assert live.submitted_pipeline(ref) == live_pipeline

    # Rests on: AzureML reuses an unchanged node and says so (azureml.isreused/reusedrunid).
    again = live.submit_pipeline(live_pipeline)
    assert live.wait(again, timeout=3600, poll=15).status is RunStatus.COMPLETED
    reused = live.pipeline_steps(again)
    assert [s.reused_from for s in reused] == [prep, train]
    assert live.run_outputs(reused[0].run) == [features]  # type: ignore[arg-type]


def test_a_pipeline_is_published_scheduled_and_removed(live: object, live_pipeline: object) -> None:
    from himl_tasks.backends.azureml_v2 import AzureMLV2Backend
    from himl_tasks.pipeline_runs import PipelineSchedule
    from himl_tasks.pipelines import PipelineSpec

    assert isinstance(live, AzureMLV2Backend) and isinstance(live_pipeline, PipelineSpec)
    published = live.publish_pipeline(live_pipeline, description="live test")
    assert live.publish_pipeline(live_pipeline) == published  # unchanged: the same version
    schedule = PipelineSchedule(
        f"{live_pipeline.name}_nightly", published.name, "0 2 1 1 *", timezone="Europe/London"
    )
    try:
        made = live.schedule_pipeline(schedule)
        assert made.id and made in live.pipeline_schedules()
    finally:
        live.remove_pipeline_schedule(schedule.name)
    assert schedule.name not in [s.name for s in live.pipeline_schedules()]
    ref = live.submit_published_pipeline(published.name)
    assert live.wait(ref, timeout=3600, poll=15).status is RunStatus.COMPLETED
