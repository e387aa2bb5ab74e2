"""Bad input and bad settings: one clear error, raised before anything changes; never retried.

Wrong credentials are a configuration error (failure kind `configuration`): a job that met them
is not submitted again, and its error says what to fix. Bad parameters of flows, tasks and the
vocabulary (datasets, job specs, blocks) are refused with one `InvalidInputError` or
`ConfigurationError` before the first side effect: no file uploaded, no dataset version
registered, no run submitted.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from azure.storage.blob import ContainerClient

from himl_tasks.backends.azureml_common.failures import classify_failure, error_text
from himl_tasks.backends.azureml_v1 import AzureMLV1Backend
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.backends.local.clusters import Preemption
from himl_tasks.datasets import DatasetConfig
from himl_tasks.errors import (
    ComputeNotFoundError,
    ConfigurationError,
    DatastoreNotFoundError,
    InvalidInputError,
    JobFailedError,
    RunNotFoundError,
)
from himl_tasks.job_spec import JobSpec
from himl_tasks.jobs.run_to_completion import ResubmitPolicy, run_to_completion
from himl_tasks.runs import FailureKind, RunStatus
from himl_tasks.testing.azurite import ACCOUNT_NAME, Azurite
from tests.backends.azureml_service import (
    SCRIPT_STORAGE_AUTH_ERROR,
    STORAGE_AUTH_ERROR,
    FakeAzureMLService,
    Outcome,
)
from tests.backends.conftest import aml, aml_service, backend, project, write_script
from tests.conftest import write_tree

NO_WAIT = ResubmitPolicy(max_retries=2, delay_seconds=0)
# Fixtures shared with tests/backends and tests/flows (named here so that pytest finds them).
__all__ = ["aml", "aml_service", "backend", "project"]

# ---- wrong credentials ----------------------------------------------------------------------


def test_a_rotated_storage_key_fails_the_job_as_configuration_and_is_not_retried(
    backend: LocalBackend,
    project: Path,
    azurite: Azurite,
    container: ContainerClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LAKE_KEY", azurite.account_key)
    lake = backend.register_datastore(
        "lake",
        account_url=azurite.account_url,
        container=container.container_name,
        account_name=ACCOUNT_NAME,
        account_key_env="LAKE_KEY",
    )
    lake.upload_folder(write_tree(tmp_path / "src", {"a.txt": b"scan"}), "scans")
    assert backend.resolve_dataset(DatasetConfig("scans", datastore="lake")).version == 1
    wrong_key = base64.b64encode(os.urandom(64)).decode()
    monkeypatch.setenv("LAKE_KEY", wrong_key)  # the key was rotated; the job gets the old one
    write_script(project, "train.py", "print('never runs')\n")
    spec = JobSpec(
        entry_script="train.py",
        snapshot_root=project,
        input_datasets=[DatasetConfig("scans", datastore="lake")],
    )

    with pytest.raises(JobFailedError) as failed:
        run_to_completion(
            backend,
            spec,
            submit=backend.submit,
            watch=lambda ref: backend.wait(ref, timeout=60),
            policy=NO_WAIT,
        )

    state = failed.value.state
    assert (state.status, state.failure_kind) == (RunStatus.FAILED, FailureKind.CONFIGURATION)
    assert len(backend.registry.runs()) == 1  # not submitted again
    assert "datastore 'lake'" in state.error and "refused (HTTP 403" in state.error
    assert "credential" in state.error and "configuration error" in state.error
    assert wrong_key not in str(failed.value) and azurite.account_key not in str(failed.value)


@pytest.mark.parametrize(
    "payload", [STORAGE_AUTH_ERROR, SCRIPT_STORAGE_AUTH_ERROR], ids=["data-runtime", "script"]
)
def test_an_azureml_storage_authentication_failure_is_configuration_and_not_retried(
    aml: AzureMLV1Backend,
    aml_service: FakeAzureMLService,
    project: Path,
    payload: dict[str, object],
) -> None:
    write_script(project, "train.py", "print('training')\n")
    (project / "environment.yml").write_text("name: job\ndependencies:\n  - python=3.11\n")
    spec = JobSpec(entry_script="train.py", snapshot_root=project, compute="cpu-cluster")
    aml_service.next_outcome = Outcome(statuses=("Queued", "Running", "Failed"), error=payload)

    with pytest.raises(JobFailedError) as failed:
        run_to_completion(
            aml,
            spec,
            submit=aml.submit,
            watch=lambda ref: aml.wait(ref, poll=0),
            policy=NO_WAIT,
        )

    state = failed.value.state
    assert state.failure_kind is FailureKind.CONFIGURATION
    assert len(aml_service.submitted) == 1
    assert "configuration error" in state.error and "credential" in state.error


def test_storage_authorisation_codes_are_configuration_but_script_failures_stay_user_errors() -> (
    None
):
    def kind(message: str) -> FailureKind | None:
        error = error_text({"error": {"code": "UserError", "message": message}})
        return classify_failure(RunStatus.FAILED, error)

    assert kind("ErrorCode: AuthorizationPermissionMismatch") is FailureKind.CONFIGURATION
    assert kind("Error Code: ScriptExecution.WriteStreams.Authentication") is (
        FailureKind.CONFIGURATION
    )
    assert kind("PermissionError: [Errno 13] Permission denied: '/data'") is (
        FailureKind.USER_ERROR
    )


# ---- flows and tasks: refused before the first side effect ---------------------------------


def nothing_happened(backend: LocalBackend) -> None:
    """No file uploaded, no dataset version registered, no run submitted."""
    assert backend.datastore("").list("") == []
    assert backend.registry.dataset_names() == []
    assert backend.registry.runs() == []
    assert not (backend.root / "runs").exists() or not any((backend.root / "runs").iterdir())


@pytest.mark.parametrize(
    ("parameters", "error", "message"),
    [
        ({"epochs": 0}, InvalidInputError, "epochs must be a whole number of 1 or more, not 0"),
        ({"epochs": -3}, InvalidInputError, "epochs must be"),
        ({"learning_rate": float("nan")}, InvalidInputError, "learning_rate must be"),
        ({"max_retries": -1}, InvalidInputError, "max_retries must be"),
        ({"retry_delay_seconds": float("inf")}, InvalidInputError, "retry_delay_seconds"),
        ({"raw_dataset": "raw digits!"}, InvalidInputError, "raw_dataset: 'raw digits!' is not"),
        ({"features_dataset": ""}, InvalidInputError, "features_dataset: '' is not"),
        ({"features_dataset": "digits_raw"}, InvalidInputError, "write a new version of its own"),
        ({"train_compute": "gpu-typo"}, ComputeNotFoundError, "no compute cluster named 'gpu-"),
    ],
    ids=lambda value: str(value) if not isinstance(value, dict) else "-".join(value),
)
def test_the_flow_refuses_bad_parameters_before_any_side_effect(
    workspace: tuple[str, LocalBackend],
    parameters: dict[str, object],
    error: type[Exception],
    message: str,
) -> None:
    from flows.preprocess_then_train import preprocess_then_train

    block, local = workspace
    with pytest.raises(error, match=re.escape(message)):
        preprocess_then_train(workspace_block=block, **parameters)  # type: ignore[arg-type]
    nothing_happened(local)


def test_the_flow_names_every_bad_parameter_in_one_error(
    workspace: tuple[str, LocalBackend],
) -> None:
    from flows.preprocess_then_train import preprocess_then_train

    block, local = workspace
    with pytest.raises(InvalidInputError) as refused:
        preprocess_then_train(workspace_block=block, epochs=0, max_retries=-2, raw_dataset="a b")
    for name in ("epochs", "max_retries", "raw_dataset"):
        assert name in str(refused.value)
    assert "Nothing was uploaded, registered or submitted" in str(refused.value)
    nothing_happened(local)


@pytest.mark.parametrize(
    "options",
    [
        {"timeout_seconds": 0},
        {"timeout_seconds": -5},
        {"timeout_seconds": float("nan")},
        {"timeout_seconds": float("inf")},
        {"max_retries": -1},
        {"retry_delay_seconds": float("nan")},
    ],
    ids=lambda options: "-".join(f"{k}={v}" for k, v in options.items()),
)
def test_run_job_refuses_bad_options_before_submitting(
    workspace: tuple[str, LocalBackend], project: Path, options: dict[str, float]
) -> None:
    from prefect import flow

    from himl_tasks.prefect import run_job

    block, local = workspace
    write_script(project, "train.py", "print('training')\n")

    @flow
    def train() -> object:
        return run_job(block, JobSpec(entry_script="train.py", snapshot_root=project), **options)

    with pytest.raises(InvalidInputError):
        train()
    nothing_happened(local)


def test_a_missing_azureml_block_is_explained_with_the_azureml_block_type(
    prefect_api: None,
) -> None:
    from himl_tasks.prefect.workspaces import backend_for

    with pytest.raises(ConfigurationError) as missing:
        backend_for("azureml-workspace/prod-typo")
    assert "AzureMLWorkspace(subscription_id=" in str(missing.value)
    assert ".save('prod-typo')" in str(missing.value)
    assert "LocalWorkspace" not in str(missing.value)
    with pytest.raises(ConfigurationError, match=re.escape("LocalWorkspace(root='.himl')")):
        backend_for("local-workspace/demo-typo")


# ---- the vocabulary: datasets and job specs ------------------------------------------------


def test_a_dataset_version_given_as_text_is_read_as_azureml_reads_it() -> None:
    assert DatasetConfig("scans", version="3") == DatasetConfig("scans", version=3)
    assert DatasetConfig("scans", version=" 2 ").version == 2
    assert DatasetConfig("scans", version="latest").version is None
    assert DatasetConfig("scans", target_folder="", local_folder="").target_folder is None


@pytest.mark.parametrize(
    "fields",
    [
        {"version": "one"},
        {"version": "1.0"},
        {"version": 1.5},
        {"version": True},
        {"version": 0},
        {"version": "-1"},
        {"name": 7},
        {"datastore": None},
        {"use_mounting": "yes"},
    ],
    ids=repr,
)
def test_an_unusable_dataset_config_is_one_invalid_input_error(fields: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError, match="dataset|not a usable dataset name"):
        DatasetConfig(**{"name": "scans", **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_run_duration": float("nan")}, "positive, finite"),
        ({"max_run_duration": float("inf")}, "positive, finite"),
        ({"args": "--epochs 3"}, "must be a list of strings"),
        ({"args": ["--epochs", 3]}, "write numbers as text"),
        ({"num_nodes": 1.5}, "num_nodes must be a whole number"),
        ({"processes_per_node": True}, "processes_per_node must be a whole number"),
        ({"priority": "low"}, "priority must be one of 'dedicated', 'low_priority'"),
        ({"environment_variables": {"SEED": 1}}, "must map strings to strings"),
        ({"environment_variables": {"MY-VAR": "1"}}, "not a usable environment variable"),
        ({"tags": {"team": None}}, "must map strings to strings"),
        ({"compute": None}, "compute must be text"),
        ({"resume_from": "a:b:c"}, "not a run recovery id"),
        ({"entry_script": ""}, "exactly one of entry_script and module"),
    ],
    ids=lambda value: repr(value)[:40],
)
def test_an_unusable_job_spec_is_one_invalid_input_error(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        JobSpec(**{"entry_script": "train.py", **fields})  # type: ignore[arg-type]


def test_a_local_submission_refused_late_leaves_nothing_behind(
    backend: LocalBackend, project: Path, tmp_path: Path
) -> None:
    write_script(project, "train.py", "print('training')\n")
    # A dataset that resolving would create (version 1 from its folder) ...
    backend.datastore("").upload_folder(write_tree(tmp_path / "src", {"a.txt": b"x"}), "scans")
    spec = JobSpec(entry_script="train.py", snapshot_root=project, input_datasets=["scans"])

    # ... with an output on a datastore that does not exist: refused, and scans stays unborn.
    with pytest.raises(DatastoreNotFoundError):
        backend.submit(
            dataclasses.replace(spec, output_datasets=[DatasetConfig("model", datastore="nope")])
        )
    # ... resuming a run that does not exist: refused before the snapshot is copied.
    with pytest.raises(RunNotFoundError):
        backend.submit(dataclasses.replace(spec, resume_from="train:no_such_run"))

    assert backend.registry.dataset_names() == []
    assert backend.registry.runs() == []
    assert not (backend.root / "runs").exists() or not any((backend.root / "runs").iterdir())


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda b: b.create_compute_cluster("gpu", max_concurrent_runs="2"), "whole number"),
        (lambda b: b.create_compute_cluster("local"), "cannot name a compute cluster"),
        (lambda b: b.create_compute_cluster(""), "cannot name a compute cluster"),
        (lambda b: Preemption(after_seconds=float("nan")), "after_seconds must be a finite"),
        (lambda b: Preemption(after_seconds=1, on_attempts=(0,)), "attempt numbers from 1"),
        (lambda b: Preemption(after_seconds=1, max_preemptions=-1), "max_preemptions"),
        (lambda b: Preemption(after_metric=("loss", 0)), "count of 1 or more"),
        (lambda b: Preemption(), "exactly one of after_seconds and after_metric"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_unusable_cluster_settings_are_refused_before_the_cluster_is_stored(
    backend: LocalBackend, make: Callable[[LocalBackend], object], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        make(backend)
    assert backend.registry.clusters() == {}
