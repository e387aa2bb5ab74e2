"""The same flows against a real AzureML workspace, when one is configured.

Set HIML_SUBSCRIPTION_ID, HIML_RESOURCE_GROUP, HIML_WORKSPACE_NAME (and a service principal,
or sign in with `az login`) and HIML_TEST_COMPUTE, the name of a CPU cluster, then run
`pytest -m azure`. Without them these tests are skipped, and the skip says why.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

from himl_tasks.datasets import DatasetConfig
from himl_tasks.job_spec import JobSpec
from himl_tasks.pipelines import PipelineSpec, PipelineStep
from himl_tasks.runs import RunStatus
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
    from himl_tasks.backends.azureml_v1 import AzureMLV1Backend

    return AzureMLV1Backend()


def test_upload_create_dataset_run_and_download(live: object, tmp_path: Path) -> None:
    from himl_tasks.backends.azureml_v1 import AzureMLV1Backend

    assert isinstance(live, AzureMLV1Backend)
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
        "    - azureml-defaults\n    - azureml-dataset-runtime[fuse]\n"
    )
    spec = JobSpec(
        entry_script="job.py", snapshot_root=project, compute=os.environ["HIML_TEST_COMPUTE"],
        input_datasets=[DatasetConfig(name)], max_run_duration="1h",
    )  # fmt: skip
    ref = live.submit(spec)
    state = live.wait(ref, timeout=3600, poll=15)
    assert state.status is RunStatus.COMPLETED, state.error
    live.download_files(ref, "outputs/", tmp_path / "run", validate_checksum=True)
    assert read_tree(tmp_path / "run/outputs") == {"echo.txt": b"hello"}
    assert [m.value for m in live.get_metrics(ref) if m.name == "length"] == [5.0]


def test_a_himl_example_runs_with_the_azureml_flag(tmp_path: Path) -> None:
    """hi-ml's example 3 (examples/3): `--azureml` submits it, results.py brings its file."""
    import subprocess
    import sys

    example = tmp_path / "example"
    shutil.copytree(PACKAGE.parent / "examples" / "3", example)
    shutil.copytree(PACKAGE, example / "himl_tasks")  # the job imports himl_tasks
    sample = example / "sample.py"
    sample.write_text(
        sample.read_text().replace('"cpu-cluster"', repr(os.environ["HIML_TEST_COMPUTE"]))
    )
    (example / "environment.yml").write_text(
        "name: live\ndependencies:\n  - python=3.11\n  - pip\n  - pip:\n"
        "    - azureml-defaults\n    - azureml-dataset-runtime[fuse]\n"
    )
    subprocess.run([sys.executable, "sample.py", "-n", "50"], cwd=example, timeout=120, check=True)
    expected = (example / "outputs/primes.txt").read_bytes()
    shutil.rmtree(example / "outputs")
    subprocess.run(
        [sys.executable, "sample.py", "--azureml", "-n", "50"],
        cwd=example, timeout=3600, check=True,
    )  # fmt: skip
    subprocess.run([sys.executable, "results.py"], cwd=example, timeout=600, check=True)
    run_id = (example / "most_recent_run.txt").read_text().strip().split(":")[-1]
    assert (example / "downloads" / run_id / "outputs/primes.txt").read_bytes() == expected


def live_chain(project: Path, name: str) -> PipelineSpec:
    """prep (writes a file into `<name>_features`) -> train (reads it) on the live cluster."""

    environment = (
        "name: live\ndependencies:\n  - python=3.11\n  - pip\n  - pip:\n"
        "    - azureml-defaults\n    - azureml-dataset-runtime[fuse]\n"
    )
    steps = []
    for step, body in (
        ("prep", "(info.output_datasets[0] / 'part.txt').write_text('features')"),
        ("train", "assert (info.input_datasets[0] / 'part.txt').read_text() == 'features'"),
    ):
        folder = project / step
        write_script(folder, f"{step}.py", f"""\
            from himl_tasks.runtime import get_run_info
            info = get_run_info()
            {body}
        """)  # fmt: skip
        shutil.copytree(PACKAGE, folder / "himl_tasks")
        (folder / "environment.yml").write_text(environment)
        features = f"{name}_features"
        spec = JobSpec(
            entry_script=f"{step}.py", snapshot_root=folder,
            compute=os.environ["HIML_TEST_COMPUTE"], max_run_duration="1h",
            output_datasets=[features] if step == "prep" else [],
            input_datasets=[features] if step == "train" else [],
        )  # fmt: skip
        steps.append(PipelineStep(step, spec))
    return PipelineSpec(name, steps)


def test_a_native_pipeline_runs_and_is_reused_when_submitted_again(
    live: object, tmp_path: Path
) -> None:
    """The v1 pipeline on AzureML itself: step graph, outputs handed on, reuse, idempotency.

    What the stand-in assumes and this checks: the pipeline run's description is the
    Pipeline's (the submission id travels in it), step runs are named after their steps, a
    reused step run carries `azureml.reusedrunid`, and `inputDatasets` lists the versions read.
    """
    from himl_tasks.backends.azureml_v1 import AzureMLV1Backend

    assert isinstance(live, AzureMLV1Backend)
    name = f"himl-live-{uuid.uuid4().hex[:8]}"
    pipeline = live_chain(tmp_path, name)
    submission = f"live-{uuid.uuid4().hex}"

    ref = live.submit_pipeline(pipeline, submission_id=submission)
    assert live.submit_pipeline(pipeline, submission_id=submission) == ref
    assert live.wait(ref, timeout=3600, poll=15).status is RunStatus.COMPLETED
    prep, train = live.pipeline_steps(ref)
    assert prep.run is not None and train.run is not None
    assert live.run_inputs(train.run) == live.run_outputs(prep.run)

    again = live.submit_pipeline(pipeline)
    assert live.wait(again, timeout=3600, poll=15).status is RunStatus.COMPLETED
    assert [s.reused_from for s in live.pipeline_steps(again)] == [prep.run, train.run]


def test_a_pipeline_is_published_scheduled_and_unscheduled(live: object, tmp_path: Path) -> None:
    from himl_tasks.backends.azureml_v1 import AzureMLV1Backend
    from himl_tasks.pipeline_runs import PipelineSchedule

    assert isinstance(live, AzureMLV1Backend)
    name = f"himl-live-{uuid.uuid4().hex[:8]}"
    pipeline = live_chain(tmp_path, name)

    published = live.publish_pipeline(pipeline, description="live test")
    assert live.publish_pipeline(pipeline, description="live test") == published
    schedule = live.schedule_pipeline(PipelineSchedule(name, name, "0 3 * * 6"))
    try:
        assert schedule in live.pipeline_schedules()
    finally:
        live.remove_pipeline_schedule(name)
    assert all(s.name != name for s in live.pipeline_schedules())
