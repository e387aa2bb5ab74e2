"""Preemption at every epoch boundary: a resumed training always finishes, with the true best.

The demo's real training job (`flows/jobs/train.py`) runs as a local low-priority job on tiny
data, and the cluster preempts it right after epoch k (`Preemption(after_metric=...)`), for
every k of a 3-epoch run, the last one included. A resubmitted job is handed what AzureML would
hand it (the lost run's latest recovery checkpoint, nothing else); a platform restart keeps
`outputs/`. Either way the job must complete, keep the model of the best epoch, and train no
epoch more than once beyond the one cut short.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.backends.local.clusters import Preemption
from himl_tasks.job_spec import JobSpec, Priority
from himl_tasks.jobs.run_to_completion import ResubmitPolicy, run_to_completion
from himl_tasks.runs import FailureKind, Metric, RunRef, RunState

EPOCHS = 3
TRAIN_SCRIPT = Path(__file__).resolve().parents[2] / "flows" / "jobs" / "train.py"
# With this seed and learning rate, validation accuracy peaks at epoch 1 and ties it at epoch 2
# (checked below): the best model is neither the first nor the last, and a tie must not move it.
LEARNING_RATE = "0.1"
SPLITS = {"train": 240, "val": 80, "test": 80}


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny, noisy 10-class data in the layout the preprocessing job writes."""
    folder = tmp_path_factory.mktemp("features")
    rng = np.random.default_rng(7)
    centers = rng.normal(0, 1, (10, 64)).astype(np.float32)
    for split, count in SPLITS.items():
        labels = rng.integers(0, 10, count)
        pixels = centers[labels] + rng.normal(0, 2.2, (count, 64)).astype(np.float32)
        np.savez(folder / f"{split}.npz", pixels=pixels.astype(np.float32), labels=labels)
    return folder


@pytest.fixture
def training(tmp_path: Path, features: Path) -> tuple[LocalBackend, JobSpec]:
    """A workspace holding the features dataset, and the training job as the flow submits it."""
    backend = LocalBackend(tmp_path / "workspace")
    backend.datastore("").upload_folder(features, "features")
    project = tmp_path / "project"
    (project / "flows" / "jobs").mkdir(parents=True)
    shutil.copy(TRAIN_SCRIPT, project / "flows" / "jobs" / "train.py")
    spec = JobSpec(
        entry_script="flows/jobs/train.py",
        args=["--epochs", str(EPOCHS), "--learning_rate", LEARNING_RATE, "--epoch_seconds", "0.5"],
        snapshot_root=project,
        compute="spot",
        priority=Priority.LOW_PRIORITY,
        experiment="train-digits",
        input_datasets=["features"],
    )
    return backend, spec


def val_accuracy_by_epoch(history: list[Metric]) -> dict[int, float]:
    """Each epoch's validation accuracy; an epoch trained twice must have given the same."""
    found: dict[int, float] = {}
    for metric in history:
        if metric.name == "val_accuracy" and metric.step is not None:
            assert found.setdefault(metric.step, metric.value) == metric.value, "not replayable"
    return found


def check_true_best(
    backend: LocalBackend, ref: RunRef, history: list[Metric], features: Path, tmp_path: Path
) -> None:
    """The run's best_model.ckpt holds the weights of the first epoch of highest accuracy."""
    import torch
    from torch import nn

    by_epoch = val_accuracy_by_epoch(history)
    assert sorted(by_epoch) == list(range(EPOCHS))
    best = max(by_epoch.values())
    best_epoch = min(epoch for epoch, value in by_epoch.items() if value == best)
    assert 0 < best_epoch < EPOCHS - 1, f"the data no longer makes a mid-run best: {by_epoch}"
    assert by_epoch[best_epoch + 1] == best  # the tie that must not move the best model

    backend.download_files(ref, "outputs/checkpoints/best_model.ckpt", tmp_path / "best")
    saved = torch.load(tmp_path / "best" / "outputs" / "checkpoints" / "best_model.ckpt")
    assert saved["epoch"] == best_epoch
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    model.load_state_dict(saved["model"])
    val = np.load(features / "val.npz")
    with torch.no_grad():
        predicted = model(torch.from_numpy(val["pixels"])).argmax(dim=1).numpy()
    assert float((predicted == val["labels"]).mean()) == pytest.approx(best)
    final = {m.name: m.value for m in history if m.attempt == max(h.attempt for h in history)}
    assert final["best_val_accuracy"] == pytest.approx(best)


def epochs_trained(history: list[Metric]) -> int:
    return sum(1 for m in history if m.name == "train_loss")


@pytest.mark.parametrize("after_epoch", range(1, EPOCHS + 1))
def test_a_resubmitted_training_preempted_after_any_epoch_completes_with_the_true_best(
    training: tuple[LocalBackend, JobSpec], features: Path, tmp_path: Path, after_epoch: int
) -> None:
    backend, spec = training
    backend.create_compute_cluster(
        "spot",
        preemption=Preemption(after_metric=("train_loss", after_epoch), max_preemptions=1),
    )
    lost: list[RunState] = []

    def watch(ref: RunRef) -> RunState:
        state = backend.wait(ref, timeout=180)
        if not state.succeeded:
            lost.append(state)
        return state

    result = run_to_completion(
        backend, spec, submit=backend.submit, watch=watch, policy=ResubmitPolicy(delay_seconds=0)
    )

    assert result.state.succeeded, result.state.error
    assert [s.failure_kind for s in lost] == [FailureKind.PREEMPTED]
    assert len(result.attempts) == 2
    resumed_log = "\n".join(backend.iter_logs(result.run))
    assert any(
        f"resuming from recovery_epoch={epoch}.ckpt" in resumed_log
        for epoch in (after_epoch - 1, after_epoch)
    ), resumed_log
    assert epochs_trained(result.metric_history) <= EPOCHS + 1
    check_true_best(backend, result.run, result.metric_history, features, tmp_path)


def test_a_training_the_platform_restarts_after_its_last_epoch_completes_with_the_true_best(
    training: tuple[LocalBackend, JobSpec], features: Path, tmp_path: Path
) -> None:
    backend, spec = training
    backend.create_compute_cluster(
        "spot",
        preemption=Preemption(
            after_metric=("train_loss", EPOCHS), mode="restart", restart_delay_seconds=0
        ),
    )

    ref = backend.submit(spec)
    state = backend.wait(ref, timeout=180)

    assert state.succeeded, state.error
    assert [a["failure_kind"] for a in backend.attempts(ref)] == ["preempted", None]
    history = backend.get_metrics(ref)
    assert epochs_trained(history) <= EPOCHS + 1
    check_true_best(backend, ref, history, features, tmp_path)


def test_the_flow_completes_when_its_low_priority_training_is_preempted_after_the_last_epoch(
    workspace: tuple[str, LocalBackend], tmp_path: Path
) -> None:
    from flows.preprocess_then_train import preprocess_then_train

    block, backend = workspace
    backend.create_compute_cluster(
        "spot", preemption=Preemption(after_metric=("train_loss", EPOCHS), max_preemptions=1)
    )

    result = preprocess_then_train(
        workspace_block=block,
        train_compute="spot",
        low_priority=True,
        epochs=EPOCHS,
        epoch_seconds=0.5,
        retry_delay_seconds=0,
        results_folder=str(tmp_path / "results"),
    )

    assert len(result["train_attempts"]) == 2  # preempted once, resubmitted, resumed
    assert result["epochs_trained"] <= EPOCHS + 1
    assert Path(result["checkpoint"]).is_file()
    assert result["test_accuracy"] is not None
