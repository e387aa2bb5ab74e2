"""A PyTorch Lightning training that logs to its run with hi-ml's three logging helpers.

hi-ml's logging chapter (`AzureMLLogger`, `log_on_epoch`, `log_learning_rate`; its examples
have no such file). A straight line is fitted to a few
noisy points, on the CPU, in a few seconds. In a job (`--azureml` or `--himl-local`) the logger
writes the epoch metrics (`train_loss`, `learning_rate`) to the run, where the portal (or the
local backend's metrics) shows them; run plain, `AzureMLLogger()` logs nothing, as in hi-ml, and
the script prints the losses itself.
"""

from argparse import ArgumentParser
from typing import Any

import torch
from pytorch_lightning import LightningModule, Trainer
from torch.utils.data import DataLoader, TensorDataset

from himl_tasks import AzureMLLogger, log_learning_rate, log_on_epoch, submit_to_azure_if_needed

# A compute cluster of your workspace: on AzureML one you created; on the local backend, create
# it once (see examples/README.md).
CLUSTER = "cpu-cluster"


class LineFit(LightningModule):
    """y = a * x + b, learnt by gradient descent with a decaying learning rate."""

    def __init__(self, learning_rate: float) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.line = torch.nn.Linear(1, 1)

    def training_step(self, batch: list[torch.Tensor], batch_index: int) -> torch.Tensor:
        """The batch's mean squared error, logged once per epoch (averaged over its steps)."""
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.line(x), y)
        log_on_epoch(self, "train_loss", loss)
        log_learning_rate(self)
        return loss

    def on_train_epoch_end(self) -> None:
        """Prints the epoch's loss, for a plain run where no logger keeps it."""
        loss = self.trainer.callback_metrics["train_loss"]
        print(f"epoch {self.current_epoch}: train_loss {loss:.4f}")

    def configure_optimizers(self) -> Any:
        """SGD, its learning rate halved after every epoch."""
        optimizer = torch.optim.SGD(self.parameters(), lr=self.hparams["learning_rate"])
        return [optimizer], [torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)]


def noisy_line(points: int) -> TensorDataset:
    """Points near y = 3x + 1, the same ones every time."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(points, 1, generator=generator)
    return TensorDataset(x, 3 * x + 1 + 0.05 * torch.randn(points, 1, generator=generator))


def main() -> None:
    """Submits itself when asked to, then trains for --epochs and logs to the run."""
    run_info = submit_to_azure_if_needed(
        compute_cluster_name=CLUSTER,
        wait_for_completion=True,
        wait_for_completion_show_output=True,
    )
    parser = ArgumentParser(description="Fit a line with PyTorch Lightning.")
    parser.add_argument("--epochs", type=int, default=3, help="epochs to train")
    parser.add_argument("--learning_rate", type=float, default=0.5, help="the first epoch's rate")
    args = parser.parse_args()

    trainer = Trainer(
        max_epochs=args.epochs,
        accelerator="cpu",
        logger=[AzureMLLogger()],
        default_root_dir=run_info.output_folder,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    model = LineFit(args.learning_rate)
    trainer.fit(model, DataLoader(noisy_line(64), batch_size=16))
    weight, bias = model.line.weight.item(), model.line.bias.item()
    print(f"fitted y = {weight:.2f} x + {bias:.2f}")


if __name__ == "__main__":
    main()
