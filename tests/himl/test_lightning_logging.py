"""hi-ml's Lightning logging: a real Trainer.fit logs to the local run, and to nothing plain."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.errors import InvalidInputError
from himl_tasks.job_spec import JobSpec
from tests.backends.conftest import write_script

# Two epochs of two batches on 8 random rows; StepLR halves the rate after each epoch.
TRAINING_SCRIPT = """
    import os
    import torch
    from pytorch_lightning import LightningModule, Trainer
    from torch.utils.data import DataLoader, TensorDataset
    from himl_tasks import AzureMLLogger, log_learning_rate, log_on_epoch

    class Tiny(LightningModule):
        def __init__(self, lr, optimizer):
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(3, 1)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.layer(x), y)
            extra = {"constant": 2}
            log_on_epoch(self, "train_loss", loss, metrics=extra)
            assert extra == {"constant": 2}  # the caller's dict is left as it was
            log_learning_rate(self)
            return loss

        def configure_optimizers(self):
            optimizer = torch.optim.SGD(self.parameters(), lr=self.hparams.lr)
            return [optimizer], [torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5)]

    torch.manual_seed(0)
    data = TensorDataset(torch.randn(8, 3), torch.randn(8, 1))
    loggers = [AzureMLLogger()]
    if os.environ.get("ALSO_TO_FILE"):
        loggers.append(AzureMLLogger(enable_logging_outside_azure_ml=True, experiment_name="tiny"))
    trainer = Trainer(
        max_epochs=2, logger=loggers, accelerator="cpu", enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1,
    )
    trainer.fit(Tiny(0.1, {"name": "sgd", "momentum": 0.0}), DataLoader(data, batch_size=4))
    print("trained")
"""

HYPERPARAMS = [("lr", "0.1"), ("optimizer/name", "sgd"), ("optimizer/momentum", "0.0")]


def test_a_training_in_a_local_job_logs_epochs_and_hyperparameters_to_its_run(
    tmp_path: Path,
) -> None:
    backend = LocalBackend(tmp_path / "ws")
    project = tmp_path / "project"
    write_script(project, "train.py", TRAINING_SCRIPT)

    ref = backend.submit(JobSpec(entry_script="train.py", snapshot_root=project))
    state = backend.wait(ref, timeout=120)

    assert state.succeeded, "".join(backend.iter_logs(ref))[-3000:]
    metrics = backend.get_metrics(ref)
    hyperparams = zip(
        _values(metrics, "hyperparams/name"), _values(metrics, "hyperparams/value"), strict=True
    )
    assert list(hyperparams) == HYPERPARAMS  # one table, name and value as text (hi-ml's)
    # Lightning adds "epoch" to what it logs at an epoch's end: hi-ml logs those without a step.
    assert _values(metrics, "learning_rate") == pytest.approx([0.1, 0.05])  # float32 tensors
    assert _values(metrics, "epoch") == [0.0, 1.0]
    assert _values(metrics, "constant") == [2.0, 2.0]
    losses = _values(metrics, "train_loss")
    assert len(losses) == 2 and all(isinstance(v, float) and v > 0 for v in losses)
    assert {m.step for m in metrics if not m.name.startswith("hyperparams/")} == {None}


def test_the_same_training_run_plainly_logs_to_no_run_unless_asked(tmp_path: Path) -> None:
    script = write_script(tmp_path, "train.py", TRAINING_SCRIPT)
    home = tmp_path / "home"
    env = {**os.environ, "HIML_HOME": str(home), "ALSO_TO_FILE": "1"}
    for name in list(env):
        if name.startswith(("HIML_IN_JOB", "HIML_RUN_ID", "AZUREML_")):
            del env[name]

    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    assert "trained" in result.stdout
    assert "AzureMLLogger will not write any logs" in result.stdout
    assert not home.exists()  # no local workspace, so no run, was made
    # The second logger was asked to log outside any run: it writes beside the script's logs.
    lines = (tmp_path / "logs" / "tiny.metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    learning_rates = [r["value"] for r in records if r["name"] == "learning_rate"]
    assert learning_rates == pytest.approx([0.1, 0.05])
    assert [r["value"] for r in records if r["name"] == "hyperparams/name"] == [
        name for name, _ in HYPERPARAMS
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs", "train.py"]


def _values(metrics: list[Any], name: str) -> list[float | str]:
    return [m.value for m in metrics if m.name == name]


class RecordingRun:
    """A run given as `run=` (hi-ml: an azureml Run): what the logger asks of it, recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def log(self, name: str, value: Any, step: int | None = None) -> None:
        self.calls.append(("log", name, value, step))

    def log_table(self, name: str, value: Any) -> None:
        self.calls.append(("log_table", name, value))

    def flush(self) -> None:
        self.calls.append(("flush",))

    def complete(self) -> None:
        self.calls.append(("complete",))


