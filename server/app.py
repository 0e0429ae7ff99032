"""The app factory and the ``/v1`` routes (docs/api.md is the contract).

`create_app(config)` checks the configuration, builds the `Runtime` and wires the routes, the
error handlers (one error shape) and the guard middleware (host, origin, token, body size). The
routes only validate and hand over: model work happens in the one worker thread.
"""

import io
import json
import re
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
import soundfile as sf
from fastapi import APIRouter, Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from core.audio import SAMPLE_RATE, AudioError, load_audio
from core.coeff.generator import CoeffGenerator
from core.device import resolve_device
from core.emotions import UnknownEmotionError, emotion_index
from core.errors import FlowVQError
from core.formats.takes import Take, TakeError, save_takes
from server.config import LIMITS, Limits, ServerConfig
from server.errors import ApiError, flowvq_error, install_error_handlers, validation_message
from server.rendering import PortraitError, decode_portrait, zip_frames
from server.runtime import Runtime, server_version
from server.schemas import ErrorBody, Health, Info, JobSettings, JobView, RenderSettings, generate_settings
from server.security import GuardMiddleware
from server.store import AUDIO_FILE, FINISHED, FRAMES_DIR, PORTRAIT_FILE, TAKES_FILE, Job, JobStore

__all__ = ["create_app", "router"]

Settings = TypeVar("Settings", bound=BaseModel)
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text} for status, text in (
        (401, "missing or wrong token"), (403, "refused host or origin"), (404, "no such job or file"),
        (413, "request or form field too large"), (422, "invalid input"), (500, "unexpected error"),
        (503, "the model is loading"),
    )
}
# Starlette's own cap on a form field (1 MiB, refused with its own 400 that cannot say which field)
# is lifted: the guard's body limit bounds every part, and `load_json_field` refuses a field over the
# server's field limit (`Limits.field_bytes`) with 413 field_too_large, naming it.
FORM_LIMITS = {"max_part_size": sys.maxsize}
router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES, form_limits=FORM_LIMITS)
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string literal, escapes included
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def get_runtime(request: Request) -> Runtime:
    """The app's `Runtime` (a dependency)."""
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


# ---------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------

