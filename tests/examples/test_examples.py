"""Every example in examples/ runs as its README says: plain, with `--himl-local`, with `--azureml`.

Each test copies an example's folder (and examples/environment.yml) into its own tmp_path, so
nothing is ever written into the repository. A plain run and a `--himl-local` run are real
subprocesses, as a user starts them, with the local workspace (`HIML_HOME`) in tmp_path. An
`--azureml` run submits in this process (the door's one seam to AzureML, `azureml_backend`,
gives a stand-in's backend) and the stand-in executes the job as a subprocess, as AzureML's
compute would: on SDK v2, the default (the executing v2 stand-in), and on SDK v1 (`azureml-v1`:
each example's `submit_to_azure_if_needed` called with `strictly_aml_v1=True`, as a user adds
it). The local and AzureML legs of a test assert the same results: the same files, the same
dataset versions.
"""

from __future__ import annotations

import contextlib
import io
import os
import runpy
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import himl_tasks
from himl_tasks import LocalBackend
from himl_tasks.backends.azureml_v2 import sdk
from himl_tasks.backends.base import Backend
from himl_tasks.himl import azureml_workspace
from himl_tasks.runs import RunRef, RunStatus, read_most_recent_run
from tests.backends.azureml_service import FakeAzureMLService
from tests.backends.azureml_v2_execution import ExecutingAzureMLV2Service

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CLUSTER = "cpu-cluster"  # the examples' CLUSTER constant
DATASTORE = "workspaceblobstore"
SUBPROCESS_TIMEOUT = 180
# An AzureML config.json as the portal offers it; with it beside a script, hi-ml's helpers
# (resolve_backend's order) use AzureML, here the stand-in.
CONFIG_JSON = (
    '{"subscription_id": "00000000-0000-0000-0000-000000000000", '
    '"resource_group": "rg-himl", "workspace_name": "ws-himl"}'
)

pytestmark = pytest.mark.timeout(600)


def primes_below(limit: int) -> list[int]:
    return [n for n in range(2, limit) if all(n % d for d in range(2, int(n**0.5) + 1))]


@dataclass
class Project:
    """A copy of the examples in tmp_path, and the environment their subprocesses get."""

    root: Path
    env: dict[str, str]

    def folder(self, example: int) -> Path:
        folder = self.root / str(example)
        if not folder.exists():
            shutil.copytree(EXAMPLES / str(example), folder)
        return folder

    def python(self, example: int, script: str, *args: str) -> str:
        """Runs `python <script> <args>` in the example's folder; returns its output."""
        done = subprocess.run(
            [sys.executable, script, *args],
            cwd=self.folder(example),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, (
            f"{script} {args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        )
        return done.stdout


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """The examples copied into tmp_path; `HIML_HOME` there, with the examples' cluster."""
    root = tmp_path / "examples"
    root.mkdir()
    shutil.copy(EXAMPLES / "environment.yml", root)
    home = tmp_path / "himl-home"
    LocalBackend(home).create_compute_cluster(CLUSTER, max_concurrent_runs=2)
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("HIML_", "AZUREML_", "PYTEST_"))
    }
    env["HIML_HOME"] = str(home)
    env["HIML_CHECKSUM_CACHE"] = os.environ["HIML_CHECKSUM_CACHE"]
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith(("HIML_", "AZUREML_")) and name != "HIML_CHECKSUM_CACHE":
            monkeypatch.delenv(name)
    monkeypatch.setenv("HIML_HOME", str(home))
    try:
        yield Project(root, env)
    finally:
        # A plain run in this process writes variables into os.environ, as hi-ml does.
        os.environ.clear()
        os.environ.update(saved)


# ---- the two places a flag submits to ---------------------------------------------------


