"""Training job: a small PyTorch network on the preprocessed digits, resumable.

Every epoch writes a recovery checkpoint to `outputs/checkpoints/recovery_epoch=<n>.ckpt`; at
start the latest one (a preempted run's, restored by the platform or handed over by a
resubmission) is loaded and training goes on from the next epoch. The best model by validation
accuracy is kept as `outputs/checkpoints/best_model.ckpt`. Runs unchanged inside a job and as
`python flows/jobs/train.py --data_folder FEATURES`.

The recovery checkpoint alone is enough to finish: it holds the best model so far and its
accuracy, not only the latest one. A resubmitted job is handed just the lost run's latest
recovery checkpoint (AzureML gives a new run nothing else), so `best_model.ckpt` is written
again from it on resume, and a preemption after the last epoch still ends with the true best.

Each epoch's loss and validation accuracy also go to TensorBoard event files in
`outputs/tensorboard/` (`himl-tb` finds them under `outputs`, its default `--log_dir`), and
`report_progress` tells a watching Prefect task how many epochs are done.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from himl_tasks.runtime import (
    find_latest_recovery_checkpoint,
    get_run_info,
    log_metrics,
    report_progress,
)

BEST_MODEL = "best_model.ckpt"


def load(folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One split's pixels and labels."""
    data = np.load(folder / f"{split}.npz")
    return torch.from_numpy(data["pixels"]), torch.from_numpy(data["labels"])


def accuracy(model: nn.Module, pixels: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of images the model labels correctly."""
    with torch.no_grad():
        return float((model(pixels).argmax(dim=1) == labels).float().mean())


def save(state: dict[str, object], path: Path) -> None:
    """Writes a checkpoint under a temporary name first: a kill never leaves half a file."""
    partial = path.with_name(path.name + ".tmp")
    torch.save(state, partial)
    partial.replace(path)


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the model's weights that later training steps do not change."""
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def save_best(
    weights: dict[str, torch.Tensor], epoch: int, val_accuracy: float, folder: Path
) -> None:
    """Writes `best_model.ckpt`: the best weights so far, their epoch and validation accuracy."""
    if epoch >= 0:
        save({"model": weights, "epoch": epoch, "val_accuracy": val_accuracy}, folder / BEST_MODEL)


def main() -> None:
    """Trains, resuming from the latest recovery checkpoint, and reports test accuracy."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data_folder", type=Path, help="outside a job: the features folder")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--learning_rate", type=float, default=0.01)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epoch_seconds", type=float, default=0.0, help="pause per epoch")
    parser.add_argument(
        "--no_resume", action="store_true", help="start from scratch even if checkpoints exist"
    )
    args = parser.parse_args()
    if args.epochs < 1:
        parser.error(f"--epochs must be 1 or more, not {args.epochs}")

    info = get_run_info()
    data = args.data_folder or (info.input_datasets[0] if info.input_datasets else None)
    if data is None:
        parser.error("outside a job, give --data_folder")
    assert info.output_folder is not None
    checkpoints = info.output_folder / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(args.seed)
    train_x, train_y = load(data, "train")
    val_x, val_y = load(data, "val")
    test_x, test_y = load(data, "test")
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    loss_fn = nn.CrossEntropyLoss()

    start, best, best_epoch = 0, -1.0, -1
    best_model = snapshot(model)
    latest = None if args.no_resume else find_latest_recovery_checkpoint(checkpoints)
    if latest is not None:
        state = torch.load(latest)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, best = int(state["epoch"]) + 1, float(state["best_val_accuracy"])
        best_epoch, best_model = int(state["best_epoch"]), state["best_model"]
        # Whatever else was handed over, the best model is the one the recovery state names.
        save_best(best_model, best_epoch, best, checkpoints)
        print(f"resuming from {latest.name}: epochs {start}..{args.epochs - 1} to go", flush=True)

    # A resumed run drops the events the lost run wrote past its checkpoint (purge_step).
    board = SummaryWriter(info.output_folder / "tensorboard", purge_step=start or None)
    for epoch in range(start, args.epochs):
        generator = torch.Generator().manual_seed(args.seed * 1000 + epoch)
        order = torch.randperm(len(train_y), generator=generator)
        total = 0.0
        for first in range(0, len(order), args.batch_size):
            batch = order[first : first + args.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(train_x[batch]), train_y[batch])
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        val_accuracy = accuracy(model, val_x, val_y)
        improved = val_accuracy > best
        if improved:
            best, best_epoch, best_model = val_accuracy, epoch, snapshot(model)
        # The recovery checkpoint first: it is the whole truth, best_model.ckpt is derived.
        save(
            {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
             "best_val_accuracy": best, "best_epoch": best_epoch, "best_model": best_model},
            checkpoints / f"recovery_epoch={epoch}.ckpt",
        )  # fmt: skip
        if improved:
            save_best(best_model, best_epoch, best, checkpoints)
        for old in checkpoints.glob("recovery_epoch=*.ckpt"):
            if old.name != f"recovery_epoch={epoch}.ckpt":
                old.unlink()
        train_loss = total / len(train_y)
        log_metrics({"train_loss": train_loss, "val_accuracy": val_accuracy}, step=epoch)
        board.add_scalar("train_loss", train_loss, epoch)
        board.add_scalar("val_accuracy", val_accuracy, epoch)
        board.flush()  # himl-tb shows each epoch as it ends, not when the run ends
        report_progress(epoch + 1, args.epochs)
        print(f"epoch {epoch}: train loss {train_loss:.4f}, val accuracy {val_accuracy:.4f}")
        time.sleep(args.epoch_seconds)

    board.close()
    model.load_state_dict(best_model)
    test_accuracy = accuracy(model, test_x, test_y)
    log_metrics({"test_accuracy": test_accuracy, "best_val_accuracy": best})
    (info.output_folder / "metrics.json").write_text(
        json.dumps({"test_accuracy": test_accuracy, "best_val_accuracy": best}, indent=2)
    )
    print(f"test accuracy {test_accuracy:.4f}", flush=True)


if __name__ == "__main__":
    main()