def json_depth(text: str) -> int:
    """How deeply ``text`` nests JSON arrays and objects, read without recursion (brackets inside
    strings do not count), so that a deeply nested field is refused before the parser recurses.
    Only the brackets are walked in Python: a take of 8 MiB takes about 0.06 s."""
    depth = deepest = 0
    for bracket in _JSON_BRACKET.findall(_JSON_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def load_json_field(text: str, field: str, max_bytes: int) -> Any:
    """``json.loads`` of a form field after refusing one longer than ``max_bytes`` characters (413
    ``field_too_large``; JSON numbers are one byte a character) or nested deeper than
    ``max_json_depth`` (422 ``json_too_deep``); a ValueError for text that is not JSON."""
    if len(text) > max_bytes:
        raise ApiError(413, "field_too_large", f"{field} holds {len(text)} bytes, over the limit of {max_bytes} "
                                               "(limits.max_field_bytes: the longest take at the highest fps, "
                                               "with room to spare); send a shorter take or reference", field)
    if json_depth(text) > LIMITS.max_json_depth:
        raise ApiError(422, "json_too_deep", f"{field} nests arrays and objects more than "
                                             f"{LIMITS.max_json_depth} deep", field)
    return json.loads(text)


def parse_settings(text: str | None, model: type[Settings], max_bytes: int) -> Settings:
    """The ``settings`` part (JSON text of at most ``max_bytes``, None = all defaults) validated by
    ``model``; 413 or 422 otherwise."""
    try:
        data = load_json_field(text, "settings", max_bytes) if text else {}
    except ValueError as exc:
        raise ApiError(422, "invalid_settings", f"settings is not valid JSON: {exc}", "settings") from None
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_settings", "settings must be a JSON object", "settings")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        field, message = validation_message(exc.errors(), "settings")
        raise ApiError(422, "invalid_settings", message, field) from None


def check_generation(settings: JobSettings, generator: CoeffGenerator) -> None:
    """`GenerateSettings.check` on the generation keys (unknown emotion, reference shape, NaN, ...)."""
    try:
        generate_settings(settings.model_dump()).check(generator.model)
    except UnknownEmotionError as exc:
        raise flowvq_error(exc, "settings.emotion" if is_unknown_emotion(settings.emotion) else "settings.blend") from None
    except FlowVQError as exc:
        raise flowvq_error(exc, "settings") from None


def is_unknown_emotion(label: str) -> bool:
    """Whether ``label`` is not one of the emotion classes."""
    try:
        emotion_index(label)
    except UnknownEmotionError:
        return True
    return False


def decode_audio(data: bytes, limits: Limits) -> bytes:
    """The clip decoded once, here: refuses empty, corrupt, non-audio, silent, too-long or too-large
    input (422; the rate, duration and ``max_audio_samples`` from the header, before any sample is
    decoded) and returns the 16 kHz mono wave as float WAV bytes, which the job stores as its audio
    so the worker reads it without decoding the upload again. Time grows with the samples the
    header announces; memory beyond the upload with the 16 kHz wave (4 bytes x 16000 a second)."""
    try:
        wave = load_audio(data, max_seconds=limits.max_audio_seconds, max_samples=limits.max_audio_samples)
    except AudioError as exc:
        raise flowvq_error(exc, "audio") from None
    buffer = io.BytesIO()
    sf.write(buffer, wave, SAMPLE_RATE, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def check_portrait(data: bytes) -> None:
    """Refuse a portrait that is not a readable image (422); faces are found by the worker."""
    try:
        decode_portrait(data)
    except PortraitError as exc:
        raise flowvq_error(exc, "portrait") from None


def parse_take(text: str, generator: CoeffGenerator, max_seconds: float, max_bytes: int) -> Take:
    """The ``take`` part (at most ``max_bytes``): a take object on this server's face model, finite,
    not too long."""
    try:
        take = Take.from_dict(load_json_field(text, "take", max_bytes))
    except ValueError as exc:  # JSON errors and TakeError
        message = str(exc) if isinstance(exc, TakeError) else f"take is not valid JSON: {exc}"
        raise ApiError(422, "invalid_take", message, "take") from None
    face_model = generator.model.face_model
    if take.face_model != face_model or take.names != generator.names:
        raise ApiError(422, "wrong_face_model", f"the take is on {take.face_model!r} with {len(take.names)} "
                                                f"coefficients; this server renders {face_model!r}, whose "
                                                "names (GET /v1/info) the take must list in order", "take")
    if take.duration > max_seconds:
        raise ApiError(422, "take_too_long", f"the take lasts {take.duration:.1f} s, over the limit of "
                                             f"{max_seconds:g} s; render it in parts", "take")
    return take


async def read_portrait(portrait: UploadFile | None) -> dict[str, bytes]:
    """``{PORTRAIT_FILE: bytes}`` of a checked portrait upload, or {} when there is none."""
    if portrait is None:
        return {}
    data = await portrait.read()
    await run_in_threadpool(check_portrait, data)
    return {PORTRAIT_FILE: data}


def job_not_found() -> ApiError:
    """404 ``job_not_found``."""
    return ApiError(404, "job_not_found", "no such job; job ids are the UUIDs that POST /v1/jobs "
                                          "and POST /v1/render answered", "id")


def find_job(runtime: Runtime, job_id: str) -> Job:
    """The job, or 404 ``job_not_found`` (malformed ids included)."""
    job = runtime.store.get(job_id)
    if job is None:
        raise job_not_found()
    return job


def require_done(view: dict[str, Any]) -> None:
    """409 ``not_ready`` unless the job (its `JobStore.view`) is done."""
    if view["state"] != "done":
        raise ApiError(409, "not_ready", f"the job is {view['state']}; results are served once it is done", "id")


def frame_count(view: dict[str, Any], take: int) -> int:
    """How many frames of ``take`` the job (its `JobStore.view`) has rendered; 404 when none."""
    count = view["frames"].get(str(take), 0)
    if count == 0:
        raise ApiError(404, "frames_not_found", f"the job has no rendered frames for take {take}", "take")
    return count


class HeldFileResponse(FileResponse):
    """A `FileResponse` of a job's file whose job's files the store holds on disk (`JobStore.hold`)
    until the response has ended, sent in full or not: a DELETE meanwhile never cuts a download."""

    def __init__(self, store: JobStore, job: Job, path: Path, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self.store, self.job = store, job

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):  # the directory of a deleted job is removed off the loop
                await run_in_threadpool(self.store.release, self.job)


def serve_held(store: JobStore, job: Job, locate: Callable[[], Path], **kwargs: Any) -> HeldFileResponse:
    """The file ``locate()`` names (it may check or write it), served with the job's files held from
    before ``locate`` runs until the response ends (``kwargs``: `FileResponse`'s); 404
    ``job_not_found`` when the job was deleted first."""
    if not store.hold(job):
        raise job_not_found()
    try:
        return HeldFileResponse(store, job, locate(), **kwargs)
    except BaseException:
        store.release(job)
        raise


async def enqueue(runtime: Runtime, kind: str, settings: BaseModel, portrait: UploadFile | None,
                  files: dict[str, bytes] | None = None,
                  prepare: Callable[[Path], None] | None = None) -> dict[str, Any]:
    """Store a checked request (plus the checked ``portrait``) as a new job, off the event loop,
    and hand it to the model worker; returns the job object."""
    files = {**(files or {}), **await read_portrait(portrait)}
    job = await run_in_threadpool(runtime.store.create, kind, {"settings": settings.model_dump()}, files, prepare)
    return runtime.store.view(runtime.submit(job))


# ---------------------------------------------------------------------------------------------
# Routes
# ---------------------------------------------------------------------------------------------

@router.get("/health", response_model=Health, responses={503: {"model": ErrorBody}})
def health(runtime: RuntimeDep) -> Any:
    """Ready (200, device, versions, face model) or still loading (503)."""
    status, body = runtime.health()
    return JSONResponse(body, status_code=status)


@router.get("/info", response_model=Info)
def info(runtime: RuntimeDep) -> Any:
    """Emotions, fps, coefficient names and dimension, renderers, limits."""
    return runtime.info()


@router.get("/face-model", response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}}}})
def face_model(runtime: RuntimeDep) -> Response:
    """The face model as the ``.npz`` `core.face.model.FaceModel.save` writes (numpy reads it)."""
    runtime.ready()
    return Response(runtime.face_model_npz, media_type="application/octet-stream",
                    headers={"Content-Disposition": 'attachment; filename="face-model.npz"'})


