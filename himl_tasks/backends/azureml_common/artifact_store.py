"""Where AzureML keeps a run's files: the workspace's artifact store, in the same folders.

The run files of a v2 job are where a v1 run's are.
"""

from __future__ import annotations

from himl_tasks.backends.run_files import RUN_FILE_FOLDERS

ARTIFACT_DATASTORE = "workspaceartifactstore"
AZUREML_RUN_FILE_FOLDERS = (*RUN_FILE_FOLDERS, "user_logs/", "system_logs/")


def run_files_folder(run_id: str) -> str:
    """Where AzureML keeps a run's files in the workspace's artifact store."""
    return f"ExperimentRun/dcid.{run_id}/"
