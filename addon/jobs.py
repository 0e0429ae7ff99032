"""Background work: a worker thread talks HTTP, the main thread drains its results. No bpy here.

`Task` runs one function in a daemon thread and hands progress and the outcome to the main thread
through a queue; the add-on's timer callback calls `Task.poll`, and tests call it by hand (timers
never fire in background mode). `generate` and `render` are the two workflows the add-on runs in a
`Task`: submit a job, follow its progress, cancel it on request, fetch the takes and frames.
"""

import io
import queue
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .client import Client, ServerError

__all__ = ["Cancelled", "TaskState", "Task", "GenerateRequest", "GenerateResult", "RenderRequest", "generate",
           "render"]

Report = Callable[[float, str], None]
POLL_FIRST_S = 0.1
POLL_MAX_S = 1.0
POLL_GROWTH = 1.5


class Cancelled(Exception):
    """The user cancelled the task."""


@dataclass
class TaskState:
    """What the main thread knows of a task after `Task.poll`."""

    fraction: float = 0.0
    message: str = "starting"
    done: bool = False
    result: Any = None
    error: str | None = None
    cancelled: bool = False


class Task:
    """One function run in a worker thread: ``work(report, cancel_event) -> result``, then
    ``on_end()`` in the same thread (to release a connection).

    The worker only puts messages on a queue; `poll` (main thread) applies them to `state`.
    """

    def __init__(self, work: Callable[[Report, threading.Event], Any], on_end: Callable[[], None] = lambda: None):
        self._work = work
        self._on_end = on_end
        self._queue: queue.Queue = queue.Queue()
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flowvq-task", daemon=True)
        self.state = TaskState()

    def start(self) -> "Task":
        """Start the worker thread; returns self."""
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the worker to stop at its next check."""
        self._cancel.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the worker thread to end."""
        self._thread.join(timeout)

    def _run(self) -> None:
        """Worker thread body: run the work and queue its outcome."""
        try:
            result = self._work(lambda fraction, message: self._queue.put(("progress", fraction, message)),
                                self._cancel)
        except Cancelled:
            self._queue.put(("cancelled", None, "cancelled"))
        except ServerError as exc:
            self._queue.put(("error", None, str(exc)))
        except Exception as exc:  # the thread's boundary: anything else must still end the task
            self._queue.put(("error", None, f"{exc.__class__.__name__}: {exc}"))
        else:
            self._queue.put(("done", result, "done"))
        finally:
            self._on_end()

    def poll(self) -> TaskState:
        """Apply everything the worker reported since the last call (main thread)."""
        while True:
            try:
                kind, value, message = self._queue.get_nowait()
            except queue.Empty:
                return self.state
            self.state.message = message
            if kind == "progress":
                self.state.fraction = value
                continue
            self.state.done = True
            if kind == "done":
                self.state.fraction, self.state.result = 1.0, value
            elif kind == "cancelled":
                self.state.cancelled = True
            else:
                self.state.error = message


@dataclass(frozen=True)
class GenerateRequest:
    """Everything one Generate press sends: a full settings snapshot taken on the main thread.

    ``frames_dir``: where rendered frames go (a sub-folder per take), None when not rendering;
    ``face_model``: ``(client, model id) -> face model``, called with the takes' face-model id when
    the face model is needed (None when not).
    """

    audio: Path
    settings: dict
    portrait: Path | None = None
    frames_dir: Path | None = None
    face_model: Callable[[Client, str], Any] | None = None


@dataclass(frozen=True)
class RenderRequest:
    """One Re-render press: the take as its curves are now, the render settings, the portrait, and
    the folder its frames go to."""

    take: dict
    settings: dict
    portrait: Path | None
    frames_dir: Path


@dataclass
class GenerateResult:
    """The takes (wire format), per-take frame folders, the face model when asked for, and what
    the server said about the result (its job's messages)."""

    takes: list[dict]
    frame_dirs: dict[int, Path] = field(default_factory=dict)
    face_model: Any = None
    messages: list[str] = field(default_factory=list)


def wait_for_job(client: Client, job: dict, report: Report, cancelled: threading.Event) -> dict:
    """Follow a job until it ends, reporting its progress; returns the finished job object.

    A cancel request cancels the job on the server, then raises `Cancelled`; a failed job raises
    `ServerError` with the server's message.
    """
    delay = POLL_FIRST_S
    while job["state"] not in ("done", "failed", "cancelled"):
        if cancelled.is_set():
            client.cancel(job["id"])
            raise Cancelled()
        report(float(job.get("progress") or 0.0), str(job.get("stage") or job["state"]))
        time.sleep(delay)
        delay = min(delay * POLL_GROWTH, POLL_MAX_S)
        job = client.job(job["id"])
    if job["state"] == "cancelled":
        raise Cancelled()
    if job["state"] == "failed":
        error = job.get("error") or {}
        raise ServerError(f"the job failed: {error.get('message', 'no reason given')}",
                          str(error.get("code", "failed")))
    return job


def extract_frames(archive: bytes, directory: Path) -> int:
    """Unpack a frames zip (``00000.png``, ...) into ``directory``; returns the number of frames.

    Only plain PNG names are written, never a path taken from the archive.
    """
    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        for name in zf.namelist():
            stem = Path(name).name
            if stem.endswith(".png") and stem[:-4].isdigit():
                (directory / stem).write_bytes(zf.read(name))
                count += 1
    return count


def fetch_frames(client: Client, job_id: str, takes: int, frames_dir: Path,
                 cancelled: threading.Event) -> dict[int, Path]:
    """Download and unpack each take's frames into ``frames_dir/take_<k>``."""
    folders = {}
    for k in range(takes):
        if cancelled.is_set():
            raise Cancelled()
        folders[k] = frames_dir / f"take_{k}"
        extract_frames(client.frames_zip(job_id, k), folders[k])
    return folders


def generate(request: GenerateRequest, client: Client, report: Report,
             cancelled: threading.Event) -> GenerateResult:
    """The Generate workflow (worker thread): submit, follow, fetch takes, frames and face model."""
    report(0.0, "uploading")
    job = wait_for_job(client, client.submit(request.audio, request.settings, request.portrait),
                       report, cancelled)
    takes = client.takes(job["id"])
    result = GenerateResult(takes=takes, messages=[str(m) for m in job.get("messages") or []])
    if request.frames_dir is not None:
        report(1.0, "downloading frames")
        result.frame_dirs = fetch_frames(client, job["id"], len(takes), request.frames_dir, cancelled)
    if request.face_model is not None:
        result.face_model = request.face_model(client, takes[0]["face_model"])
    return result


def render(request: RenderRequest, client: Client, report: Report, cancelled: threading.Event) -> Path:
    """The Re-render workflow (worker thread): render a take's curves, unpack its frames."""
    report(0.0, "uploading curves")
    job = wait_for_job(client, client.render(request.take, request.settings, request.portrait), report, cancelled)
    report(1.0, "downloading frames")
    return fetch_frames(client, job["id"], 1, request.frames_dir, cancelled)[0]
