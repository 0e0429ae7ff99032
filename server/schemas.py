"""Pydantic models of the wire format (docs/api.md): the settings part of a job request, with
ranges (they give OpenAPI docs and 422s), and the answers' shapes. `core` re-checks everything it
receives (`GenerateSettings.check`), so these models are the first line, not the only one."""

from collections.abc import Mapping
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field

from core.align import MAX_TEXT_CHARS
from core.audio import MAX_FPS
from core.coeff.generator import GenerateSettings
from core.coeff.sampler import MAX_INTENSITY, MAX_MANIFOLD_K, MAX_SEED, SampleSettings
from core.recognize import HEARING
from core.render import RENDERER_KINDS
from server.config import LIMITS
from server.store import KINDS, STATES

__all__ = [
    "RenderSettings",
    "JobSettings",
    "GENERATE_KEYS",
    "generate_settings",
    "ErrorDetail",
    "ErrorBody",
    "JobError",
    "JobView",
    "HealthModels",
    "Health",
    "LimitsView",
    "SettingView",
    "Info",
    "setting_ranges",
    "MIN_RENDER_SIZE",
    "RENDER_SIZE_STEP",
]

_SAMPLE = SampleSettings()
MIN_RENDER_SIZE = 64
RENDER_SIZE_STEP = 8


class RenderSettings(BaseModel):
    """How preview frames are drawn (the ``settings`` part of ``POST /v1/render``)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    render_size: int = Field(256, ge=MIN_RENDER_SIZE, le=LIMITS.max_render_size, multiple_of=RENDER_SIZE_STEP,
                             description="preview frame side in pixels (square)")
    renderer: Literal[RENDERER_KINDS] = Field("auto", description="which renderer draws the frames")


class JobSettings(RenderSettings):
    """The ``settings`` part of ``POST /v1/jobs``: `GenerateSettings.from_dict`'s keys plus the
    render keys. Shapes: reference (D,) or (T, D); source_exp (D,)."""

    emotion: str = Field(_SAMPLE.emotion, description="one of /v1/info emotions (ignored with a reference)")
    reference: list[float] | list[list[float]] | None = Field(
        None, description="reference expression coefficients for emotion transfer: [D] or [[D] x T]")
    blend: str | None = Field(None, description="a second emotion of /v1/info emotions mixed in at blend_weight")
    blend_weight: float = Field(_SAMPLE.blend_weight, ge=0.0, le=1.0,
                                description="the share of blend (0.3: 70% emotion, 30% blend); ignored without blend")
    intensity: float = Field(_SAMPLE.intensity, ge=0.0, le=MAX_INTENSITY,
                             description="0 talk, 1 the emotion's full expression, above 1 exaggerated")
    temperature: float = Field(_SAMPLE.temperature, ge=0.0, le=2.0, description="expression latent spread")
    pose_temperature: float = Field(_SAMPLE.pose_temperature, ge=0.0, le=2.0,
                                    description="head-motion latent spread")
    style_temperature: float = Field(_SAMPLE.style_temperature, ge=0.0, le=2.0,
                                     description="spread of each take's face style (upper face)")
    seed: int = Field(_SAMPLE.seed, ge=0, le=MAX_SEED, description="take k uses seed + k")
    takes: int = Field(_SAMPLE.takes, ge=1, le=LIMITS.max_takes)
    pose: bool = Field(_SAMPLE.pose, description="generate head motion")
    pose_amount: float = Field(_SAMPLE.pose_amount, ge=0.0, le=2.0)
    blinks: bool = Field(_SAMPLE.blinks, description="add random blinks at the emotion's rate (temperature > 0, no reference)")
    gaze: bool = Field(_SAMPLE.gaze, description=(
        "add eye movement: saccades to and from the listener, held against the head's quick turns "
        "(temperature > 0, no reference)"))
    manifold_blend: float = Field(_SAMPLE.manifold_blend, ge=0.0, le=1.0)
    manifold_k: int = Field(_SAMPLE.manifold_k, ge=1, le=MAX_MANIFOLD_K,
                            description="K of the manifold projection (its cost grows with K³ per frame)")
    fps: float | None = Field(None, gt=0.0, le=MAX_FPS, description="output frame rate; null = the model's")
    source_exp: list[float] | None = Field(
        None, description="source face expression β₀ [D]; null = the portrait's fit, else neutral")
    text: str | None = Field(None, max_length=MAX_TEXT_CHARS,
                             description="what the clip says; its aligned phones move the jaw, seal the lips on "
                                         "every /p b m/ and shape them on every /f v r/ (null: the closures heard "
                                         "in the audio)")
    closures: Literal[HEARING] = Field(
        GenerateSettings.closures,
        description="without a text: seal the lips on the /p b m/ and shape them on the /f v r/ a recogniser "
                    "hears: phones (fast), words (slower, fewer false closures) or off")
    render: bool = Field(False, description="also render preview frames")


# The keys `core.coeff.generator.GenerateSettings.from_dict` reads.
GENERATE_KEYS: frozenset[str] = frozenset(JobSettings.model_fields) - frozenset(RenderSettings.model_fields) - {"render"}


def generate_settings(settings: Mapping[str, Any]) -> GenerateSettings:
    """The `GenerateSettings` of a job's settings (`JobSettings.model_dump()`, as stored in
    ``request.json``): its `GENERATE_KEYS`, through `GenerateSettings.from_dict`."""
    return GenerateSettings.from_dict({key: value for key, value in settings.items() if key in GENERATE_KEYS})


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer."""

    error: ErrorDetail


class JobError(BaseModel):
    code: str
    message: str


class JobView(BaseModel):
    """A job as ``GET /v1/jobs/{id}`` reports it."""

    id: str
    kind: Literal[KINDS]
    state: Literal[STATES]
    stage: str
    progress: float
    eta_seconds: float | None
    created: float
    updated: float
    started: float | None
    finished: float | None
    error: JobError | None
    takes: int
    frames: dict[str, int]
    messages: list[str]


class HealthModels(BaseModel):
    coeff: str
    renderers: list[str]


class Health(BaseModel):
    status: Literal["ready"]
    version: str
    device: str
    face_model: str
    models: HealthModels


class LimitsView(BaseModel):
    max_upload_bytes: int
    max_audio_seconds: float
    max_audio_samples: int
    max_takes: int
    max_render_size: int
    max_queued_jobs: int
    max_json_depth: int
    max_field_bytes: int
    max_body_bytes: int


class SettingView(BaseModel):
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    choices: list[str] | None = None


def setting_ranges() -> dict[str, dict[str, Any]]:
    """Each job setting with a plain value (number, switch or one of a few names): its default and,
    for numbers, its inclusive range, for names their choices, read from `JobSettings` itself so
    clients never copy them by hand."""
    ranges = {}
    for name, field in JobSettings.model_fields.items():
        if get_origin(field.annotation) is Literal:
            ranges[name] = {"default": field.default, "choices": list(get_args(field.annotation))}
            continue
        if field.annotation not in (int, float, bool):
            continue
        bounds = {"default": field.default}
        for meta in field.metadata:
            for key, attribute in (("minimum", "ge"), ("maximum", "le")):
                if getattr(meta, attribute, None) is not None:
                    bounds[key] = getattr(meta, attribute)
        ranges[name] = bounds
    return ranges


class Info(BaseModel):
    emotions: list[str]
    fps: float
    names: list[str]
    dim: int
    pose_columns: list[str]
    face_model: str
    renderers: list[str]
    limits: LimitsView
    settings: dict[str, SettingView]


