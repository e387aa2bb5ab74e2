"""The AzureML backend on azureml-core (SDK v1). azureml itself is imported only when used.

Its names are loaded on first use: a module that needs only the workspace search
(`workspace.find_config_file`) does not pay for the backend and its blob client.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from himl_tasks.backends.azureml_v1.backend import AzureMLV1Backend
    from himl_tasks.backends.azureml_v1.workspace import get_workspace

_MODULES = {
    "AzureMLV1Backend": "himl_tasks.backends.azureml_v1.backend",
    "get_workspace": "himl_tasks.backends.azureml_v1.workspace",
}


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return getattr(importlib.import_module(_MODULES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AzureMLV1Backend", "get_workspace"]