@router.post("/jobs", status_code=202, response_model=JobView)
async def submit_job(
    runtime: RuntimeDep,
    audio: Annotated[UploadFile, File(description="the speech clip: WAV, FLAC, OGG/Vorbis or MP3")],
    settings: Annotated[str | None, Form(description="JSON object of generation settings")] = None,
    portrait: Annotated[UploadFile | None, File(description="PNG/JPEG portrait: source face and render image")] = None,
) -> Any:
    """Queue a generation job; answers 202 with the job at once."""
    generator = runtime.ready()
    chosen = await run_in_threadpool(parse_settings, settings, JobSettings, runtime.field_limit())
    await run_in_threadpool(check_generation, chosen, generator)
    if chosen.render:
        runtime.check_renderer(chosen.renderer)
    runtime.check_capacity()
    decoded = await run_in_threadpool(decode_audio, await audio.read(), runtime.config.limits)
    return await enqueue(runtime, "generate", chosen, portrait, files={AUDIO_FILE: decoded})


@router.post("/render", status_code=202, response_model=JobView)
async def submit_render(
    runtime: RuntimeDep,
    take: Annotated[str, Form(description="a take object (JSON), e.g. with hand-edited curves")],
    settings: Annotated[str | None, Form(description="JSON object: render_size, renderer")] = None,
    portrait: Annotated[UploadFile | None, File(description="PNG/JPEG portrait (default: built-in)")] = None,
) -> Any:
    """Queue a render job for a take; its frames are served as take 0."""
    generator = runtime.ready()
    chosen = await run_in_threadpool(parse_settings, settings, RenderSettings, runtime.field_limit())
    parsed = await run_in_threadpool(parse_take, take, generator, runtime.config.limits.max_audio_seconds,
                                     runtime.field_limit())
    runtime.check_renderer(chosen.renderer)
    runtime.check_capacity()
    return await enqueue(runtime, "render", chosen, portrait,
                         prepare=lambda directory: save_takes(directory / TAKES_FILE, [parsed]))


@router.get("/jobs", response_model=list[JobView])
def list_jobs(runtime: RuntimeDep) -> Any:
    """Every job, newest first."""
    return [runtime.store.view(job) for job in runtime.store.jobs()]


