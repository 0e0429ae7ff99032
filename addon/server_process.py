"""An optional local server process that the add-on starts and stops (no bpy)."""

import shlex
import subprocess

__all__ = ["LocalServer"]

STOP_TIMEOUT_S = 5.0


class LocalServer:
    """One child process started from a command line; stopped on request or when Blender quits."""

    def __init__(self):
        self._process: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        """True while the started process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, command: str) -> None:
        """Start ``command`` (split like a shell would, not run through one); no-op when running."""
        if self.running:
            return
        args = shlex.split(command)
        if not args:
            raise ValueError("set the command that starts the server in the add-on preferences")
        self._process = subprocess.Popen(args, stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        """Terminate the process (kill it if it does not exit in `STOP_TIMEOUT_S`)."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
