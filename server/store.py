"""The durable job store: one directory per job under ``DATA_DIR/jobs/<uuid4>/``.

A job directory holds ``request.json`` (kind and validated settings), the uploads (``audio``,
``portrait``), ``status.json`` (the job object of docs/api.md), ``takes.json`` (the takes file
format of `core.formats.takes`) and ``frames/<take>/<n:05d>.png``. Every file is written atomically
(`core.fileio.write_atomic`), and a new job's directory is filled under a hidden name and renamed
into place, so a crash never leaves half a job. On start-up (`JobStore.recover`) a job whose
status says queued or running was cut off by a crash or restart: it is marked failed with code
``interrupted``, with its frames counted again from the files on disk (``status.json`` trails the
frames by up to `_PERSIST_EVERY_S`); finished jobs are served as before. `JobStore.cleanup` deletes
finished jobs older than the age limit, then the oldest finished jobs while the store is over its
size limit. A download holds its job's files (`JobStore.hold`): a job deleted meanwhile is gone at
once for every request, and its directory is removed when the last download ends.

Ids are UUID4 strings made here; `JobStore.get` accepts only their canonical form, and every path
is built from a job this store made, never from client input. All methods are thread-safe.
"""

import json
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.fileio import write_atomic

__all__ = [
    "Job",
    "JobStore",
    "STATES",
    "FINISHED",
    "KINDS",
    "REQUEST_FILE",
    "STATUS_FILE",
    "AUDIO_FILE",
    "PORTRAIT_FILE",
    "TAKES_FILE",
    "FRAMES_DIR",
    "INTERRUPTED",
    "parse_job_id",
    "write_json",
]

LOG = logging.getLogger("flowvq.server")

STATES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = frozenset({"done", "failed", "cancelled"})
KINDS = ("generate", "render")
REQUEST_FILE, STATUS_FILE, TAKES_FILE = "request.json", "status.json", "takes.json"
AUDIO_FILE, PORTRAIT_FILE, FRAMES_DIR = "audio", "portrait", "frames"
INTERRUPTED = "interrupted"
_STAGING_PREFIX = ".new-"
_PERSIST_EVERY_S = 0.5  # progress is written to disk at most this often
_MIN_PROGRESS_FOR_ETA = 0.02