def test_epoch_metrics_have_no_step_and_a_given_run_is_flushed_not_completed(
    outside_any_run: None,
) -> None:
    import argparse

    from himl_tasks.himl.lightning_logging import AzureMLLogger

    run = RecordingRun()
    logger = AzureMLLogger(enable_logging_outside_azure_ml=True, run=run)

    logger.log_metrics({"loss": 0.5, "epoch": 1}, step=7)
    logger.log_metrics({"loss_step": 0.4}, step=8)
    logger.log_hyperparams(argparse.Namespace(lr=0.1, model={"depth": 3}, empty={}))
    logger.finalize("success")

    assert run.calls == [
        ("log", "loss", 0.5, None), ("log", "epoch", 1, None), ("log", "loss_step", 0.4, 8),
        ("log_table", "hyperparams",
         {"name": ["lr", "model/depth", "empty"], "value": ["0.1", "3", "{}"]}),
        ("flush",),
    ]  # fmt: skip
    assert (logger.name, logger.version, logger.experiment) == ("", 0, None)


def test_outside_any_run_by_default_nothing_is_logged_and_that_is_said_once(
    outside_any_run: None, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from himl_tasks.himl import lightning_logging

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(lightning_logging, "_said_nothing_is_logged", False)
    first, second = lightning_logging.AzureMLLogger(), lightning_logging.AzureMLLogger()
    first.log_metrics({"loss": 0.5, "epoch": 0})
    second.log_hyperparams({"lr": 0.1})

    assert capsys.readouterr().out.count("AzureMLLogger will not write any logs") == 1
    assert first.run is None and list(tmp_path.iterdir()) == []


def test_the_metrics_file_stays_in_logs_whatever_the_experiment_name(
    outside_any_run: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from himl_tasks.himl.lightning_logging import AzureMLLogger

    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    logger = AzureMLLogger(enable_logging_outside_azure_ml=True, experiment_name="../../out")
    logger.log_metrics({"loss": 0.5}, step=1)

    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.jsonl")] == [
        "project/logs/out.metrics.jsonl"
    ]


def test_bad_calls_get_hi_ml_s_errors_from_our_tree(outside_any_run: None) -> None:
    import torch
    from pytorch_lightning import LightningModule, Trainer

    from himl_tasks.himl import AzureMLLogger, log_learning_rate, log_on_epoch

    module = LightningModule()
    with pytest.raises(InvalidInputError, match="both or neither of 'name' and 'value'"):
        log_on_epoch(module, name="loss")
    with pytest.raises(ValueError, match="both or neither"):  # hi-ml users catch ValueError
        log_on_epoch(module, value=torch.tensor(1.0))
    with pytest.raises(InvalidInputError, match="not attached to a Trainer"):
        log_on_epoch(module, "loss", 1.0)
    module.trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    with pytest.raises(InvalidInputError, match="only be used during training"):
        log_learning_rate(module)  # no scheduler
    with pytest.raises(InvalidInputError, match="from outside a job"):
        AzureMLLogger(enable_logging_outside_azure_ml=True, workspace_config_path="config.json")
