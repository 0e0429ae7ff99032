"""The one model worker: a thread that runs jobs one at a time in submission order (one GPU),
so that HTTP requests stay responsive while it works.

`JobRunner` is what a job does:

    generate: [portrait -> β₀] -> CoeffGenerator.generate (features, sampling) -> takes.json
              -> [render every take: frames/<take>/<n>.png]
    render:   takes.json (the hand-edited take) -> frames/0/<n>.png

`ModelWorker` is the thread and its queue. A job's cancel flag is polled by the generator every
frame and by the renderer between frames; a cancelled job ends ``cancelled``. Errors from bad
input (`FlowVQError`, e.g. no face on the portrait) fail the job with their code and message;
anything else fails it with a generic message and is logged with its traceback. On shutdown the
running job's cancel flag is set, so it stops at its next poll (between frames, or between chunks
of the manifold projection) and reads failed (``interrupted``).
"""

import dataclasses
import logging
import queue
import threading

from core.coeff.generator import CoeffGenerator, source_from_portrait
from core.coeff.sampler import GenerationCancelled
from core.errors import FlowVQError
from core.formats.takes import Take, load_takes, save_takes
from server.errors import INTERNAL_MESSAGE, error_code
from server.rendering import RendererCache, decode_portrait, default_portrait, render_take
from server.schemas import generate_settings
from server.store import AUDIO_FILE, PORTRAIT_FILE, TAKES_FILE, Job, JobStore

__all__ = ["JobRunner", "ModelWorker", "GENERATION_SHARE"]

LOG = logging.getLogger("flowvq.server")
GENERATION_SHARE = 0.2  # the part of a generate+render job's progress spent before rendering
_STOP_TIMEOUT_S = 30.0


class JobRunner:
    """Runs one job's model work with the loaded generator and renderers (module docstring)."""

    def __init__(self, generator: CoeffGenerator, store: JobStore, renderers: RendererCache) -> None:
        self.generator, self.store, self.renderers = generator, store, renderers

    def run(self, job: Job) -> None:
        """Run ``job`` to completion; raises `GenerationCancelled` or `FlowVQError` to end it early."""
        request = self.store.request(job)
        settings = request["settings"]
        if job.kind == "generate":
            takes = self._generate(job, settings)
        else:
            takes = load_takes(job.path(TAKES_FILE))
        if job.kind == "render" or settings["render"]:
            self._render(job, settings, takes)

    def _generate(self, job: Job, settings: dict) -> list[Take]:
        """Generate the takes and write ``takes.json``."""
        share = GENERATION_SHARE if settings["render"] else 1.0
        generate = generate_settings(settings)
        portrait = job.path(PORTRAIT_FILE)
        if generate.source_exp is None and portrait.is_file():
            self.store.report(job, "features", 0.0)
            generate = dataclasses.replace(generate, source_exp=source_from_portrait(portrait, self.generator.face))

        def progress(stage: str, fraction: float) -> None:
            self.store.report(job, "sampling" if stage == "done" else stage, share * fraction)

        takes = self.generator.generate(job.path(AUDIO_FILE), generate, progress, job.cancel.is_set,
                                        lambda message: self.store.add_message(job, message))
        save_takes(job.path(TAKES_FILE), takes)
        self.store.set_takes(job, len(takes))
        return takes

    def _render(self, job: Job, settings: dict, takes: list[Take]) -> None:
        """Render every take's frames; progress runs from the generation's share to 1."""
        portrait = job.path(PORTRAIT_FILE)
        image = decode_portrait(portrait.read_bytes()) if portrait.is_file() else default_portrait()
        renderer = self.renderers.get(settings["renderer"])
        start = GENERATION_SHARE if job.kind == "generate" else 0.0
        total = sum(take.frames for take in takes)
        done = 0
        self.store.report(job, "rendering", start)
        for index, take in enumerate(takes):
            if job.cancel.is_set():
                raise GenerationCancelled(f"rendering cancelled before take {index}")

            def on_frame(take_index: int = index) -> None:
                nonlocal done
                done += 1
                self.store.add_frame(job, take_index, start + (1.0 - start) * done / total)

            render_take(renderer, image, take, settings["render_size"],
                        lambda n, k=index: job.frame_path(k, n), on_frame, job.cancel.is_set)


class ModelWorker:
    """The worker thread: `submit` queues a job, the thread runs them one at a time."""

    def __init__(self, runner: JobRunner, store: JobStore) -> None:
        self.runner, self.store = runner, store
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._stopping = threading.Event()
        self._current: Job | None = None
        self._current_lock = threading.Lock()  # `stop` never misses a job that is starting
        self._thread = threading.Thread(target=self._loop, name="flowvq-model-worker", daemon=True)

    def start(self) -> "ModelWorker":
        self._thread.start()
        return self

    def submit(self, job: Job) -> None:
        """Queue ``job`` behind the ones already submitted."""
        self._queue.put(job)

    def stop(self) -> None:
        """Stop the running job at its next cancel poll (it reads failed, interrupted) and the
        thread with it, waiting at most `_STOP_TIMEOUT_S`; queued jobs stay queued on disk and read
        interrupted at the next start."""
        with self._current_lock:
            self._stopping.set()
            if self._current is not None:
                self._current.cancel.set()
        self._queue.put(None)
        self._thread.join(_STOP_TIMEOUT_S)

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            with self._current_lock:
                if job is None or self._stopping.is_set():
                    return
                self._current = job
            if self.store.start(job):  # False: cancelled while queued
                self._run(job)
                self.store.cleanup()
            with self._current_lock:
                self._current = None

    def _run(self, job: Job) -> None:
        """Run one job and record how it ended."""
        try:
            self.runner.run(job)
        except GenerationCancelled:
            if self._stopping.is_set():
                self.store.interrupt(job, "the server shut down while this job was running; submit it again")
            else:
                self.store.finish(job, "cancelled")
        except FlowVQError as exc:
            self.store.finish(job, "failed", {"code": error_code(exc), "message": str(exc)})
        except Exception:
            LOG.exception("job %s failed unexpectedly", job.id)
            self.store.finish(job, "failed", {"code": "internal", "message": INTERNAL_MESSAGE})
        else:
            self.store.finish(job, "done")
