"""Submitting to AzureML: the real ScriptRunConfig, environment, datasets, .amlignore and tags."""

from __future__ import annotations

import stat
import textwrap
from pathlib import Path

import pytest

from himl_tasks.backends.azureml_common.environment_naming import ENVIRONMENT_NAME_PREFIX
from himl_tasks.backends.azureml_v1 import AzureMLV1Backend
from himl_tasks.datasets import DatasetConfig
from himl_tasks.errors import (
    ComputeNotFoundError,
    ConfigurationError,
    DatasetNotFoundError,
    InvalidInputError,
    SnapshotTooLargeError,
)
from himl_tasks.job_spec import JobSpec, Priority, sanitize_experiment_name
from himl_tasks.runs import read_most_recent_run
from tests.backends.azureml_service import FakeAzureMLService
from tests.backends.conftest import write_script
from tests.conftest import write_tree

CONDA = textwrap.dedent(
    """\
    name: job
    dependencies:
      - python=3.11
      - pip
      - pip:
        - numpy==2.1.0
    """
)


@pytest.fixture
def job_project(project: Path) -> Path:
    write_script(project, "train.py", "print('training')\n")
    (project / "environment.yml").write_text(CONDA)
    return project


def submitted(service: FakeAzureMLService) -> tuple[str, object, dict[str, str], list[str]]:
    return service.submitted[-1]


def test_script_run_config_holds_the_whole_job(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, job_project: Path
) -> None:
    write_tree(job_project.parent / "raw", {"a.csv": b"1,2\n"})
    aml.datastore("").upload_folder(job_project.parent / "raw", "raw_images")
    aml.datastore("").upload_folder(job_project.parent / "raw", "labels")
    aml.register_dataset("labels", "", "labels")
    aml.register_dataset("labels", "", "labels")
    spec = JobSpec(
        entry_script="train.py",
        args=["--epochs", "3", "--azureml"],
        snapshot_root=job_project,
        compute="gpu-cluster",
        num_nodes=2,
        processes_per_node=4,
        max_run_duration="3.5h",
        docker_shm_size="100g",
        input_datasets=[
            "raw_images",
            DatasetConfig("labels", version=1, use_mounting=True, target_folder=Path("/mnt/l")),
        ],
        output_datasets=["features", DatasetConfig("report", use_mounting=False)],
        environment_variables={"NCCL_DEBUG": "INFO"},
        tags={"purpose": "test"},
        priority=Priority.LOW_PRIORITY,
    )
    ref = aml.submit(spec)
    experiment, config, tags, _ = submitted(aml_service)
    run_config = config.run_config  # type: ignore[attr-defined]

    assert (experiment, ref.experiment) == ("train", "train")
    assert config.script == "train.py"  # type: ignore[attr-defined]
    assert config.arguments == ["--epochs", "3"]  # type: ignore[attr-defined]
    assert run_config.target == "gpu-cluster"
    assert run_config.node_count == 2
    assert (run_config.framework, run_config.pytorch.process_count) == ("PyTorch", 8)
    assert run_config.max_run_duration_seconds == 12600
    assert run_config.docker.shm_size == "100g"
    assert run_config.environment_variables == {
        "NCCL_DEBUG": "INFO",
        "HIML_IN_JOB": "himl_tasks.backends.azureml_v1.in_job",  # the job's in-job half
    }
    assert run_config.environment.name.startswith(ENVIRONMENT_NAME_PREFIX)

    raw, labels = run_config.data["INPUT_0"], run_config.data["INPUT_1"]
    assert (raw.mode, raw.path_on_compute) == ("download", None)
    assert (labels.mode, labels.path_on_compute) == ("mount", "/mnt/l")
    assert aml_service.datasets["raw_images"][0].version == 1  # created when missing
    assert labels.dataset is aml_service.datasets["labels"][0].dataset  # version 1 of 2
    assert raw.dataset is aml_service.datasets["raw_images"][0].dataset
    features, report = run_config.output_data["OUTPUT_0"], run_config.output_data["OUTPUT_1"]
    assert (features.mode, report.mode) == ("mount", "upload")
    assert features.destination[1] == "features/{run-id}/"
    assert features._registration.name == "features"
    assert report._registration.name == "report"

    assert tags["commandline"]
    assert (tags["purpose"], tags["priority"]) == ("test", "low_priority")
    assert read_most_recent_run(job_project / "most_recent_run.txt") == ref.recovery_id
    assert ref.portal_url.startswith("https://ml.azure.com/runs/" + ref.run_id)


