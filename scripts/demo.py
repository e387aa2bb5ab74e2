"""The demo: the whole deployment path on this machine, then the result. `make demo` runs it.

1. Starts a Prefect server on 127.0.0.1 with its SQLite database in the project's state folder
   (`.himl-state/`, or $HIML_STATE), unless PREFECT_API_URL points at one already.
2. Creates the process work pool `himl-process` and saves the block `local-workspace/demo`.
3. Deploys `deployments/prefect.yaml` and starts a process worker.
4. Runs `prefect deployment run preprocess-then-train/local --watch` (with `--native-pipeline`,
   `preprocess-then-train/native-pipeline`: the chain as one pipeline run of the backend).
5. Prints the result (run ids, dataset versions, test accuracy, the checkpoint) and stops the
   worker and the server it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
POOL = "himl-process"
BLOCK = "demo"
DEPLOYMENT = "preprocess-then-train/local"
NATIVE_PIPELINE_DEPLOYMENT = "preprocess-then-train/native-pipeline"
NATIVE_PIPELINE_OPTION = "--native-pipeline"


def main(argv: Sequence[str] = ()) -> int:
    """Runs the demo; returns the process exit code (0 when the flow run completed).

    Args:
        argv: `--native-pipeline` runs the native-pipeline deployment; anything else is
            handed to `prefect deployment run` (e.g. `--param epochs=4`).
    """
    deployment, argv = chosen_deployment(argv)
    state = Path(os.environ.get("HIML_STATE", PROJECT_ROOT / ".himl-state")).absolute()
    env = {**os.environ, "HIML_PROJECT_ROOT": str(PROJECT_ROOT), "PREFECT_CLI_PROMPT": "false"}
    with contextlib.ExitStack() as stack:
        if not env.get("PREFECT_API_URL"):
            env.update(local_server_settings(state))
            stack.enter_context(started("Prefect server", server_command(env), env, state))
            wait_until_healthy(env["PREFECT_API_URL"])
        prefect = [sys.executable, "-m", "prefect"]
        run([*prefect, "work-pool", "create", POOL, "--type", "process", "--overwrite"], env)
        save_block = (
            "from himl_tasks.prefect.blocks import LocalWorkspace; "
            f"LocalWorkspace(root={str(state / 'workspace')!r}).save({BLOCK!r}, overwrite=True)"
        )
        run([sys.executable, "-c", save_block], env)
        run([*prefect, "deploy", "--all", "--prefect-file", "deployments/prefect.yaml"], env)
        worker = [*prefect, "worker", "start", "--pool", POOL, "--limit", "1"]
        stack.enter_context(started("Prefect worker", worker, env, state))
        results = f'results_folder="{state / "results"}"'
        outcome = subprocess.run(
            [*prefect, "deployment", "run", deployment, "--watch", "--param", results, *argv],
            env=env,
            cwd=PROJECT_ROOT,
            check=False,
        )
        run([sys.executable, "-m", "scripts.show_result"], env)
        return outcome.returncode
    return 1  # not reached: the block above returns


def chosen_deployment(argv: Sequence[str]) -> tuple[str, list[str]]:
    """The deployment the demo runs, and the arguments left for `prefect deployment run`."""
    deployment = NATIVE_PIPELINE_DEPLOYMENT if NATIVE_PIPELINE_OPTION in argv else DEPLOYMENT
    return deployment, [arg for arg in argv if arg != NATIVE_PIPELINE_OPTION]


def local_server_settings(state: Path) -> dict[str, str]:
    """Settings for a Prefect server whose files live in the state folder, on a free port."""
    home = state / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return {
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
    }


def server_command(env: dict[str, str]) -> list[str]:
    """`prefect server start` on the chosen loopback port."""
    port = env["PREFECT_SERVER_API_PORT"]
    return [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
            "--port", port]  # fmt: skip


def wait_until_healthy(api_url: str, timeout: float = 120.0) -> None:
    """Waits until the API answers its health check."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"the Prefect server at {api_url} did not come up in {timeout:g} s")
        time.sleep(0.25)


def run(command: list[str], env: dict[str, str]) -> None:
    """Runs a setup step from the project root; stops the demo if it fails."""
    print("$", " ".join(command[2:] if command[1] == "-m" else command[:2]), flush=True)
    subprocess.run(command, env=env, cwd=PROJECT_ROOT, check=True)


@contextlib.contextmanager
def started(name: str, command: list[str], env: dict[str, str], state: Path) -> Iterator[None]:
    """Starts a background process (its output in the state folder); stops it afterwards."""
    log_path = state / f"{name.lower().replace(' ', '-')}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"starting {name} (log: {log_path})", flush=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        yield
    finally:
        stop(process, name)


def stop(process: subprocess.Popen[bytes], name: str) -> None:
    """Interrupts a background process group, then kills it if it does not end."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    print(f"stopped {name}", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
