"""`MLClientService`, the production side of the v2 seam: real `MLClient` calls, answered over HTTP.

A real `MLClient` sends its real requests (ARM for jobs and computes, the workspace's
discovery document, then the run history service for a job's details) through a requests
transport whose adapter answers as the services do: JSON bodies in the REST shapes
(workspace `properties.discoveryUrl` and `mlFlowTrackingUri`; run details with `runId`,
`status`, `error`), 404 `ResourceNotFound` for what does not exist. What is tested is the
translation at the seam, not the service.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
import requests
import urllib3

from himl_tasks.backends.azureml_v2 import sdk
from himl_tasks.backends.azureml_v2.service import MLClientService
from himl_tasks.errors import (
    ComputeNotFoundError,
    ConfigurationError,
    DatastoreNotFoundError,
    RunNotFoundError,
)

ARM = "https://management.azure.com"
WORKSPACE_PATH = (
    "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws"
)
REGION_API = "https://westeurope.api.azureml.ms"
WORKSPACE = {
    "id": WORKSPACE_PATH,
    "name": "ws",
    "location": "westeurope",
    "properties": {
        "workspaceId": "11111111-2222-3333-4444-555555555555",
        "discoveryUrl": f"{REGION_API}/discovery",
        "mlFlowTrackingUri": "azureml://westeurope.api.azureml.ms/mlflow/v1.0" + WORKSPACE_PATH,
    },
}
FAILED_DETAILS = {
    "runId": "job-failed",
    "status": "Failed",
    "createdTimeUtc": "2026-11-30T09:00:00.000Z",
    "endTimeUtc": "2026-11-30T09:10:00.000Z",
    "error": {
        "error": {
            "code": "UserError",
            "message": "AzureMLCompute job failed.\nPreemptionError: Nodes of this job got "
            "pre-empted.",
        }
    },
}

Answer = tuple[int, Any]


def service_answers(method: str, url: str) -> Answer:
    """What the ARM, discovery and run history services answer to a request."""
    if re.search(r"/workspaces/ws\?", url):
        return 200, WORKSPACE
    if url.startswith(f"{REGION_API}/discovery"):
        return 200, {"api": REGION_API, "history": REGION_API}
    if "/history/v1.0" in url and url.split("?")[0].endswith("/runs/job-failed/details"):
        return 200, FAILED_DETAILS
    if "/datastores?" in url:  # the listing behind "known: ..."
        return 200, {"value": []}
    return 404, {"error": {"code": "ResourceNotFound", "message": "Resource not found"}}


class _Adapter(requests.adapters.HTTPAdapter):
    def __init__(self, answer: Callable[[str, str], Answer]) -> None:
        super().__init__()
        self.answer = answer
        self.requests: list[str] = []

    def send(self, request: Any, *args: Any, **kwargs: Any) -> requests.Response:
        self.requests.append(f"{request.method} {request.url}")
        status, body = self.answer(request.method, request.url)
        content = json.dumps(body).encode()
        response = requests.Response()
        response.status_code = status
        response.raw = urllib3.HTTPResponse(
            body=io.BytesIO(content), status=status, preload_content=False
        )
        response.headers = requests.structures.CaseInsensitiveDict(
            {"Content-Type": "application/json", "Content-Length": str(len(content))}
        )
        response.url = request.url
        response.request = request
        return response


class _Credential:
    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken("token", 9_999_999_999)


@pytest.fixture
def adapter() -> _Adapter:
    return _Adapter(service_answers)


@pytest.fixture
def service(adapter: _Adapter) -> MLClientService:
    from azure.core.pipeline.transport import RequestsTransport

    session = requests.Session()
    session.mount("https://", adapter)
    with sdk.quiet():
        client = sdk.ml().MLClient(
            _Credential(),
            "sub",
            "rg",
            "ws",
            transport=RequestsTransport(session=session, session_owner=False),
        )
    return MLClientService(client)


def test_what_does_not_exist_is_the_errors_of_himl_tasks(service: MLClientService) -> None:
    with pytest.raises(RunNotFoundError, match="no job 'job-missing' in workspace 'ws'"):
        service.job("job-missing")
    with pytest.raises(RunNotFoundError):
        service.run_details("job-missing")
    with pytest.raises(ComputeNotFoundError, match="'gpu-cluster'"):
        service.compute("gpu-cluster")
    with pytest.raises(DatastoreNotFoundError, match="'images'.*known: none"):
        service.datastore("images")
    assert service.data("features", None) is None
    assert service.data("features", 3) is None  # no asset, so no version of it
    assert service.environment("HIML-0123", "1") is None


def test_run_details_come_from_the_run_history_in_the_rest_shape(
    service: MLClientService, adapter: _Adapter
) -> None:
    details = service.run_details("job-failed")

    assert details == FAILED_DETAILS
    assert any("/history/v1.0/" in request for request in adapter.requests)


def test_metrics_need_the_azureml_mlflow_plugin(service: MLClientService) -> None:
    # azureml-mlflow is not a dependency: the one error says what to install.
    with pytest.raises(ConfigurationError, match="pip install azureml-mlflow"):
        service.metrics("job-failed")


SCHEDULE = {
    "id": f"{WORKSPACE_PATH}/schedules/nightly",
    "name": "nightly",
    "type": "Microsoft.MachineLearningServices/workspaces/schedules",
    "properties": {
        "displayName": "nightly",
        "isEnabled": True,
        "provisioningState": "Succeeded",
        "tags": {"himl_pipeline": "prep_then_train"},
        "trigger": {"triggerType": "Cron", "expression": "0 2 * * *", "timeZone": "UTC"},
        "action": {
            "actionType": "CreateJob",
            "jobDefinition": {
                "jobType": "Pipeline",
                "componentId": "azureml:prep_then_train@latest",
                "experimentName": "chain",
                "settings": {},
                "jobs": {},
                "inputs": {},
                "outputs": {},
                "properties": {},
                "tags": {},
            },
        },
    },
}


def with_a_schedule(method: str, url: str) -> Answer:
    """The services of a workspace with one schedule, `nightly`."""
    if "/schedules/nightly?" in url:
        return (200, {}) if method == "DELETE" else (200, SCHEDULE)
    if re.search(r"/schedules\?", url):
        return 200, {"value": [SCHEDULE]}
    return service_answers(method, url)


@pytest.fixture
def scheduling(adapter: _Adapter) -> _Adapter:
    adapter.answer = with_a_schedule
    return adapter


def test_schedules_are_listed_enabled_or_not(
    service: MLClientService, scheduling: _Adapter
) -> None:
    (schedule,) = service.schedules()

    assert (schedule.name, schedule.trigger.expression) == ("nightly", "0 2 * * *")
    assert "listViewType=All" in scheduling.requests[-1]  # the default lists enabled ones only


def test_a_schedule_is_disabled_then_deleted(
    service: MLClientService, scheduling: _Adapter
) -> None:
    service.delete_schedule("nightly")

    sent = [r.split("?")[0].split(" ")[0] for r in scheduling.requests if "/schedules/" in r]
    assert sent == ["GET", "PUT", "DELETE"]  # begin_disable (read, write disabled), begin_delete


def test_what_is_not_published_or_scheduled_is_none_or_nothing(service: MLClientService) -> None:
    assert service.component("prep_then_train") is None
    assert service.component("prep_then_train", 2) is None
    assert service.component_versions("prep_then_train") == []
    service.delete_schedule("nightly")  # no such schedule: no error
