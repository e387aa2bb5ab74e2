"""A local run's page: `index.html` in the run folder, what a browser opens for the run's link.

AzureML gives each run a portal page; a local run gets this file instead (its `portal_url`):
status, each numeric metric's curve (an inline SVG polyline) with min/max/last, the last values of
every metric, the driver log's tail and the run's files with links. It is written when the run
is submitted, when its supervisor starts it, every few seconds while it runs (`RunPage`: only
what changed is read again, and an unchanged page is not rewritten) and when it ends (before the
end is recorded, so whoever sees the run ended finds the final page). Everything shown that a
user chose (run and metric names, tags, log lines, file names) is HTML-escaped.
"""

from __future__ import annotations

import html
import logging
import math
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from himl_tasks.backends.local.registry import Registry, RunRow
from himl_tasks.metric_curves import (
    PROGRESS_METRICS,
    MetricCurve,
    format_number,
    history_steps,
    metric_curves,
    progress,
    scaled,
)
from himl_tasks.runs import Metric, RunStatus

logger = logging.getLogger(__name__)

PAGE = "index.html"
LOG_TAIL_LINES = 300
MAX_FILES = 1000
_WIDTH, _HEIGHT = 320, 64
MAX_CURVE_POINTS = 2 * _WIDTH


def run_page_url(run_dir: Path) -> str:
    """The `file://` URL of the page of the run in `run_dir`."""
    return (run_dir / PAGE).as_uri()


def write_run_page(
    registry: Registry,
    row: RunRow,
    *,
    driver_log: str,
    status: RunStatus | None = None,
    error: str | None = None,
) -> Path:
    """Writes (or rewrites) the run's page once; returns its path (see `RunPage.write`)."""
    return RunPage(registry, row, driver_log=driver_log).write(status, error)


class RunPage:
    """The page of one run, kept up to date by whoever rewrites it again and again.

    Each `write` reads again only what changed since the last: the metrics when the registry
    holds more of them, the log's tail when the log's size or time changed; and the page is
    written only when what it shows changed. A run that runs for hours rewrites its page every
    few seconds (the supervisor), mostly with nothing new.

    Args:
        registry: The workspace's registry (the run's metrics).
        row: The run.
        driver_log: The driver log's path inside the run's working folder.
    """

    def __init__(self, registry: Registry, row: RunRow, *, driver_log: str) -> None:
        self.registry = registry
        self.row = row
        self.driver_log = driver_log
        self._metrics: list[Metric] | None = None
        self._log: tuple[tuple[int, int] | None, str] | None = None
        self._shown: tuple[object, ...] | None = None

    def write(self, status: RunStatus | None = None, error: str | None = None) -> Path:
        """Writes the page if what it shows changed since the last write; returns its path.

        Args:
            status: The status to show, if not the row's (the supervisor writes the final page
                before it records the end).
            error: The error to show, if not the row's.
        """
        row = self.row
        page = row.run_dir / PAGE
        metrics = self._read_metrics()
        log_mark, log_tail = self._read_log()
        files = _files(row.run_dir / "snapshot")
        shown_status = status or row.status
        shown_error = row.error if error is None else error
        shown = (shown_status, shown_error, len(metrics), log_mark, files)
        if shown == self._shown:
            return page
        text = render_run_page(
            row,
            metrics,
            log_tail=log_tail,
            driver_log=self.driver_log,
            files=files,
            status=shown_status,
            error=shown_error,
        )
        # Written beside it and renamed over it, so a browser reloading never sees half a page;
        # under a name of this writer's own, so two writers (a submitter and the supervisor it
        # raced) never write into one file, nor rename away the other's.
        partial = page.with_name(f".{PAGE}.{os.getpid()}.{threading.get_ident()}.partial")
        try:
            partial.write_text(text, encoding="utf-8")
            partial.replace(page)
        finally:
            partial.unlink(missing_ok=True)
        self._shown = shown
        return page

    def _read_metrics(self) -> list[Metric]:
        """The run's metrics, read again only when the registry holds more (they are only added)."""
        if self._metrics is None or self.registry.metric_count(self.row.run_id) != len(
            self._metrics
        ):
            self._metrics = self.registry.metric_values(self.row.run_id)
        return self._metrics

    def _read_log(self) -> tuple[tuple[int, int] | None, str]:
        """The driver log's (size, time) and its tail, read again only when they changed."""
        path = self.row.run_dir / "snapshot" / self.driver_log
        try:
            found = path.stat()
            mark: tuple[int, int] | None = (found.st_size, found.st_mtime_ns)
        except OSError:
            mark = None
        if self._log is None or self._log[0] != mark:
            # Marked before it is read: a line written meanwhile is read at the next write.
            self._log = (mark, _tail(path, LOG_TAIL_LINES) if mark is not None else "")
        return self._log


