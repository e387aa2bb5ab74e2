"""What a task's `workspace_block` and `run` arguments name: a backend, and a run on it.

A task takes its workspace as a workspace block (`LocalWorkspace`, `AzureMLWorkspace`) or as
the name it is saved under ("local-workspace/demo"), so credentials never travel as task or
flow parameters. Either way it is turned into a backend here, once per process for the same
block: opening an AzureML workspace signs in, which a flow of ten tasks should do once.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from pydantic import SecretStr

from himl_tasks.backends.base import Backend
from himl_tasks.errors import ConfigurationError
from himl_tasks.prefect.blocks import AzureMLWorkspace, LocalWorkspace, WorkspaceBlock
from himl_tasks.runs import RunRef

WorkspaceBlockOrName: TypeAlias = WorkspaceBlock | str
"""A workspace block, or the name it is saved under ("local-workspace/demo")."""

_BLOCK_TYPES = "a LocalWorkspace or AzureMLWorkspace block"
_BLOCK_NAME = re.compile(r"^[a-z0-9-]+$")  # what Prefect accepts as a block document's name


def backend_for(workspace_block: WorkspaceBlockOrName) -> Backend:
    """The backend of a workspace block, given as the block or its saved name.

    The same saved name, or a block with the same settings, gives the same backend object
    for the life of the process.

    Raises:
        ConfigurationError: If the name is not "<workspace block type>/<name>", no such block
            is saved, or the argument is neither a name nor a workspace block.
    """
    if isinstance(workspace_block, str):
        return _backend_of_saved_block(workspace_block)
    _check_block(workspace_block)
    return _backend_of_block(_SameSettings(_settings_digest(workspace_block), workspace_block))


def workspace_label(workspace_block: WorkspaceBlockOrName) -> str:
    """What a job's identity calls its workspace (so one job in two workspaces is two jobs).

    The saved name for a saved block, whether it is given as the block or the name, so both
    ways of naming a workspace find the same runs. An unsaved block is labelled by its type
    and its settings, secrets left out.
    """
    name = saved_name(workspace_block)
    if name is not None:
        return name
    assert not isinstance(workspace_block, str)  # a name is always a saved name
    settings = {
        key: value
        for key, value in workspace_block.model_dump(mode="python").items()
        if not isinstance(value, SecretStr) and key != "block_type_slug"
    }
    fields = json.dumps(settings, sort_keys=True, default=str)
    return f"{workspace_block.get_block_type_slug()}:{fields}"


def saved_name(workspace_block: WorkspaceBlockOrName) -> str | None:
    """The name a block is saved under, "<block type>/<name>"; None for an unsaved block.

    A name is returned as given (`backend_for` checks it).
    """
    if isinstance(workspace_block, str):
        return workspace_block
    _check_block(workspace_block)
    name = workspace_block._block_document_name
    if name is None or workspace_block._is_anonymous:
        return None
    return f"{workspace_block.get_block_type_slug()}/{name}"


def as_run_ref(backend: Backend, run: RunRef | str) -> RunRef:
    """A run given as a `RunRef` or as its recovery id ("experiment:run_id")."""
    return run if isinstance(run, RunRef) else backend.get_run_ref(run)


_SAVE_EXAMPLES = {
    "local-workspace": "LocalWorkspace(root='.himl').save('{name}')",
    "azureml-workspace": (
        "AzureMLWorkspace(subscription_id=..., resource_group=..., workspace_name=...)"
        ".save('{name}')"
    ),
}


@functools.lru_cache(maxsize=16)
def _backend_of_saved_block(block_document: str) -> Backend:
    """The backend a saved workspace block describes, e.g. "local-workspace/demo".

    The block's class is chosen from the name's type part, so loading does not import every
    installed Prefect collection (as `Block.load` does, which costs seconds).

    Raises:
        ConfigurationError: If the name is not "<workspace block type>/<name>", or no such
            block is saved.
    """
    kinds: dict[str, type[WorkspaceBlock]] = {
        "local-workspace": LocalWorkspace,
        "azureml-workspace": AzureMLWorkspace,
    }
    kind, _, name = block_document.partition("/")
    if kind not in kinds or not name:
        raise ConfigurationError(
            f"'{block_document}' does not name a workspace block: write "
            f"'<type>/<name>' with type {' or '.join(kinds)}, e.g. 'local-workspace/demo'"
        )
    if not _BLOCK_NAME.match(name):
        # Prefect puts the name in a URL unquoted: "demo#x" or "demo/" would load "demo",
        # under another label (so another job identity) for the same workspace.
        raise ConfigurationError(
            f"'{block_document}' cannot name a saved block: a block's name has only lowercase "
            "letters, digits and '-' (Prefect's rule), e.g. 'local-workspace/demo'"
        )
    try:
        block = kinds[kind].load(name)  # sync here: flows and tasks call it from sync code
    except ValueError as error:
        raise ConfigurationError(
            f"no block '{block_document}' is saved on the Prefect server ({error}). Save one, "
            f"e.g. `{_SAVE_EXAMPLES[kind].format(name=name)}`"
        ) from None
    if not isinstance(block, WorkspaceBlock):
        raise ConfigurationError(f"block '{block_document}' is not a workspace block")
    return block.backend()


@dataclass(frozen=True)
class _SameSettings:
    """A block as a cache key: blocks are not hashable, so the key is their settings' digest."""

    digest: str
    block: WorkspaceBlock = field(compare=False, repr=False)


@functools.lru_cache(maxsize=16)
def _backend_of_block(key: _SameSettings) -> Backend:
    return key.block.backend()


def _settings_digest(block: WorkspaceBlock) -> str:
    """A digest of the block's type and every setting, secrets included.

    Two blocks that differ only in a secret (another service principal's password) must not
    share a backend; the digest keeps the secret itself out of the cache's keys.
    """
    settings = {
        key: value.get_secret_value() if isinstance(value, SecretStr) else value
        for key, value in block.model_dump(mode="python").items()
    }
    text = json.dumps([type(block).__qualname__, settings], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _check_block(value: Any) -> None:
    if not isinstance(value, WorkspaceBlock):
        raise ConfigurationError(
            f"{value!r} does not name a workspace: give {_BLOCK_TYPES}, or the name one is "
            "saved under, e.g. 'local-workspace/demo'"
        )
