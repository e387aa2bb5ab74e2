"""RUN_CONTEXT and AzureMLLogger in a job on the AzureML stand-in, which runs it for real."""

from __future__ import annotations

from pathlib import Path

import pytest

from himl_tasks.backends.azureml_v1 import AzureMLV1Backend
from tests.backends.azureml_service import FakeAzureMLService
from tests.backends.conftest import azureml_job
from tests.himl.test_lightning_logging import HYPERPARAMS, TRAINING_SCRIPT


def test_run_context_is_azureml_s_run_inside_an_azureml_job(
    executing_aml: AzureMLV1Backend, aml_service: FakeAzureMLService, project: Path
) -> None:
    spec = azureml_job(
        project,
        """
        from pathlib import Path
        from himl_tasks import RUN_CONTEXT

        RUN_CONTEXT.log("loss", 0.5)
        RUN_CONTEXT.log("note", "first try")
        RUN_CONTEXT.log_list("accuracy", [0.1, 0.9])
        RUN_CONTEXT.log_table("hyperparams", {"name": ["lr"], "value": ["0.1"]})
        Path("chart.png").write_bytes(b"png")
        RUN_CONTEXT.log_image("chart", path="chart.png")
        RUN_CONTEXT.tag("seen", "yes")  # any method of azureml's Run
        print("experiment attribute:", hasattr(RUN_CONTEXT, "experiment"), RUN_CONTEXT.id)
        """,
    )
    ref = executing_aml.submit(spec)
    state = executing_aml.watch(ref, timeout_seconds=60, poll_seconds=0.1)

    assert state.succeeded, state.error
    logged = [(m.name, m.value, m.step) for m in executing_aml.get_metrics(ref)]
    for expected in [
        ("loss", 0.5, None), ("note", "first try", None), ("accuracy", 0.1, 0),
        ("accuracy", 0.9, 1), ("hyperparams/name", "lr", 0), ("hyperparams/value", "0.1", 0),
    ]:  # fmt: skip
        assert expected in logged
    assert (
        executing_aml.run_tags(ref)["seen"] == "yes" if hasattr(executing_aml, "run_tags") else True
    )
    assert f"experiment attribute: True {ref.run_id}" in "".join(executing_aml.iter_logs(ref))


def test_a_lightning_training_logs_to_the_azureml_run(
    executing_aml: AzureMLV1Backend, project: Path
) -> None:
    ref = executing_aml.submit(azureml_job(project, TRAINING_SCRIPT))
    state = executing_aml.watch(ref, timeout_seconds=120, poll_seconds=0.2)

    assert state.succeeded, "".join(executing_aml.iter_logs(ref))[-3000:]
    metrics = executing_aml.get_metrics(ref)
    values = {
        name: [m.value for m in metrics if m.name == name] for name in {m.name for m in metrics}
    }
    assert values["learning_rate"] == pytest.approx([0.1, 0.05])
    assert list(zip(values["hyperparams/name"], values["hyperparams/value"], strict=True)) == (
        HYPERPARAMS
    )
