"""Starting the supervisors of local runs: a queued run holds no process until it has a slot.

A submitted run waits in the registry as Queued. Whoever frees a cluster slot or finds one free
calls `start_queued_runs`: the submitter right after recording its run, a supervisor whose run
just ended (its slot is free), and anyone checking on a run that nobody looks after. In one
registry transaction the cluster's free slots go to its oldest Queued runs (so two launchers
never start one run twice), then a supervisor process is started for each.

A supervisor starts with an allow-listed environment, never the launcher's whole one, and gets
the secrets it needs (datastore credentials, the job's secret references) as JSON on its stdin:
never in its argv or environment, where a job could read them in `/proc/<ppid>/`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from himl_tasks.backends.local.clusters import (
    DEFAULT_CLUSTER,
    DRIVER_CLUSTER,
    MAX_CONCURRENT_RUNS,
)
from himl_tasks.backends.local.processes import INHERITED_VARIABLES, process_start_marker
from himl_tasks.backends.local.registry import Registry
from himl_tasks.runs import FailureKind, RunStatus

SUPERVISOR_MODULE = "himl_tasks.backends.local.supervisor"
# A supervisor needs what a job inherits, where to import himl_tasks from, where the checksum
# cache is, and how to reach a blob datastore (proxies, CA certificates); nothing else.
SUPERVISOR_VARIABLES = (
    *INHERITED_VARIABLES, "PYTHONPATH", "HIML_CHECKSUM_CACHE", "XDG_CACHE_HOME",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
)  # fmt: skip
# The most a launcher hands a supervisor on its stdin: less than a pipe holds, so the write
# never waits for the child to read.
MAX_SECRETS_BYTES = 60_000
# The folder holding the himl_tasks package: supervisors and jobs import it from there.
PACKAGE_PARENT = Path(__file__).resolve().parents[3]
# Supervisors started by this process, reaped as they end (no zombies).
_started: set[int] = set()


def default_cluster_limit() -> int:
    """Runs at once on the default cluster: the machine's cores (at least 2)."""
    return max(2, os.cpu_count() or 1)


def cluster_limit(registry: Registry, compute: str) -> int:
    """The cluster's limit on runs at once, as it is now."""
    if compute == DEFAULT_CLUSTER:
        return default_cluster_limit()
    if compute == DRIVER_CLUSTER:
        return MAX_CONCURRENT_RUNS
    found = registry.clusters().get(compute)
    return found[0] if found is not None else 1


@functools.cache
def this_launcher() -> tuple[int, str]:
    """This process as a launcher: its pid and start marker."""
    return os.getpid(), process_start_marker(os.getpid())


def start_queued_runs(registry: Registry, compute: str, secrets: Mapping[str, str]) -> list[str]:
    """Gives the cluster's free slots to its oldest Queued runs and starts their supervisors.

    Args:
        registry: The workspace's registry.
        compute: The cluster whose queue to serve.
        secrets: The secret values the supervisors get on their stdin.

    Returns:
        The runs started.
    """
    if os.getpid() != this_launcher()[0]:  # a forked child is another launcher
        this_launcher.cache_clear()
    claimed = registry.claim_slots(
        compute, cluster_limit(registry, compute), this_launcher(), held_secrets=set(secrets)
    )
    for run_id in claimed:
        start_supervisor(registry, run_id, secrets)
    return claimed


def start_supervisor(registry: Registry, run_id: str, secrets: Mapping[str, str]) -> None:
    """Starts the supervisor of a run that has a slot; a failure to start fails the run."""
    try:
        pid = _spawn(registry.root, run_id, secrets)
    except OSError as error:
        registry.move(
            run_id,
            RunStatus.FAILED,
            failure_kind=FailureKind.INFRASTRUCTURE.value,
            error=f"the run's supervisor process could not be started: {error}",
        )
        return
    registry.set_supervisor(run_id, pid, process_start_marker(pid))


def reap_supervisors() -> None:
    """Collects the exit status of supervisors this process started that have ended."""
    for pid in list(_started):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _started.discard(pid)


def supervisor_environment() -> dict[str, str]:
    """The allow-listed environment a supervisor starts with."""
    env = {k: v for k, v in os.environ.items() if k in SUPERVISOR_VARIABLES}
    existing = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_PARENT), existing) if p)
    return env


def _spawn(root: Path, run_id: str, secrets: Mapping[str, str]) -> int:
    # Spawned, not Popen'ed: the supervisor must outlive this process (its own session), and
    # a Popen object still running at exit is a warning. Ended supervisors are reaped as we go.
    reap_supervisors()
    payload = json.dumps({"secrets": dict(secrets)}).encode()
    if len(payload) > MAX_SECRETS_BYTES:
        raise OSError(f"the secrets for the run's supervisor exceed {MAX_SECRETS_BYTES} bytes")
    log = os.open(root / "runs" / run_id / "supervisor.log", os.O_WRONLY | os.O_CREAT)
    read_end, write_end = os.pipe()
    try:
        pid = os.posix_spawn(
            sys.executable,
            [sys.executable, "-m", SUPERVISOR_MODULE, str(root), run_id],
            supervisor_environment(),
            file_actions=[
                (os.POSIX_SPAWN_DUP2, read_end, 0),
                (os.POSIX_SPAWN_DUP2, log, 1),
                (os.POSIX_SPAWN_DUP2, log, 2),
            ],
            setsid=True,
        )
        _started.add(pid)
        os.close(read_end)
        read_end = -1
        with contextlib.suppress(BrokenPipeError):  # a supervisor that died is noticed later
            os.write(write_end, payload)
    finally:
        for fd in (read_end, write_end, log):
            if fd >= 0:
                os.close(fd)
    return pid