@dataclass
class Submitter:
    """Runs an example's script with a submission flag and reads what the workspace kept."""

    flag: str
    backend: Backend
    folder: Callable[[int], Path]
    run_script: Callable[[int, str, tuple[str, ...]], str]
    dataset_versions: Callable[[str], list[int]]
    sdk: tuple[str, list[str]] | None = None
    """On AzureML: the SDK its submissions must ask for, and the SDKs asked of the seam."""

    def submit(self, example: int, script: str, *args: str) -> tuple[RunRef, str]:
        """Submits the script, waits (the examples ask to), returns the run and the output."""
        if self.sdk is not None:
            self.sdk[1].clear()
        output = self.run_script(example, script, (*args, self.flag))
        if self.sdk is not None:
            expected, asked = self.sdk
            assert asked == [expected], f"the submission asked for SDK {asked}, not {expected}"
        run = self.most_recent_run(example)
        assert self.backend.get_state(run).status is RunStatus.COMPLETED
        return run, output

    def run(self, example: int, script: str) -> str:
        """Runs a script without a flag (results.py, inputs.py): it finds the workspace as
        hi-ml's helpers do, so it reads or writes the workspace the flag submits to."""
        return self.run_script(example, script, ())

    def most_recent_run(self, example: int) -> RunRef:
        return self.backend.get_run_ref(
            read_most_recent_run(self.folder(example) / "most_recent_run.txt")
        )


@pytest.fixture(params=["local", "azureml", "azureml-v1"])
def submitter(
    request: pytest.FixtureRequest, project: Project, monkeypatch: pytest.MonkeyPatch
) -> Submitter:
    if request.param == "local":
        backend = LocalBackend(project.env["HIML_HOME"])
        return Submitter(
            flag="--himl-local",
            backend=backend,
            folder=project.folder,
            run_script=lambda example, script, args: project.python(example, script, *args),
            dataset_versions=lambda name: [
                int(v["version"]) for v in backend.dataset_versions(name)
            ],
        )
    if request.param == "azureml":
        aml: Backend = request.getfixturevalue("executing_aml_v2")
        v2_service: ExecutingAzureMLV2Service = request.getfixturevalue("executing_aml_v2_service")
        versions = lambda name: [int(d.version) for d in v2_service.data_assets.get(name, [])]  # noqa: E731
    else:
        aml = request.getfixturevalue("executing_aml")
        service: FakeAzureMLService = request.getfixturevalue("aml_service")
        versions = lambda name: [d.version for d in service.datasets.get(name, [])]  # noqa: E731
        # The example's call as a user writes it for SDK v1: strictly_aml_v1=True added.
        submit = himl_tasks.submit_to_azure_if_needed
        monkeypatch.setattr(
            himl_tasks,
            "submit_to_azure_if_needed",
            lambda *args, **kwargs: submit(*args, **{**kwargs, "strictly_aml_v1": True}),
        )
    # AzureML is looked at every 15 s at most; the stand-in answers at once, so look often.
    monkeypatch.setattr(aml, "max_poll_seconds", 0.2)
    sdk_asked = "v2" if request.param == "azureml" else "v1"

    def azureml_backend(*args: object, sdk: str = "v2", **kwargs: object) -> Backend:
        # hi-ml's helpers (results.py) ask for v2, the default, whatever submitted the run: a
        # real workspace shows a v1 run to SDK v2 too (one run history). The two stand-ins
        # are separate services, so every ask gets the leg's; a submission's is checked.
        sdks_asked.append(sdk)
        return aml

    sdks_asked: list[str] = []

    monkeypatch.setattr(azureml_workspace, "azureml_backend", azureml_backend)

    def run_in_this_process(example: int, script: str, args: tuple[str, ...]) -> str:
        folder = project.folder(example)
        (folder / "config.json").write_text(CONFIG_JSON, encoding="utf-8")
        return run_here(folder, script, args, monkeypatch)

    return Submitter(
        flag="--azureml",
        backend=aml,
        folder=project.folder,
        run_script=run_in_this_process,
        dataset_versions=versions,
        sdk=(sdk_asked, sdks_asked),
    )


