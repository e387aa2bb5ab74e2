"""hi-ml's RUN_CONTEXT: records with a local run, forwards to azureml's run, prints outside."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.errors import InputPathNotFoundError, InvalidInputError
from himl_tasks.himl.run_context import RUN_CONTEXT
from himl_tasks.job_spec import JobSpec
from tests.backends.conftest import write_script

# A 1x1 PNG: log_image keeps the file as it is, so any bytes would do; these are an image.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)

LOGGING_SCRIPT = """
    import os
    from pathlib import Path
    from himl_tasks.himl.run_context import RUN_CONTEXT

    RUN_CONTEXT.log("loss", 0.5)
    RUN_CONTEXT.log("loss_per_epoch", 0.25, step=3)
    RUN_CONTEXT.log("note", "first try")
    RUN_CONTEXT.log("lr_text", "0.1")  # text that looks like a number stays text
    RUN_CONTEXT.log_list("accuracies", [0.1, 0.2, 0.3])
    RUN_CONTEXT.log_row("scores", a=1, b=2)
    RUN_CONTEXT.log_row("scores", a=3, b=4)
    RUN_CONTEXT.log_row("val", step=7, value=0.75)
    RUN_CONTEXT.log_table("hyperparams", {"name": ["lr", "epochs"], "value": ["0.1", "2"]})
    Path("plot.png").write_bytes(bytes.fromhex(os.environ["PNG"]))
    RUN_CONTEXT.log_image("my plot", path="plot.png")
    RUN_CONTEXT.flush()
    os.environ["RANK"] = "1"
    RUN_CONTEXT.log("loss", 99.0)  # only global rank zero records
    RUN_CONTEXT.log_image("rank1", path="plot.png")
    print("id:", RUN_CONTEXT.id, "experiment attribute:", hasattr(RUN_CONTEXT, "experiment"))
"""


def test_a_local_job_records_every_kind_of_value_with_its_run(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "ws")
    project = tmp_path / "project"
    write_script(project, "log_all.py", LOGGING_SCRIPT)

    ref = backend.submit(
        JobSpec(entry_script="log_all.py", snapshot_root=project,
                environment_variables={"PNG": PNG.hex()})
    )  # fmt: skip
    state = backend.wait(ref, timeout=60)

    assert state.succeeded, state.error
    logged = [(m.name, m.value, m.step) for m in backend.get_metrics(ref)]
    assert logged == [
        ("loss", 0.5, None),
        ("loss_per_epoch", 0.25, 3),
        ("note", "first try", None),
        ("lr_text", "0.1", None),
        ("accuracies", 0.1, 0), ("accuracies", 0.2, 1), ("accuracies", 0.3, 2),
        ("scores/a", 1.0, 0), ("scores/b", 2.0, 0),
        ("scores/a", 3.0, 1), ("scores/b", 4.0, 1),
        ("val", 0.75, 7),
        ("hyperparams/name", "lr", 0), ("hyperparams/value", "0.1", 0),
        ("hyperparams/name", "epochs", 1), ("hyperparams/value", "2", 1),
    ]  # fmt: skip
    assert backend.list_files(ref, "logs/images/") == ["logs/images/my_plot.png"]
    backend.download_files(ref, "logs/images/", tmp_path / "got")
    assert (tmp_path / "got" / "logs" / "images" / "my_plot.png").read_bytes() == PNG
    assert f"id: {ref.run_id} experiment attribute: False" in "".join(backend.iter_logs(ref))


def test_outside_any_run_it_prints_like_azureml_s_offline_run_and_records_nothing(
    tmp_path: Path,
) -> None:
    script = write_script(tmp_path, "plain.py", LOGGING_SCRIPT)
    env = {"PATH": "/usr/bin:/bin", "HIML_HOME": str(tmp_path / "home"), "PNG": PNG.hex()}

    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip

    # azureml's _OfflineRun._emit prints these words (azureml/core/run.py).
    assert "Attempted to log scalar metric loss:\n0.5\n" in result.stdout
    assert "Attempted to log list metric accuracies:\n[0.1, 0.2, 0.3]\n" in result.stdout
    assert "Attempted to log row metric scores:\n{'a': 1, 'b': 2}\n" in result.stdout
    assert "Attempted to log table metric hyperparams:\n{'name'" in result.stdout
    assert "Attempted to log image metric my plot:\nplot.png\n" in result.stdout
    assert "Attempted to flush run with id OfflineRun_" in result.stdout
    assert "99.0" not in result.stdout and "rank1" not in result.stdout
    assert "id: OfflineRun_" in result.stdout and "experiment attribute: False" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.py", "plot.png"]


ODD_VALUES_SCRIPT = """
    import numpy
    from himl_tasks.himl.run_context import RUN_CONTEXT

    RUN_CONTEXT.log("loss", float("nan"), step=numpy.int64(4))  # a diverged training
    RUN_CONTEXT.log("loss", float("inf"), step=5)
    RUN_CONTEXT.log("count", 10**400)
    for step in ("x", 1.5, True):
        try:
            RUN_CONTEXT.log("loss", 0.1, step=step)
        except ValueError as error:
            print("refused:", error)
    try:
        RUN_CONTEXT.log_row("val", step="x", value=0.5)
    except ValueError as error:
        print("refused:", error)
