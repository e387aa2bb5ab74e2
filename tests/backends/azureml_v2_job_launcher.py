"""The job side of the v2 stand-in: runs the job's `python <script> <arguments...>`.

AzureML runs a v2 command job's command as it is; the stand-in runs it through this module
(`python azureml_v2_job_launcher.py <script> <arguments...>`, in the job's working folder), which
runs the script as `__main__` exactly as `python <script>` would, after one change: the in-job
half's `job_workspace_backend` (through which a resumed job fetches its predecessor's
checkpoint) is an `AzureMLV2Backend` on a service that knows what the stand-in told the job in
the JSON file named by `HIML_STANDIN_V2_JOB`: the artifact store's container and key (a real
job reads them from the service with its own identity) and the workspace's jobs.

This module runs in the job's process and imports nothing from the tests package (which is
not on the job's path), and azure-ai-ml only when the job asks for its workspace.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CONTROL_FILE = "HIML_STANDIN_V2_JOB"
"""The variable naming the job's control file (written by the stand-in, test-only)."""
ARTIFACT_DATASTORE = "workspaceartifactstore"


class JobSideService:
    """The part of the v2 service a job reaches from inside: its workspace's artifact store
    and its jobs, as the stand-in described them when the job started."""

    def __init__(self, control: dict[str, Any]) -> None:
        self.control = control
        self.subscription_id, self.resource_group, self.workspace_name = control["workspace"]

    def datastore(self, name: str) -> Any:
        from himl_tasks.backends.azureml_v2 import sdk
        from himl_tasks.errors import DatastoreNotFoundError

        if name != ARTIFACT_DATASTORE:
            raise DatastoreNotFoundError(
                f"the stand-in's job side knows only the datastore '{ARTIFACT_DATASTORE}'"
            )
        entities = sdk.entities()
        with sdk.quiet():
            return entities.AzureBlobDatastore(
                name=name,
                account_name=self.control["account_name"],
                container_name=self.control["artifact_container"],
                protocol="http",
                credentials=entities.AccountKeyConfiguration(
                    account_key=self.control["account_key"]
                ),
            )

    def job(self, name: str) -> Any:
        from himl_tasks.backends.azureml_v2 import sdk
        from himl_tasks.errors import RunNotFoundError

        known = self.control["jobs"].get(name)
        if known is None:
            raise RunNotFoundError(f"no job '{name}' in workspace '{self.workspace_name}'")
        entities = sdk.entities()
        with sdk.quiet():
            job = entities.CommandJob(
                name=name, experiment_name=known["experiment"], command="python", environment="e"
            )
        job._status = known["status"]
        return job

    def __getattr__(self, name: str) -> Any:
        raise NotImplementedError(f"the stand-in's job side does not answer {name}")


def workspace_backend(control: dict[str, Any]) -> Any:
    """The v2 backend a job's in-job half uses, on the stand-in's storage."""
    from himl_tasks.backends.azureml_v2 import AzureMLV2Backend

    return AzureMLV2Backend(
        service=JobSideService(control),
        account_urls={control["account_name"]: control["account_url"]},
    )


def main(argv: Sequence[str]) -> None:
    """Runs `argv[0]` (the script, relative to the working folder) as `__main__`.

    `-m <module>` runs the module as `python -m <module>` does.
    """
    from himl_tasks.backends.azureml_v2 import in_job

    control = json.loads(Path(os.environ[CONTROL_FILE]).read_text(encoding="utf-8"))
    in_job.job_workspace_backend = lambda: workspace_backend(control)
    if argv[0] == "-m":
        module, *arguments = argv[1:]
        sys.argv = [module, *arguments]
        sys.path[0] = str(Path.cwd())  # what `python -m` puts first: the current folder
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return
    script, *arguments = argv
    sys.argv = [script, *arguments]
    # What `python script.py` does: the script's own folder first on the path (not ours).
    sys.path[0] = str(Path(script).resolve().parent)
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
