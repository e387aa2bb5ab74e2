"""A local workspace's published pipelines as Prefect deployments, and their schedules.

On the local backend, what AzureML's pipeline endpoints and workspace schedules do is done by
Prefect: each published pipeline has a deployment of the flow `run-published-pipeline`
(`flows/run_published_pipeline.py`, which submits the pipeline's latest version to the
workspace and waits for it), run by a process worker of the project's work pool
(`himl-process`, as `deployments/prefect.yaml`'s deployments are); a pipeline schedule is one
of that deployment's schedules, named by its slug. Prefect is reached through its REST
interface (`PrefectRest`): the backends do not import Prefect.

The endpoints and payloads are Prefect 3.8's own client's
(`prefect/client/orchestration/_flows/client.py`, `_deployments/client.py`,
`_work_pools/client.py`): `POST /flows/` (made, or found by name), `GET/POST /work_pools/`,
`GET /deployments/name/{flow}/{deployment}`, `POST /deployments/` (made, or updated by flow
and name), `POST /deployments/filter`, and `POST/PATCH/DELETE /deployments/{id}/schedules`
(a schedule's `slug` is unique in its deployment, `prefect/server/api/deployments.py`).

One Prefect server may serve many workspaces: a deployment's name carries a digest of its
workspace folder (`<pipeline>@<digest>`), and its tags say which workspace it serves, so
each workspace lists only its own schedules.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from himl_tasks.backends.local.launcher import PACKAGE_PARENT
from himl_tasks.backends.prefect_rest import PrefectRest, path_part
from himl_tasks.errors import ConfigurationError, InvalidInputError
from himl_tasks.pipeline_runs import PipelineSchedule

FLOW_NAME = "run-published-pipeline"
FLOW_FILE = "flows/run_published_pipeline.py"
ENTRYPOINT = f"{FLOW_FILE}:run_published_pipeline"
WORK_POOL = "himl-process"
PUBLISHED_TAG = "himl-published-pipeline"
# Where the worker runs the flow from: the project beside this package, else (an installed
# package) the folder `deployments/prefect.yaml` names too.
PROJECT_ROOT_TEMPLATE = "{{ $HIML_PROJECT_ROOT }}"
_PAGE = 200  # the server's default page size (PREFECT_SERVER_API_DEFAULT_LIMIT)


class PipelineDeployments:
    """The deployments of one local workspace's published pipelines.

    Args:
        rest: The Prefect API session the requests are sent in.
        workspace: The workspace folder.
    """

    def __init__(self, rest: PrefectRest, workspace: Path) -> None:
        self.rest = rest
        self.workspace = workspace.resolve()
        digest = hashlib.sha256(str(self.workspace).encode()).hexdigest()
        self.workspace_tag = f"himl-workspace-{digest[:16]}"
        self._suffix = digest[:8]

    def deployment_name(self, pipeline: str) -> str:
        """The name of pipeline `pipeline`'s deployment."""
        return f"{pipeline}@{self._suffix}"

    def endpoint(self, pipeline: str) -> str:
        """What `prefect deployment run` takes: `run-published-pipeline/<deployment>`."""
        return f"{FLOW_NAME}/{self.deployment_name(pipeline)}"

    def find(self, pipeline: str) -> dict[str, Any] | None:
        """The pipeline's deployment, or None when there is none (yet)."""
        response = self.rest.request(
            "GET",
            f"/deployments/name/{path_part(FLOW_NAME)}/{path_part(self.deployment_name(pipeline))}",
            absent=(404,),
        )
        return None if response is None else self.rest.answer(response, dict, "deployment")

    def ensure(self, pipeline: str) -> dict[str, Any]:
        """The pipeline's deployment, made (with its flow and work pool) if there is none."""
        found = self.find(pipeline)
        if found is not None:
            return found
        flow = self.rest.answer(
            self.rest.request("POST", "/flows/", json={"name": FLOW_NAME}), dict, "flow"
        )
        if self.rest.request("GET", f"/work_pools/{path_part(WORK_POOL)}", absent=(404,)) is None:
            # Made as `prefect work-pool create himl-process --type process` makes it; a
            # process worker fills in its job template when it starts. 409: made meanwhile.
            self.rest.request(
                "POST", "/work_pools/", json={"name": WORK_POOL, "type": "process"}, absent=(409,)
            )
        body = {
            "name": self.deployment_name(pipeline),
            "flow_id": flow["id"],
            "entrypoint": ENTRYPOINT,
            "work_pool_name": WORK_POOL,
            "pull_steps": [
                {
                    "prefect.deployments.steps.set_working_directory": {
                        "directory": project_directory()
                    }
                }
            ],
            "parameters": {
                # An unsaved LocalWorkspace block: the flow's `backend_for` opens the folder.
                "workspace_block": {
                    "block_type_slug": "local-workspace",
                    "root": str(self.workspace),
                },
                "pipeline": pipeline,
            },
            "enforce_parameter_schema": False,
            "tags": [PUBLISHED_TAG, self.workspace_tag],
            "description": (
                f"Submits the latest published version of pipeline '{pipeline}' to the local "
                f"workspace at {self.workspace} and waits for it."
            ),
        }
        return self.rest.answer(
            self.rest.request("POST", "/deployments/", json=body), dict, "deployment"
        )

    def schedules(self) -> list[PipelineSchedule]:
        """The workspace's pipeline schedules, by name."""
        found = [
            schedule
            for deployment in self._deployments()
            for item in deployment.get("schedules") or []
            if (schedule := _schedule(deployment, item)) is not None
        ]
        return sorted(found, key=lambda s: s.name)

    def put_schedule(self, schedule: PipelineSchedule) -> PipelineSchedule:
        """Makes the schedule on its pipeline's deployment, or updates the one of its name.

        A schedule of that name on another pipeline's deployment moves: it is made on this
        one, then removed there.
        """
        deployment = self.ensure(schedule.pipeline)
        there = self._find_schedule(schedule.name)
        cron = {"cron": schedule.cron, "timezone": schedule.timezone}
        if there is not None and there[0]["id"] == deployment["id"]:
            self.rest.request(
                "PATCH",
                f"/deployments/{deployment['id']}/schedules/{there[1]['id']}",
                json={"schedule": cron, "active": schedule.active},
            )
        else:
            made = {"schedule": cron, "active": schedule.active, "slug": schedule.name}
            self.rest.request("POST", f"/deployments/{deployment['id']}/schedules", json=[made])
            if there is not None:
                self._delete(there[0], there[1])
        response = self.rest.request("GET", f"/deployments/{deployment['id']}/schedules")
        for item in self.rest.answer(response, list, "list of schedules"):
            if isinstance(item, dict) and item.get("slug") == schedule.name:
                return _schedule(deployment, item) or schedule
        raise ConfigurationError(  # pragma: no cover - the API lost what it just stored
            f"{self.rest.doing}: the Prefect API at {self.rest.api.url} does not list schedule "
            f"'{schedule.name}' on deployment {self.endpoint(schedule.pipeline)} after storing "
            "it; is it a Prefect 3 API?"
        )

    def remove_schedule(self, name: str) -> None:
        """Removes the workspace's schedule of that name, if there is one."""
        there = self._find_schedule(name)
        if there is not None:
            self._delete(*there)

    def _delete(self, deployment: dict[str, Any], item: dict[str, Any]) -> None:
        self.rest.request(
            "DELETE", f"/deployments/{deployment['id']}/schedules/{item['id']}", absent=(404,)
        )

    def _find_schedule(self, name: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The deployment holding the schedule `name`, and the schedule, as the API has them."""
        for deployment in self._deployments():
            for item in deployment.get("schedules") or []:
                if isinstance(item, dict) and item.get("slug") == name:
                    return deployment, item
        return None

    def _deployments(self) -> list[dict[str, Any]]:
        """The deployments of this workspace's published pipelines, page by page."""
        found: list[dict[str, Any]] = []
        while True:
            body = {
                "flows": {"name": {"any_": [FLOW_NAME]}},
                "deployments": {"tags": {"all_": [self.workspace_tag]}},
                "limit": _PAGE,
                "offset": len(found),
            }
            response = self.rest.request("POST", "/deployments/filter", json=body)
            page = self.rest.answer(response, list, "list of deployments")
            found.extend(d for d in page if isinstance(d, dict))
            if len(page) < _PAGE:
                return found


def project_directory() -> str:
    """Where a worker runs `run-published-pipeline` from: the folder holding `flows/`."""
    if (PACKAGE_PARENT / FLOW_FILE).is_file():
        return str(PACKAGE_PARENT)
    return PROJECT_ROOT_TEMPLATE


def _schedule(deployment: dict[str, Any], item: Any) -> PipelineSchedule | None:
    """A deployment schedule as a pipeline schedule; None for one this did not make."""
    if not isinstance(item, dict):
        return None
    timing = item.get("schedule")
    parameters = deployment.get("parameters")
    if not (isinstance(timing, dict) and isinstance(parameters, dict)):
        return None
    try:
        return PipelineSchedule(
            str(item.get("slug") or ""),
            str(parameters.get("pipeline") or ""),
            str(timing.get("cron") or ""),
            timezone=timing.get("timezone") or "UTC",
            active=bool(item.get("active", True)),
            id=str(item.get("id") or ""),
        )
    except InvalidInputError:  # made in Prefect's UI: no slug, an interval, ...
        return None
