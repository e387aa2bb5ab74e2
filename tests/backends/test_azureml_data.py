"""AzureML datastores and datasets moved through the transfer engine, the in-job runtime, and
secrets kept out of reprs, errors and logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from himl_tasks.backends.azureml_v1 import AzureMLV1Backend
from himl_tasks.backends.azureml_v1.backend import fuse_available
from himl_tasks.backends.azureml_v1.datastores import blob_storage_for
from himl_tasks.datasets import DatasetConfig
from himl_tasks.errors import ConfigurationError, DatastoreNotFoundError
from himl_tasks.himl.datastore_transfers import download_from_datastore, upload_to_datastore
from himl_tasks.runtime import get_run_info, log_metric
from himl_tasks.storage import BlobDatastore
from himl_tasks.testing.azurite import ACCOUNT_NAME, Azurite
from tests.backends.azureml_service import FakeAzureMLService
from tests.conftest import read_tree, write_tree
from tests.storage.test_blob_datastore import sas_for


def test_the_default_datastore_moves_files_with_checksums(
    aml: AzureMLV1Backend, tmp_path: Path
) -> None:
    files = {"1.txt": b"one", "a/2.txt": b"two" * 50_000}
    write_tree(tmp_path / "foo", files)
    store = aml.datastore("")
    assert isinstance(store, BlobDatastore) and store.name == "workspaceblobstore"
    assert aml.datastore("") is store  # resolved once
    assert store.upload_folder(tmp_path / "foo", "baz").files == 2
    assert store.upload_folder(tmp_path / "foo", "baz").skipped_identical == 2
    report = store.download("baz", tmp_path / "out", validate_checksum=True)
    assert (report.files, report.unverified) == (2, [])
    assert read_tree(tmp_path / "out/baz") == files
    with pytest.raises(DatastoreNotFoundError):
        aml.datastore("nope")
    # hi-ml's functions take the AzureML workspace (here: its backend) too
    report = upload_to_datastore("", tmp_path / "foo", "hi-ml", workspace=aml)
    assert report.files == 2
    download_from_datastore("", "hi-ml/a", tmp_path / "hi", workspace=aml, validate_checksum=True)
    assert read_tree(tmp_path / "hi") == {"hi-ml/a/2.txt": files["a/2.txt"]}


def test_a_datastore_registered_with_a_sas_token_serves_uploads(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, azurite: Azurite, tmp_path: Path
) -> None:
    from azure.storage.blob import BlobServiceClient

    container_name = aml_service.datastores["workspaceblobstore"].container_name
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.get_container_client(container_name)
    sas = sas_for(azurite, container, read=True, write=True, list=True, create=True)
    store = aml.register_datastore(
        "images", container=container_name, account_name=ACCOUNT_NAME, sas_token=sas,
        protocol="http",
    )  # fmt: skip
    write_tree(tmp_path / "img", {"x.png": b"png"})
    assert store.upload_folder(tmp_path / "img", "scans").files == 1
    assert [f.name for f in aml.datastore("").list("scans/")] == ["scans/x.png"]
    assert sas not in repr(store) + repr(aml) + str(aml_service.datastores["images"])
    service.close()
    with pytest.raises(ConfigurationError, match="exactly one of account_key and sas_token"):
        aml.register_datastore("bad", container="c", account_name=ACCOUNT_NAME)


def test_a_datastore_definition_file_is_registered_and_its_key_never_shown(
    aml: AzureMLV1Backend,
    aml_service: FakeAzureMLService,
    azurite: Azurite,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    seed = tmp_path / ".azureml" / "datastore.json"
    seed.parent.mkdir()
    container = aml_service.datastores["workspaceblobstore"].container_name
    seed.write_text(json.dumps({"name": "seeded", "container_name": container,
                                "account_name": ACCOUNT_NAME, "account_key": azurite.account_key,
                                "protocol": "http"}))  # fmt: skip
    caplog.set_level(logging.DEBUG)
    store = aml.register_datastore_from_file(seed)
    write_tree(tmp_path / "d", {"f.txt": b"f"})
    store.upload_folder(tmp_path / "d", "seeded-folder")
    assert store.exists("seeded-folder/f.txt")
    assert azurite.account_key not in repr(store) + repr(aml) + caplog.text

    seed.write_text(json.dumps({"name": "x", "account_key": azurite.account_key}))
    with pytest.raises(ConfigurationError) as raised:
        aml.register_datastore_from_file(seed)
    assert "lacks container_name, account_name" in str(raised.value)
    assert azurite.account_key not in str(raised.value)


def test_datastores_without_a_usable_credential_are_explained(
    aml_service: FakeAzureMLService,
) -> None:
    from azureml.data.azure_storage_datastore import AzureBlobDatastore, AzureFileDatastore

    identity = AzureBlobDatastore(aml_service.workspace, "identity", "c", ACCOUNT_NAME)
    with pytest.raises(ConfigurationError, match="storage_credential"):
        blob_storage_for(identity)
    files = AzureFileDatastore(aml_service.workspace, "share", "s", ACCOUNT_NAME, account_key="k")
    with pytest.raises(ConfigurationError, match="Blob containers only"):
        blob_storage_for(files)
    default_url = blob_storage_for(aml_service.datastores["workspaceblobstore"]).account_url
    assert default_url == f"http://{ACCOUNT_NAME}.blob.core.windows.net"


def test_a_dataset_outside_azureml_comes_from_local_folder_or_a_checked_download(
    aml: AzureMLV1Backend, tmp_path: Path
) -> None:
    write_tree(tmp_path / "raw", {"a.csv": b"1", "sub/b.csv": b"2"})
    aml.datastore("").upload_folder(tmp_path / "raw", "tables")
    local = DatasetConfig("tables", local_folder=tmp_path / "mine")
    assert aml.local_dataset_folder(local, tmp_path / "unused") == tmp_path / "mine"
    folder = aml.local_dataset_folder(DatasetConfig("tables"), tmp_path / "dl")
    assert read_tree(folder) == {"a.csv": b"1", "sub/b.csv": b"2"}
    if not fuse_available():
        with pytest.raises(ConfigurationError, match="needs libfuse"):
            aml.local_dataset_folder(DatasetConfig("tables", use_mounting=True), tmp_path / "m")


class RecordingRun:
    """What `Run.get_context()` gives inside an AzureML job (it reports to the service)."""

    def __init__(self, inputs: dict[str, str], outputs: dict[str, str]) -> None:
        self.id = "train_1700000000_abcd"
        self.input_datasets = inputs
        self.output_datasets = outputs
        self.logged: list[tuple[Any, ...]] = []

        class Experiment:
            name = "train"

        self.experiment = Experiment()

    def log(self, name: str, value: float) -> None:
        self.logged.append((name, value))

    def log_row(self, name: str, **values: float) -> None:
        self.logged.append((name, values))


def test_the_runtime_inside_an_azureml_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from azureml.core import Run

    run = RecordingRun(
        {"INPUT_0": "/mnt/inputs/raw", "INPUT_1": "/tmp/labels"}, {"OUTPUT_0": "/mnt/out/f"}
    )
    monkeypatch.setattr(Run, "get_context", staticmethod(lambda: run))
    monkeypatch.setenv("AZUREML_RUN_ID", run.id)
    for name in ("HIML_RUN_ID", "HIML_WORKSPACE", "RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    info = get_run_info()
    assert info.is_running_in_azure_ml
    assert info.input_datasets == [Path("/mnt/inputs/raw"), Path("/tmp/labels")]
    assert info.output_datasets == [Path("/mnt/out/f")]
    assert info.output_folder == tmp_path / "outputs"
    log_metric("loss", 0.5, step=3)
    log_metric("accuracy", 0.97)
    monkeypatch.setenv("RANK", "1")
    log_metric("loss", 9.9, step=4)  # only rank zero reports
    assert run.logged == [("loss", {"step": 3, "value": 0.5}), ("accuracy", 0.97)]


def test_a_stale_azureml_run_id_outside_any_run_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The real SDK: outside an AzureML run, Run.get_context() is an offline run.
    monkeypatch.setenv("AZUREML_RUN_ID", "left_over_from_a_run")
    monkeypatch.delenv("HIML_IN_JOB", raising=False)

    with pytest.raises(ConfigurationError, match="AZUREML_RUN_ID.*not inside an AzureML run"):
        get_run_info()
    with pytest.raises(ConfigurationError, match="not inside an AzureML run"):
        log_metric("loss", 0.5)


def test_a_resubmitted_job_on_azureml_finds_the_resumed_runs_checkpoint(
    aml: AzureMLV1Backend,
    aml_service: FakeAzureMLService,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from himl_tasks.backends.azureml_v1 import in_job as azureml_v1_in_job
    from himl_tasks.job_spec import JobSpec
    from himl_tasks.runtime import find_latest_recovery_checkpoint
    from tests.backends.azureml_service import PREEMPTION_ERROR, Outcome
    from tests.backends.conftest import write_script

    write_script(tmp_path / "project", "train.py", "print(1)\n")
    (tmp_path / "project" / "environment.yml").write_text("dependencies:\n  - python=3.11\n")
    aml_service.next_outcome = Outcome(
        statuses=("Running", "Failed"),
        error=PREEMPTION_ERROR,
        files={
            "outputs/checkpoints/recovery_epoch=3.ckpt": b"epoch 3",
            "outputs/checkpoints/recovery_epoch=4.ckpt": b"epoch 4",
        },
    )
    spec = JobSpec(
        entry_script="train.py", snapshot_root=tmp_path / "project", compute="cpu-cluster"
    )
    lost = aml.wait(aml.submit(spec), poll=0).ref

    job_folder = tmp_path / "job"  # the new run's working folder on its compute node
    (job_folder / "outputs" / "checkpoints").mkdir(parents=True)
    monkeypatch.chdir(job_folder)
    monkeypatch.setenv("AZUREML_RUN_ID", "train_2")
    monkeypatch.setenv("HIML_RESUME_FROM", lost.recovery_id)
    for name in ("HIML_RUN_ID", "HIML_WORKSPACE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(azureml_v1_in_job, "current_workspace_backend", lambda: aml)
    found = find_latest_recovery_checkpoint("outputs/checkpoints")
    assert found is not None and found.name == "recovery_epoch=4.ckpt"
    assert found.read_bytes() == b"epoch 4"
    assert [p.name for p in (job_folder / "outputs/checkpoints").iterdir()] == [found.name]