def test_input_version_is_the_one_asked_for(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, job_project: Path
) -> None:
    write_tree(job_project / "data", {"x.txt": b"x"})
    aml.datastore("").upload_folder(job_project / "data", "images")
    for _ in range(3):
        aml.register_dataset("images", "", "images")
    for version, expected in ((None, 3), (2, 2)):
        spec = JobSpec(
            entry_script="train.py", snapshot_root=job_project, compute="cpu-cluster",
            input_datasets=[DatasetConfig("images", version=version)],
        )  # fmt: skip
        aml.submit(spec)
        consumption = submitted(aml_service)[1].run_config.data["INPUT_0"]  # type: ignore[attr-defined]
        assert consumption.dataset is aml_service.datasets["images"][expected - 1].dataset
        assert aml.resolve_dataset(DatasetConfig("images", version=version)).version == expected
    with pytest.raises(DatasetNotFoundError, match="no version 7"):
        aml.resolve_dataset(DatasetConfig("images", version=7))
    with pytest.raises(DatasetNotFoundError, match="no folder 'missing/'"):
        aml.resolve_dataset(DatasetConfig("missing"))


def test_an_unchanged_environment_is_reused_and_a_changed_one_registered(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, job_project: Path
) -> None:
    spec = JobSpec(entry_script="train.py", snapshot_root=job_project, compute="cpu-cluster")
    aml.submit(spec)
    aml.submit(spec)
    first = submitted(aml_service)[1].run_config.environment.name  # type: ignore[attr-defined]
    assert aml_service.environment_registrations == 1

    (job_project / "environment.yml").write_text(CONDA.replace("2.1.0", "2.2.0"))
    aml.submit(spec)
    second = submitted(aml_service)[1].run_config.environment.name  # type: ignore[attr-defined]
    assert second != first
    assert aml_service.environment_registrations == 2

    image = JobSpec(
        entry_script="train.py", snapshot_root=job_project, compute="cpu-cluster",
        docker_base_image="mcr.microsoft.com/azureml/base:1",
        pip_extra_index_url="https://pkgs.example.org/simple",
    )  # fmt: skip
    aml.submit(image)
    environment = submitted(aml_service)[1].run_config.environment  # type: ignore[attr-defined]
    assert environment.docker.base_image == "mcr.microsoft.com/azureml/base:1"
    conda_text = environment.python.conda_dependencies.serialize_to_string()
    assert "--extra-index-url https://pkgs.example.org/simple" in conda_text
    assert environment.name not in (first, second)


def test_the_conda_file_is_found_upward_and_a_private_wheel_is_added(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, job_project: Path
) -> None:
    write_script(job_project, "src/jobs/run.py", "print(1)\n")
    wheel = job_project.parent / "mylib-1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK fake wheel")
    spec = JobSpec(
        entry_script="src/jobs/run.py", snapshot_root=job_project, compute="cpu-cluster",
        private_pip_wheel_path=wheel,
    )  # fmt: skip
    aml.submit(spec)
    environment = submitted(aml_service)[1].run_config.environment  # type: ignore[attr-defined]
    conda_text = environment.python.conda_dependencies.serialize_to_string()
    assert "numpy==2.1.0" in conda_text  # the project's environment.yml, two folders up
    assert "azureml-private-packages/mylib-1.0-py3-none-any.whl" in conda_text
    assert aml_service.wheels == [wheel.name]


def test_a_registered_environment_is_used_by_name(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, job_project: Path
) -> None:
    from azureml.core import Environment

    aml_service.register_environment(Environment("team-env"))
    spec = JobSpec(
        entry_script="train.py", snapshot_root=job_project, compute="cpu-cluster",
        environment_name="team-env",
    )  # fmt: skip
    aml.submit(spec)
    assert submitted(aml_service)[1].run_config.environment.name == "team-env"  # type: ignore[attr-defined]
    missing = JobSpec(
        entry_script="train.py", snapshot_root=job_project, compute="cpu-cluster",
        environment_name="nope",
    )  # fmt: skip
    with pytest.raises(ConfigurationError, match="no environment 'nope'"):
        aml.submit(missing)


