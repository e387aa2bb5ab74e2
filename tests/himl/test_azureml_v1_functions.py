"""hi-ml's create_run_configuration, create_script_run and submit_run, on the AzureML stand-in."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from himl_tasks.backends.azureml_v1 import AzureMLV1Backend
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.datasets import DatasetConfig
from himl_tasks.errors import ComputeNotFoundError, InvalidInputError, JobFailedError
from himl_tasks.himl import create_run_configuration, create_script_run, submit_run
from himl_tasks.secret_reference import SecretReference
from tests.backends.azureml_service import SCRIPT_ERROR, FakeAzureMLService, Outcome
from tests.backends.conftest import write_script
from tests.conftest import write_tree

CONDA = "name: job\ndependencies:\n  - python=3.11\n  - pip:\n    - numpy\n"


@pytest.fixture
def conda_file(cwd_project: Path) -> Path:
    path = cwd_project / "environment.yml"
    path.write_text(CONDA)
    return path


def test_the_run_configuration_holds_what_hi_ml_puts_in_it(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, conda_file: Path, tmp_path: Path
) -> None:
    aml.datastore("").upload_folder(write_tree(tmp_path / "in", {"x.csv": b"x"}), "images")

    config = create_run_configuration(
        aml,
        "gpu-cluster",
        conda_environment_file=conda_file,
        environment_variables={"MKL_SERVICE_FORCE_INTEL": "0", "SEED": "1"},
        docker_shm_size="16g",
        num_nodes=2,
        max_run_duration="1.5h",
        input_datasets=[DatasetConfig("images")],
        output_datasets=[DatasetConfig("predictions")],
    )

    assert config.target == "gpu-cluster"
    # hi-ml's defaults (health_azure/utils.py DEFAULT_ENVIRONMENT_VARIABLES) under the user's.
    assert config.environment_variables["MKL_SERVICE_FORCE_INTEL"] == "0"
    assert config.environment_variables["SEED"] == "1"
    assert config.environment_variables["AZUREML_OUTPUT_UPLOAD_TIMEOUT_SEC"] == "3600"
    assert config.docker.shm_size == "16g"
    assert config.max_run_duration_seconds == 5400
    assert (config.mpi.node_count, config.node_count, config.communicator) == (2, 2, "IntelMpi")
    assert list(config.data) == ["INPUT_0"] and list(config.output_data) == ["OUTPUT_0"]
    assert "numpy" in config.environment.python.conda_dependencies.serialize_to_string()
    assert aml_service.environment_registrations == 1
    create_run_configuration(aml, "gpu-cluster", conda_environment_file=conda_file)
    assert aml_service.environment_registrations == 1  # unchanged: found, not registered again


def test_bad_settings_are_refused_before_an_environment_is_registered(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, conda_file: Path
) -> None:
    with pytest.raises(ComputeNotFoundError, match="no compute cluster 'tpu'"):
        create_run_configuration(aml, "tpu", conda_environment_file=conda_file)
    with pytest.raises(ValueError, match="'aml_environment_name' or 'conda_environment_file'"):
        create_run_configuration(aml, "cpu-cluster")
    with pytest.raises(InvalidInputError, match="max_run_duration"):
        create_run_configuration(
            aml, "cpu-cluster", conda_environment_file=conda_file, max_run_duration="soon"
        )
    for variables, refused in (
        ({"EPOCHS": 3}, "must map strings to"),
        ({"A=B": "1"}, "not a usable environment variable name"),
        ({"API_KEY": SecretReference("MY_API_KEY")}, "Key Vault"),  # AzureML keeps values
    ):
        with pytest.raises(InvalidInputError, match=refused):
            create_run_configuration(
                aml, "cpu-cluster", conda_environment_file=conda_file,
                environment_variables=variables,  # type: ignore[dict-item]
            )  # fmt: skip
    conda_file.write_text("name: job\ndependencies:\n  - pip:\n    - numpy\n")
    with pytest.raises(InvalidInputError, match="must pin the python version"):
        create_run_configuration(aml, "cpu-cluster", conda_environment_file=conda_file)
    assert aml_service.environment_registrations == 0
    conda_file.write_text("name: job\ndependencies:\n  - python=3.11\n")
    seconds = 90  # as JobSpec takes it; max_run_duration.strip() raised AttributeError
    run_config = create_run_configuration(
        aml, "cpu-cluster", conda_environment_file=conda_file,
        max_run_duration=seconds,  # type: ignore[arg-type]
    )  # fmt: skip
    assert run_config.max_run_duration_seconds == 90


def test_the_script_run_takes_this_process_arguments_without_the_flag(
    cwd_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = write_script(cwd_project, "src/train.py", "print('hi')\n")
    monkeypatch.setattr(sys, "argv", [str(script), "--epochs", "3", "--azureml"])

    config = create_script_run(cwd_project, script)

    assert (config.source_directory, config.script) == (str(cwd_project), "src/train.py")
    assert config.arguments == ["--epochs", "3"]
    assert sys.argv[-1] == "--azureml"  # hi-ml never changes sys.argv
    assert create_script_run(cwd_project, "train.py", []).arguments == []
    with pytest.raises(ValueError, match="must be inside of the snapshot root"):
        create_script_run(cwd_project / "src", cwd_project / "other.py")
    with pytest.raises(ValueError, match="script_params must be a list"):
        create_script_run(cwd_project, script, "--epochs 3")  # type: ignore[arg-type]


def test_submit_run_tags_records_and_waits_as_hi_ml(
    aml: AzureMLV1Backend,
    aml_service: FakeAzureMLService,
    conda_file: Path,
    cwd_project: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_script(cwd_project, "train.py", "print('hi')\n")
    config = create_script_run(cwd_project, "train.py", ["--epochs", "3"])
    config.run_config = create_run_configuration(
        aml, "cpu-cluster", conda_environment_file=conda_file
    )

    run = submit_run(aml, "my experiment", config, wait_for_completion=True)

    assert run is aml_service.runs[run.id] and run.get_status() == "Completed"
    assert run.experiment.name == "my_experiment"
    assert run.tags == {"commandline_args": "--epochs 3"}
    recovery = (cwd_project / "most_recent_run.txt").read_text().strip()
    assert recovery == f"my_experiment:{run.id}"
    out = capsys.readouterr().out
    assert "Successfully queued run" in out and run.get_portal_url() in out
    # The door's banner and wait (himl_tasks/backends/queued_run.py): one for both.
    assert f"Run recovery id: my_experiment:{run.id}" in out
    assert f"Run {run.id} completed." in out

    quiet = submit_run(aml, "my_experiment", config, tags={})
    assert quiet.tags == {} and quiet.get_status() != "Completed"  # not waited for

    aml_service.next_outcome = Outcome(statuses=("Queued", "Running", "Failed"), error=SCRIPT_ERROR)
    with pytest.raises(JobFailedError, match="division by zero"):
        submit_run(aml, "my_experiment", config, wait_for_completion=True)


def test_another_backend_is_refused_by_name_before_anything(tmp_path: Path) -> None:
    # These functions build azureml objects: a LocalBackend was an AttributeError from deep
    # inside (no compute_targets), after the checks had started.
    local = LocalBackend(tmp_path / "ws")
    with pytest.raises(InvalidInputError, match="take an azureml.core.Workspace"):
        create_run_configuration(local, "cpu-cluster", aml_environment_name="env")
    with pytest.raises(InvalidInputError, match="take an azureml.core.Workspace"):
        submit_run(local, "experiment", object())


def test_create_script_run_leaves_out_either_submission_flag(
    cwd_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The door takes both flags out of a job's arguments; so does the v1 function it mirrors.
    write_script(cwd_project, "train.py", "print('hi')\n")
    monkeypatch.setattr(sys, "argv", ["train.py", "--himl-local", "-n", "3", "--azureml"])
    assert create_script_run(cwd_project, "train.py").arguments == ["-n", "3"]