@router.get("/jobs/{job_id}", response_model=JobView)
def get_job(runtime: RuntimeDep, job_id: str) -> Any:
    """State, stage, progress, ETA, error, takes and frames of a job."""
    return runtime.store.view(find_job(runtime, job_id))


@router.post("/jobs/{job_id}/cancel", response_model=JobView)
def cancel_job(runtime: RuntimeDep, job_id: str) -> Any:
    """Cancel a queued job at once, a running one at its worker's next check; a finished job is
    answered as it is. Asking twice is asking once; nothing is deleted."""
    job = find_job(runtime, job_id)
    runtime.store.cancel(job)
    return runtime.store.view(job)


@router.delete("/jobs/{job_id}", status_code=204, response_class=Response, responses={409: {"model": ErrorBody}})
def delete_job(runtime: RuntimeDep, job_id: str) -> Response:
    """Delete a finished job with its files (204); a queued or running one is 409
    ``job_not_finished`` (cancel it first)."""
    job = find_job(runtime, job_id)
    state = runtime.store.view(job)["state"]
    if state not in FINISHED:
        raise ApiError(409, "job_not_finished", f"the job is {state}; only a finished job is deleted: cancel it "
                                                "first (POST /v1/jobs/{id}/cancel) and delete it once it "
                                                "has ended", "id")
    runtime.store.delete(job)
    return Response(status_code=204)


@router.get("/jobs/{job_id}/takes", response_class=FileResponse,
            responses={200: {"content": {"application/json": {}}}, 409: {"model": ErrorBody}})
def get_takes(runtime: RuntimeDep, job_id: str) -> FileResponse:
    """``{"version": 1, "takes": [...]}`` once the job is done (409 before)."""
    job = find_job(runtime, job_id)
    require_done(runtime.store.view(job))
    return serve_held(runtime.store, job, lambda: job.path(TAKES_FILE), media_type="application/json")


@router.get("/jobs/{job_id}/frames/{take}/{frame}.png", response_class=FileResponse,
            responses={200: {"content": {"image/png": {}}}})
def get_frame(runtime: RuntimeDep, job_id: str, take: int, frame: int) -> FileResponse:
    """Frame ``frame`` (0-based) of take ``take`` as PNG (served as soon as it is rendered)."""
    job = find_job(runtime, job_id)
    count = frame_count(runtime.store.view(job), take)
    if not 0 <= frame < count:
        raise ApiError(404, "frame_not_found", f"take {take} has frames 0 to {count - 1}", "frame")

    def locate() -> Path:
        path = job.frame_path(take, frame)
        if not path.is_file():
            raise ApiError(404, "frame_not_found", "the frame is gone from the job store", "frame")
        return path

    return serve_held(runtime.store, job, locate, media_type="image/png")


@router.get("/jobs/{job_id}/frames/{take}.zip", response_class=FileResponse,
            responses={200: {"content": {"application/zip": {}}}, 409: {"model": ErrorBody}})
def get_frames_zip(runtime: RuntimeDep, job_id: str, take: int) -> FileResponse:
    """All frames of a take, ``00000.png`` ..., once the job is done."""
    job = find_job(runtime, job_id)
    view = runtime.store.view(job)
    require_done(view)
    count = frame_count(view, take)

    def locate() -> Path:
        target = job.directory / FRAMES_DIR / f"{take}.zip"
        if not target.is_file():
            zip_frames([job.frame_path(take, n) for n in range(count)], target)
        return target

    return serve_held(runtime.store, job, locate, media_type="application/zip", filename=f"take{take}-frames.zip")


# ---------------------------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------------------------

@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start-up: recover and clean the job store, load the model in the background; shutdown:
    stop the worker."""
    runtime: Runtime = app.state.runtime
    runtime.start()
    try:
        yield
    finally:
        await run_in_threadpool(runtime.close)


def create_app(config: ServerConfig) -> FastAPI:
    """The server app for ``config``; raises `ConfigError`/`DeviceError` for one that must not start."""
    config.check()
    resolve_device(config.device)
    app = FastAPI(title="FlowVQ Talker server", version=server_version(), lifespan=_lifespan,
                  description="Speech + emotion -> facial-animation coefficients. Contract: docs/api.md.")
    app.state.runtime = Runtime(config)
    install_error_handlers(app)
    app.include_router(router)
    app.add_middleware(GuardMiddleware, config=config, body_limit=app.state.runtime.body_limit)
    return app
