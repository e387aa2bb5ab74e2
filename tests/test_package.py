"""The package's public surface and its import cost."""

from __future__ import annotations

import json
import subprocess
import sys

import himl_tasks

PUBLIC = [
    "AzureRunInfo",
    "BlobDatastore",
    "ChecksumMismatchError",
    "ComputeNotFoundError",
    "ConfigurationError",
    "ContainerNotFoundError",
    "DatasetConfig",
    "DatasetNotFoundError",
    "Datastore",
    "DatastoreNotFoundError",
    "FailureKind",
    "HimlError",
    "InvalidInputError",
    "JobSpec",
    "LocalBackend",
    "LocalDatastore",
    "LocalWorkspaceConfig",
    "Metric",
    "Preemption",
    "Priority",
    "RemoteFile",
    "RemoteFilesNotFoundError",
    "ResolvedDataset",
    "RunNotFoundError",
    "RunRef",
    "RunState",
    "RunStatus",
    "SnapshotTooLargeError",
    "StorageAccessError",
    "StorageError",
    "TransferFailedError",
    "TransferReport",
    "UnsafeBlobNameError",
    "download_from_datastore",
    "get_most_recent_run",
    "get_run_info",
    "upload_to_datastore",
]


def test_public_names_are_pinned_and_all_resolve() -> None:
    assert himl_tasks.__all__ == PUBLIC
    for name in PUBLIC:
        assert getattr(himl_tasks, name).__name__ == name


def test_importing_the_package_loads_no_heavy_dependency() -> None:
    probe = "import sys, json, himl_tasks; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", probe], check=True, capture_output=True, text=True
        ).stdout
    )
    heavy = [
        m
        for m in loaded
        if m.split(".")[0] in {"azureml", "azure", "aiohttp", "prefect", "torch", "rich"}
    ]
    assert heavy == []