def test_amlignore_holds_the_rules_during_submission_and_is_restored(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, job_project: Path
) -> None:
    write_tree(job_project, {"data/big.bin": b"0" * 10, ".venv/lib.py": b"", "config.json": b"{}",
                             "notes/n.txt": b"n", "scratch/s.txt": b"s",
                             "tools/py311/pyvenv.cfg": b"", "tools/py311/x.py": b""})  # fmt: skip
    user_rules = b"# mine\r\nscratch/\n!config.json\n"
    ignore = job_project / ".amlignore"
    ignore.write_bytes(user_rules)
    ignore.chmod(0o640)
    spec = JobSpec(
        entry_script="train.py", snapshot_root=job_project, compute="cpu-cluster",
        ignored_folders=["data"],
    )  # fmt: skip
    aml.submit(spec)
    snapshot = submitted(aml_service)[3]
    assert "train.py" in snapshot and "notes/n.txt" in snapshot
    for excluded in ("data/big.bin", ".venv/lib.py", "config.json", "scratch/s.txt",
                     "tools/py311/x.py"):  # fmt: skip
        assert excluded not in snapshot
    assert ignore.read_bytes() == user_rules
    assert stat.S_IMODE(ignore.stat().st_mode) == 0o640

    aml_service.fail_next_submit = RuntimeError("the service refused the snapshot")
    with pytest.raises(RuntimeError):
        aml.submit(spec)
    assert ignore.read_bytes() == user_rules
    assert sorted(p.name for p in job_project.glob(".amlignore*")) == [".amlignore"]

    ignore.unlink()
    aml_service.fail_next_submit = RuntimeError("again")
    with pytest.raises(RuntimeError):
        aml.submit(spec)
    assert not list(job_project.glob(".amlignore*"))


def test_a_submission_killed_half_way_is_repaired_by_the_next(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, job_project: Path
) -> None:
    (job_project / ".amlignore").write_text("written by the dead submission\n")
    (job_project / ".amlignore.himl-original").write_bytes(b"users own\n")
    aml.submit(JobSpec(entry_script="train.py", snapshot_root=job_project, compute="cpu-cluster"))
    assert (job_project / ".amlignore").read_bytes() == b"users own\n"
    assert not (job_project / ".amlignore.himl-original").exists()


def test_experiment_name_precedence_and_sanitising(
    aml: AzureMLV1Backend, job_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = JobSpec(entry_script="train.py", snapshot_root=job_project, compute="cpu-cluster")
    monkeypatch.delenv("HIML_EXPERIMENT_NAME", raising=False)
    assert aml.submit(base).experiment == "train"
    monkeypatch.setenv("HIML_EXPERIMENT_NAME", "nightly run/v2")
    assert aml.submit(base).experiment == "nightly_run_v2"
    named = JobSpec(
        entry_script="train.py", snapshot_root=job_project, compute="cpu-cluster",
        experiment="  --my exp.1",
    )  # fmt: skip
    assert aml.submit(named).experiment == "my_exp_1"
    assert sanitize_experiment_name("a" * 300) == "a" * 255
    with pytest.raises(InvalidInputError):
        sanitize_experiment_name("///")


def test_bad_jobs_fail_before_anything_is_sent(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, job_project: Path
) -> None:
    def spec(**changes: object) -> JobSpec:
        fields: dict[str, object] = {
            "entry_script": "train.py", "snapshot_root": job_project, "compute": "cpu-cluster"
        }  # fmt: skip
        return JobSpec(**{**fields, **changes})  # type: ignore[arg-type]

    with pytest.raises(InvalidInputError, match="needs a compute cluster"):
        aml.submit(spec(compute=""))
    with pytest.raises(ComputeNotFoundError, match="no compute cluster 'tpu'"):
        aml.submit(spec(compute="tpu"))
    with pytest.raises(InvalidInputError, match="does not exist"):
        aml.submit(spec(entry_script="missing.py"))
    with pytest.raises(InvalidInputError, match="not a duration"):
        spec(max_run_duration="3 hours")
    write_tree(job_project, {f"many/{i}.txt": b"x" for i in range(2001)})
    with pytest.raises(SnapshotTooLargeError, match="many/"):
        aml.submit(spec())
    assert aml_service.submitted == []
    assert not (job_project / ".amlignore").exists()


def test_an_empty_module_beside_a_script_runs_the_script(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, job_project: Path
) -> None:
    # A Prefect parameter or a JSON form carries "no module" as "".
    spec = JobSpec(
        entry_script="train.py", module="", snapshot_root=job_project, compute="gpu-cluster"
    )
    assert spec.module is None

    aml.submit(spec)

    _, config, _, _ = submitted(aml_service)
    assert config.script == "train.py"  # type: ignore[attr-defined]
