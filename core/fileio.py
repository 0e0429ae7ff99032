"""Atomic file writes: every file the project writes (takes, datasets, weights, trainer state)
appears complete or not at all, so a crash or a full disk never leaves a half-written file where a
good one was."""

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["write_atomic", "FILE_MODE"]

FILE_MODE = 0o644  # mkstemp's private 0600 would hide results from other users of a shared machine


def write_atomic(target: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(temp_path)`` on a new file beside ``target``, then rename it over ``target``.

    The temporary file is hidden (``.NAME.*.tmp``) and removed when ``write`` fails; ``OSError``
    from creating it propagates for the caller to word.
    """
    target = Path(target)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(temporary))
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
