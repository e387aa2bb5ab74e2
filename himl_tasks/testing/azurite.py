"""Azurite, the Azure Blob Storage emulator, run from the project's node_modules."""

from __future__ import annotations

import base64
import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

AZURITE_VARIABLE = "HIML_AZURITE"


def azurite_program() -> Path:
    """The `azurite-blob` to run: $HIML_AZURITE, else the nearest `node_modules` upward.

    The search starts in the current folder, then in this package's folder (a checkout of
    this project has Azurite in its own `node_modules`, installed by `make env`).
    """
    if os.environ.get(AZURITE_VARIABLE):
        return Path(os.environ[AZURITE_VARIABLE])
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for folder in (start, *start.parents):
            program = folder / "node_modules" / ".bin" / "azurite-blob"
            if program.exists():
                return program
    return Path("node_modules") / ".bin" / "azurite-blob"


ACCOUNT_NAME = "himltest"
INSTALL_HINT = (
    "Azurite is not installed in this project. Run `make env` (it runs `npm ci`); that needs "
    "Node.js and npm, e.g. `apt-get install nodejs npm`."
)


def random_account_key() -> str:
    """A fresh storage account key: no key is ever written into the repository."""
    return base64.b64encode(secrets.token_bytes(64)).decode("ascii")


def connection_string(fields: dict[str, str]) -> str:
    """Joins connection string fields as Azure writes them: `Name=value;` each."""
    return "".join(f"{name}={value};" for name, value in fields.items())


@dataclass(frozen=True)
class Azurite:
    """A running Azurite blob endpoint, with an account whose key was made for this run."""

    host: str
    port: int
    account_key: str
    scheme: str = "http"

    @property
    def account_url(self) -> str:
        """The blob endpoint of the emulated account."""
        return f"{self.scheme}://{self.host}:{self.port}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        """A connection string for the emulated account."""
        return connection_string(
            {
                "DefaultEndpointsProtocol": self.scheme,
                "AccountName": ACCOUNT_NAME,
                "AccountKey": self.account_key,
                "BlobEndpoint": self.account_url,
            }
        )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_azurite(
    location: Path, tls: tuple[Path, Path] | None = None
) -> tuple[Azurite, subprocess.Popen[bytes]]:
    """Starts Azurite on a free loopback port; returns once it accepts connections.

    With `tls` (certificate and key files) it serves HTTPS and accepts OAuth bearer tokens,
    which Azurite allows over HTTPS only.
    """
    program = azurite_program()
    if not program.exists():
        raise RuntimeError(INSTALL_HINT)
    port = free_port()
    account_key = random_account_key()
    env = {
        **os.environ,
        "PATH": f"{program.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "AZURITE_ACCOUNTS": f"{ACCOUNT_NAME}:{account_key}",
    }
    tls_options = ["--cert", str(tls[0]), "--key", str(tls[1]), "--oauth", "basic"] if tls else []
    process = subprocess.Popen(
        [
            str(program),
            "--location", str(location),
            "--blobHost", "127.0.0.1",
            "--blobPort", str(port),
            "--silent",
            "--skipApiVersionCheck",
            "--disableTelemetry",
            *tls_options,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"Azurite exited with {process.returncode}: {error}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                scheme = "https" if tls else "http"
                return Azurite("127.0.0.1", port, account_key, scheme), process
        except OSError:
            time.sleep(0.1)
    stop_azurite(process)
    raise RuntimeError("Azurite did not start listening within 30 s")


def stop_azurite(process: subprocess.Popen[bytes]) -> None:
    """Stops Azurite with SIGTERM (SIGKILL can lose its last writes), then waits."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    if process.stderr is not None:
        process.stderr.close()
