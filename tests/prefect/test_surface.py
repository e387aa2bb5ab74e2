"""The Prefect wing's public names, and the rule that keeps a name to one signature."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from prefect import Task

import himl_tasks
import himl_tasks.prefect as wing

PUBLIC = [
    "AzureMLWorkspace",
    "LocalWorkspace",
    "WorkspaceBlock",
    "WorkspaceBlockOrName",
    "backend_for",
    "cancel_started_jobs",
    "download_datastore_files",
    "download_run_checkpoints",
    "download_run_files",
    "ensure_dataset",
    "forget_started_jobs",
    "publish_pipeline",
    "remove_pipeline_schedule",
    "run_job",
    "run_pipeline",
    "run_sweep",
    "schedule_pipeline",
    "submit_job",
    "submit_published_pipeline",
    "upload_folder_to_datastore",
    "wait_for_job",
]


def tasks() -> dict[str, Task[Any, Any]]:
    return {name: obj for name in wing.__all__ if isinstance(obj := getattr(wing, name), Task)}


def parameters(function: Callable[..., Any]) -> list[tuple[str, object, object]]:
    """Each parameter's name, kind and default, in order (annotations aside)."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def test_the_wings_public_names_are_pinned_and_resolve() -> None:
    assert wing.__all__ == PUBLIC
    for name in PUBLIC:
        assert getattr(wing, name) is not None
    assert set(tasks()) == {
        "download_datastore_files",
        "download_run_checkpoints",
        "download_run_files",
        "ensure_dataset",
        "publish_pipeline",
        "remove_pipeline_schedule",
        "run_job",
        "run_pipeline",
        "run_sweep",
        "schedule_pipeline",
        "submit_job",
        "submit_published_pipeline",
        "upload_folder_to_datastore",
        "wait_for_job",
    }


def test_a_task_named_as_a_public_function_takes_the_functions_arguments() -> None:
    for name, task in tasks().items():
        assert task.name == name  # the name a flow's UI shows is the name one imports
        plain = getattr(himl_tasks, name, None) if name in himl_tasks.__all__ else None
        if plain is not None:
            assert parameters(task.fn) == parameters(plain), name


def test_hi_mls_transfer_functions_keep_their_names_beside_the_tasks() -> None:
    # hi-ml's functions take a datastore name first; the tasks take a workspace block first,
    # so they are named apart (issue 12).
    assert parameters(himl_tasks.upload_to_datastore)[0][0] == "datastore_name"
    assert parameters(himl_tasks.download_from_datastore)[0][0] == "datastore_name"
    assert parameters(himl_tasks.download_checkpoints)[0][0] == "backend"
    for name in ("upload_to_datastore", "download_from_datastore", "download_checkpoints"):
        assert not hasattr(wing, name)
