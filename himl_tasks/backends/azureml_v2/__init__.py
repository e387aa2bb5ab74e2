"""The AzureML backend on azure-ai-ml (SDK v2). azure.ai.ml itself is imported only when used.

Its names are loaded on first use: `import himl_tasks.backends.azureml_v2` stays fast, and
works where azure-ai-ml is absent or broken.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from himl_tasks.backends.azureml_v2.backend import AzureMLV2Backend

_MODULES = {
    "AzureMLV2Backend": "himl_tasks.backends.azureml_v2.backend",
}


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return getattr(importlib.import_module(_MODULES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AzureMLV2Backend"]
