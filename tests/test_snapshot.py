"""What travels with a job: .amlignore, ignored folders, defaults, and AzureML's limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.errors import InvalidInputError, SnapshotTooLargeError
from himl_tasks.job_spec import JobSpec
from himl_tasks.snapshot import select_snapshot
from tests.conftest import read_tree, write_tree

PROJECT = {
    "train.py": b"print('train')",
    "lib/model.py": b"model",
    "data/big.bin": b"x" * 1000,
    "notes/todo.md": b"todo",
    "scratch.tmp": b"tmp",
    ".git/HEAD": b"ref",
    ".venv/pyvenv.cfg": b"home",
    "env2/pyvenv.cfg": b"home",
    "env2/lib/site.py": b"site",
    "lib/__pycache__/model.cpython-311.pyc": b"pyc",
    ".himl/registry.sqlite": b"db",
    ".env": b"DEBUG=1",
    "config.json": b'{"subscription_id": "..."}',
    "deploy/service.pem": b"key",
    "outputs/old.ckpt": b"stale",
    "lib/outputs/keep.txt": b"kept: only the root's outputs/ stays behind",
}


def test_ignore_rules_defaults_and_credentials(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "p", PROJECT)
    (root / ".amlignore").write_text("data/\n*.tmp\n!config.json\n")
    before = (root / ".amlignore").read_bytes()

    snapshot = select_snapshot(root, ignored_folders=["notes"])

    assert [f.relative for f in snapshot.files] == [
        ".amlignore",
        "lib/model.py",
        "lib/outputs/keep.txt",
        "train.py",
    ]
    assert (root / ".amlignore").read_bytes() == before


def test_gitignore_is_used_when_there_is_no_amlignore(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "p", {"a.py": b"a", "data/x": b"x"})
    (root / ".gitignore").write_text("data/\n")

    assert [f.relative for f in select_snapshot(root).files] == [".gitignore", "a.py"]


def test_a_snapshot_over_the_limits_names_the_biggest_folders(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / "p",
        {
            "train.py": b"t",
            **{f"images/{i}.png": b"p" * 100 for i in range(30)},
            "ckpt/m": b"m" * 500,
        },
    )

    with pytest.raises(
        SnapshotTooLargeError, match=r"32 files.*limit is 20 files and 300.0 MB"
    ) as raised:
        select_snapshot(root, max_files=20)
    assert "images/ 2.9 KB in 30 files, ckpt/ 0.5 KB in 1 files" in str(raised.value)
    assert str(raised.value).index("images/") < str(raised.value).index("ckpt/")
    with pytest.raises(SnapshotTooLargeError, match="Biggest folders: images/"):
        select_snapshot(root, max_bytes=2000)


def test_the_run_gets_a_copy_of_the_snapshot_and_nothing_else(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "ws")
    root = write_tree(tmp_path / "p", PROJECT)
    (root / "train.py").write_text("import os\nprint(sorted(os.listdir('.')))\n")

    ref = backend.submit(
        JobSpec(entry_script="train.py", snapshot_root=root, ignored_folders=["data", "notes"])
    )
    assert backend.wait(ref).succeeded

    copied = read_tree(backend.registry.get_run(ref.run_id).run_dir / "snapshot")  # type: ignore[union-attr]
    assert set(copied) == {
        "train.py", "lib/model.py", "lib/outputs/keep.txt", "scratch.tmp",
        "azureml-logs/70_driver_log.txt",
    }  # fmt: skip


def test_bad_snapshot_settings(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not a folder"):
        select_snapshot(tmp_path / "missing")
    with pytest.raises(InvalidInputError, match="names no folder"):
        select_snapshot(tmp_path, ignored_folders=["/"])


def test_an_entry_script_excluded_by_the_ignore_rules_is_refused(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "p", {"scripts/run.py": b"print(1)"})
    (root / ".amlignore").write_text("scripts/\n")

    with pytest.raises(InvalidInputError, match="excluded from the snapshot"):
        LocalBackend(tmp_path / "ws").submit(
            JobSpec(entry_script="scripts/run.py", snapshot_root=root)
        )


def test_a_plan_whose_snapshot_lost_a_file_is_refused_as_a_himl_error(tmp_path: Path) -> None:
    from himl_tasks.errors import InputPathNotFoundError
    from himl_tasks.jobs.identity import job_identity

    project = write_tree(tmp_path / "project", {"train.py": b"import helper\n", "helper.py": b""})
    backend = LocalBackend(tmp_path / "workspace")
    plan = backend.plan(JobSpec(entry_script="train.py", snapshot_root=project))
    (project / "helper.py").unlink()

    with pytest.raises(InputPathNotFoundError, match="helper.py.*plan the job again"):
        job_identity(plan)
    with pytest.raises(InputPathNotFoundError, match="helper.py.*plan the job again"):
        backend.submit(plan)
    assert backend.registry.runs() == []
    assert not any((backend.root / "runs").iterdir())


def test_a_symlinked_entry_script_in_the_root_runs_as_its_name(tmp_path: Path) -> None:
    # `python train.py` with train.py a symlink (to a shared copy elsewhere): the script is in
    # the folder the user submits, and the job gets its content under that name. It was
    # refused as "outside the snapshot root" while the path printed was inside it.
    shared = write_tree(tmp_path / "shared", {"train.py": b"print('trained')\n"})
    root = tmp_path / "project"
    root.mkdir()
    (root / "train.py").symlink_to(shared / "train.py")
    backend = LocalBackend(tmp_path / "ws")

    ref = backend.submit(JobSpec(entry_script=root / "train.py", snapshot_root=root))

    assert backend.wait(ref).succeeded
    assert b"trained" in backend.read_log(ref, 0)
    copied = backend.registry.get_run(ref.run_id).run_dir / "snapshot" / "train.py"  # type: ignore[union-attr]
    assert not copied.is_symlink() and copied.read_bytes() == b"print('trained')\n"


def test_a_local_workspace_inside_the_project_never_travels(tmp_path: Path) -> None:
    # HIML_HOME=./workspace in the project: each run's snapshot copied the registry and every
    # earlier run's snapshot (which held the ones before it).
    root = write_tree(tmp_path / "project", {"train.py": b"print('train')"})
    backend = LocalBackend(root / "workspace")

    refs = [backend.submit(JobSpec(entry_script="train.py", snapshot_root=root)) for _ in "ab"]

    for ref in refs:
        assert backend.wait(ref).succeeded
        snapshot = backend.registry.get_run(ref.run_id).run_dir / "snapshot"  # type: ignore[union-attr]
        assert not (snapshot / "workspace").exists()