def rewrite_run_page(registry: Registry, run_id: str, *, driver_log: str) -> None:
    """Rewrites a run's page from what the registry holds now; a page not written ends nothing.

    Called by whoever records a run's step other than its supervisor: the submitter, and
    whoever ends a run whose supervisor is gone (killed, stopped) or never started (canceled
    while queued). Else the page would show the run going, and reload, for ever.
    """
    try:
        row = registry.get_run(run_id)
        if row is not None:
            write_run_page(registry, row, driver_log=driver_log)
    except (OSError, sqlite3.Error) as failure:
        logger.warning("could not write the page of run %s: %s", run_id, failure)


def render_run_page(
    row: RunRow,
    metrics: list[Metric],
    *,
    log_tail: str,
    driver_log: str,
    files: list[tuple[str, int]],
    status: RunStatus,
    error: str,
) -> str:
    """The page's HTML (see the module docstring)."""
    e = html.escape
    curves = metric_curves(metrics)
    title = f"{row.experiment}:{row.run_id}"
    refresh = "" if status.is_terminal else '<meta http-equiv="refresh" content="10">'
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        refresh,
        f"<title>{e(title)} ({e(status.value)})</title>",
        "<style>body{font-family:sans-serif;margin:2em}pre{background:#f4f4f4;padding:1em;"
        "overflow-x:auto}td,th{padding:2px 8px;text-align:left}svg{background:#fafafa;"
        "border:1px solid #ddd}polyline{fill:none;stroke:#1f77b4;stroke-width:2}</style>",
        "</head><body>",
        f"<h1>{e(row.display_name)}</h1>",
        f"<p>Run <code>{e(title)}</code>: <strong>{e(status.value)}</strong>"
        f" (attempt {row.attempt}, compute {e(row.compute)})</p>",
    ]
    if error:
        parts.append(f"<pre>{e(error)}</pre>")
    if row.tags:
        parts.append(
            "<p>Tags: "
            + ", ".join(f"<code>{e(k)}={e(v)}</code>" for k, v in sorted(row.tags.items()))
            + "</p>"
        )
    parts.append("<h2>Metrics</h2>")
    if not metrics:
        parts.append("<p>No metrics yet.</p>")
    reported = progress(metrics)
    if reported is not None:
        done, total = reported
        parts.append(
            f'<p>Progress: <progress value="{done:g}" max="{total:g}"></progress>'
            f" {done:g} of {total:g} epochs</p>"
        )
    parts.extend(
        _curve_section(curve) for name, curve in curves.items() if name not in PROGRESS_METRICS
    )
    last = _last_values(metrics)
    if last:
        parts.append("<table><tr><th>metric</th><th>last value</th></tr>")
        parts.extend(
            f"<tr><td>{e(name)}</td><td>{e(value)}</td></tr>" for name, value in last.items()
        )
        parts.append("</table>")
    parts.append(f'<h2>Log</h2><p><a href="{_href(driver_log)}">{e(driver_log)}</a>'
                 f" (the last {LOG_TAIL_LINES} lines below)</p>")  # fmt: skip
    parts.append(f"<pre>{e(log_tail) or '(nothing yet)'}</pre>")
    cut = f", the first {MAX_FILES} shown" if len(files) >= MAX_FILES else ""
    parts.append(f"<h2>Files</h2><p>{len(files)} file(s) in the run's working folder{cut}.</p>")
    parts.append("<table><tr><th>file</th><th>bytes</th></tr>")
    parts.extend(
        f'<tr><td><a href="{_href(name)}">{e(name)}</a></td><td>{size}</td></tr>'
        for name, size in files
    )
    parts.append("</table></body></html>")
    return "\n".join(part for part in parts if part) + "\n"