def run_here(
    folder: Path, script: str, args: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> str:
    """Runs a script in this process as `python <script> <args>` in `folder` would; its output.

    A submitting script ends with SystemExit(0), as hi-ml's does; any other exit fails.
    """
    output = io.StringIO()
    code: object = 0
    with monkeypatch.context() as patch:
        patch.chdir(folder)
        patch.setattr(sys, "argv", [script, *args])
        # Example 8 imports azure.ai.ml.sweep, whose schemas raise Marshmallow4Warning (a
        # DeprecationWarning, which a user's script does not show; pytest's filter would fail).
        with contextlib.redirect_stdout(output), sdk.quiet():
            try:
                runpy.run_path(script, run_name="__main__")
            except SystemExit as exit_:
                code = exit_.code
    assert code in (0, None), f"{script} {args}: exit {code}\n{output.getvalue()}"
    return output.getvalue()


# ---- the scripts themselves ---------------------------------------------------------------


def test_each_example_script_imports_himl_tasks_in_one_line_as_hi_ml_scripts_import_it() -> None:
    # The promise to hi-ml users: their script changes in one import line. Each example keeps
    # to it (example 1 and 5's inputs.py import nothing of it, as hi-ml's do not).
    scripts = sorted(EXAMPLES.glob("*/*.py"))
    assert len(scripts) == 16
    for script in scripts:
        lines = script.read_text(encoding="utf-8").splitlines()
        himl_imports = [
            line for line in lines if line.startswith(("from himl_tasks", "import himl_tasks"))
        ]
        assert len(himl_imports) <= 1, f"{script}: {himl_imports}"
        assert not [line for line in lines if "health_azure" in line or "health_ml" in line]


# ---- plain runs: no flag, the script goes on in its own process ----------------------------


def test_example_1_a_plain_script_prints_the_primes(project: Project) -> None:
    output = project.python(1, "sample.py", "-n", "103")

    assert output.split() == [str(p) for p in primes_below(103)]


@pytest.mark.parametrize("example", [2, 3, 4])
def test_the_primes_examples_run_plain_as_before(project: Project, example: int) -> None:
    output = project.python(example, "sample.py", "-n", "103")

    folder = project.folder(example)
    assert not (folder / "most_recent_run.txt").exists()  # nothing was submitted
    expected = "\n".join(map(str, primes_below(103)))
    if example == 2:
        assert output.strip() == expected
    else:
        written = {3: "outputs/primes.txt", 4: "outputs/himl_sample4_output/primes.txt"}[example]
        assert (folder / written).read_text(encoding="utf-8") == expected


def test_the_iris_examples_run_plain_on_files_beside_them(project: Project) -> None:
    # Example 5: inputs.py writes dataset/ beside the script; example 6's inputs.py, run plain,
    # writes it likewise; its sample.py then finds no dataset in the workspace and reads it.
    project.python(5, "inputs.py")
    assert "Accuracy of the SVM on the test set: 0.97" in project.python(5, "sample.py")
    project.python(6, "inputs.py")
    assert (project.folder(6) / "dataset" / "X.csv").is_file()
    output = project.python(6, "sample.py", "--kernel", "rbf")
    assert "reading dataset" in output
    assert "Kernel: rbf" in output and "Accuracy of the SVM on the test set" in output


def test_example_7_uploads_by_hand_and_trains_plain_on_the_downloaded_folder(
    project: Project,
) -> None:
    project.python(7, "inputs.py")
    store = LocalBackend(project.env["HIML_HOME"]).datastore(DATASTORE)
    assert sorted(f.name for f in store.list("himl_sample7_input/")) == [
        "himl_sample7_input/X.csv",
        "himl_sample7_input/y.csv",
    ]

    output = project.python(7, "sample.py")

    # The plain run asked the local workspace for the dataset: its folder became version 1
    # (get-or-create, as hi-ml does) and was downloaded for this process.
    assert "reading dataset" not in output
    assert "Accuracy of the SVM on the test set: 0.97" in output
    versions = LocalBackend(project.env["HIML_HOME"]).dataset_versions("himl_sample7_input")
    assert [v["version"] for v in versions] == [1]


def test_example_8_run_plain_trains_once_and_prints_its_accuracy(project: Project) -> None:
    project.python(8, "inputs.py")

    output = project.python(8, "sample.py", "--kernel", "linear", "--penalty", "0.5")

    assert "Kernel: linear, penalty: 0.5, accuracy: 0.97" in output
    # Outside any run RUN_CONTEXT prints what it is given, as azureml's offline run does.
    assert "Attempted to log scalar metric Accuracy:\n0.97" in output


def test_example_9_run_plain_trains_and_prints_its_fit(project: Project) -> None:
    output = project.python(9, "sample.py", "--epochs", "2")

    assert "epoch 1: train_loss" in output
    assert "fitted y = " in output


# ---- submitted: --himl-local (a subprocess) and --azureml (the stand-in executes it) --------


def test_example_2_submits_itself_and_results_prints_its_log(submitter: Submitter) -> None:
    run, output = submitter.submit(2, "sample.py", "-n", "103")

    primes = [str(p) for p in primes_below(103)]
    # The job got the arguments without the flag, and its output was shown while waiting.
    assert " ".join(primes) in " ".join(output.split())
    assert "Successfully queued run" in output and run.run_id in output
    assert submitter.backend.run_tags(run)["commandline_args"] == "-n 103"
    log = submitter.run(2, "results.py")
    assert " ".join(primes) in " ".join(log.split())


def test_example_3_keeps_primes_txt_with_the_run_and_results_downloads_it(
    submitter: Submitter, project: Project
) -> None:
    run, _ = submitter.submit(3, "sample.py", "-n", "103")

    assert "outputs/primes.txt" in submitter.backend.list_files(run)
    submitter.run(3, "results.py")
    downloaded = project.folder(3) / "downloads" / run.run_id / "outputs" / "primes.txt"
    assert downloaded.read_text(encoding="utf-8") == "\n".join(map(str, primes_below(103)))


def test_example_4_writes_a_dataset_version_per_run_and_results_finds_the_last(
    submitter: Submitter, project: Project
) -> None:
    first, _ = submitter.submit(4, "sample.py", "-n", "30")
    second, _ = submitter.submit(4, "sample.py", "-n", "103")

    assert submitter.dataset_versions("himl_sample4_output") == [1, 2]
    # Each run's files in <name>/<run id>/: the first run's are still there.
    store = submitter.backend.datastore(DATASTORE)
    assert sorted(f.name for f in store.list("himl_sample4_output/")) == sorted(
        f"himl_sample4_output/{run.run_id}/primes.txt" for run in (first, second)
    )
    output = submitter.run(4, "results.py")
    assert f"run {second.run_id} wrote himl_sample4_output version 2" in output
    downloaded = project.folder(4) / "downloads" / "himl_sample4_output_v2" / "primes.txt"
    assert downloaded.read_text(encoding="utf-8") == "\n".join(map(str, primes_below(103)))


def test_example_5_takes_the_files_beside_it_in_its_snapshot(
    submitter: Submitter, project: Project
) -> None:
    project.python(5, "inputs.py")

    _, output = submitter.submit(5, "sample.py", "--kernel", "linear")

    assert "Accuracy of the SVM on the test set: 0.97" in output


def test_example_6_makes_its_dataset_in_a_job_and_trains_on_it_in_another(
    submitter: Submitter, project: Project
) -> None:
    made, _ = submitter.submit(6, "inputs.py")
    assert submitter.dataset_versions("himl_sample6_input") == [1]
    assert [d.version for d in submitter.backend.run_outputs(made)] == [1]

    _, output = submitter.submit(6, "sample.py")

    assert "reading dataset" not in output  # the job read the dataset, not a local folder
    assert "Accuracy of the SVM on the test set: 0.97" in output
    assert not (project.folder(6) / "dataset").exists()


def test_example_7_registers_the_uploaded_folder_and_trains_on_it(submitter: Submitter) -> None:
    submitter.run(7, "inputs.py")
    assert submitter.dataset_versions("himl_sample7_input") == []

    _, output = submitter.submit(7, "sample.py")

    assert submitter.dataset_versions("himl_sample7_input") == [1]
    assert "Accuracy of the SVM on the test set: 0.97" in output


def test_example_8_sweeps_and_each_trial_logs_its_accuracy(submitter: Submitter) -> None:
    submitter.run(8, "inputs.py")

    sweep, _ = submitter.submit(8, "sample.py")

    trials = submitter.backend.child_runs(sweep)
    assert len(trials) == 4
    for trial in trials:
        assert submitter.backend.get_state(trial).status is RunStatus.COMPLETED
        accuracy = [m.value for m in submitter.backend.get_metrics(trial) if m.name == "Accuracy"]
        assert len(accuracy) == 1 and isinstance(accuracy[0], float) and 0 < accuracy[0] <= 1


def test_example_9_logs_the_epoch_metrics_to_its_run(submitter: Submitter) -> None:
    run, output = submitter.submit(9, "sample.py", "--epochs", "2")

    assert "fitted y = " in output
    metrics = submitter.backend.get_metrics(run)
    losses = [m for m in metrics if m.name == "train_loss"]
    rates = [m.value for m in metrics if m.name == "learning_rate"]
    assert len(losses) == 2  # once per epoch
    assert rates == [0.5, 0.25]  # halved after each epoch
