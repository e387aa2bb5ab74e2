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
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import SecretStr

from himl_tasks.backends.base import Backend
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.backends.workspace_discovery import checked_sdk
from himl_tasks.cli.prefect_api import API_URL, PrefectApi, find_prefect_api
from himl_tasks.errors import ConfigurationError, WorkspaceNotFoundError

if TYPE_CHECKING:
    import httpx

LOCAL = "local-workspace"
AZUREML = "azureml-workspace"
BLOCK_TYPES = (LOCAL, AZUREML)
_T = TypeVar("_T", dict[str, Any], list[Any])
REQUEST_SECONDS = 10.0
"""The deadline of each phase (connect, read, write) of each request to the Prefect API."""

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
    import httpx  # here: it takes as long to import as the rest of `himl`, and few calls need it

    with httpx.Client(base_url=api.url, headers=api.headers(), timeout=REQUEST_SECONDS) as client:
        if kind is not None:
            response = _call(
                api,
                given,
                lambda: client.get(
                    f"/block_types/slug/{kind}/block_documents/name/{name}",
                    params={"include_secrets": "true"},
                ),
            )
            if response.status_code == 404:
                raise _not_saved(api, given, [kind], name)
            return kind, _data(api, given, _answer(api, given, response, dict))
        body = {
            "block_documents": {"name": {"any_": [name]}, "is_anonymous": {"eq_": False}},
            "block_types": {"slug": {"any_": list(BLOCK_TYPES)}},
            "include_secrets": True,
            "limit": len(BLOCK_TYPES) + 1,
        }
        response = _call(api, given, lambda: client.post("/block_documents/filter", json=body))
        documents = _answer(api, given, response, list)
    found = [(_slug(document), document) for document in documents]
    found = [(slug, document) for slug, document in found if slug in BLOCK_TYPES]
    if not found:
        raise _not_saved(api, given, list(BLOCK_TYPES), name)
    if len(found) > 1:
        names = " and ".join(f"'{slug}/{name}'" for slug, _ in found)
        raise WorkspaceNotFoundError(f"'{given}' is ambiguous: {names} are saved; write one")
    slug, document = found[0]
    return slug, _data(api, given, document)


def _call(api: PrefectApi, given: str, request: Any) -> httpx.Response:
    import httpx

    try:
        response: httpx.Response = request()
    except httpx.HTTPError as error:
        raise ConfigurationError(
            f"cannot read saved block '{given}': the Prefect API at {api.url} (from "
            f"{api.source}) did not answer ({type(error).__name__}: {error}): start it "
            f"(`prefect server start`), or set {API_URL} to one that runs"
        ) from None
    if response.status_code in (401, 403):
        raise ConfigurationError(
            f"cannot read saved block '{given}': the Prefect API at {api.url} refused "
            f"(HTTP {response.status_code}); set PREFECT_API_KEY or PREFECT_API_AUTH_STRING"
        )
    return response


def _answer(api: PrefectApi, given: str, response: httpx.Response, shape: type[_T]) -> _T:
    """The response's JSON, of the shape the endpoint answers with."""
    if response.status_code != 200:
        raise ConfigurationError(
            f"cannot read saved block '{given}': the Prefect API at {api.url} answered HTTP "
            f"{response.status_code}; is it a Prefect 3 API?"
        )
    try:
        value = response.json()
    except ValueError:
        value = None
    if not isinstance(value, shape):
        raise ConfigurationError(
            f"cannot read saved block '{given}': the Prefect API at {api.url} answered with "
            "no block document; is it a Prefect 3 API?"
        )
    return value


def _slug(document: Any) -> str:
    block_type = document.get("block_type") if isinstance(document, dict) else None
    return str(block_type.get("slug") or "") if isinstance(block_type, dict) else ""


def _data(api: PrefectApi, given: str, document: Any) -> Mapping[str, Any]:
    data = document.get("data")
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"cannot read saved block '{given}': the Prefect API at {api.url} answered with "
            "a block document without data; is it a Prefect 3 API?"
        )
    return data


def _not_saved(api: PrefectApi, given: str, kinds: list[str], name: str) -> WorkspaceNotFoundError:
    examples = " or ".join(f"`{_SAVE_EXAMPLES[kind].format(name=name)}`" for kind in kinds)
    return WorkspaceNotFoundError(
        f"no workspace '{given}': no file or folder of that name, and no "
        f"{' or '.join(kinds)} block '{name}' is saved on the Prefect server at {api.url} "
        f"(from {api.source}); save one, e.g. {examples}"
    )
