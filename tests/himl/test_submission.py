"""`submit_to_azure_if_needed` without a flag, inside a job, and its refusals before anything."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest

from himl_tasks import (
    AzureRunInfo,
    Choice,
    ComputeNotFoundError,
    ConfigurationError,
    DatasetConfig,
    DatasetNotFoundError,
    InvalidInputError,
    LocalBackend,
    SecretReference,
    SweepSpec,
    submit_to_azure_if_needed,
)
from himl_tasks.himl import LOCAL_FLAG
from himl_tasks.himl.command_line import Target, submission_target
from himl_tasks.himl.run_context import RUN_CONTEXT
from himl_tasks.job_spec import job_arguments
from himl_tasks.testing.files import write_tree

GRID = SweepSpec({"a": Choice(1, 2)}, primary_metric="loss", sampling="grid")


def test_a_plain_run_goes_on_here_with_folders_variables_and_local_datasets(
    himl_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["sample.py", "--epochs", "3"])
    data = write_tree(himl_project / "data", {"x.csv": b"1,2\n"})

    run_info = submit_to_azure_if_needed(
        compute_cluster_name="cpu-cluster",
        environment_variables={"SAMPLE_SETTING": "on"},
        input_datasets=[DatasetConfig("images", local_folder=data)],
        output_datasets=["results", DatasetConfig("scores", local_folder=Path("scores"))],
    )

    assert isinstance(run_info, AzureRunInfo)
    assert run_info.input_datasets == [data]
    assert run_info.output_datasets == [None, Path("scores")]  # as given, as hi-ml
    assert run_info.output_folder == himl_project / "outputs" and run_info.output_folder.is_dir()
    assert run_info.logs_folder == himl_project / "logs" and run_info.logs_folder.is_dir()
    assert run_info.run is None and run_info.is_running_in_azure_ml is False
    assert run_info.mount_contexts == []
    # As hi-ml: the user's variables, and its defaults, are set in this process.
    assert os.environ["SAMPLE_SETTING"] == "on"
    assert os.environ["MKL_SERVICE_FORCE_INTEL"] == "1"
    # Nothing was submitted: no workspace made, no recovery file.
    assert not (himl_project.parent / "workspace").exists()
    assert not (himl_project / "most_recent_run.txt").exists()


def test_a_plain_run_without_output_folders_creates_none(
    himl_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # hi-ml 0.2 takes the parameter and creates the folders anyway; here it is honoured.
    monkeypatch.setattr(sys, "argv", ["sample.py"])

    run_info = submit_to_azure_if_needed(create_output_folders=False)

    assert run_info.output_folder == himl_project / "outputs"
    assert run_info.logs_folder == himl_project / "logs"
    assert not run_info.output_folder.exists() and not run_info.logs_folder.exists()


def test_a_plain_run_brings_an_input_from_the_workspace(
    himl_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As hi-ml 0.2 downloads it from its workspace: here the local one ($HIML_HOME), the last
    # place resolve_backend looks when no AzureML workspace is configured.
    monkeypatch.setattr(sys, "argv", ["sample.py"])
    workspace = LocalBackend(os.environ["HIML_HOME"])
    source = write_tree(himl_project.parent / "src", {"X.csv": b"5.1,3.5\n", "y.csv": b"0\n"})
    workspace.datastore().upload_folder(source, "iris")

    run_info = submit_to_azure_if_needed(input_datasets=["iris"])

    (folder,) = run_info.input_datasets
    assert folder is not None
    assert (folder / "X.csv").read_bytes() == b"5.1,3.5\n"
    assert (folder / "y.csv").read_bytes() == b"0\n"


def test_a_plain_run_gives_none_for_a_dataset_that_exists_nowhere(
    himl_project: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # hi-ml's examples fall back on their own files: `run_info.input_datasets[0] or Path(...)`.
    monkeypatch.setattr(sys, "argv", ["sample.py"])
    here = write_tree(himl_project / "dataset", {"X.csv": b"1\n"})

    with caplog.at_level(logging.WARNING, logger="himl_tasks.himl.plain_run"):
        run_info = submit_to_azure_if_needed(
            input_datasets=["himl_sample6_input", DatasetConfig("own", local_folder=here)]
        )

    assert run_info.input_datasets == [None, here]
    (record,) = caplog.records
    assert "himl_sample6_input" in record.getMessage() and "None" in record.getMessage()


def test_a_plain_run_sets_all_its_variables_or_none(
    himl_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Checked as a job's are, before os.environ changes: os.environ refused "A=B" with a bare
    # ValueError after the variables before it were set.
    monkeypatch.setattr(sys, "argv", ["sample.py"])
    for refused in ({"GOOD": "1", "A=B": "1"}, {"GOOD": "1", "NUL": "a\0b"}):
        with pytest.raises(InvalidInputError, match="environment variable name|NUL byte"):
            submit_to_azure_if_needed(environment_variables=refused)
    with pytest.raises(ConfigurationError, match="MY_API_KEY is not set"):
        submit_to_azure_if_needed(
            environment_variables={"GOOD": "1", "API_KEY": SecretReference("MY_API_KEY")}
        )
    assert "GOOD" not in os.environ and "MKL_SERVICE_FORCE_INTEL" not in os.environ
    _nothing_happened(himl_project)

    monkeypatch.setenv("MY_API_KEY", "s3cr3t-value")
    submit_to_azure_if_needed(environment_variables={"API_KEY": SecretReference("MY_API_KEY")})

    assert os.environ["API_KEY"] == "s3cr3t-value"


def test_a_plain_run_whose_workspace_is_unusable_changes_nothing(
    himl_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A config.json here means AzureML (resolve_backend's order); a broken one is an error,
    # found before os.environ or the folder changes.
    monkeypatch.setattr(sys, "argv", ["sample.py"])
    (himl_project / "config.json").write_text("{not json", encoding="utf-8")

    with pytest.raises(ConfigurationError, match="config.json is not JSON"):
        submit_to_azure_if_needed(environment_variables={"GOOD": "1"}, input_datasets=["images"])

    assert "GOOD" not in os.environ
    _nothing_happened(himl_project)


def test_a_secret_reference_reaches_the_local_job_and_no_record_holds_it(
    himl_project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = himl_project / "uses_key.py"
    script.write_text(
        # Reversed: the script itself must not hold the secret the files are searched for.
        "import os; print('key is right:', os.environ['API_KEY'][::-1] == 'eulav-t3rc3s')\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(sys, "argv", [str(script), LOCAL_FLAG])
    monkeypatch.setenv("MY_API_KEY", "s3cr3t-value")

    run = submit_to_azure_if_needed(
        environment_variables={"API_KEY": SecretReference("MY_API_KEY")},
        wait_for_completion=True,
        wait_for_completion_show_output=True,
        exit_on_completion=False,
    )

    assert run.get_status() == "Completed"
    assert "key is right: True" in capsys.readouterr().out
    # Not in the registry, the run's folder, the recovery file or anything else written.
    written = [p for p in himl_project.parent.rglob("*") if p.is_file()]
    assert written and not [p for p in written if b"s3cr3t-value" in p.read_bytes()]


def test_inside_a_job_the_run_info_comes_first_whatever_the_flags(
    himl_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The job's own command line may hold anything: the call returns the run's info, it
    # neither submits again nor refuses the flags.
    out, logs = himl_project / "run-outputs", himl_project / "run-logs"
    monkeypatch.setenv("HIML_IN_JOB", "himl_tasks.backends.local.in_job")
    monkeypatch.setenv("HIML_WORKSPACE", str(himl_project.parent / "workspace"))
    monkeypatch.setenv("HIML_RUN_ID", "sample_1")
    monkeypatch.setenv("HIML_EXPERIMENT", "sample")
    monkeypatch.setenv("HIML_OUTPUT_FOLDER", str(out))
    monkeypatch.setenv("HIML_LOGS_FOLDER", str(logs))
    monkeypatch.setenv("HIML_INPUT_DATASET_COUNT", "1")
    monkeypatch.setenv("HIML_INPUT_DATASET_0", str(himl_project / "in0"))
    monkeypatch.setattr(sys, "argv", ["sample.py", "--azureml", LOCAL_FLAG])

    run_info = submit_to_azure_if_needed(
        compute_cluster_name="no-such-cluster", input_datasets=["images"]
    )

    assert run_info.input_datasets == [himl_project / "in0"]
    assert run_info.output_folder == out and run_info.logs_folder == logs
    # hi-ml's RUN_CONTEXT, the job's run for the script to log to.
    assert run_info.run is RUN_CONTEXT and run_info.run.id == "sample_1"
    assert run_info.is_running_in_azure_ml is False and run_info.mount_contexts == []
    assert not (himl_project / "most_recent_run.txt").exists()


# ---- the command line ---------------------------------------------------------------------


def test_the_flags_are_exact_tokens_anywhere_after_the_script() -> None:
    assert submission_target(["s.py", "-n", "3", "--azureml"]) is Target.AZUREML
    assert submission_target(["s.py", LOCAL_FLAG, "-n", "3"]) is Target.LOCAL_BACKEND
    assert submission_target(["s.py", "--azureml=1", "--himl-local-x"]) is Target.IN_THIS_PROCESS
    assert submission_target(["--azureml"]) is Target.IN_THIS_PROCESS  # the script's own name
    # A parameter decides over the command line, either way.
    assert submission_target(["s.py", "--azureml"], submit_to_azureml=False) is (
        Target.IN_THIS_PROCESS
    )
    assert submission_target(["s.py"], submit_to_local_backend=True) is Target.LOCAL_BACKEND


def test_the_job_arguments_lose_the_flags_and_argv_is_untouched() -> None:
    argv = ["s.py", "--azureml", "-n", "3", LOCAL_FLAG]
    assert job_arguments(None, argv) == ["-n", "3"]
    assert argv == ["s.py", "--azureml", "-n", "3", LOCAL_FLAG]
    # Given ones are used as given, also an empty list (hi-ml 0.2 took sys.argv for []).
    assert job_arguments([], argv) == []
    assert job_arguments(["--lr", "0.1"], argv) == ["--lr", "0.1"]


# ---- refused before anything happens ------------------------------------------------------


def _nothing_happened(project: Path) -> None:
    assert not (project.parent / "workspace").exists()  # no local workspace made
    assert not (project / "most_recent_run.txt").exists()
    assert not (project / "outputs").exists()


@pytest.mark.parametrize(
    ("argv", "parameters", "message"),
    [
        (["s.py", "--azureml", LOCAL_FLAG], {}, "choose one"),
        (["s.py", "--azureml"], {"submit_to_local_backend": True}, "choose one"),
        (["s.py"], {"ml_client": object()}, "must be an azure.ai.ml MLClient"),
        (["s.py"], {"hyperparam_args": {"max_total_trials": 2}}, "needs 'parameter_sampling'"),
        (["s.py"], {"hyperparam_args": [("max_total_trials", 2)]}, "must be a dict"),
        (
            ["s.py", LOCAL_FLAG],
            {"hyperparam_args": {"max_total_trials": 2}, "sweep": GRID},
            "hyperparam_args and sweep are given",
        ),
        # SDK v1's sweep with SDK v2 (the default), refused before signing in to AzureML;
        # hi-ml 0.5 drops it and submits one job.
        (["s.py", "--azureml"], {"hyperdrive_config": object()}, "strictly_aml_v1=True"),
        (
            ["s.py", LOCAL_FLAG],
            {"hyperdrive_config": object(), "sweep": GRID},
            "give one",
        ),
        (["s.py", LOCAL_FLAG], {"hyperdrive_config": object()}, "cannot run"),
        (["s.py", LOCAL_FLAG], {"input_datasets": "mnist"}, "list of dataset names"),
        (["s.py", LOCAL_FLAG], {"wait_timeout_seconds": float("nan")}, "wait_timeout_seconds"),
        # One string where a list is meant would be its characters: "-", "-", "e", ...
        (["s.py", LOCAL_FLAG], {"script_params": "--epochs 3"}, "script_params must be a list"),
        (["s.py", LOCAL_FLAG], {"ignored_folders": "data"}, "ignored_folders must be a list"),
        (["s.py", LOCAL_FLAG], {"ignored_folders": ["../data"]}, "outside the snapshot root"),
        # "false" (read from an environment variable) is true to Python: it would submit.
        (["s.py"], {"submit_to_azureml": "false"}, "True, False or None"),
        (["s.py"], {"submit_to_local_backend": 0}, "True, False or None"),
        # Called after submitting: found out then, the run would be queued already.
        (["s.py", LOCAL_FLAG], {"after_submission": "print"}, "must be a function"),
        # Refused by the job's plan, and before it, while no local workspace is made.
        (["s.py", LOCAL_FLAG], {"entry_script": "/etc/hostname"}, "outside the snapshot root"),
        (["s.py", LOCAL_FLAG], {"entry_script": "missing.py"}, "does not exist"),
        (["s.py", LOCAL_FLAG], {"snapshot_root_directory": "missing"}, "not a folder"),
        (["s.py", LOCAL_FLAG], {"experiment_name": "../"}, "experiment name"),
    ],
)
def test_bad_input_is_one_clear_error_before_anything(
    himl_project: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    parameters: dict[str, object],
    message: str,
) -> None:
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(InvalidInputError, match=message):
        submit_to_azure_if_needed(**parameters)  # type: ignore[arg-type]
    _nothing_happened(himl_project)


@pytest.mark.parametrize(
    ("parameters", "error", "message"),
    [
        ({"compute_cluster_name": "gpu-cluster"}, ComputeNotFoundError, "create_compute_cluster"),
        ({"input_datasets": ["no_such_data"]}, DatasetNotFoundError, "no_such_data"),
    ],
    ids=["an unknown local cluster", "a missing input dataset"],
)
def test_what_the_local_backend_lacks_is_refused_before_anything_is_submitted(
    himl_project: Path,
    monkeypatch: pytest.MonkeyPatch,
    parameters: dict[str, object],
    error: type[Exception],
    message: str,
) -> None:
    (himl_project / "sample.py").write_text("print('never run')\n", encoding="utf-8")
    monkeypatch.setattr(sys, "argv", [str(himl_project / "sample.py"), LOCAL_FLAG])

    with pytest.raises(error, match=message):
        submit_to_azure_if_needed(**parameters)  # type: ignore[arg-type]

    assert LocalBackend(os.environ["HIML_HOME"]).registry.runs() == []
    assert not (himl_project / "most_recent_run.txt").exists()


def test_a_sweep_on_the_local_backend_runs_its_trials_and_returns_the_run(
    himl_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = himl_project / "trial.py"
    script.write_text("import sys; print('trial', sys.argv[1:])\n", encoding="utf-8")
    monkeypatch.setattr(sys, "argv", [str(script), "-n", "1", LOCAL_FLAG])

    run = submit_to_azure_if_needed(sweep=GRID, wait_for_completion=True, exit_on_completion=False)

    assert run.get_status() == "Completed"
    workspace = LocalBackend(os.environ["HIML_HOME"])
    trials = workspace.child_runs(workspace.get_run_ref(run.id))
    logs = sorted(b"".join(workspace.read_log(t, 0) for t in trials).decode().splitlines())
    assert logs == ["trial ['-n', '1', '--a', '1']", "trial ['-n', '1', '--a', '2']"]
    assert (himl_project / "most_recent_run.txt").read_text().strip().endswith(run.id)


def test_a_recovery_file_that_cannot_be_written_does_not_lose_the_submitted_run(
    himl_project: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A folder that refuses the file (read-only, or a folder in its place): the run is
    # queued by then, and a crash would hide its id from the user, who would submit again.
    script = himl_project / "job.py"
    script.write_text("print('ran')\n", encoding="utf-8")
    (himl_project / "most_recent_run.txt").mkdir()
    monkeypatch.setattr(sys, "argv", [str(script), LOCAL_FLAG])

    with pytest.raises(SystemExit) as exited:
        submit_to_azure_if_needed()

    assert exited.value.code == 0
    (run,) = LocalBackend(os.environ["HIML_HOME"]).registry.runs()
    assert f"Run recovery id: job:{run.run_id}" in capsys.readouterr().out
    assert f"run job:{run.run_id} is submitted, but its recovery id could not be" in caplog.text


def test_a_local_backend_given_as_aml_workspace_is_the_one_submitted_to(
    himl_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = himl_project / "job.py"
    script.write_text("print('ran')\n", encoding="utf-8")
    monkeypatch.setattr(sys, "argv", [str(script), LOCAL_FLAG])
    chosen = LocalBackend(himl_project.parent / "chosen")

    run = submit_to_azure_if_needed(
        aml_workspace=chosen, wait_for_completion=True, exit_on_completion=False
    )

    assert chosen.get_state(chosen.get_run_ref(run.id)).succeeded
    assert not (himl_project.parent / "workspace").exists()  # not $HIML_HOME's
