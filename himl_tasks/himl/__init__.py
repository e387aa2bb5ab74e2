"""hi-ml's user contract: its functions, names and semantics, on any backend."""

from himl_tasks.himl.command_line import LOCAL_FLAG
from himl_tasks.himl.submission import submit_to_azure_if_needed
from himl_tasks.runtime import AzureRunInfo

__all__ = [
    "LOCAL_FLAG",
    "AzureRunInfo",
    "submit_to_azure_if_needed",
]
