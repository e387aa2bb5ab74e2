"""What the Prefect wing's tests share: a project of tiny job scripts."""

from __future__ import annotations

from pathlib import Path

import pytest

from himl_tasks.job_spec import JobSpec
from tests.backends.conftest import write_script

# A job that trains `epochs` epochs of `pause` seconds, writing a recovery checkpoint and a
# metric per epoch, and resuming from its latest checkpoint.
EPOCHS = """\
    import sys, time
    from pathlib import Path
    from himl_tasks.runtime import find_latest_recovery_checkpoint, get_run_info, log_metric

    epochs, pause = int(sys.argv[1]), float(sys.argv[2])
    folder = get_run_info().output_folder / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    latest = find_latest_recovery_checkpoint(folder)
    start = int(latest.read_text()) + 1 if latest else 0
    print(f"starting at epoch {start}", flush=True)
    for epoch in range(start, epochs):
        time.sleep(pause)
        (folder / f"recovery_epoch={epoch}.ckpt").write_text(str(epoch))
        log_metric("epoch_done", epoch, step=epoch)
        print(f"epoch {epoch} done", flush=True)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A snapshot folder with `epochs.py` and `broken.py` (which fails)."""
    folder = tmp_path / "project"
    write_script(folder, "epochs.py", EPOCHS)
    write_script(folder, "broken.py", "print('about to fail', flush=True)\n1 / 0\n")
    return folder


def epochs_spec(project: Path, epochs: int, pause: float, **changes: object) -> JobSpec:
    """The `epochs.py` job of `project`."""
    return JobSpec(
        entry_script="epochs.py", args=[str(epochs), str(pause)], snapshot_root=project,
        **changes,  # type: ignore[arg-type]
    )  # fmt: skip
