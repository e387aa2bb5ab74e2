"""The Backend contract: promises every backend keeps, tested through its public methods only.

As fsspec ships its abstract tests, this suite ships with the package. A module of a project's
tests subclasses `BackendContract` and provides the `harness` fixture: a `BackendHarness`
that turns a `Job` (what a test's job does, said once for every backend) into a job spec its
backend runs, and lets a run go on until it ends. On a backend that runs jobs for real the job
is a script; on a service stand-in it is the behaviour the stand-in gives the run. A new
backend plugs in by providing a harness; the tests stay the same.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from himl_tasks.backends.base import Backend
from himl_tasks.datasets import DatasetConfig
from himl_tasks.errors import DatasetNotFoundError, InvalidInputError, RunNotFoundError
from himl_tasks.job_spec import JobSpec
from himl_tasks.runs import FailureKind, RunRef, RunState, RunStatus, read_most_recent_run
from himl_tasks.sweeps import Choice, SweepSpec
from himl_tasks.testing.files import read_tree

# Longer than any contract test's run takes on a busy machine; a run that takes longer is stuck.
DEADLINE_SECONDS = 120.0


@dataclass(frozen=True)
class Job:
    """What a contract test's job does, said once for every backend.

    Attributes:
        log_lines: Lines it prints (its driver log), in order.
        files: Files it writes into its working folder: {'/'-separated name: bytes}. Those
            under `outputs/` and `logs/` are run files, kept with the run.
        metrics: Metric values it logs: each name's values, at steps 0, 1, ...
        exit_code: 0 to complete; any other code fails the run as the user's error.
        keeps_running: It runs until canceled (a test cancels it).
        output_datasets: Output datasets it writes a file into (their names).
        input_datasets: Datasets it reads (their names; the latest version unless a pipeline
            hands it another step's).
    """

    log_lines: tuple[str, ...] = ()
    files: Mapping[str, bytes] = field(default_factory=dict)
    metrics: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    exit_code: int = 0
    keeps_running: bool = False
    output_datasets: tuple[str, ...] = ()
    input_datasets: tuple[str, ...] = ()


class BackendHarness(abc.ABC):
    """How the contract runs jobs on one backend: a subclass per backend."""

    poll_seconds: float = 0.05
    """The pause between two state checks while a test waits for a status."""

    @property
    @abc.abstractmethod
    def backend(self) -> Backend:
        """The backend under test (a fresh workspace for each test)."""

    @abc.abstractmethod
    def job_spec(self, job: Job, *, trials: int = 0) -> JobSpec:
        """A job spec whose runs do what `job` says, with a snapshot folder of its own.

        Each call makes a new job (a new script), and no call changes an earlier job's
        snapshot: a spec submitted again is the same job, with the same snapshot content.

        Args:
            job: What its runs do.
            trials: The trials a sweep of the spec has, for a stand-in service that makes a
                sweep's child runs itself (a backend that runs the sweep ignores it).
        """

    @abc.abstractmethod
    def settle(self, ref: RunRef) -> RunState:
        """Lets the run go on until it ends; returns its final state.

        Raises:
            TimeoutError: If it has not ended within `DEADLINE_SECONDS`.
        """


def wait_for_status(harness: BackendHarness, ref: RunRef, status: RunStatus) -> RunState:
    """Reads the run's state until it has `status`, within `DEADLINE_SECONDS`."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while (state := harness.backend.get_state(ref)).status is not status:
        assert not state.is_terminal, f"the run ended {state.status} before {status}"
        assert time.monotonic() < deadline, f"the run did not reach {status} in time"
        time.sleep(harness.poll_seconds)
    return state


def stays(read: Callable[[], RunState], expected: RunState, times: int = 5) -> bool:
    """True if reading the state again, `times` times, always gives `expected`."""
    for _ in range(times):
        if read() != expected:
            return False
        time.sleep(0.05)
    return True


# Three trials; every trial's parameter ends up on its command line, which the job ignores.
SWEEP = SweepSpec(
    parameters={"lr": Choice(0.1, 0.01, 0.001)}, sampling="grid", primary_metric="loss"
)


class BackendContract:
    """The tests every Backend passes; a subclass provides the `harness` fixture."""

    @pytest.fixture
    def harness(self) -> BackendHarness:
        """A harness on a fresh workspace: override this fixture in the subclass."""
        raise NotImplementedError("a BackendContract subclass provides the harness fixture")

    def test_a_trivial_job_completes(self, harness: BackendHarness) -> None:
        backend = harness.backend
        spec = harness.job_spec(Job(log_lines=("hello", "world")))

        ref = backend.submit(spec)
        state = harness.settle(ref)

        assert (state.status, state.failure_kind) == (RunStatus.COMPLETED, None)
        assert state.succeeded and state.ref == ref and ref.backend == backend.name
        assert state.created_at is not None and state.started_at is not None
        assert state.ended_at is not None
        assert state.created_at <= state.started_at <= state.ended_at
        assert list(backend.iter_logs(ref)) == ["hello", "world"]
        assert backend.child_runs(ref) == []

    def test_a_failing_job_ends_failed_as_the_users_error(self, harness: BackendHarness) -> None:
        spec = harness.job_spec(Job(log_lines=("loading data",), exit_code=3))

        state = harness.settle(harness.backend.submit(spec))

        assert (state.status, state.failure_kind) == (RunStatus.FAILED, FailureKind.USER_ERROR)
        assert not state.succeeded and state.error
        assert state.ended_at is not None

    def test_a_terminal_state_is_never_left(self, harness: BackendHarness) -> None:
        backend = harness.backend
        completed = backend.submit(harness.job_spec(Job()))
        failed = backend.submit(harness.job_spec(Job(exit_code=1)))

        for ref in (completed, failed):
            final = harness.settle(ref)
            assert final.is_terminal
            assert stays(functools.partial(backend.get_state, ref), final)
            assert harness.settle(ref) == final

    def test_cancel_of_a_finished_run_does_nothing(self, harness: BackendHarness) -> None:
        backend = harness.backend
        completed = backend.submit(harness.job_spec(Job()))
        failed = backend.submit(harness.job_spec(Job(exit_code=1)))

        for ref in (completed, failed):
            final = harness.settle(ref)
            backend.cancel(ref)
            assert backend.get_state(ref) == final
            assert harness.settle(ref) == final

    def test_cancel_ends_a_running_run_canceled_for_good(self, harness: BackendHarness) -> None:
        backend = harness.backend
        ref = backend.submit(harness.job_spec(Job(keeps_running=True)))
        wait_for_status(harness, ref, RunStatus.RUNNING)

        backend.cancel(ref)
        state = harness.settle(ref)

        assert (state.status, state.failure_kind) == (RunStatus.CANCELED, FailureKind.CANCELED)
        backend.cancel(ref)
        assert stays(functools.partial(backend.get_state, ref), state)

    def test_recovery_ids_round_trip(self, harness: BackendHarness) -> None:
        backend = harness.backend
        spec = harness.job_spec(Job())

        ref = backend.submit(spec)
        harness.settle(ref)

        assert str(ref) == ref.recovery_id == f"{ref.experiment}:{ref.run_id}"
        assert backend.get_run_ref(ref.recovery_id) == ref
        assert backend.get_run_ref(ref.run_id) == ref
        assert backend.get_run_ref(ref.recovery_id).portal_url == ref.portal_url
        assert read_most_recent_run(spec.recovery_file_folder / "most_recent_run.txt") == str(ref)
        with pytest.raises(RunNotFoundError):
            backend.get_run_ref(f"other_experiment:{ref.run_id}")
        with pytest.raises(RunNotFoundError):
            backend.get_run_ref(f"{ref.experiment}:no_such_run")

    def test_runs_are_listed_with_their_state_name_and_tags(self, harness: BackendHarness) -> None:
        backend = harness.backend
        first_spec = harness.job_spec(Job())
        first = backend.submit(first_spec)
        harness.settle(first)
        other = dataclasses.replace(
            harness.job_spec(Job(exit_code=3)),
            experiment=f"{first_spec.experiment}_other",
            display_name="the other one",
            tags={"team": "vision"},
        )
        second = backend.submit(other)
        harness.settle(second)

        listed = backend.list_runs()
        assert [run.ref for run in listed] == [first, second]
        assert [run.state for run in listed] == [backend.get_state(r) for r in (first, second)]
        assert listed[1].state.failure_kind is FailureKind.USER_ERROR
        assert listed[1].display_name == "the other one"
        assert listed[1].tags.get("team") == "vision"
        assert listed[0].state.portal_url == first.portal_url
        assert {run.parent_run_id for run in listed} == {None}
        assert [run.ref for run in backend.list_runs(second.experiment)] == [second]
        assert second.experiment != first.experiment
        assert backend.list_runs("no_such_experiment") == []

    def test_datasets_and_datastores_are_listed_by_name(
        self, harness: BackendHarness, tmp_path: Path
    ) -> None:
        backend = harness.backend
        store = backend.datastore()
        (tmp_path / "a.txt").write_bytes(b"a")
        assert "listed" not in backend.dataset_names()

        store.upload_folder(tmp_path, "listed/v1")
        backend.register_dataset("listed", "", "listed/v1")

        assert "listed" in backend.dataset_names()
        assert backend.dataset_names() == sorted(backend.dataset_names())
        assert store.name in backend.datastore_names()
        assert backend.datastore_names() == sorted(backend.datastore_names())

    def test_a_sweeps_trials_are_listed_under_it(self, harness: BackendHarness) -> None:
        backend = harness.backend
        parent = backend.submit_sweep(harness.job_spec(Job(), trials=3), SWEEP)
        harness.settle(parent)
        trials = backend.child_runs(parent)

        listed = {run.ref: run.parent_run_id for run in backend.list_runs()}

        assert listed[parent] is None
        assert all(listed[trial] == parent.run_id for trial in trials)

    def test_run_files_download_byte_identical_with_checksums(
        self, harness: BackendHarness, tmp_path: Path
    ) -> None:
        backend = harness.backend
        outputs = {
            "outputs/model.bin": os.urandom(3 * 1024 * 1024 + 12345),  # sent in blocks
            "outputs/metrics/a b.json": b'{"loss": 0.5}',
            "outputs/empty.txt": b"",
        }
        files = {**outputs, "logs/train.log": b"epoch 1 done\n", "scratch.txt": b"not kept"}

        ref = backend.submit(harness.job_spec(Job(files=files)))
        assert harness.settle(ref).succeeded

        assert backend.list_files(ref, "outputs/") == sorted(outputs)
        listed = backend.list_files(ref)
        assert {*outputs, "logs/train.log"} <= set(listed) and "scratch.txt" not in listed
        report = backend.download_files(ref, "outputs/", tmp_path / "out", validate_checksum=True)
        assert read_tree(tmp_path / "out") == outputs
        assert (report.files, report.unverified) == (len(outputs), [])
        backend.download_files(ref, "logs/train.log", tmp_path / "log", validate_checksum=True)
        assert read_tree(tmp_path / "log") == {"logs/train.log": b"epoch 1 done\n"}
        with pytest.raises(InvalidInputError, match="not among a run's files"):
            backend.download_files(ref, "snapshot/", tmp_path / "nothing")
        assert not (tmp_path / "nothing").exists()

    def test_metrics_come_back_in_the_order_logged(self, harness: BackendHarness) -> None:
        backend = harness.backend
        job = Job(metrics={"loss": (1.0, 0.5), "accuracy": (0.9,)})

        ref = backend.submit(harness.job_spec(job))
        assert harness.settle(ref).succeeded

        logged = [(m.name, m.value, m.step) for m in backend.get_metrics(ref)]
        assert logged == [("loss", 1.0, 0), ("loss", 0.5, 1), ("accuracy", 0.9, 0)]

    def test_outputs_become_a_new_dataset_version(self, harness: BackendHarness) -> None:
        backend = harness.backend
        outputs = ("features", "report")
        running = harness.job_spec(Job(keeps_running=True, output_datasets=outputs))
        failing = harness.job_spec(Job(exit_code=1, output_datasets=outputs))
        writing = harness.job_spec(Job(output_datasets=outputs))

        canceled = backend.submit(running)
        wait_for_status(harness, canceled, RunStatus.RUNNING)
        assert backend.run_outputs(canceled) == []  # nothing before the run completes
        backend.cancel(canceled)
        assert harness.settle(canceled).status is RunStatus.CANCELED
        failed = backend.submit(failing)
        assert harness.settle(failed).status is RunStatus.FAILED
        assert backend.run_outputs(canceled) == backend.run_outputs(failed) == []
        with pytest.raises(DatasetNotFoundError):
            backend.resolve_dataset(DatasetConfig("features"))
        first = backend.submit(writing)
        assert harness.settle(first).succeeded
        made_first = {d.name: d for d in backend.run_outputs(first)}
        second = backend.submit(writing)
        assert harness.settle(second).succeeded
        made_second = {d.name: d for d in backend.run_outputs(second)}

        assert {d.version for d in made_first.values()} == {1}
        assert {d.version for d in made_second.values()} == {2}
        assert set(made_first) == set(made_second) == set(outputs)
        for name in outputs:
            one, two = made_first[name], made_second[name]
            assert backend.resolve_dataset(DatasetConfig(name)) == two
            assert backend.resolve_dataset(DatasetConfig(name, version=1)) == one
            assert one.datastore == two.datastore == backend.datastore().name
            # Each version's files are in a folder of their own, named by the run that made them.
            assert first.run_id in one.path and second.run_id in two.path

    def test_a_runs_outputs_stay_the_versions_it_made(self, harness: BackendHarness) -> None:
        backend = harness.backend
        writing = harness.job_spec(Job(output_datasets=("features",)))
        first = backend.submit(writing)
        assert harness.settle(first).succeeded
        made = backend.run_outputs(first)

        second = backend.submit(writing)
        assert harness.settle(second).succeeded

        assert backend.run_outputs(first) == made
        assert [d.version for d in made + backend.run_outputs(second)] == [1, 2]

    def test_sweep_trials_are_children(self, harness: BackendHarness) -> None:
        backend = harness.backend
        spec = harness.job_spec(Job(), trials=3)
        submission = f"sweep-{uuid.uuid4().hex}"

        parent = backend.submit_sweep(spec, SWEEP, submission_id=submission)
        again = backend.submit_sweep(spec, SWEEP, submission_id=submission)
        assert harness.settle(parent).succeeded

        assert again == parent
        trials = backend.child_runs(parent)
        assert len(trials) == 3 and len({t.run_id for t in trials}) == 3
        assert parent not in trials
        for trial in trials:
            assert harness.settle(trial).succeeded
            assert backend.get_run_ref(trial.recovery_id) == trial
            assert backend.child_runs(trial) == []

    def test_one_submission_id_makes_one_run(self, harness: BackendHarness) -> None:
        backend = harness.backend
        spec = harness.job_spec(Job())
        submission, other = f"job-{uuid.uuid4().hex}", f"job-{uuid.uuid4().hex}"
        assert backend.find_submission(submission) is None

        first = backend.submit(spec, submission_id=submission)
        second = backend.submit(spec, submission_id=submission)
        harness.settle(first)
        after_it_ended = backend.submit(spec, submission_id=submission)

        assert first == second == after_it_ended == backend.find_submission(submission)
        assert backend.find_submission(other) is None
        another = backend.submit(spec, submission_id=other)
        assert another != first and backend.find_submission(other) == another
        harness.settle(another)
