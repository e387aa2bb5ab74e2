"""The AzureML backend on azureml-core (SDK v1). azureml itself is imported only when used."""

from himl_tasks.backends.azureml_v1.backend import AzureMLV1Backend
from himl_tasks.backends.azureml_v1.workspace import get_workspace

__all__ = ["AzureMLV1Backend", "get_workspace"]
