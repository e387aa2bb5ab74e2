"""The `himl` command's tests: real local runs, and the AzureML stand-in at its service seam."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from himl_tasks.backends.base import Backend
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.cli.app import app
from himl_tasks.job_spec import JobSpec
from himl_tasks.runs import RunRef

# The AzureML stand-ins' fixtures (aml_service, aml, executing_aml; aml_v2_service, aml_v2),
# shared with tests/backends; a user's project as the current folder (himl-download's and
# himl-tb's tests).
from tests.backends.conftest import (  # noqa: F401
    aml,
    aml_service,
    aml_v2,
    aml_v2_service,
    executing_aml,
)
from tests.himl.workspace_places import cwd_project  # noqa: F401
from tests.runtime.conftest import clean_job_environment  # noqa: F401

TRAIN = """
    import sys, time
    from pathlib import Path
    from himl_tasks.runtime import log_metric
    lr = float(sys.argv[sys.argv.index("--lr") + 1]) if "--lr" in sys.argv else 0.1
    for epoch in range(5):
        loss = 1.0 / (epoch + 1) + lr
        log_metric("loss", loss, step=epoch)
        print(f"epoch {epoch} loss {loss:.3f}", flush=True)
        if "--slow" in sys.argv:
            time.sleep(0.3)
    Path("outputs").mkdir(exist_ok=True)
    Path("outputs/model.txt").write_text(f"weights lr={lr}\\n")
    if "--fail" in sys.argv:
        raise SystemExit(3)
    if "--forever" in sys.argv:
        time.sleep(600)
"""


@pytest.fixture
def local(tmp_path: Path) -> LocalBackend:
    return LocalBackend(tmp_path / "workspace")


def project(root: Path, name: str = "project") -> Path:
    """A project folder holding the training script."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.py").write_text(textwrap.dedent(TRAIN), encoding="utf-8")
    return folder


@pytest.fixture
def spec(tmp_path: Path) -> JobSpec:
    """The project's training script as an AzureML job: a conda file, the stand-in's cluster."""
    folder = project(tmp_path)
    (folder / "environment.yml").write_text("name: train\ndependencies:\n  - python=3.11\n")
    return JobSpec(entry_script=folder / "train.py", snapshot_root=folder, compute="cpu-cluster")


def submit(backend: Backend, folder: Path, *args: str, **fields: object) -> RunRef:
    """Submits the project's script with `args` and JobSpec `fields`."""
    spec = JobSpec(
        entry_script=folder / "train.py",
        args=args,
        snapshot_root=folder,
        experiment=str(fields.pop("experiment", "digits")),
        **fields,  # type: ignore[arg-type]
    )
    return backend.submit(spec)


def himl(backend: Backend, *args: str, input: str | None = None) -> tuple[int, str, str]:
    """Runs `himl ARGS` on the backend; returns (exit code, stdout, stderr)."""
    result = CliRunner().invoke(app, list(args), obj=backend, input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def workspace(cwd_project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: F811
    """The local workspace himl-download and himl-tb find by the library's order ($HIML_HOME)."""
    folder = cwd_project.parent / "workspace"
    monkeypatch.setenv("HIML_HOME", str(folder))
    return folder
