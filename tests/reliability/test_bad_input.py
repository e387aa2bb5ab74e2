"""Bad input and bad settings: one clear error, raised before anything changes; never retried.

Wrong credentials are a configuration error (failure kind `configuration`): a job that met them
is not submitted again, and its error says what to fix. Bad parameters of flows, tasks and the
vocabulary (datasets, job specs, blocks) are refused with one `InvalidInputError` or
`ConfigurationError` before the first side effect: no file uploaded, no dataset version
registered, no run submitted.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from azure.storage.blob import ContainerClient

from himl_tasks.backends.azureml_v1 import AzureMLV1Backend
from himl_tasks.backends.azureml_v1.run_status import classify_failure, error_text
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.datasets import DatasetConfig
from himl_tasks.errors import JobFailedError
from himl_tasks.job_spec import JobSpec
from himl_tasks.preemption import RetryPolicy, run_to_completion
from himl_tasks.runs import FailureKind, RunStatus
from tests.azurite import ACCOUNT_NAME, Azurite
from tests.backends.azureml_service import (
    SCRIPT_STORAGE_AUTH_ERROR,
    STORAGE_AUTH_ERROR,
    FakeAzureMLService,
    Outcome,
)
from tests.backends.conftest import aml, aml_service, backend, project, write_script
from tests.conftest import write_tree

NO_WAIT = RetryPolicy(max_retries=2, delay_seconds=0)
__all__ = ["aml", "aml_service", "backend", "project"]  # fixtures shared with tests/backends

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
