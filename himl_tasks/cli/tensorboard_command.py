"""`himl-tb`: hi-ml's console script that shows runs' TensorBoard logs, on any backend.

The runs' event files (under `--log_dir` in each run, `outputs` by default as in hi-ml's
script) are brought into a temporary folder, one subfolder per run, and kept in sync by a
background thread while runs are still going. TensorBoard (the `tensorboard` package, run with
this Python) serves that folder on 127.0.0.1:`--port`. Ctrl-C or SIGTERM stops TensorBoard and
deletes the temporary folder; so does closing the terminal (SIGHUP). TensorBoard dies with
himl-tb however himl-tb ends (SIGKILL included), never left serving on the port.
"""

from __future__ import annotations

import argparse
import errno
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType

from himl_tasks.backends.local.processes import dying_with_this_process
from himl_tasks.cli.exit_codes import EXIT_FAILURE, EXIT_INTERRUPTED
from himl_tasks.cli.hi_ml_arguments import (
    run_console_script,
    selection_from,
    selector_parser,
    workspace_from,
)
from himl_tasks.cli.run_selection import runs_of_selection
from himl_tasks.cli.tensorboard_logs import LogSyncThread, TensorBoardLogs
from himl_tasks.errors import ConfigurationError, InvalidInputError

TENSORBOARD_PROG = "himl-tb"
HOST = "127.0.0.1"
DEFAULT_PORT = 6006
START_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 10.0


def tensorboard_parser() -> argparse.ArgumentParser:
    """himl-tb's flags: hi-ml's run selectors, `--num_runs`, `--log_dir`, `--port`."""
    parser = selector_parser(
        TENSORBOARD_PROG, "Show the TensorBoard logs of AzureML (or local) runs."
    )
    parser.add_argument(
        "--num_runs", type=int, help="with --experiment: how many of its latest runs (default 1)"
    )
    parser.add_argument(
        "--log_dir",
        default="outputs",
        help="where in each run its TensorBoard event files are (default: outputs)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"TensorBoard's port on {HOST} (default {DEFAULT_PORT})",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `himl-tb`; returns the exit code."""
    args = tensorboard_parser().parse_args(argv)
    return run_console_script(TENSORBOARD_PROG, lambda: _serve(args))


def check_port_free(port: int) -> None:
    """Raises unless TensorBoard can listen on `port` of 127.0.0.1.

    Raises:
        InvalidInputError: Not a port number, or something already listens there.
    """
    if not 1 <= port <= 65535:
        raise InvalidInputError(f"--port must be between 1 and 65535, not {port}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise InvalidInputError(
                    f"port {port} on {HOST} is in use (another TensorBoard?): give another "
                    "with --port"
                ) from None
            raise InvalidInputError(f"cannot listen on {HOST}:{port}: {error}") from None


def _serve(args: argparse.Namespace) -> int:
    check_port_free(args.port)
    selection = selection_from(args, num_runs=args.num_runs)
    backend = workspace_from(args)
    refs = runs_of_selection(backend, selection)
    stop = threading.Event()
    _stop_on_signals(stop)
    temporary = Path(tempfile.mkdtemp(prefix="himl-tb-"))
    root = temporary / "logs"
    sync: LogSyncThread | None = None
    server: subprocess.Popen[bytes] | None = None
    try:
        logs = TensorBoardLogs(backend, refs, args.log_dir, root, temporary / "incoming", stop)
        logs.sync()
        if stop.is_set():  # Ctrl-C or SIGTERM during the first pass: TensorBoard not started
            return EXIT_INTERRUPTED
        print(f"{logs.event_file_count()} event file(s) of {len(refs)} run(s) in {root}")
        for ref in refs:
            print(f"  {ref} -> {logs.folder(ref).name}/")
        if logs.event_file_count() == 0:
            print(f"(none yet under '{args.log_dir}': they appear as the runs write them)")
        root.mkdir(exist_ok=True)
        # Started while this is the only thread: a preexec_fn is safe only then.
        server = start_tensorboard(root, args.port, stop)
        if server is None:
            return EXIT_INTERRUPTED
        sync = LogSyncThread(logs)
        sync.start()
        print(f"TensorBoard: http://{HOST}:{args.port}/  (Ctrl-C to stop)", flush=True)
        while not stop.wait(0.5):
            if server.poll() is not None:
                # Not bad usage (ConfigurationError's exit code 2): it served, then ended.
                print(
                    f"{TENSORBOARD_PROG}: error: TensorBoard exited with code "
                    f"{server.returncode} while serving",
                    file=sys.stderr,
                )
                return EXIT_FAILURE
        return 0
    finally:
        if server is not None:
            _stop_process(server)
        if sync is not None:
            sync.stop()
        shutil.rmtree(temporary, ignore_errors=True)
        print(f"stopped; removed {temporary}", flush=True)


def _stop_on_signals(stop: threading.Event) -> None:
    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # SIGHUP too: a closed terminal would end himl-tb at once, leaving its temporary folder.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, handle)


def start_tensorboard(
    root: Path, port: int, stop: threading.Event
) -> subprocess.Popen[bytes] | None:
    """Starts TensorBoard on `root` and waits until it serves (None if stopped meanwhile).

    It serves once it says so on stderr ("TensorBoard 2.x at http://127.0.0.1:PORT/"): a
    program answering on the port is not enough, as the port may have been taken since
    `check_port_free` (TensorBoard then exits, saying it could not bind).

    Raises:
        ConfigurationError: It exited, or did not serve within `START_TIMEOUT_SECONDS`.
    """
    command = [
        sys.executable, "-m", "tensorboard.main", "--logdir", str(root),
        "--host", HOST, "--port", str(port), "--reload_interval", "5",
    ]  # fmt: skip
    # Its own process group: Ctrl-C in the terminal reaches himl-tb, which stops it in order;
    # and it dies with himl-tb, so a himl-tb killed outright leaves no server on the port.
    server = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=dying_with_this_process(),
    )
    lines: queue.Queue[str | None] = queue.Queue()
    serving = threading.Event()
    # Read to the end (TensorBoard never blocks on a full pipe); queued until it serves.
    threading.Thread(target=_read_stderr, args=(server, lines, serving), daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    last = ""
    while True:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            line = ""
        if line is None:  # its stderr closed: it exited
            _stop_process(server)
            raise ConfigurationError(
                f"TensorBoard exited with code {server.returncode} before serving: "
                f"{last or 'no output'}"
            )
        if f" at http://{HOST}:{port}/" in line:
            serving.set()
            return server
        last = line.strip() or last
        if stop.is_set():
            _stop_process(server)
            return None
        if time.monotonic() > deadline:
            _stop_process(server)
            raise ConfigurationError(
                f"TensorBoard did not serve on {HOST}:{port} within {START_TIMEOUT_SECONDS:g} s"
            )


def _read_stderr(
    server: subprocess.Popen[bytes], lines: queue.Queue[str | None], serving: threading.Event
) -> None:
    """Reads TensorBoard's stderr to its end; each line is queued until it serves."""
    if server.stderr is None:
        return
    with server.stderr:
        for raw in server.stderr:
            if not serving.is_set():
                lines.put(raw.decode(errors="replace"))
    lines.put(None)


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_SECONDS)


def himl_tb() -> None:
    """The console script (`[project.scripts]`)."""
    sys.exit(main())


if __name__ == "__main__":
    himl_tb()