"""


def test_a_local_job_keeps_nan_and_huge_values_and_refuses_steps_that_are_not_whole(
    tmp_path: Path,
) -> None:
    backend = LocalBackend(tmp_path / "ws")
    write_script(tmp_path / "project", "odd.py", ODD_VALUES_SCRIPT)

    ref = backend.submit(JobSpec(entry_script="odd.py", snapshot_root=tmp_path / "project"))
    state = backend.wait(ref, timeout=60)

    assert state.succeeded, state.error
    logged = [(m.name, m.value, m.step) for m in backend.get_metrics(ref)]
    assert len(logged) == 3
    assert logged[0][0] == "loss" and math.isnan(logged[0][1]) and logged[0][2] == 4
    assert logged[1:] == [("loss", math.inf, 5), ("count", str(10**400), None)]
    output = "".join(backend.iter_logs(ref))
    for step in ("'x'", "1.5", "True"):
        assert (
            f"refused: log('loss', ..., step=...): a step is a whole number (an epoch, an "
            f"iteration), or None; not {step}" in output
        )
    assert "refused: table 'val''s step column: a step is a whole number" in output


class FakeAzureMLRun:
    """What azureml's `Run.get_context()` returns inside an AzureML run (it asks the service).

    Its methods have azureml-core 1.61's signatures (azureml/core/run.py: `log(name, value,
    description='', step=None)`, `log_image(name, path=None, plot=None, description='')`, ...).
    """

    id = "exp_1700000000_abcdef"

    class experiment:  # noqa: N801
        name = "exp"

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, dict[str, Any]]] = []

    def log(self, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        self.calls.append(("log", (name, value), {"description": description, "step": step}))

    def log_table(self, name: str, value: Any, description: str = "") -> None:
        self.calls.append(("log_table", (name, value), {}))

    def log_image(
        self, name: str, path: Any = None, plot: Any = None, description: str = ""
    ) -> None:
        self.calls.append(("log_image", (name, path), {}))

    def upload_file(self, name: str, path_or_stream: str) -> None:
        self.calls.append(("upload_file", (name, path_or_stream), {}))


def test_inside_an_azureml_run_it_is_azureml_s_own_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outside_any_run: None
) -> None:
    from azureml.core import Run

    aml_run = FakeAzureMLRun()
    monkeypatch.setattr(Run, "get_context", staticmethod(lambda: aml_run))
    monkeypatch.setenv("AZUREML_RUN_ID", aml_run.id)
    (tmp_path / "a.png").write_bytes(PNG)

    RUN_CONTEXT.log("loss", 0.5, step=2)
    RUN_CONTEXT.log_table("hyperparams", {"name": ["lr"], "value": ["0.1"]})
    RUN_CONTEXT.log_image("plot", path=tmp_path / "a.png")
    RUN_CONTEXT.upload_file("outputs/x.txt", "x.txt")  # any method of azureml's Run
    monkeypatch.setenv("RANK", "1")
    RUN_CONTEXT.log("loss", 9.0)

    assert aml_run.calls == [
        ("log", ("loss", 0.5), {"description": "", "step": 2}),
        ("log_table", ("hyperparams", {"name": ["lr"], "value": ["0.1"]}), {}),
        ("log_image", ("plot", tmp_path / "a.png"), {}),
        ("upload_file", ("outputs/x.txt", "x.txt"), {}),
    ]
    assert RUN_CONTEXT.id == aml_run.id
    assert hasattr(RUN_CONTEXT, "experiment")  # hi-ml's is_running_in_azure_ml(RUN_CONTEXT)

    monkeypatch.delenv("AZUREML_RUN_ID")  # the proxy finds the run again when it changes
    assert not hasattr(RUN_CONTEXT, "experiment")
    assert RUN_CONTEXT.id.startswith("OfflineRun_")


def test_an_image_needs_exactly_one_existing_file_or_a_figure(
    tmp_path: Path, outside_any_run: None
) -> None:
    with pytest.raises(InvalidInputError, match="needs one image"):
        RUN_CONTEXT.log_image("plot")
    with pytest.raises(InvalidInputError, match="not both"):
        RUN_CONTEXT.log_image("plot", path="a.png", plot=object())
    with pytest.raises(ValueError, match="matplotlib figure"):  # hi-ml users catch ValueError
        RUN_CONTEXT.log_image("plot", plot=object())
    with pytest.raises(InputPathNotFoundError, match="no such file"):
        RUN_CONTEXT.log_image("plot", path=tmp_path / "missing.png")
    with pytest.raises(InvalidInputError, match="dict of columns"):
        RUN_CONTEXT.log_table("t", [1, 2])  # type: ignore[arg-type]


def test_a_figure_is_saved_as_png_among_the_local_run_s_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outside_any_run: None
) -> None:
    class Figure:  # matplotlib's Figure.savefig(fname, format=...), without matplotlib
        def savefig(self, fname: Path, format: str) -> None:
            Path(fname).write_bytes(PNG)

    for name, value in {
        "HIML_IN_JOB": "himl_tasks.backends.local.in_job", "HIML_WORKSPACE": str(tmp_path / "ws"),
        "HIML_RUN_ID": "exp_1", "HIML_LOGS_FOLDER": str(tmp_path / "logs"),
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)

    RUN_CONTEXT.log_image("../curve", plot=Figure())

    assert (tmp_path / "logs" / "images" / "_curve.png").read_bytes() == PNG
    # Logged again, the name keeps every image, as AzureML does (the copy overwrote it);
    # the script's own file there, logged as it is, stays (the copy failed: the same file).
    (tmp_path / "second.png").write_bytes(PNG + b"2")
    RUN_CONTEXT.log_image("../curve", path=tmp_path / "second.png")
    assert (tmp_path / "logs" / "images" / "_curve.png").read_bytes() == PNG
    assert (tmp_path / "logs" / "images" / "_curve_2.png").read_bytes() == PNG + b"2"
    RUN_CONTEXT.log_image("_curve", path=tmp_path / "logs" / "images" / "_curve.png")
    assert len(list((tmp_path / "logs" / "images").iterdir())) == 2
    with pytest.raises(AttributeError, match="only inside an AzureML run; in this run"):
        RUN_CONTEXT.upload_file("outputs/x.txt", "x.txt")
    assert not hasattr(RUN_CONTEXT, "experiment")


@pytest.mark.parametrize("value", [[0.1, 0.2], range(2), (x for x in [0.1])])
def test_log_refuses_a_series_on_every_backend_as_azureml_does(
    value: object, outside_any_run: None
) -> None:
    # azureml's Run.log raises for these; a local run kept their text ("[0.1, 0.2]") and the
    # offline run printed them, so the script failed only once it reached AzureML.
    with pytest.raises(InvalidInputError, match=r"logs one value.*log_list\('loss', \[...\]\)"):
        RUN_CONTEXT.log("loss", value)
