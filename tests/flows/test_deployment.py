"""The real deployment path, end to end: server, deploy, worker, `prefect deployment run`."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from himl_tasks.testing.azurite import ACCOUNT_NAME, Azurite
from scripts.demo import PROJECT_ROOT
from tests.backends.azureml_v2_service import FakeAzureMLV2Service
from tests.backends.conftest import aml_v2_service  # noqa: F401


def test_the_demo_deploys_runs_and_stops_what_it_started(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["HIML_STATE"] = str(tmp_path / "state")
    finished = subprocess.run(
        [sys.executable, "-m", "scripts.demo"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, output[-3000:]
    assert "Flow run finished successfully in 'Completed'" in output
    assert "| digits_raw:1 | digits_features:1 |" in output
    accuracy = float(re.search(r"Test accuracy: \*\*([0-9.]+)\*\*", output).group(1))  # type: ignore[union-attr]
    assert accuracy >= 0.95
    assert (tmp_path / "state/results/outputs/checkpoints/best_model.ckpt").is_file()
    assert (tmp_path / "state/prefect/prefect.db").is_file()  # the server's database
    assert "stopped Prefect worker" in output and "stopped Prefect server" in output
    port = re.search(r"127\.0\.0\.1:(\d+)", output).group(1)  # type: ignore[union-attr]
    probe = subprocess.run(
        [sys.executable, "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}))"],
        capture_output=True,
        check=False,
    )
    assert probe.returncode != 0  # nothing listens there any more


def deployments() -> dict[str, dict[str, Any]]:
    """deployments/prefect.yaml's deployments by name, as `prefect deploy` reads them."""
    text = (PROJECT_ROOT / "deployments/prefect.yaml").read_text(encoding="utf-8")
    return {d["name"]: d for d in yaml.safe_load(text)["deployments"]}


def test_the_azureml_v2_deployment_runs_the_flow_on_an_sdk_v2_block(
    prefect_api: None,
    aml_v2_service: FakeAzureMLV2Service,  # noqa: F811
    azurite: Azurite,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`preprocess-then-train/azureml-v2`: the flow, on the block it names saved with
    sdk="v2" (the v2 service stand-in behind it), with parameters the v2 backend takes."""
    from flows.preprocess_then_train import preprocess_then_train
    from himl_tasks.backends.azureml_v2 import AzureMLV2Backend
    from himl_tasks.backends.azureml_v2 import backend as v2_backend
    from himl_tasks.job_spec import JobSpec, Priority
    from himl_tasks.prefect import AzureMLWorkspace, backend_for

    deployment = deployments()["azureml-v2"]
    parameters = deployment["parameters"]
    assert deployment["entrypoint"] == "flows/preprocess_then_train.py:preprocess_then_train"
    assert deployment["work_pool"]["name"] == "himl-process"
    assert set(parameters) <= set(inspect.signature(preprocess_then_train.fn).parameters)
    block_type, block_name = parameters["workspace_block"].split("/")
    assert block_type == "azureml-workspace"

    class OnAzurite(AzureMLV2Backend):
        """The backend as the block makes it; its storage account is Azurite's."""

        def __init__(self, ml_client: Any = None, **options: Any) -> None:
            super().__init__(ml_client, account_urls={ACCOUNT_NAME: azurite.account_url}, **options)

    monkeypatch.setattr(v2_backend, "MLClientService", lambda ml_client: aml_v2_service)
    monkeypatch.setattr(v2_backend, "AzureMLV2Backend", OnAzurite)
    AzureMLWorkspace(
        subscription_id=aml_v2_service.subscription_id,
        resource_group=aml_v2_service.resource_group,
        workspace_name=aml_v2_service.workspace_name,
        sdk="v2",
    ).save(block_name, overwrite=True)

    backend = backend_for(parameters["workspace_block"])

    assert isinstance(backend, AzureMLV2Backend)
    for compute in (parameters["preprocess_compute"], parameters["train_compute"]):
        backend.check_compute(compute)
    training = JobSpec(
        entry_script="flows/jobs/train.py",
        snapshot_root=PROJECT_ROOT,
        compute=parameters["train_compute"],
        priority=Priority.LOW_PRIORITY if parameters["low_priority"] else Priority.DEDICATED,
    )
    backend.check_spec(training)  # low priority where v2 has it: Spot on serverless compute
    backend.submit(training)
    submitted, _ = aml_v2_service.submitted[-1]
    assert submitted.compute is None and submitted.queue_settings.job_tier.lower() == "spot"
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert "`preprocess-then-train/azureml-v2`" in readme


def test_the_native_pipeline_deployment_runs_the_chain_as_one_pipeline_and_the_demo_offers_it() -> (
    None
):
    """`preprocess-then-train/native-pipeline`: the flow on the local block, native_pipeline on;
    `make demo DEMO_ARGS=--native-pipeline` runs it (the plain demo still runs `local`)."""
    from flows.preprocess_then_train import preprocess_then_train
    from scripts.demo import chosen_deployment

    deployment = deployments()["native-pipeline"]
    parameters = deployment["parameters"]
    assert deployment["entrypoint"] == "flows/preprocess_then_train.py:preprocess_then_train"
    assert deployment["work_pool"]["name"] == "himl-process"
    assert set(parameters) <= set(inspect.signature(preprocess_then_train.fn).parameters)
    assert parameters == {"workspace_block": "local-workspace/demo", "native_pipeline": True}
    assert (
        inspect.signature(preprocess_then_train.fn).parameters["native_pipeline"].default is False
    )
    assert chosen_deployment(["--native-pipeline", "--param", "epochs=4"]) == (
        "preprocess-then-train/native-pipeline",
        ["--param", "epochs=4"],
    )
    assert chosen_deployment([]) == ("preprocess-then-train/local", [])