def _curve_section(curve: MetricCurve) -> str:
    """A metric's heading, its curve as an SVG polyline and its min/max/last.

    The polyline has at most `MAX_CURVE_POINTS`, spread evenly over the steps (first and last
    included): a metric logged per batch has a million, and every rewrite drew them all.
    """
    e = html.escape
    shown, _ = history_steps({curve.name: curve}, max_rows=MAX_CURVE_POINTS)
    values = dict(curve.points)
    finite = [(step, values[step]) for step in shown if math.isfinite(values[step])]
    points = ""
    if finite:
        first, last_step = finite[0][0], finite[-1][0]
        low, high = min(v for _, v in finite), max(v for _, v in finite)
        coordinates = []
        for step, value in finite:
            x = (step - first) / (last_step - first) * _WIDTH if last_step > first else _WIDTH / 2
            y = _HEIGHT / 2 if high == low else _HEIGHT - scaled(value, low, high) * _HEIGHT
            coordinates.append(f"{x:.1f},{y:.1f}")
        points = " ".join(coordinates)
    return (
        f"<h3>{e(curve.name)}</h3>"
        f'<svg width="{_WIDTH}" height="{_HEIGHT}" viewBox="-4 -4 {_WIDTH + 8} {_HEIGHT + 8}"'
        f' role="img" aria-label="{e(curve.name)}"><polyline points="{points}"/></svg>'
        f"<p>min {format_number(curve.minimum)}, max {format_number(curve.maximum)},"
        f" last {format_number(curve.last)} ({len(curve.points)} points)</p>"
    )


def _last_values(metrics: list[Metric]) -> dict[str, str]:
    """Each metric's last logged value (text included), by name, in first-logged order."""
    last: dict[str, str] = {}
    for metric in metrics:
        value = metric.value
        last[metric.name] = value if isinstance(value, str) else format_number(value)
    return last


def _tail(path: Path, lines: int) -> str:
    """The last `lines` lines of a text file ("" if there is none)."""
    try:
        with path.open("rb") as file:
            file.seek(0, os.SEEK_END)
            file.seek(max(0, file.tell() - 256 * 1024))
            text = file.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _files(folder: Path) -> list[tuple[str, int]]:
    """The files under `folder` (relative POSIX paths and sizes), sorted, at most MAX_FILES.

    Walked in name order and left at the MAX_FILES-th file: a run's folder may hold many more,
    and the page is written every few seconds. Links to folders are not followed.
    """
    found: list[tuple[str, int]] = []
    pending = [("", _sorted_entries(folder))]
    while pending and len(found) < MAX_FILES:
        prefix, entries = pending[-1]
        entry = next(entries, None)
        if entry is None:
            pending.pop()
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                pending.append((f"{prefix}{entry.name}/", _sorted_entries(Path(entry.path))))
            elif entry.is_file():
                found.append((prefix + entry.name, entry.stat().st_size))
        except OSError:
            continue  # removed while listed (a running job's temporary files)
    return found


def _sorted_entries(folder: Path) -> Iterator[os.DirEntry[str]]:
    """The entries of `folder` by name (none if it cannot be listed, or is gone)."""
    try:
        with os.scandir(folder) as listing:
            return iter(sorted(listing, key=lambda entry: entry.name))
    except OSError:
        return iter([])


def _href(name: str) -> str:
    """The link from the page to a file of the run's working folder."""
    return html.escape(quote(f"snapshot/{name}"))
