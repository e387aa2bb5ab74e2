"""A saved Prefect workspace block, read through the Prefect API's REST interface, as a backend.

`himl --workspace local-workspace/demo` (and `himl-download`/`himl-tb --config_file ...`) name
the workspace as flows do (`himl_tasks.prefect.workspaces.backend_for`), but the console
scripts do not import Prefect (DESIGN.md), so the block document is read with httpx from the
endpoints Prefect 3.8's own client calls (`prefect/server/api/block_types.py`,
`block_documents.py`):

- `GET /block_types/slug/{slug}/block_documents/name/{name}?include_secrets=true` for a typed
  name (`PrefectClient.read_block_document_by_name`);
- `POST /block_documents/filter` with a name filter, for a bare name: used when exactly one
  workspace block has it.

`include_secrets=true` is what `Block.load` asks for: the service principal's password is
needed to sign in. It is held as a `SecretStr` from the moment it is read, and no message here
holds any of the block's data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from himl_tasks.backends.base import Backend
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.backends.prefect_api import PrefectApi, find_prefect_api
from himl_tasks.backends.prefect_rest import PrefectRest, path_part
from himl_tasks.backends.workspace_discovery import checked_sdk
from himl_tasks.errors import ConfigurationError, WorkspaceNotFoundError

LOCAL = "local-workspace"
AZUREML = "azureml-workspace"
BLOCK_TYPES = (LOCAL, AZUREML)

# Prefect's rule for a block document's name: lowercase letters, digits and '-'.
_BLOCK_NAME = re.compile(rf"^(?:(?P<kind>{LOCAL}|{AZUREML})/)?(?P<name>[a-z0-9-]+)$")
_SAVE_EXAMPLES = {
    LOCAL: "LocalWorkspace(root='.himl').save('{name}')",
    AZUREML: "AzureMLWorkspace(subscription_id=..., resource_group=..., "
    "workspace_name=...).save('{name}')",
}


def is_block_name(text: str) -> bool:
    """Whether `text` can name a saved workspace block: "<type>/<name>", or a bare name."""
    return _BLOCK_NAME.match(text) is not None


@dataclass(frozen=True)
class AzureMLBlock:
    """An `AzureMLWorkspace` block's settings, as `get_workspace(block=...)` reads them."""

    subscription_id: str
    resource_group: str
    workspace_name: str
    tenant_id: str = ""
    service_principal_id: str = ""
    service_principal_password: SecretStr | None = field(default=None, repr=False)


def backend_of_saved_block(name: str, environ: Mapping[str, str] | None = None) -> Backend:
    """The backend of the workspace block saved under `name` on the Prefect server.

    Args:
        name: "local-workspace/<name>", "azureml-workspace/<name>", or a bare "<name>" that
            exactly one workspace block has.
        environ: The environment variables that say where the API is (default: the process's).

    Raises:
        WorkspaceNotFoundError: No such block is saved, or a bare name is ambiguous.
        ConfigurationError: No Prefect API is configured, it cannot be reached, or it refuses.
    """
    match = _BLOCK_NAME.match(name)
    if match is None:
        raise ConfigurationError(
            f"'{name}' cannot name a saved block: write '<type>/<name>' with type "
            f"{' or '.join(BLOCK_TYPES)} and a name of lowercase letters, digits and '-'"
        )
    api = find_prefect_api(environ)
    kind, data = _read_block(api, match["kind"], match["name"], name)
    if kind == LOCAL:
        return LocalBackend(str(data.get("root") or "") or None)
    return _azureml_backend(_azureml_block(data), sdk=str(data.get("sdk") or "v1"))


def _azureml_backend(block: AzureMLBlock, *, sdk: str) -> Backend:
    """The AzureML backend on the block's workspace, with the SDK the block names.

    Signs in as the flows do (the block's settings). A block saved before it named an SDK
    (no `sdk` in its data) is a v1 block, as `AzureMLWorkspace` loads it.

    Raises:
        InvalidInputError: The block names an SDK that is neither "v1" nor "v2".
    """
    if checked_sdk(sdk) == "v1":
        from himl_tasks.backends.azureml_v1 import AzureMLV1Backend, get_workspace

        return AzureMLV1Backend(get_workspace(block=block))
    from himl_tasks.backends.azureml_v2.backend import AzureMLV2Backend
    from himl_tasks.backends.azureml_v2.workspace import ml_client

    return AzureMLV2Backend(ml_client(block=block))


def _azureml_block(data: Mapping[str, Any]) -> AzureMLBlock:
    password = data.get("service_principal_password")
    return AzureMLBlock(
        subscription_id=str(data.get("subscription_id") or ""),
        resource_group=str(data.get("resource_group") or ""),
        workspace_name=str(data.get("workspace_name") or ""),
        tenant_id=str(data.get("tenant_id") or ""),
        service_principal_id=str(data.get("service_principal_id") or ""),
        service_principal_password=SecretStr(str(password)) if password else None,
    )


def _read_block(
    api: PrefectApi, kind: str | None, name: str, given: str
) -> tuple[str, Mapping[str, Any]]:
    """The block's type slug and data (secrets included)."""
    with PrefectRest(api, f"cannot read saved block '{given}'") as rest:
        if kind is not None:
            response = rest.request(
                "GET",
                f"/block_types/slug/{path_part(kind)}/block_documents/name/{path_part(name)}",
                params={"include_secrets": "true"},
                absent=(404,),
            )
            if response is None:
                raise _not_saved(api, given, [kind], name)
            return kind, _data(rest, rest.answer(response, dict, "block document"))
        body = {
            "block_documents": {"name": {"any_": [name]}, "is_anonymous": {"eq_": False}},
            "block_types": {"slug": {"any_": list(BLOCK_TYPES)}},
            "include_secrets": True,
            "limit": len(BLOCK_TYPES) + 1,
        }
        response = rest.request("POST", "/block_documents/filter", json=body)
        documents = rest.answer(response, list, "block document")
        found = [(_slug(document), document) for document in documents]
        found = [(slug, document) for slug, document in found if slug in BLOCK_TYPES]
        if not found:
            raise _not_saved(api, given, list(BLOCK_TYPES), name)
        if len(found) > 1:
            names = " and ".join(f"'{slug}/{name}'" for slug, _ in found)
            raise WorkspaceNotFoundError(f"'{given}' is ambiguous: {names} are saved; write one")
        slug, document = found[0]
        return slug, _data(rest, document)


def _slug(document: Any) -> str:
    block_type = document.get("block_type") if isinstance(document, dict) else None
    return str(block_type.get("slug") or "") if isinstance(block_type, dict) else ""


def _data(rest: PrefectRest, document: Any) -> Mapping[str, Any]:
    data = document.get("data")
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"{rest.doing}: the Prefect API at {rest.api.url} answered with a block document "
            "without data; is it a Prefect 3 API?"
        )
    return data


def _not_saved(api: PrefectApi, given: str, kinds: list[str], name: str) -> WorkspaceNotFoundError:
    examples = " or ".join(f"`{_SAVE_EXAMPLES[kind].format(name=name)}`" for kind in kinds)
    return WorkspaceNotFoundError(
        f"no workspace '{given}': no file or folder of that name, and no "
        f"{' or '.join(kinds)} block '{name}' is saved on the Prefect server at {api.url} "
        f"(from {api.source}); save one, e.g. {examples}"
    )
