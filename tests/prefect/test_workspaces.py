"""A task's workspace, as a block or its saved name, against a real Prefect API."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from prefect import flow
from pydantic import SecretStr

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.datasets import ResolvedDataset
from himl_tasks.errors import ConfigurationError
from himl_tasks.prefect import (
    AzureMLWorkspace,
    LocalWorkspace,
    backend_for,
    ensure_dataset,
    submit_job,
    upload_folder_to_datastore,
)
from himl_tasks.prefect.workspaces import saved_name, workspace_label
from himl_tasks.runs import RunRef
from tests.conftest import write_tree
from tests.prefect.conftest import epochs_spec


def test_a_task_takes_a_saved_block_unsaved_block_or_name_alike(
    workspace: tuple[str, LocalBackend], tmp_path: Path
) -> None:
    name, backend = workspace
    loaded = LocalWorkspace.load(name.partition("/")[2])
    unsaved = LocalWorkspace(root=str(backend.root))
    write_tree(tmp_path / "raw", {"a.txt": b"a"})

    @flow
    def each_way() -> list[ResolvedDataset]:
        upload_folder_to_datastore(unsaved, "", tmp_path / "raw", "scans")
        return [ensure_dataset(given, "scans") for given in (name, loaded, unsaved)]

    assert each_way() == [ResolvedDataset("scans", 1, backend.datastore().name, "scans")] * 3
    assert [v["version"] for v in backend.dataset_versions("scans")] == [1]


def test_a_job_named_by_its_block_or_the_blocks_name_is_one_job(
    workspace: tuple[str, LocalBackend], project: Path
) -> None:
    name, backend = workspace
    loaded = LocalWorkspace.load(name.partition("/")[2])

    @flow
    def twice() -> tuple[RunRef, RunRef]:
        spec = epochs_spec(project, 1, 0)
        return submit_job(name, spec), submit_job(loaded, spec)

    first, second = twice()
    assert first.run_id == second.run_id and len(backend.registry.runs()) == 1


def test_the_same_block_gives_the_same_backend_in_a_process(
    workspace: tuple[str, LocalBackend], tmp_path: Path
) -> None:
    name, backend = workspace
    assert backend_for(name) is backend_for(name)
    assert backend_for(name).root == backend.root  # type: ignore[attr-defined]
    here = LocalWorkspace(root=str(backend.root))
    there = LocalWorkspace(root=str(tmp_path / "elsewhere"))
    assert backend_for(here) is backend_for(LocalWorkspace(root=str(backend.root)))
    assert backend_for(here) is not backend_for(there)


def test_an_unknown_block_name_says_how_to_save_one(prefect_api: None) -> None:
    @flow
    def typo() -> object:
        return ensure_dataset("local-workspace/dmeo", "scans")

    with pytest.raises(ConfigurationError) as raised:
        typo()
    assert "no block 'local-workspace/dmeo' is saved" in str(raised.value)
    assert "LocalWorkspace(root='.himl').save('dmeo')" in str(raised.value)


@pytest.mark.parametrize("given", ["demo", "s3-bucket/demo", 42, {"root": ".himl"}])
def test_what_names_no_workspace_block_is_refused_with_the_forms_that_work(
    prefect_api: None, given: object
) -> None:
    with pytest.raises(ConfigurationError, match=re.escape("'local-workspace/demo'")):
        backend_for(given)  # type: ignore[arg-type]


def test_a_blocks_label_is_its_saved_name_and_never_holds_a_secret(
    workspace: tuple[str, LocalBackend],
) -> None:
    name, backend = workspace
    loaded = LocalWorkspace.load(name.partition("/")[2])
    assert saved_name(loaded) == workspace_label(loaded) == workspace_label(name) == name
    unsaved = LocalWorkspace(root=str(backend.root))
    assert saved_name(unsaved) is None
    assert workspace_label(unsaved) == f'local-workspace:{{"root": "{backend.root}"}}'
    azureml = AzureMLWorkspace(
        subscription_id="sub",
        resource_group="rg",
        workspace_name="ws",
        service_principal_id="app",
        service_principal_password="s3cret-value",  # type: ignore[arg-type]
    )
    label = workspace_label(azureml)
    assert label.startswith("azureml-workspace:") and '"workspace_name": "ws"' in label
    assert "s3cret-value" not in label and "service_principal_password" not in label


@pytest.mark.parametrize("suffix", ["#x", "/", "?v=1", "/extra"])
def test_a_name_no_block_can_have_is_refused_not_read_as_another_block(
    workspace: tuple[str, LocalBackend], suffix: str
) -> None:
    # Prefect does not quote the name in its URL: "demo#x" loaded block "demo", under another
    # label, so the same job in the same workspace had two identities.
    name, _ = workspace
    with pytest.raises(ConfigurationError, match="lowercase letters, digits and '-'"):
        backend_for(name + suffix)


def test_an_azureml_block_keeps_its_sdk_and_hides_its_secret_through_a_save(
    prefect_api: None,
) -> None:
    from azure.identity import ClientSecretCredential
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import BlockDocumentCreate

    secret = "sp-secret-" + uuid.uuid4().hex
    name = f"test-{uuid.uuid4().hex[:12]}"
    AzureMLWorkspace(
        subscription_id="sub",
        resource_group="rg",
        workspace_name="ws",
        sdk="v2",
        tenant_id="tenant",
        service_principal_id="app",
        service_principal_password=SecretStr(secret),
    ).save(name)

    loaded = AzureMLWorkspace.load(name)
    assert (loaded.sdk, loaded.workspace_name, loaded.service_principal_id) == ("v2", "ws", "app")
    assert loaded.service_principal_password is not None
    assert loaded.service_principal_password.get_secret_value() == secret
    client = loaded.get_ml_client()  # SDK v2's MLClient, built offline
    assert (client.subscription_id, client.resource_group_name, client.workspace_name) == (
        "sub", "rg", "ws",
    )  # fmt: skip
    assert type(client._credential.credential) is ClientSecretCredential
    with get_client(sync_client=True) as api:
        public = api.read_block_document_by_name(name, "azureml-workspace", include_secrets=False)
        stored = api.read_block_document_by_name(name, "azureml-workspace", include_secrets=True)
        # A block saved before SDK v2 was a choice has no `sdk`: it stays v1.
        older = {key: value for key, value in stored.data.items() if key != "sdk"}
        api.create_block_document(
            BlockDocumentCreate(
                name=f"{name}-old",
                data=older,
                block_schema_id=stored.block_schema_id,
                block_type_id=stored.block_type_id,
            )
        )
    assert public.data["sdk"] == "v2"
    shown = [
        json.dumps(public.data, default=str),
        loaded.model_dump_json(),
        repr(loaded),
        str(loaded.model_dump()),
        workspace_label(loaded),
        repr(client._credential),
    ]
    for text in shown:
        assert secret not in text
    assert AzureMLWorkspace.load(f"{name}-old").sdk == "v1"


def test_an_azureml_block_refuses_an_sdk_it_does_not_know() -> None:
    import pydantic

    with pytest.raises(pydantic.ValidationError, match="'v1' or 'v2'"):
        AzureMLWorkspace(subscription_id="s", resource_group="r", workspace_name="w", sdk="v3")  # type: ignore[arg-type]
