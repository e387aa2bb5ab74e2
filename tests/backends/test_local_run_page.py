"""A local run's page (index.html in the run folder), the target of its link, after real runs."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from himl_tasks.backends.local import run_page
from himl_tasks.backends.local.backend import LocalBackend
from himl_tasks.backends.local.run_page import PAGE, RunPage, write_run_page
from himl_tasks.backends.local.supervisor import DRIVER_LOG
from himl_tasks.job_spec import JobSpec
from himl_tasks.runs import Metric, RunRef, RunStatus
from tests.backends.conftest import write_script

HOSTILE = "<script>alert('loss')</script>"

TRAIN = f"""\
    from himl_tasks.runtime import get_run_info, log_metric, report_progress

    for epoch in range(5):
        log_metric("loss", 1.0 / (epoch + 1), step=epoch)
        report_progress(epoch + 1, 5)
        log_metric({HOSTILE!r}, epoch, step=epoch)
    log_metric("note", "<b>done</b>")
    (get_run_info().output_folder / "model <1>.txt").write_text("weights")
    print("training <done> & saved", flush=True)
"""


def page_of(backend: LocalBackend, spec: JobSpec) -> tuple[str, str, Path]:
    """Submits the job, waits for it; returns (its link, its page's text, its run folder)."""
    ref = backend.submit(backend.plan(spec))
    backend.wait(ref, timeout=120)
    link = backend.get_state(ref).portal_url
    page = Path(unquote(urlparse(link).path))
    return link, page.read_text(encoding="utf-8"), page.parent


def test_the_link_of_a_local_run_opens_its_page_with_curves_log_and_files(
    tmp_path: Path,
) -> None:
    backend = LocalBackend(tmp_path / "workspace")
    write_script(tmp_path / "project", "train.py", TRAIN)
    spec = JobSpec(entry_script="train.py", snapshot_root=tmp_path / "project")
    link, page, run_dir = page_of(backend, spec)
    assert link.startswith("file://") and link.endswith("/index.html")
    assert "<strong>Completed</strong>" in page and 'http-equiv="refresh"' not in page
    # The loss curve: five points falling from the top (y=0) to the bottom (y=64) of the SVG.
    assert '<h3>loss</h3><svg width="320" height="64"' in page
    assert '<polyline points="0.0,0.0 80.0,40.0 160.0,53.3 240.0,60.0 320.0,64.0"/>' in page
    assert "min 0.2, max 1, last 0.2 (5 points)" in page
    assert '<progress value="5" max="5"></progress> 5 of 5 epochs' in page
    assert "<h3>epochs_done</h3>" not in page  # progress is shown as progress, not a curve
    # The log and the files, with links that resolve inside the run folder.
    assert "training &lt;done&gt; &amp; saved" in page
    assert '<a href="snapshot/outputs/model%20%3C1%3E.txt">outputs/model &lt;1&gt;.txt</a>' in page
    assert (run_dir / "snapshot" / "outputs" / "model <1>.txt").read_text() == "weights"
    assert '<a href="snapshot/azureml-logs/70_driver_log.txt">' in page


def test_user_input_on_the_page_is_escaped(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "workspace")
    write_script(tmp_path / "project", "train.py", TRAIN)
    spec = JobSpec(
        entry_script="train.py",
        snapshot_root=tmp_path / "project",
        display_name="<img src=x onerror=alert(1)>",
        tags={"<k>": "<v>"},
    )
    _, page, _ = page_of(backend, spec)
    assert "<script>" not in page and "<img" not in page and "<b>" not in page
    assert "<h3>&lt;script&gt;alert(&#x27;loss&#x27;)&lt;/script&gt;</h3>" in page
    assert "<h1>&lt;img src=x onerror=alert(1)&gt;</h1>" in page
    assert "<td>note</td><td>&lt;b&gt;done&lt;/b&gt;</td>" in page
    assert "<code>&lt;k&gt;=&lt;v&gt;</code>" in page


def test_a_queued_run_already_has_a_page(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "workspace")
    write_script(tmp_path / "project", "wait.py", "import time\ntime.sleep(30)\n")
    ref = backend.submit(
        backend.plan(JobSpec(entry_script="wait.py", snapshot_root=tmp_path / "project"))
    )
    try:
        page = Path(unquote(urlparse(ref.portal_url).path)).read_text(encoding="utf-8")
        assert 'http-equiv="refresh"' in page and "No metrics yet." in page
    finally:
        backend.cancel(ref)
        backend.wait(ref, timeout=60)


def test_a_running_run_s_page_shows_the_metrics_logged_so_far(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "workspace")
    write_script(
        tmp_path / "project",
        "slow.py",
        "import time\nfrom himl_tasks.runtime import log_metric\n"
        "for epoch in range(3):\n    log_metric('loss', 1.0 / (epoch + 1), step=epoch)\n"
        "time.sleep(30)\n",
    )
    ref = backend.submit(
        backend.plan(JobSpec(entry_script="slow.py", snapshot_root=tmp_path / "project"))
    )
    page = Path(unquote(urlparse(ref.portal_url).path))
    try:
        deadline = time.monotonic() + 20
        while "(3 points)" not in page.read_text(encoding="utf-8"):
            assert time.monotonic() < deadline, page.read_text(encoding="utf-8")
            time.sleep(0.2)
        text = page.read_text(encoding="utf-8")
        assert "<strong>Running</strong>" in text and 'http-equiv="refresh"' in text
    finally:
        backend.cancel(ref)
        backend.wait(ref, timeout=60)
    assert "<strong>Canceled</strong>" in page.read_text(encoding="utf-8")


def test_a_curve_near_the_float_limits_and_a_binary_log_still_draw(tmp_path: Path) -> None:
    # A diverging loss near the float limits: the range overflowed and the polyline got "nan"
    # coordinates (a curve the browser does not draw). A log of raw bytes shows as text.
    backend = LocalBackend(tmp_path / "workspace")
    script = """\
        import sys
        from himl_tasks.runtime import log_metric

        for step, value in enumerate([-1e308, 0.0, 1e308]):
            log_metric("loss", value, step=step)
        sys.stdout.buffer.write(bytes(range(256)) + b"\\n")
        sys.stdout.flush()
    """
    write_script(tmp_path / "project", "diverge.py", script)
    spec = JobSpec(entry_script="diverge.py", snapshot_root=tmp_path / "project")
    _, page, _ = page_of(backend, spec)
    assert "<strong>Completed</strong>" in page
    assert '<polyline points="0.0,64.0 160.0,32.0 320.0,0.0"/>' in page
    assert "<\x00" not in page and "&lt;=&gt;" in page  # the bytes '<', '=', '>' escaped


def test_a_page_rewritten_while_nothing_changed_reads_and_writes_nothing_again(
    tmp_path: Path,
) -> None:
    # The supervisor rewrites a running run's page every 2 s: each time it read every metric,
    # the log's tail and walked the whole run folder, and wrote the page, mostly all unchanged.
    backend = LocalBackend(tmp_path / "workspace")
    write_script(tmp_path / "project", "train.py", TRAIN)
    ref = backend.submit(
        backend.plan(JobSpec(entry_script="train.py", snapshot_root=tmp_path / "project"))
    )
    backend.wait(ref, timeout=120)
    row = backend.registry.get_run(ref.run_id)
    assert row is not None
    reads: list[str] = []
    registry = backend.registry
    metric_values = registry.metric_values

    def counted(run_id: str) -> list[Metric]:
        reads.append(run_id)
        return metric_values(run_id)

    registry.metric_values = counted  # type: ignore[method-assign]
    page = RunPage(registry, row, driver_log=DRIVER_LOG)
    path = page.write()
    written = path.stat().st_mtime_ns, path.stat().st_ino
    time.sleep(0.01)
    assert page.write() == path
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == written and len(reads) == 1
    registry.log_metrics(ref.run_id, 1, [("loss", 0.05, 5)])
    page.write()
    assert len(reads) == 2 and "(6 points)" in path.read_text(encoding="utf-8")
    log = row.run_dir / "snapshot" / DRIVER_LOG
    log.write_text(log.read_text(encoding="utf-8") + "one more line\n", encoding="utf-8")
    page.write()
    assert "one more line" in path.read_text(encoding="utf-8") and len(reads) == 2


def test_the_files_are_listed_in_name_order_up_to_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Listed as sorted(rglob) did, but left at the limit instead of walking the whole folder.
    folder = tmp_path / "snapshot"
    for name in ("b", "a.txt", "a/x", "a/y/z", "B", "a-b/c", ".hidden", "c/d"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(name)
    (folder / "link").symlink_to(folder / "a", target_is_directory=True)
    (folder / "file-link").symlink_to(folder / "b")
    everything = [
        (path.relative_to(folder).as_posix(), path.stat().st_size)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    ]
    assert run_page._files(folder) == everything
    assert "link/x" not in dict(everything)
    monkeypatch.setattr(run_page, "MAX_FILES", 4)
    assert run_page._files(folder) == everything[:4]
    assert run_page._files(tmp_path / "gone") == []


def test_two_writers_of_a_page_never_mix_it_nor_fail(tmp_path: Path) -> None:
    # The submitter writes a queued run's page as the supervisor another run's end started
    # writes it too. Both wrote into one temporary name: the page held one page's head and
    # the other's tail, and a writer whose file the other had renamed away raised
    # FileNotFoundError (the submitter's after its run was recorded).
    backend = LocalBackend(tmp_path / "workspace")
    write_script(tmp_path / "project", "train.py", "print('hi')\n")
    spec = JobSpec(entry_script="train.py", snapshot_root=tmp_path / "project")
    _, _, run_dir = page_of(backend, spec)
    row = backend.registry.get_run(run_dir.name)
    assert row is not None
    failures: list[BaseException] = []
    mixed: list[str] = []
    done = threading.Event()

    def write(error: str) -> None:
        try:
            for _ in range(150):
                write_run_page(backend.registry, row, driver_log=DRIVER_LOG, error=error)
        except BaseException as failure:
            failures.append(failure)

    def read() -> None:
        while not done.is_set():
            text = (run_dir / PAGE).read_text(encoding="utf-8")
            if text.count("</html>") != 1 or ("short" in text and "long" * 100 in text):
                mixed.append(text)

    writers = [threading.Thread(target=write, args=(e,)) for e in ("short", "long" * 5000)]
    reader = threading.Thread(target=read)
    for thread in (*writers, reader):
        thread.start()
    for thread in writers:
        thread.join(120)
    done.set()
    reader.join(120)

    assert failures == [] and mixed == []
    # No temporary file left beside it.
    assert sorted(p.name for p in run_dir.iterdir()) == [
        PAGE, "job_spec.json", "snapshot", "supervisor.log"
    ]  # fmt: skip


def _page_text(ref: RunRef) -> str:
    return Path(unquote(urlparse(ref.portal_url).path)).read_text(encoding="utf-8")


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_a_run_whose_supervisor_is_killed_or_stopped_has_a_final_page(
    tmp_path: Path, signum: signal.Signals
) -> None:
    # The page was written only by the supervisor: a run ended by its death (found by the next
    # look at it) or by its SIGTERM kept a page saying Running and reloading for ever.
    backend = LocalBackend(tmp_path / "workspace")
    write_script(tmp_path / "project", "wait.py", "import time\ntime.sleep(60)\n")
    ref = backend.submit(JobSpec(entry_script="wait.py", snapshot_root=tmp_path / "project"))
    deadline = time.monotonic() + 30
    while backend.get_state(ref).status is not RunStatus.RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    row = backend.registry.get_run(ref.run_id)
    assert row is not None and row.supervisor_pid is not None

    os.kill(row.supervisor_pid, signum)
    state = backend.wait(ref, timeout=60)

    assert state.status is RunStatus.FAILED
    page = _page_text(ref)
    assert "<strong>Failed</strong>" in page and 'http-equiv="refresh"' not in page


def test_a_run_canceled_while_queued_has_a_final_page(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "workspace")
    backend.create_compute_cluster("one", max_concurrent_runs=1)
    write_script(tmp_path / "project", "wait.py", "import time\ntime.sleep(60)\n")
    spec = JobSpec(entry_script="wait.py", snapshot_root=tmp_path / "project", compute="one")
    running, queued = backend.submit(spec), backend.submit(spec)
    try:
        assert backend.get_state(queued).status is RunStatus.QUEUED
        backend.cancel(queued)
        page = _page_text(queued)
        assert "<strong>Canceled</strong>" in page and 'http-equiv="refresh"' not in page
    finally:
        backend.cancel(running)
        backend.wait(running, timeout=60)


def test_the_files_listed_stop_at_the_cap_without_walking_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The supervisor rewrites a running run's page every 2 s: every file of the run was
    # listed and sorted each time before the first 1000 were kept (1.3 s for 200,000 files,
    # during which the supervisor watched neither the job, nor cancels, nor time limits).
    folder = tmp_path / "snapshot"
    for index in range(50):
        (folder / f"d{index:02}").mkdir(parents=True)
        for number in range(25):
            (folder / f"d{index:02}" / f"f{number:02}").write_bytes(b"x" * index)
    (folder / "train.py").write_text("print()")
    listed: list[str] = []
    scandir = os.scandir

    def listing(path: object) -> object:
        listed.append(str(path))
        return scandir(path)  # type: ignore[call-overload]

    monkeypatch.setattr(os, "scandir", listing)
    files = run_page._files(folder)

    assert len(files) == run_page.MAX_FILES == 1000
    assert files[0] == ("d00/f00", 0) and files[-1] == ("d39/f24", 39)  # in sorted order
    assert len(listed) <= 41  # the folder and the 40 whose files are shown


def test_a_curve_of_a_metric_logged_per_batch_draws_a_bounded_polyline(tmp_path: Path) -> None:
    # Every value was a point of the SVG: 200,000 values logged per batch made each rewrite
    # of the page (every 2 s) 2 MB for a curve 320 pixels wide.
    import datetime

    from himl_tasks.backends.local.run_page import render_run_page

    backend = LocalBackend(tmp_path / "workspace")
    write_script(tmp_path / "project", "train.py", "print('hi')\n")
    _, _, run_dir = page_of(
        backend, JobSpec(entry_script="train.py", snapshot_root=tmp_path / "project")
    )
    row = backend.registry.get_run(run_dir.name)
    assert row is not None
    now = datetime.datetime.now(datetime.UTC)
    metrics = [Metric("loss", 1.0 / (step + 1), step, now) for step in range(20_000)]

    page = render_run_page(
        row, metrics, log_tail="", driver_log=DRIVER_LOG, files=[], status=row.status, error=""
    )

    (points,) = re.findall(r'<polyline points="([^"]*)"/>', page)
    coordinates = points.split()
    assert len(coordinates) == 640  # two per pixel
    assert coordinates[0] == "0.0,0.0" and coordinates[-1] == "320.0,64.0"  # first and last step
    assert "(20000 points)" in page
