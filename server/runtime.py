"""What the routes share: the configuration, the job store, and — once the background loader is
done — the coefficient generator, the renderers available and the model worker.

The model loads once, in a thread started by the app's lifespan, so that ``GET /v1/health``
answers 503 (``starting``) while it loads and the routes that need the model answer 503 too.
"""

import io
import logging
import threading
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from core.coeff.generator import CoeffGenerator
from core.emotions import EMOTIONS
from core.errors import FlowVQError
from core.formats.takes import POSE_COLUMNS, POSE_DIM
from server.config import ServerConfig
from server.errors import INTERNAL_MESSAGE, ApiError, error_body
from server.rendering import RendererCache, available_renderers
from server.schemas import setting_ranges
from server.store import Job, JobStore
from server.worker import JobRunner, ModelWorker

__all__ = ["Runtime", "server_version"]

LOG = logging.getLogger("flowvq.server")


def _take_width(generator: CoeffGenerator) -> int:
    """Numbers a frame of a take holds on the generator's face model: D + 6."""
    return len(generator.names) + POSE_DIM


def server_version() -> str:
    """The installed distribution's version."""
    try:
        return version("flowvq-talker")
    except PackageNotFoundError:
        return "unknown"


class Runtime:
    """The server's state (module docstring). `start` and `close` are called by the lifespan."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.store = JobStore(config.data_dir, config.max_job_age_s, config.max_store_bytes)
        self.generator: CoeffGenerator | None = None
        self.worker: ModelWorker | None = None
        self.renderers: list[str] = []
        self.face_model_npz = b""
        self.load_error: str | None = None
        self._closing = threading.Event()
        self._loader = threading.Thread(target=self._load, name="flowvq-model-loader", daemon=True)

    def start(self) -> None:
        """Recover the job store, clean it, and start loading the model in the background."""
        for job in self.store.recover():
            LOG.warning("job %s was cut off by a crash or restart; it now reads failed (interrupted)", job.id)
        self.store.cleanup()
        self._loader.start()

    def field_limit(self) -> int:
        """The most bytes a JSON form field may hold (`Limits.field_bytes`); 503 while loading."""
        return self.config.limits.field_bytes(_take_width(self.ready()))

    def body_limit(self) -> int:
        """The most bytes a request body may hold now (`Limits.body_bytes`)."""
        generator = self.generator
        return self.config.limits.body_bytes(None if generator is None else _take_width(generator))

    def _load(self) -> None:
        """Load the generator and renderers, then start the worker (the loader thread)."""
        try:
            generator = CoeffGenerator.load(self.config.weights_dir, device=self.config.device)
            buffer = io.BytesIO()
            generator.face.save(buffer)
            self.face_model_npz = buffer.getvalue()
            self.renderers = available_renderers()
            if self._closing.is_set():
                return
            runner = JobRunner(generator, self.store, RendererCache(str(generator.device)))
            self.worker = ModelWorker(runner, self.store).start()
            self.generator = generator
            LOG.info("model ready on %s: %s, renderers %s", generator.device, generator.model.face_model,
                     self.renderers or "none")
        except FlowVQError as exc:
            LOG.error("the model could not be loaded: %s", exc)
            self.load_error = str(exc)
        except Exception:
            LOG.exception("the model could not be loaded")
            self.load_error = INTERNAL_MESSAGE

    def close(self) -> None:
        """Stop the worker (the running job reads failed, interrupted)."""
        self._closing.set()
        if self.worker is not None:
            self.worker.stop()

    def ready(self) -> CoeffGenerator:
        """The loaded generator, or a 503 `ApiError` while loading (or after loading failed)."""
        if self.generator is None:
            raise ApiError(503, *self._not_ready())
        return self.generator

    def _not_ready(self) -> tuple[str, str]:
        """(code, message) while the model is not ready."""
        if self.load_error is not None:
            return "load_failed", f"the model could not be loaded: {self.load_error}"
        return "starting", "the model is still loading; try again in a few seconds"

    def health(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body) of ``GET /v1/health``."""
        if self.generator is None:
            code, message = self._not_ready()
            return 503, {"status": "failed" if code == "load_failed" else "starting", **error_body(code, message)}
        coeff = "default" if self.config.weights_dir is None else self.config.weights_dir.name
        return 200, {
            "status": "ready", "version": server_version(), "device": str(self.generator.device),
            "face_model": self.generator.model.face_model,
            "models": {"coeff": coeff, "renderers": self.renderers},
        }

    def info(self) -> dict[str, Any]:
        """The body of ``GET /v1/info``."""
        generator = self.ready()
        return {
            "emotions": list(EMOTIONS), "fps": generator.fps, "names": list(generator.names),
            "dim": len(generator.names), "pose_columns": list(POSE_COLUMNS),
            "face_model": generator.model.face_model, "renderers": self.renderers,
            "limits": {**asdict(self.config.limits), "max_field_bytes": self.field_limit(),
                       "max_body_bytes": self.body_limit()},
            "settings": setting_ranges(),
        }

    def check_renderer(self, kind: str) -> None:
        """422 unless renderer ``kind`` ("auto" = any) can draw frames here."""
        if not self.renderers:
            raise ApiError(422, "rendering_unavailable", "this server has no renderer installed "
                                                         "(core.render); ask for takes only (render: false)",
                           "settings.render")
        if kind != "auto" and kind not in self.renderers:
            raise ApiError(422, "renderer_unavailable", f"renderer {kind!r} is not available here; "
                                                        f"choose one of: auto, {', '.join(self.renderers)}",
                           "settings.renderer")

    def submit(self, job: Job) -> Job:
        """Hand a stored job to the model worker."""
        self.ready()
        assert self.worker is not None
        self.worker.submit(job)
        return job

    def check_capacity(self) -> None:
        """429 when the queue is full."""
        limit = self.config.limits.max_queued_jobs
        if self.store.pending() >= limit:
            raise ApiError(429, "queue_full", f"{limit} jobs are already queued or running; wait for "
                                              "some to finish (or cancel them) and submit again")
