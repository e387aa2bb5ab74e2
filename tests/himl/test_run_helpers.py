"""hi-ml's run helpers on the local backend and on AzureML (the stand-in): finding runs and
downloading their files, with hi-ml's arguments and errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from himl_tasks.backends.azureml_v1 import AzureMLV1Backend
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.errors import InvalidInputError, RunNotFoundError
from himl_tasks.himl.run_helpers import (
    download_checkpoints_from_run_id,
    download_files_from_run_id,
    fetch_run,
    get_most_recent_run,
)
from himl_tasks.himl.run_objects import BackendRun
from himl_tasks.job_spec import JobSpec
from himl_tasks.runs import RunRef
from tests.backends.azureml_service import FakeAzureMLService, Outcome
from tests.backends.conftest import azureml_job, write_script
from tests.conftest import read_tree
from tests.himl.workspace_places import AzureMLSeam, write_config_json

TRAIN = """
from pathlib import Path
Path("outputs/checkpoints").mkdir(parents=True)
Path("outputs/checkpoints/last.ckpt").write_text("last")
Path("outputs/checkpoints/epoch=1.ckpt").write_text("one")
Path("outputs/other.txt").write_text("other")
"""


@pytest.fixture
def trained(cwd_project: Path) -> tuple[LocalBackend, RunRef]:
    """A completed local run with checkpoints, in the workspace `$HIML_HOME` names."""
    backend = LocalBackend(cwd_project / "workspace")
    write_script(cwd_project, "train.py", TRAIN)
    ref = backend.submit(JobSpec(entry_script="train.py", snapshot_root=cwd_project))
    assert backend.wait(ref, timeout=60).succeeded
    return backend, ref


def test_files_of_a_run_keep_their_path_under_the_output_folder(
    trained: tuple[LocalBackend, RunRef], tmp_path: Path
) -> None:
    backend, ref = trained
    report = download_files_from_run_id(
        ref.recovery_id, tmp_path / "a", prefix="outputs/checkpoints", workspace=backend
    )
    assert report is not None and report.files == 2
    assert read_tree(tmp_path / "a") == {
        "outputs/checkpoints/last.ckpt": b"last",
        "outputs/checkpoints/epoch=1.ckpt": b"one",
    }
    # A bare run id, and the whole run with no prefix.
    download_files_from_run_id(ref.run_id, tmp_path / "b", workspace=backend)
    assert "outputs/other.txt" in read_tree(tmp_path / "b")


def test_nothing_matching_the_prefix_is_a_file_not_found_error(
    trained: tuple[LocalBackend, RunRef], tmp_path: Path
) -> None:
    backend, ref = trained
    for prefix in ("outputs/nothing", "elsewhere/"):
        with pytest.raises(FileNotFoundError, match=f'no files with prefix "{prefix}"'):
            download_files_from_run_id(
                ref.run_id, tmp_path / "out", prefix=prefix, workspace=backend
            )
    assert not (tmp_path / "out").exists()


def test_a_run_whose_folder_was_deleted_says_so(
    trained: tuple[LocalBackend, RunRef], tmp_path: Path
) -> None:
    # Its folder deleted by hand, the registry still lists the run: the error said to
    # "create" the folder of a datastore named after it.
    backend, ref = trained
    shutil.rmtree(backend.root / "runs" / ref.run_id)
    with pytest.raises(RunNotFoundError, match=f"files of run '{ref.run_id}' are gone"):
        download_files_from_run_id(ref.run_id, tmp_path / "out", workspace=backend)
    assert not (tmp_path / "out").exists()


def test_only_the_first_process_on_a_node_downloads(
    trained: tuple[LocalBackend, RunRef], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend, ref = trained
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert download_files_from_run_id(ref.run_id, tmp_path / "x", workspace=backend) is None
    assert not (tmp_path / "x").exists()


def test_checkpoints_by_hi_mls_current_and_old_argument_names(
    trained: tuple[LocalBackend, RunRef], tmp_path: Path
) -> None:
    backend, ref = trained
    download_checkpoints_from_run_id(
        ref.run_id, "outputs/checkpoints/last.ckpt", tmp_path / "one", aml_workspace=backend
    )
    assert read_tree(tmp_path / "one") == {"outputs/checkpoints/last.ckpt": b"last"}
    download_checkpoints_from_run_id(  # hi-ml 0.1 called it checkpoint_dir
        ref.run_id,
        checkpoint_dir="outputs/checkpoints",
        output_folder=tmp_path / "all",
        aml_workspace=backend,
    )
    assert len(read_tree(tmp_path / "all")) == 2
    with pytest.raises(InvalidInputError, match="exactly one of them"):
        download_checkpoints_from_run_id(
            ref.run_id, "outputs/checkpoints", tmp_path, backend, checkpoint_dir="outputs"
        )


def test_runs_are_found_by_recovery_id_and_by_the_recovery_file(
    trained: tuple[LocalBackend, RunRef], cwd_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend, ref = trained
    run = fetch_run(backend, ref.recovery_id)
    assert isinstance(run, BackendRun) and (run.id, run.experiment.name) == (
        ref.run_id,
        "train",
    )
    assert fetch_run(backend, ref.run_id).id == ref.run_id
    # No workspace given: the local one $HIML_HOME names (resolve_backend's last step).
    monkeypatch.setenv("HIML_HOME", str(backend.root))
    assert get_most_recent_run(cwd_project / "most_recent_run.txt").id == ref.run_id
    assert get_most_recent_run().get_status() == "Completed"  # ./most_recent_run.txt
    with pytest.raises(RunNotFoundError):
        fetch_run(backend, "train:train_1_abc")
    with pytest.raises(RunNotFoundError, match="does not exist"):
        get_most_recent_run(cwd_project / "nothing.txt", backend)


def test_on_azureml_the_runs_are_azureml_runs_and_files_come_from_its_artifact_store(
    cwd_project: Path,
    aml: AzureMLV1Backend,
    aml_service: FakeAzureMLService,
    seam: AzureMLSeam,
    tmp_path: Path,
) -> None:
    aml_service.next_outcome = Outcome(files={"outputs/model.pt": b"weights"})
    ref = aml.submit(azureml_job(cwd_project, "print('hi')\n", "train.py"))
    assert aml.wait(ref, timeout=30).succeeded
    write_config_json(cwd_project)  # hi-ml finds the workspace from here

    run = get_most_recent_run(cwd_project / "most_recent_run.txt")
    download_files_from_run_id(run.id, tmp_path / "out", prefix="outputs/", validate_checksum=True)

    assert run is aml_service.runs[ref.run_id]
    assert read_tree(tmp_path / "out") == {"outputs/model.pt": b"weights"}
    assert len(seam.calls) == 2