def parse_job_id(text: str) -> str | None:
    """The canonical UUID4 string ``text`` is, or None for anything else (paths, other UUIDs)."""
    try:
        parsed = uuid.UUID(text)
    except (ValueError, TypeError, AttributeError):
        return None
    return str(parsed) if parsed.version == 4 and str(parsed) == text else None


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON atomically (no NaN allowed)."""
    text = json.dumps(obj, separators=(",", ":"), allow_nan=False)
    write_atomic(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


@dataclass
class Job:
    """One job: its state as reported (`view`) plus the cancel flag its worker polls."""

    id: str
    kind: str
    directory: Path
    created: float
    updated: float
    state: str = "queued"
    stage: str = "queued"
    progress: float = 0.0
    started: float | None = None
    finished: float | None = None
    error: dict[str, str] | None = None
    takes: int = 0
    frames: dict[str, int] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    size_bytes: int = 0
    cancel: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)
    persisted: float = 0.0
    holds: int = 0  # downloads in progress (`JobStore.hold`)
    deleted: bool = False

    def path(self, name: str) -> Path:
        """A file of this job's directory (``name`` is one of this module's constants)."""
        return self.directory / name

    def frame_path(self, take: int, frame: int) -> Path:
        """Where frame ``frame`` of take ``take`` is stored."""
        return self.directory / FRAMES_DIR / str(take) / f"{frame:05d}.png"

    def status(self) -> dict[str, Any]:
        """What ``status.json`` holds."""
        return {
            "id": self.id, "kind": self.kind, "state": self.state, "stage": self.stage,
            "progress": self.progress, "created": self.created, "updated": self.updated,
            "started": self.started, "finished": self.finished, "error": self.error,
            "takes": self.takes, "frames": dict(self.frames), "messages": list(self.messages),
        }

    def eta_seconds(self, now: float) -> float | None:
        """Seconds left, extrapolated from the progress rate so far; None when not running or too early."""
        if self.state != "running" or self.started is None or self.progress < _MIN_PROGRESS_FOR_ETA:
            return None
        elapsed = max(0.0, now - self.started)
        return round(elapsed * (1.0 - self.progress) / self.progress, 2)

    def view(self, now: float) -> dict[str, Any]:
        """The job object of docs/api.md."""
        status = self.status()
        return {**status, "progress": round(status["progress"], 4), "eta_seconds": self.eta_seconds(now)}

    @classmethod
    def from_status(cls, status: dict[str, Any], directory: Path) -> "Job":
        """A job read back from its ``status.json``."""
        keys = ("state", "stage", "progress", "started", "finished", "error", "takes", "frames")
        return cls(id=status["id"], kind=status["kind"], directory=directory, created=status["created"],
                   updated=status["updated"], messages=list(status.get("messages", [])),
                   **{key: status[key] for key in keys})


def _directory_bytes(directory: Path) -> int:
    """Total size of the files under ``directory``."""
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def _frames_on_disk(directory: Path) -> dict[str, int]:
    """Frames per take in a job directory: for each ``frames/<take>/``, how many frames from
    ``00000.png`` on are there without a gap (renders write them in order, each atomically)."""
    counts = {}
    for take in sorted((directory / FRAMES_DIR).glob("*/")):
        names = {entry.name for entry in take.iterdir()}
        count = 0
        while f"{count:05d}.png" in names:
            count += 1
        if count:
            counts[take.name] = count
    return counts


class JobStore:
    """Jobs on disk under ``root / "jobs"``, with an in-memory index (module docstring)."""

    def __init__(self, root: Path, max_age_s: float, max_bytes: int) -> None:
        self.jobs_dir = Path(root) / "jobs"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.max_age_s, self.max_bytes = max_age_s, max_bytes
        self._jobs: dict[str, Job] = {}
        self._lock = threading.RLock()

    # -- start-up ----------------------------------------------------------------------------

    def recover(self) -> list[Job]:
        """Load every job directory; mark jobs cut off while queued or running as failed
        (``interrupted``); remove half-made directories. Returns the interrupted jobs."""
        interrupted = []
        for entry in sorted(self.jobs_dir.iterdir()):
            if entry.name.startswith(_STAGING_PREFIX):
                shutil.rmtree(entry, ignore_errors=True)
                continue
            job = self._load(entry)
            if job is None:
                continue
            if job.state not in FINISHED:
                job.frames = _frames_on_disk(entry)
                self.interrupt(job, f"the server stopped (a crash or a restart) while this job was "
                                    f"{job.state}; submit it again")
                interrupted.append(job)
            job.size_bytes = _directory_bytes(entry)
            with self._lock:
                self._jobs[job.id] = job
        return interrupted

    def _load(self, entry: Path) -> Job | None:
        """The job in directory ``entry``, or None (logged) for anything that is not one."""
        if parse_job_id(entry.name) is None or not entry.is_dir():
            LOG.warning("ignoring %s in the job store: not a job directory", entry)
            return None
        try:
            status = json.loads((entry / STATUS_FILE).read_text(encoding="utf-8"))
            return Job.from_status(status, entry)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            LOG.error("job %s cannot be read back (%s); its directory is left as it is", entry.name, exc)
            return None

    # -- jobs --------------------------------------------------------------------------------

    def create(self, kind: str, request: dict[str, Any], files: dict[str, bytes],
               prepare: Callable[[Path], None] | None = None) -> Job:
        """A new queued job with its request, its uploaded ``files`` (name -> bytes) and whatever
        ``prepare(directory)`` writes, made visible atomically."""
        job_id = str(uuid.uuid4())
        now = time.time()
        staging = self.jobs_dir / f"{_STAGING_PREFIX}{job_id}"
        staging.mkdir()
        job = Job(id=job_id, kind=kind, directory=self.jobs_dir / job_id, created=now, updated=now)
        try:
            for name, data in files.items():
                (staging / name).write_bytes(data)
            if prepare is not None:
                prepare(staging)
            write_json(staging / REQUEST_FILE, {"kind": kind, **request})
            write_json(staging / STATUS_FILE, job.status())
            staging.rename(job.directory)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        with self._lock:
            self._jobs[job_id] = job
        return job

    def get(self, job_id: str) -> Job | None:
        """The job with this id, or None for unknown or malformed ids."""
        canonical = parse_job_id(job_id)
        with self._lock:
            return self._jobs.get(canonical) if canonical is not None else None

    def jobs(self) -> list[Job]:
        """Every job, newest first."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda job: job.created, reverse=True)

    def view(self, job: Job) -> dict[str, Any]:
        """A consistent snapshot of the job object."""
        with self._lock:
            return job.view(time.time())

    def pending(self) -> int:
        """How many jobs are queued or running."""
        with self._lock:
            return sum(job.state not in FINISHED for job in self._jobs.values())

    def request(self, job: Job) -> dict[str, Any]:
        """The job's ``request.json``."""
        return json.loads(job.path(REQUEST_FILE).read_text(encoding="utf-8"))

    # -- state changes (the worker) ----------------------------------------------------------

    def start(self, job: Job) -> bool:
        """queued -> running; False when the job is no longer queued (cancelled meanwhile)."""
        with self._lock:
            if job.state != "queued":
                return False
            job.state, job.started = "running", time.time()
            self._persist(job)
            return True

    def report(self, job: Job, stage: str, progress: float) -> None:
        """Progress of a running job: its stage and overall fraction done (never decreasing)."""
        with self._lock:
            changed = stage != job.stage
            job.stage, job.progress = stage, max(job.progress, min(1.0, progress))
            self._persist(job, force=changed)

    def set_takes(self, job: Job, takes: int) -> None:
        """Record how many takes the job's takes file holds."""
        with self._lock:
            job.takes = takes
            self._persist(job, force=True)

    def add_message(self, job: Job, message: str) -> None:
        """Record something the user should know about the job's result (a text that was not used)."""
        with self._lock:
            job.messages.append(message)
            self._persist(job, force=True)

    def add_frame(self, job: Job, take: int, progress: float) -> None:
        """Record one more rendered frame of take ``take`` and the progress it brings (stage
        ``rendering``)."""
        with self._lock:
            key = str(take)
            job.frames[key] = job.frames.get(key, 0) + 1
            self.report(job, "rendering", progress)

    def finish(self, job: Job, state: str, error: dict[str, str] | None = None) -> None:
        """A final state: done, failed (with ``error`` {"code", "message"}) or cancelled."""
        with self._lock:
            now = time.time()
            job.state, job.stage, job.error, job.finished = state, state, error, now
            if state == "done":
                job.progress = 1.0
            self._persist(job, force=True)
            job.size_bytes = _directory_bytes(job.directory)

    def interrupt(self, job: Job, reason: str) -> None:
        """Mark ``job`` failed with code ``interrupted`` (a crash, a restart or a shutdown)."""
        self.finish(job, "failed", {"code": INTERRUPTED, "message": reason})

    def cancel(self, job: Job) -> None:
        """Ask for cancellation: a queued job is cancelled at once, a running one when its worker
        next polls the flag (between frames), a finished one is left as it is (asking twice is
        asking once)."""
        with self._lock:
            job.cancel.set()
            if job.state == "queued":
                self.finish(job, "cancelled")

    def delete(self, job: Job) -> None:
        """Forget a finished job and remove its directory, now or, while downloads hold it
        (`hold`), when the last one ends."""
        with self._lock:
            self._jobs.pop(job.id, None)
            job.deleted = True
            if job.holds:
                return
        shutil.rmtree(job.directory, ignore_errors=True)

    def hold(self, job: Job) -> bool:
        """Keep the job's files on disk until `release` (a download in progress), even if it is
        deleted meanwhile; False (nothing held) when it is deleted already."""
        with self._lock:
            if job.deleted:
                return False
            job.holds += 1
            return True

    def release(self, job: Job) -> None:
        """End one `hold`; the last one removes the directory of a job deleted meanwhile."""
        with self._lock:
            job.holds -= 1
            if job.holds or not job.deleted:
                return
        shutil.rmtree(job.directory, ignore_errors=True)

    def cleanup(self, now: float | None = None) -> list[str]:
        """Delete finished jobs older than the age limit, then the oldest finished jobs while the
        total size of finished jobs is over the size limit. Returns the deleted ids."""
        now = time.time() if now is None else now
        with self._lock:
            finished = sorted((job for job in self._jobs.values() if job.state in FINISHED),
                              key=lambda job: job.created)
        expired, kept = [], []
        for job in finished:
            (expired if now - (job.finished or job.updated) > self.max_age_s else kept).append(job)
        total = sum(job.size_bytes for job in kept)
        while kept and total > self.max_bytes:
            oldest = kept.pop(0)
            expired.append(oldest)
            total -= oldest.size_bytes
        for job in expired:
            self.delete(job)
        return [job.id for job in expired]

    def _persist(self, job: Job, force: bool = False) -> None:
        """Write ``status.json`` now, or (progress only) when the last write is old enough."""
        now = time.time()
        job.updated = now
        if force or now - job.persisted >= _PERSIST_EVERY_S:
            write_json(job.path(STATUS_FILE), job.status())
            job.persisted = now
