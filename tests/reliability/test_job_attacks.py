# ruff: noqa: F811 (the workspace fixture is imported, and named as an argument)
"""Attacks on local runs by a hostile tester: real processes SIGKILLed, cancels, secrets hunted.

Every process here is real: supervisors and jobs are found in /proc and killed with SIGKILL.
A supervisor is attacked from inside with a `sitecustomize` module on its PYTHONPATH (which a
supervisor keeps), wrapping one registry step to kill its own process there.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from himl_tasks.backends.azureml_v1 import AzureMLV1Backend
from himl_tasks.backends.azureml_v1.backend import run_id_for
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.backends.local.clusters import Preemption
from himl_tasks.errors import InvalidInputError, RunNotFoundError
from himl_tasks.job_spec import JobSpec
from himl_tasks.runs import FailureKind, RunStatus
from himl_tasks.secret_reference import SecretReference
from himl_tasks.sweeps import Choice, SweepSpec
from tests.backends.azureml_service import FakeAzureMLService
from tests.backends.conftest import aml, aml_service, write_script  # noqa: F401 (fixtures)
from tests.reliability.test_job_secrets import workspace_with_keyed_datastore
from tests.reliability.test_run_lifecycle import supervisors_of, wait_for

PACKAGE_PARENT = Path(__file__).resolve().parents[2]

# Writes its pid, then sleeps until killed.
SLEEPER = """\
import os, sys, time
from collections.abc import Callable
from pathlib import Path
Path(sys.argv[1]).write_text(str(os.getpid()))
time.sleep(120)
"""
QUICK = "print('done')\n"


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def processes_naming(text: str) -> list[int]:
    """The live processes whose command line holds `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return [pid for pid in found if alive(pid)]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    write_script(folder, "sleeper.py", SLEEPER)
    write_script(folder, "quick.py", QUICK)
    return folder


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    return LocalBackend(tmp_path / "workspace")


def test_a_queued_run_starts_when_the_runs_holding_every_slot_lost_their_supervisors(
    backend: LocalBackend, project: Path, tmp_path: Path
) -> None:
    backend.create_compute_cluster("pair", max_concurrent_runs=2)
    holders = []
    for index in range(2):
        pid_file = tmp_path / f"job{index}.pid"
        spec = JobSpec(
            entry_script="sleeper.py", args=[str(pid_file)], compute="pair", snapshot_root=project
        )
        holders.append((backend.submit(spec), pid_file))
    for _, pid_file in holders:
        wait_for(pid_file.exists)
    for pid in supervisors_of(backend.root):
        os.kill(pid, signal.SIGKILL)  # nobody is told, nobody looks at these runs again

    queued = backend.submit(JobSpec(entry_script="quick.py", compute="pair", snapshot_root=project))
    state = backend.wait(queued, timeout=20, poll=0.1)

    assert state.succeeded, state.error
    for ref, pid_file in holders:
        held = backend.registry.get_run(ref.run_id)
        assert held is not None and held.status is RunStatus.FAILED
        assert held.failure_kind == FailureKind.INFRASTRUCTURE.value
        job = int(pid_file.read_text())
        wait_for(lambda: not alive(job))  # noqa: B023 (waited for at once)
    wait_for(lambda: not supervisors_of(backend.root))


# A supervisor's sitecustomize (its environment is allow-listed, so the attack is read from a
# file beside it): SIGKILLs the supervisor once (the file "attacked" beside it marks it done),
# before its Nth call of a registry method ("<Registry method>:<N>") or before the Nth SQL
# statement it runs that holds some text ("sql:<text>:<N>"): inside a transaction, say. With a
# "pause=<seconds>:" prefix it stops there that long instead.
SUPERVISOR_HOOK = """\
import os, signal, sqlite3
from pathlib import Path
from himl_tasks.backends.local import registry as registry_module

here = Path(__file__).parent
attack = (here / "attack.txt").read_text().split(":")
pause = float(attack.pop(0)[6:]) if attack[0].startswith("pause=") else 0.0
once = here / "attacked"
calls = [0]

def maybe_die():
    calls[0] += 1
    if calls[0] == int(attack[-1]) and not once.exists():
        once.write_text("attacked")
        if pause:  # stopped there a while instead, for the test to act in that moment
            import time
            time.sleep(pause)
        else:
            os.kill(os.getpid(), signal.SIGKILL)

if attack[0] == "sql":
    class Watched:
        def __init__(self, db):
            object.__setattr__(self, "db", db)
        def __getattr__(self, name):
            return getattr(self.db, name)
        def __setattr__(self, name, value):
            setattr(self.db, name, value)
        def execute(self, statement, *args):
            if attack[1] in statement:
                maybe_die()
            return self.db.execute(statement, *args)

    class Sqlite:
        def __getattr__(self, name):
            return getattr(sqlite3, name)
        def connect(self, *args, **kwargs):
            return Watched(sqlite3.connect(*args, **kwargs))

    registry_module.sqlite3 = Sqlite()
else:
    original = getattr(registry_module.Registry, attack[0])

    def dying(self, *args, **kwargs):
        maybe_die()
        return original(self, *args, **kwargs)

    setattr(registry_module.Registry, attack[0], dying)
"""


@pytest.fixture
def attack_supervisors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    """Returns a function arming the supervisors started from now on to die at one step."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SUPERVISOR_HOOK)

    def arm(step: str) -> Path:
        (hooks / "attack.txt").write_text(step)
        path = os.pathsep.join(p for p in (str(hooks), os.environ.get("PYTHONPATH", "")) if p)
        monkeypatch.setenv("PYTHONPATH", path)
        return hooks / "attacked"

    return arm


def test_a_supervisor_killed_before_it_recorded_its_job_leaves_no_job_running(
    backend: LocalBackend,
    project: Path,
    tmp_path: Path,
    attack_supervisors: Callable[[str], Path],
) -> None:
    attacked = attack_supervisors("set_job_group:1")  # the job started, its group not recorded
    pid_file = tmp_path / "job.pid"

    spec = JobSpec(entry_script="sleeper.py", args=[str(pid_file)], snapshot_root=project)

    ref = backend.submit(spec)
    wait_for(attacked.exists)
    state = backend.wait(ref, timeout=20, poll=0.1)

    assert state.failure_kind is FailureKind.INFRASTRUCTURE, state
    wait_for(lambda: not processes_naming(str(pid_file)), timeout=5)
    assert not supervisors_of(backend.root)


DATASTORE_KEY = "datastore-key-9e41b7"
# Searches its supervisor's memory for a secret (a job runs as the same user): prints what it
# found, and whether the memory could be read at all.
MEMORY_PROBE = """\
import os, re, sys
secret = sys.argv[1].encode()
parent = os.getppid()
found, readable = False, True
try:
    with open(f"/proc/{parent}/maps") as maps, open(f"/proc/{parent}/mem", "rb", 0) as mem:
        for line in maps:
            start, end = (int(x, 16) for x in line.split()[0].split("-"))
            if "r" not in line.split()[1] or end - start > 1 << 28:
                continue
            try:
                mem.seek(start)
                found = found or secret in mem.read(end - start)
            except (OSError, OverflowError, ValueError):
                pass
except PermissionError:
    readable = False
print(f"found={found} readable={readable}")
"""


# Submits the probe, waits, prints its log: run as an ordinary user would run it.
SUBMIT_PROBE = """\
import sys
from himl_tasks.backends.azureml_v1 import AzureMLV1Backend
from himl_tasks.backends.azureml_v1.backend import run_id_for
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.backends.local.clusters import Preemption
from himl_tasks.errors import InvalidInputError, RunNotFoundError
from himl_tasks.job_spec import JobSpec

root, project, secret = sys.argv[1:4]
backend = LocalBackend(root)
ref = backend.submit(JobSpec(entry_script="probe.py", args=[secret], snapshot_root=project))
state = backend.wait(ref, timeout=30)
print(state.status.value, *backend.iter_logs(ref))
"""


def as_ordinary_user() -> list[str]:
    """A command prefix with the powers of an ordinary user: root's CAP_SYS_PTRACE dropped.

    Tests may run as root, who may read any process's memory; a job on a user's machine may not.
    """
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv to drop CAP_SYS_PTRACE")
    return ["setpriv", "--bounding-set", "-sys_ptrace", "--inh-caps", "-sys_ptrace"]


def test_a_job_cannot_read_the_datastore_keys_in_its_supervisors_memory(
    tmp_path: Path, project: Path
) -> None:
    root = workspace_with_keyed_datastore(tmp_path)
    write_script(project, "probe.py", MEMORY_PROBE)
    script = tmp_path / "submit_probe.py"
    script.write_text(SUBMIT_PROBE)

    done = subprocess.run(
        [*as_ordinary_user(), sys.executable, str(script), str(root), str(project), DATASTORE_KEY],
        env={**os.environ, "STORE_CONNECTION": DATASTORE_KEY, "PYTHONPATH": str(PACKAGE_PARENT)},
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip

    assert done.stdout.decode().split() == ["Completed", "found=False", "readable=False"]


def test_a_job_spec_takes_a_secret_reference_as_a_variable_and_refuses_other_non_text() -> None:
    spec = JobSpec(
        entry_script="quick.py",
        environment_variables={"TOKEN": SecretReference("MY_TOKEN"), "MODE": "fast"},
    )
    assert spec.environment_variables["TOKEN"] == SecretReference("MY_TOKEN")
    with pytest.raises(InvalidInputError, match="strings or SecretReference; 'N': 3 is not"):
        JobSpec(entry_script="quick.py", environment_variables={"N": 3})  # type: ignore[dict-item]
    with pytest.raises(InvalidInputError, match="tags must map strings to strings"):
        JobSpec(entry_script="quick.py", tags={"T": SecretReference("MY_TOKEN")})  # type: ignore[dict-item]


def test_canceling_a_sweep_whose_driver_was_killed_cancels_its_trials(
    backend: LocalBackend, project: Path, tmp_path: Path
) -> None:
    from himl_tasks.sweeps import Choice, SweepSpec

    spec = JobSpec(
        entry_script="sleeper.py", args=[str(tmp_path / "trial.pid")], snapshot_root=project
    )
    sweep = SweepSpec(
        {"n": Choice(1, 2, 3)}, primary_metric="m", sampling="grid", max_concurrent_runs=2
    )
    parent = backend.submit_sweep(spec, sweep)
    wait_for(lambda: len(backend.child_runs(parent)) == 2)
    for pid in supervisors_of(backend.root):
        row = backend.registry.get_run(parent.run_id)
        if row is not None and row.supervisor_pid == pid:
            os.kill(pid, signal.SIGKILL)  # the driver dies with it: nobody manages the trials

    backend.cancel(parent)

    trials = backend.child_runs(parent)
    assert [backend.wait(t, timeout=15).status for t in trials] == [RunStatus.CANCELED] * 2
    assert backend.get_state(parent).is_terminal
    wait_for(lambda: not processes_naming(str(tmp_path / "trial.pid")), timeout=10)
    wait_for(lambda: not supervisors_of(backend.root))


def test_a_sweep_of_a_job_whose_snapshot_root_is_the_current_folder_runs_its_trials(
    backend: LocalBackend, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from himl_tasks.sweeps import Choice, SweepSpec

    monkeypatch.chdir(project)  # the default snapshot root, as a user in their project has it
    sweep = SweepSpec({"n": Choice(1)}, primary_metric="m", sampling="grid")

    parent = backend.submit_sweep(JobSpec(entry_script="quick.py"), sweep)
    state = backend.wait(parent, timeout=30)

    assert state.succeeded, state.error
    [trial] = backend.child_runs(parent)
    assert backend.get_state(trial).succeeded


def spec_with(project: Path, **changes: object) -> JobSpec:
    return JobSpec(entry_script="quick.py", snapshot_root=project, **changes)  # type: ignore[arg-type]


# Input that used to be recorded as a run, only for its supervisor to fail it as `infrastructure`
# (which a flow retries), or to be kept as given.
Submission = Callable[[LocalBackend, Path], object]
BAD_SUBMISSIONS: dict[str, tuple[Submission, type[Exception]]] = {
    "NUL in an argument": (
        lambda b, p: b.submit(spec_with(p, args=["a\0b"])),
        InvalidInputError,
    ),
    "NUL in a variable": (
        lambda b, p: b.submit(spec_with(p, environment_variables={"A": "x\0y"})),
        InvalidInputError,
    ),
    "a missing interpreter": (
        lambda b, p: b.submit(spec_with(p, python_executable="/no/such/python")),
        InvalidInputError,
    ),
    "an empty submission id": (
        lambda b, p: b.submit(spec_with(p), submission_id=""),
        InvalidInputError,
    ),
    "a number as submission id": (
        lambda b, p: b.submit(spec_with(p), submission_id=5),  # type: ignore[arg-type]
        InvalidInputError,
    ),
    "a submission id that is not UTF-8 (a lone surrogate)": (
        lambda b, p: b.submit(spec_with(p), submission_id="run-\ud800"),
        InvalidInputError,
    ),
    "a submission id that is not UTF-8, for a sweep": (
        lambda b, p: b.submit_sweep(
            spec_with(p), SweepSpec({"a": Choice(1)}, "m", sampling="grid"), submission_id="\udcff"
        ),
        InvalidInputError,
    ),
    "an unknown parent run": (
        lambda b, p: b.submit(spec_with(p), parent_run_id="no_such_run"),
        RunNotFoundError,
    ),
}


@pytest.mark.parametrize("case", BAD_SUBMISSIONS)
def test_bad_submissions_are_refused_before_anything_is_recorded(
    backend: LocalBackend, project: Path, case: str
) -> None:
    attack, error = BAD_SUBMISSIONS[case]

    with pytest.raises(error):
        attack(backend, project)

    assert backend.registry.runs() == []
    assert not (backend.root / "runs").exists() or not any((backend.root / "runs").iterdir())


BAD_CLUSTER_SETTINGS: list[tuple[str, Callable[[], object]]] = [
    ("after_metric as one string", lambda: Preemption(after_metric="loss")),  # type: ignore[arg-type]
    ("after_metric count as text", lambda: Preemption(after_metric=("loss", "2"))),  # type: ignore[arg-type]
    ("after_metric count not whole", lambda: Preemption(after_metric=("loss", 2.5))),  # type: ignore[arg-type]
    ("on_attempts as a number", lambda: Preemption(after_seconds=1, on_attempts=1)),  # type: ignore[arg-type]
    ("max_preemptions not whole", lambda: Preemption(after_seconds=1, max_preemptions=1.5)),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(
    "make", [m for _, m in BAD_CLUSTER_SETTINGS], ids=[n for n, _ in BAD_CLUSTER_SETTINGS]
)
def test_bad_preemption_settings_are_invalid_input(make: Callable[[], object]) -> None:
    with pytest.raises(InvalidInputError):
        make()


def test_bad_cluster_settings_are_refused_before_anything_is_stored(backend: LocalBackend) -> None:
    with pytest.raises(InvalidInputError, match="preemption"):
        backend.create_compute_cluster("c", preemption="yes")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="max_concurrent_runs"):
        backend.create_compute_cluster("c", max_concurrent_runs=10**30)
    assert backend.compute_clusters() == {"local": backend.compute_clusters()["local"]}


# A flow running a sweep with `run_sweep`, its process SIGKILLed as soon as the backend has
# made the sweep's run: before Prefect (or anything else in the flow) hears of it.
SWEEP_FLOW_THAT_DIES = """\
import os, signal, sys
from prefect import flow
from himl_tasks.backends.azureml_v1 import AzureMLV1Backend
from himl_tasks.backends.azureml_v1.backend import run_id_for
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.job_spec import JobSpec
from himl_tasks.sweeps import Choice, SweepSpec
from himl_tasks.prefect import run_sweep

block, project = sys.argv[1:3]
original = LocalBackend.submit_sweep

def dying(self, *args, **kwargs):
    original(self, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)

LocalBackend.submit_sweep = dying

@flow
def tune():
    sweep = SweepSpec({"n": Choice(1, 2)}, primary_metric="m", sampling="grid")
    return run_sweep(block, JobSpec(entry_script="quick.py", snapshot_root=project), sweep)

tune()
"""


def test_a_flow_killed_after_its_sweep_was_made_finds_that_sweep_when_run_again(
    workspace: tuple[str, LocalBackend], project: Path, tmp_path: Path
) -> None:
    from prefect import flow
    from prefect.settings import PREFECT_API_URL

    from himl_tasks.prefect import run_sweep
    from himl_tasks.sweeps import Choice, SweepSpec

    block, backend = workspace
    script = tmp_path / "sweep_flow_that_dies.py"
    script.write_text(SWEEP_FLOW_THAT_DIES, encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": str(PACKAGE_PARENT),
        "PREFECT_API_URL": PREFECT_API_URL.value(),
    }
    died = subprocess.run(
        [sys.executable, str(script), block, str(project)],
        env=env, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert died.returncode == -signal.SIGKILL, died.stderr.decode()[-2000:]
    [made] = [run for run in backend.registry.runs() if run.parent_run_id is None]

    @flow
    def tune() -> object:
        sweep = SweepSpec({"n": Choice(1, 2)}, primary_metric="m", sampling="grid")
        return run_sweep(block, JobSpec(entry_script="quick.py", snapshot_root=project), sweep)

    again = tune()

    assert again.run_id == made.run_id  # type: ignore[attr-defined]
    assert backend.wait(again, timeout=30).succeeded  # type: ignore[arg-type]
    assert [run.run_id for run in backend.registry.runs() if run.parent_run_id is None] == [
        made.run_id
    ]
    assert len(backend.child_runs(again)) == 2  # type: ignore[arg-type]


def test_an_azureml_sweep_submitted_again_under_its_id_is_the_same_run(
    aml: AzureMLV1Backend, aml_service: FakeAzureMLService, project: Path
) -> None:
    from himl_tasks.sweeps import Choice, SweepSpec

    write_script(project, "environment.yml", "name: job\ndependencies:\n  - python=3.11\n")
    spec = JobSpec(entry_script="quick.py", snapshot_root=project, compute="cpu-cluster")
    sweep = SweepSpec({"n": Choice(1, 2)}, primary_metric="m", sampling="grid")

    first = aml.submit_sweep(spec, sweep, submission_id="sweep-1")
    again = aml.submit_sweep(spec, sweep, submission_id="sweep-1")

    assert again == first and first.run_id == run_id_for("sweep-1")
    assert len(aml_service.submitted) == 1


TWO_OUTPUTS = """\
import os
from pathlib import Path
for index in range(2):
    Path(os.environ[f"HIML_OUTPUT_DATASET_{index}"], "part.txt").write_text(str(index))
"""


def test_a_supervisor_killed_while_registering_outputs_registers_none_of_them(
    backend: LocalBackend,
    project: Path,
    attack_supervisors: Callable[[str], Path],
) -> None:
    write_script(project, "two_outputs.py", TWO_OUTPUTS)
    attacked = attack_supervisors("sql:INSERT INTO datasets:2")  # one registered
    spec = JobSpec(
        entry_script="two_outputs.py", snapshot_root=project, output_datasets=["first", "second"]
    )

    ref = backend.submit(spec)
    state = backend.wait(ref, timeout=30)

    assert attacked.exists()
    assert state.failure_kind is FailureKind.INFRASTRUCTURE, state
    assert backend.dataset_versions("first") == [] and backend.dataset_versions("second") == []


def test_a_submission_killed_before_its_run_was_recorded_leaves_no_run_folder(
    backend: LocalBackend, tmp_path: Path
) -> None:
    from tests.reliability.test_run_lifecycle import COUNT, submit_and_die

    project = tmp_path / "counting"
    write_script(project, "count.py", COUNT)
    executions = tmp_path / "executions.txt"
    submit_and_die(backend.root, project, executions, "insert_run:before", "job-1")

    ref = backend.submit(
        JobSpec(entry_script="count.py", args=[str(executions)], snapshot_root=project),
        submission_id="job-1",
    )

    assert backend.wait(ref, timeout=30).succeeded
    assert sorted(p.name for p in (backend.root / "runs").iterdir()) == [ref.run_id]


STARTS = """\
import sys
from pathlib import Path
Path(sys.argv[1]).write_text("the job ran")
"""


def test_a_run_canceled_just_before_its_job_starts_never_starts_it(
    backend: LocalBackend,
    project: Path,
    tmp_path: Path,
    attack_supervisors: Callable[[str], Path],
) -> None:
    write_script(project, "starts.py", STARTS)
    # The supervisor's second read of its run: it has checked for a cancel once, and is
    # about to start the job.
    paused = attack_supervisors("pause=1:get_run:2")
    ran = tmp_path / "ran.txt"

    ref = backend.submit(JobSpec(entry_script="starts.py", args=[str(ran)], snapshot_root=project))
    wait_for(paused.exists)
    backend.cancel(ref)
    state = backend.wait(ref, timeout=30)

    assert state.status is RunStatus.CANCELED
    assert not ran.exists()
    assert [s for _, s, _ in backend.status_history(ref)].count(RunStatus.RUNNING) == 0


def test_the_trials_of_a_sweep_get_the_secrets_their_job_names(
    backend: LocalBackend, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from himl_tasks.sweeps import Choice, SweepSpec

    monkeypatch.setenv("MY_API_TOKEN", "token-5a0c")
    write_script(project, "token.py", "import os\nassert os.environ['T'] == 'token-5a0c'\n")
    spec = JobSpec(
        entry_script="token.py",
        snapshot_root=project,
        environment_variables={"T": SecretReference("MY_API_TOKEN")},
    )
    sweep = SweepSpec({"n": Choice(1, 2)}, primary_metric="m", sampling="grid")

    parent = backend.submit_sweep(spec, sweep)
    state = backend.wait(parent, timeout=30)

    assert state.succeeded, state.error
    trials = backend.child_runs(parent)
    assert len(trials) == 2 and all(backend.get_state(t).succeeded for t in trials)


def test_the_flow_refuses_a_results_folder_it_could_never_make_before_any_side_effect(
    workspace: tuple[str, LocalBackend], tmp_path: Path
) -> None:
    from flows.preprocess_then_train import preprocess_then_train
    from tests.reliability.test_bad_input import nothing_happened

    block, local = workspace
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")

    with pytest.raises(InvalidInputError, match="results_folder"):
        preprocess_then_train(workspace_block=block, results_folder=str(a_file / "results"))
    nothing_happened(local)


SUBMIT_AND_STAY = """\
import sys, time
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.job_spec import JobSpec
from himl_tasks.secret_reference import SecretReference

root, project = sys.argv[1:3]
spec = JobSpec(entry_script="quick.py", compute="one", snapshot_root=project,
               environment_variables={"T": SecretReference("MY_API_TOKEN")})
print(LocalBackend(root).submit(spec).run_id, flush=True)
time.sleep(60)  # alive, holding the secret, but not looking at its run
"""


def test_a_queued_run_waiting_for_its_submitters_secret_does_not_hold_up_the_runs_behind_it(
    backend: LocalBackend, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend.create_compute_cluster("one", max_concurrent_runs=1)
    write_script(project, "wait.py", "import time\ntime.sleep(1.5)\n")
    first = backend.submit(JobSpec(entry_script="wait.py", compute="one", snapshot_root=project))
    script = tmp_path / "submit_and_stay.py"
    script.write_text(SUBMIT_AND_STAY, encoding="utf-8")
    monkeypatch.delenv("MY_API_TOKEN", raising=False)  # only the submitter below holds it
    submitter = subprocess.Popen(
        [sys.executable, str(script), str(backend.root), str(project)],
        env={**os.environ, "MY_API_TOKEN": "token-1", "PYTHONPATH": str(PACKAGE_PARENT)},
        stdout=subprocess.PIPE,
    )
    try:
        assert submitter.stdout is not None
        waiting = submitter.stdout.readline().decode().strip()
        behind = backend.submit(
            JobSpec(entry_script="quick.py", compute="one", snapshot_root=project)
        )

        assert backend.wait(first, timeout=30).succeeded
        assert backend.wait(behind, timeout=15).succeeded
        assert backend.get_state(backend.get_run_ref(waiting)).status is RunStatus.QUEUED
    finally:
        submitter.kill()
        submitter.communicate()
