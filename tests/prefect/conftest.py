"""What the Prefect wing's tests share: a project of tiny job scripts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


@contextmanager
def canceling_the_flow_run(
    seen: dict[str, str], ready: Callable[[], bool], *, pause: float = 0.0
) -> Iterator[None]:
    """Sets the flow run `seen["flow_run"]` Cancelling, from a thread, once `ready()` says so.

    Args:
        seen: Where the flow under test writes its flow run's id.
        ready: True once the flow has got where it is to be canceled (e.g. its job runs).
        pause: Seconds to wait after that before canceling.
    """
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling

    def cancel() -> None:
        deadline = time.monotonic() + 120
        while not ("flow_run" in seen and ready()) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(pause)
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(seen["flow_run"], Cancelling(), force=True)

    canceller = threading.Thread(target=cancel)
    canceller.start()
    try:
        yield
    finally:
        canceller.join()
