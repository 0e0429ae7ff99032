"""Start a ``flowvq serve`` subprocess on a free loopback port and wait until it is ready — for
the tests and the benchmark, which drive a real server over HTTP."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["ServerProcess", "free_port"]

_POLL_S = 0.1


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """One server subprocess: ``python -m core.cli serve --port P --data-dir DIR [args]``.

    Its output goes to ``data_dir.parent / "server-<port>.log"``. Use `start`, then `wait_ready`;
    `stop` (SIGTERM, then SIGKILL) or `kill` (SIGKILL at once, as a crash would).
    """

    def __init__(self, data_dir: Path, extra_args: tuple[str, ...] = (), host: str = "127.0.0.1",
                 port: int | None = None, env: dict[str, str] | None = None) -> None:
        self.data_dir, self.host = Path(data_dir), host
        self.port = port if port is not None else free_port()
        self.args = [sys.executable, "-m", "core.cli", "serve", "--host", host, "--port", str(self.port),
                     "--data-dir", str(self.data_dir), *extra_args]
        self.env = {**os.environ, **(env or {})}
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8765``."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> "ServerProcess":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        return self

    def wait_ready(self, timeout: float = 120.0) -> dict:
        """Poll ``GET /v1/health`` until 200; returns its body. Raises RuntimeError (with the log's
        tail) if the process exits or the timeout passes first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"the server exited before it was ready:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/v1/health", timeout=5) as response:
                    return json.loads(response.read())
            except (urllib.error.URLError, ConnectionError):
                pass  # not listening yet, or 503 while the model loads
            time.sleep(_POLL_S)
        raise RuntimeError(f"the server was not ready after {timeout:g} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's output."""
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL, as a crash would end it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM and wait; SIGKILL if it does not exit in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
