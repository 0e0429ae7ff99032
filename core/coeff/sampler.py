"""Autoregressive, batched sampling of takes from a `CoeffModel` (paper §3.2, inference).

N takes run in one batch; take k draws all its latents up front from its own generator seeded
with ``seed + k`` (ExpFlow's t noise first, then PoseFlow's Gaussian noise, then its style's), so a
take depends on its seed only, never on how many takes share the batch. Then frame by frame, each
flow maps its latent back to coefficients with a context made of the static part (audio window,
β₀, emotion, take style), computed once, and the τ frames it generated just before.

Latent centres (ExpFlow):
* emotion with intensity a ≤ 1: μ_talk + a · (μ_e - μ_talk), so 0 is the neutral speaking style
  and 1 the emotion's own component. Above 1 (up to `MAX_INTENSITY`, for stylised characters) the
  takes are sampled at 1 and their emotion-bearing channels' departure from β₀ is scaled by a
  (`exaggerate`), clamped to the face model's range: the flows never saw a style past the corpus's
  apex, and extrapolating their inputs there lowered some channels (surprise's inner brows fell
  from 0.57 at 1 to 0.48 at 1.5 with this session's weights);
* a blend of two emotions (``blend`` at ``blend_weight`` w): μ_e is replaced by the weighted
  component means (1 - w) μ_e + w μ_b, and the emotion embedding, the ActNorm rows and the take
  style's line are mixed by the same weights (`emotion_weights`, `core.flow.class_rows`);
* emotion transfer: z = f⁻¹(βʳ, c) of reference coefficients (one frame, or a sequence played
  back and forth over the take), encoded with silent (all-zero, i.e. average) audio and the
  reference's own previous frames.
The sampled latent is centre + temperature · ε (temperature 0 reproduces a reference exactly as
the paper's transfer does), optionally blended with its manifold projection onto the latent bank;
PoseFlow's is pose_temperature · ε.

Take style (ExpFlow's context, `core.coeff.model.ExpFlow`): one per take, what its brows, eyes,
cheeks and nose do over the whole take, drawn from the emotion's Gaussian of training styles
(the point at the chosen intensity on the emotion's line of training styles, whose 1 is the
corpus's full apex) with its spread scaled by style_temperature; with a reference, the reference's
own style. The per-frame latents cannot make
a take coherently different from another: a take's style can.

The spreads are separate because they cost differently: expression noise moves the lips away
from the speech (mouth error grows with it), head-motion noise and style mostly vary the takes.
Expression samples are clamped to the face model's coefficient range, with mouthClose at most
jawOpen (`core.coeff.model.limit_lips`: the lips meet, never pass through); head poses are clamped
to the training range of poses, then scaled by ``pose_amount`` (or skipped: zeros).
"""

import threading
import warnings
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor, nn

from core.audio import frame_windows
from core.blinks import BLINK_CHANNELS, blink_curves
from core.coeff.bank import project_to_manifold
from core.coeff.config import CoeffConfig
from core.coeff.model import CoeffModel, SequenceFlow, limit_lips, style_columns
from core.emotions import EMOTIONS, TALK, emotion_index
from core.errors import FlowVQError
from core.expression import move_with_the_line
from core.flow import content_key, t_noise
from core.formats.takes import POSE_DIM
from core.gaze import GAZE_CHANNELS, with_gaze

__all__ = [
    "SampleSettings",
    "SettingsError",
    "GenerationCancelled",
    "sample_takes",
    "encode_reference",
    "latent_centres",
    "take_styles",
    "take_seeds",
    "add_blinks",
    "add_gaze",
    "move_with_emotion",
    "exaggerate",
    "check_cancel",
    "MAX_TAKES",
    "MAX_MANIFOLD_K",
    "REFERENCE_MARGIN",
    "MAX_SEED",
    "MAX_INTENSITY",
    "MAX_CHUNK_FRAMES",
    "MIN_PROGRESS_REPORTS",
    "emotion_weights",
]

MAX_TAKES = 64
MAX_INTENSITY = 1.5  # above 1 exaggerates the emotion (stylised characters)
MAX_SEED = 2**31 - 1
# The manifold projection solves a k × k system per frame: k = 64 projects a 600 s take (15 000
# frames at 25 fps) in about a second on a 2-core CPU, while an unbounded k (capped only at the bank
# size, 8192) needs gigabytes and minutes for one frame.
MAX_MANIFOLD_K = 64
# A rig's shape-key slider may overshoot the face model's [0, 1] a little; a reference further out
# than this cannot be a pose of the face model.
REFERENCE_MARGIN = 1.0
# Frames run in chunks (`_FrameChunk`, one call from Python each) of up to MAX_CHUNK_FRAMES, and at
# least MIN_PROGRESS_REPORTS chunks per take when it has that many frames: cancel and progress act
# between chunks, at most 0.4 s of a 25-fps take apart.
MAX_CHUNK_FRAMES = 10
MIN_PROGRESS_REPORTS = 25
_BLINK_STREAM = 1  # numpy SeedSequence([take seed, stream]) of a take's blinks (torch draws its latents)
_GAZE_STREAM = 2  # the same of a take's gaze
ProgressFn = Callable[[float], None]
CancelFn = Callable[[], bool]


class SettingsError(FlowVQError):
    """Sampling settings that are out of range or do not fit the model."""
    code = "invalid_settings"


class GenerationCancelled(FlowVQError):
    """The caller's cancel flag was set; nothing was returned."""
    code = "generation_cancelled"


@dataclass(frozen=True)
class SampleSettings:
    """What an animator chooses for one generation.

    emotion: one of `core.emotions.EMOTIONS` (with a reference: the class the reference is encoded
    and decoded under); blend: an optional second emotion mixed in at blend_weight in [0, 1] (0.3:
    70% emotion, 30% blend; ignored without a blend); intensity in [0, `MAX_INTENSITY`] (0: talk, 1: the emotion's full
    apex, above 1: exaggerated); temperature in [0, 2]: the spread of ExpFlow's latent
    noise (lips and face); pose_temperature in [0, 2]: the spread of PoseFlow's (head motion);
    style_temperature in [0, 2]: the spread of each take's style around the emotion's (brows, eyes,
    cheeks, nose over the whole take; 1 = as much as the training data's takes differ);
    seed: take k uses seed + k; takes: how many; pose on/off and pose_amount in [0, 2];
    manifold_blend in [0, 1] and manifold_k in [1, `MAX_MANIFOLD_K`]: manifold projection (needs a latent bank);
    reference: optional (R, D) expression coefficients for emotion transfer; blinks: add seeded
    blinks (`add_blinks`) and gaze: seeded saccades held against the head's quick turns (`add_gaze`), to
    takes drawn with temperature > 0 and no reference.
    """

    emotion: str = TALK
    blend: str | None = None
    blend_weight: float = 0.5
    intensity: float = 1.0
    temperature: float = 0.1
    pose_temperature: float = 0.7
    style_temperature: float = 1.0
    seed: int = 0
    takes: int = 1
    pose: bool = True
    pose_amount: float = 1.0
    manifold_blend: float = 1.0
    manifold_k: int = 8
    reference: np.ndarray | None = None
    blinks: bool = True
    gaze: bool = True

    def check(self, model: CoeffModel) -> None:
        """Raise `SettingsError` (or `UnknownEmotionError`) naming the first bad setting."""
        emotion_index(self.emotion)
        if self.blend is not None:
            emotion_index(self.blend)
        _in_range("blend_weight", self.blend_weight, 0.0, 1.0)
        _in_range("intensity", self.intensity, 0.0, MAX_INTENSITY)
        _in_range("temperature", self.temperature, 0.0, 2.0)
        _in_range("pose_temperature", self.pose_temperature, 0.0, 2.0)
        _in_range("style_temperature", self.style_temperature, 0.0, 2.0)
        _in_range("pose_amount", self.pose_amount, 0.0, 2.0)
        _in_range("manifold_blend", self.manifold_blend, 0.0, 1.0)
        if not 1 <= self.takes <= MAX_TAKES:
            raise SettingsError(f"takes must be between 1 and {MAX_TAKES}, got {self.takes}")
        if not 0 <= self.seed <= MAX_SEED - self.takes + 1:
            raise SettingsError(f"seed must be between 0 and {MAX_SEED - self.takes + 1}, got {self.seed}")
        if not 1 <= self.manifold_k <= MAX_MANIFOLD_K:
            raise SettingsError(f"manifold_k must be from 1 to {MAX_MANIFOLD_K}, got {self.manifold_k}")
        if self.manifold_blend > 0 and len(model.bank) == 0:
            raise SettingsError("these weights have no latent bank for manifold projection; "
                                "set manifold_blend to 0")
        if self.reference is not None:
            _check_reference(np.asarray(self.reference), model)


def _in_range(name: str, value: float, low: float, high: float) -> None:
    if not (isinstance(value, (int, float)) and np.isfinite(value) and low <= value <= high):
        raise SettingsError(f"{name} must be a number between {low:g} and {high:g}, got {value!r}")


def _check_reference(reference: np.ndarray, model: CoeffModel) -> None:
    """Refuse a reference of the wrong shape, with NaNs, or with values no pose of the face model
    can have (beyond its coefficient range by more than `REFERENCE_MARGIN`: a huge finite value
    would sample a non-finite take)."""
    dim = model.dim
    if reference.ndim == 1:
        reference = reference[None]
    if reference.ndim != 2 or reference.shape[1] != dim or len(reference) == 0:
        raise SettingsError(
            f"reference coefficients must be one frame of {dim} values or a (frames, {dim}) "
            f"sequence, got shape {reference.shape}"
        )
    if not np.isfinite(reference).all():
        raise SettingsError("reference coefficients contain NaN or infinite values")
    low = model.lower.cpu().numpy() - REFERENCE_MARGIN
    high = model.upper.cpu().numpy() + REFERENCE_MARGIN
    outside = np.flatnonzero(((reference < low) | (reference > high)).any(axis=0))
    if len(outside):
        name = model.names[outside[0]]
        raise SettingsError(f"reference coefficient {name!r} holds values outside its range "
                            f"[{low[outside[0]]:g}, {high[outside[0]]:g}] (the face model's range widened by "
                            f"{REFERENCE_MARGIN:g}); read it from the rig again")


def take_seeds(settings: SampleSettings) -> list[int]:
    """The seed of each take: seed, seed + 1, ..."""
    return [settings.seed + k for k in range(settings.takes)]


@torch.no_grad()
def encode_reference(
    model: CoeffModel, reference: np.ndarray, beta0: Tensor, label: Tensor
) -> Tensor:
    """Emotion-transfer latents z = f⁻¹(βʳ, c) of a reference (module docstring).

    Shapes: reference (R, D) or (D,), beta0 (D,), label () class index or (C,) class weights -> (R, D).
    """
    flow, config = model.exp_flow, model.config
    frames = torch.as_tensor(np.atleast_2d(reference), dtype=beta0.dtype, device=beta0.device)
    silent = frames.new_zeros(1, len(frames), config.audio_window, config.audio_width)
    tau = flow.settings.tau
    padded = torch.cat([frames.new_zeros(tau, model.dim), frames])[None]  # (1, τ + R, D)
    static = flow.static_context(silent, beta0[None], label[None], reference_style(model, frames, beta0))
    available = torch.arange(tau + len(frames), device=frames.device)[None] >= tau
    return flow.encode_windows(padded, available, static, label[None])


def reference_style(model: CoeffModel, reference: Tensor, beta0: Tensor) -> Tensor | None:
    """The take style of reference coefficients (None for a flow without styles).
    Shapes: reference (R, D), beta0 (D,) -> (1, S)."""
    flow = model.exp_flow
    return flow.style_of((reference - beta0).mean(dim=0, keepdim=True)) if flow.style else None


def take_styles(
    model: CoeffModel, settings: SampleSettings, beta0: Tensor, noise: Tensor
) -> Tensor | None:
    """Each take's style (module docstring), None for a flow without styles.
    Shapes: beta0 (D,), noise (N, S) standard normal -> (N, S)."""
    flow = model.exp_flow
    if not flow.style:
        return None
    if settings.reference is not None:
        reference = torch.as_tensor(np.atleast_2d(settings.reference), dtype=beta0.dtype, device=beta0.device)
        return reference_style(model, reference, beta0).expand(len(noise), -1)
    mean, factor = flow.style_distribution(emotion_weights(settings).to(beta0.device), settings.intensity)
    return mean + settings.style_temperature * noise @ factor.T


def emotion_weights(settings: SampleSettings) -> Tensor:
    """The emotion mix of ``settings`` as weights over `EMOTIONS`: one-hot for one emotion,
    1 - w and w for ``emotion`` blended with ``blend`` at ``blend_weight`` w. Shapes: -> (C,)."""
    share = settings.blend_weight if settings.blend is not None else 0.0
    weights = torch.zeros(len(EMOTIONS))
    weights[emotion_index(settings.emotion)] += 1.0 - share
    if settings.blend is not None:
        weights[emotion_index(settings.blend)] += share
    return weights


def latent_centres(
    model: CoeffModel, settings: SampleSettings, beta0: Tensor, frames: int
) -> Tensor:
    """The ExpFlow latent each frame is sampled around (module docstring). Shapes: -> (T, D)."""
    weights = emotion_weights(settings).to(beta0.device)
    if settings.reference is not None:
        latents = encode_reference(model, settings.reference, beta0, weights)
        return latents[_ping_pong(len(latents), frames)]
    means = model.exp_flow.prior.means
    talk = means[emotion_index(TALK)]
    centre = talk + settings.intensity * (weights @ means - talk)
    return centre.expand(frames, -1)


def _ping_pong(length: int, frames: int) -> Tensor:
    """Indices 0, 1, ..., length-1, length-2, ..., 1, 0, 1, ... for ``frames`` frames."""
    if length == 1:
        return torch.zeros(frames, dtype=torch.long)
    position = torch.arange(frames) % (2 * (length - 1))
    return torch.where(position < length, position, 2 * (length - 1) - position)


def _draw_noise(model: CoeffModel, seeds: list[int], frames: int) -> tuple[Tensor, Tensor, Tensor]:
    """Each take's ExpFlow, PoseFlow and style noise from its own CPU generator.

    Shapes: -> exp (N, T, D), pose (N, T, 6), style (N, S), float32 on the CPU.
    """
    exp, pose, style = [], [], []
    for seed in seeds:
        generator = torch.Generator().manual_seed(seed)
        exp.append(t_noise(model.exp_flow.prior.nu, frames, model.dim, generator))
        pose.append(torch.randn(frames, POSE_DIM, generator=generator))
        style.append(torch.randn(len(model.exp_flow.style), generator=generator))
    return torch.stack(exp), torch.stack(pose), torch.stack(style)


class _FrameStep(nn.Module):
    """Frame t of one flow for every take: the context from the static part and the τ previous
    frames, the inverse flow, the clamp to the coefficient bounds and, given the (jawOpen,
    mouthClose) columns ``lips``, to lips that meet without passing through each other
    (`core.coeff.model.limit_lips`), the push into the history.
    A module of its own so that `_compiled_step` can trace it.
    """

    def __init__(
        self, flow: SequenceFlow, bounds: tuple[Tensor, Tensor] | None, lips: tuple[int, int] | None
    ) -> None:
        super().__init__()
        self.flow, self.bounds, self.lips = flow, bounds, lips

    def forward(
        self, latent: Tensor, static: Tensor, previous: Tensor, present: Tensor, label: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Shapes: latent (N, D), static (N, C), previous (N, τ, D), present (N, τ), label (N, n_classes)
        -> frame (N, D), previous (N, τ, D), present (N, τ)."""
        context = self.flow.frame_context(static, previous, present)
        frame = self.flow.flow.inverse(latent, context, label)
        if self.bounds is not None:
            frame = torch.clamp(frame, *self.bounds)
        if self.lips is not None:
            frame = limit_lips(frame, self.lips)
        if previous.shape[1]:
            previous = torch.cat([previous[:, 1:], frame.unsqueeze(1)], dim=1)
            present = torch.cat([present[:, 1:], torch.ones_like(present[:, :1])], dim=1)
        return frame, previous, present


class _FrameChunk(nn.Module):
    """Consecutive frames of one flow in one call: the traced `_FrameStep` in a scripted loop, so a
    chunk of frames costs one call from Python (and one hold of the GIL) instead of one per frame."""

    def __init__(self, step: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.step = step

    def forward(
        self, latents: Tensor, static: Tensor, previous: Tensor, present: Tensor, label: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Shapes: latents (N, K, D), static (N, K, C), previous (N, τ, D), present (N, τ),
        label (N, n_classes) -> frames (N, K, D), previous (N, τ, D), present (N, τ)."""
        frames: list[Tensor] = []
        for t in range(latents.shape[1]):
            frame, previous, present = self.step(latents[:, t], static[:, t], previous, present, label)
            frames.append(frame)
        return torch.stack(frames, dim=1), previous, present


_COMPILED: "weakref.WeakKeyDictionary[SequenceFlow, dict[tuple, tuple[tuple, Callable]]]" = (
    weakref.WeakKeyDictionary()
)


def _compiled_chunk(step: _FrameStep, inputs: tuple[Tensor, ...]) -> Callable[..., tuple[Tensor, Tensor, Tensor]]:
    """``step`` traced with TorchScript for these input shapes (one frame's), looped over a chunk of
    frames in a scripted `_FrameChunk`, reused until a parameter's values change.

    Sampling runs thousands of tiny frames, where Python and module-call overhead costs more than
    the arithmetic. `benchmarks/coeff_speed.py`, one take of 10 s on this project's 2-core CPU, in
    one session: traced 42.7× real time, eager 23.0×, `torch.export(...).module()` 15.9× (its graph
    module still dispatches every operation from Python); `torch.compile` needs a C++ toolchain and
    tens of seconds per new shape. So the step is traced, with `torch.jit.trace`, and its loop
    scripted, with `torch.jit.script`, which torch 2.13 and 2.14 (the range pyproject pins) mark
    deprecated but keep; their deprecation notices are silenced here only, since there is nothing a
    user could do about them. The step runs once eagerly first so that the 1×1 linears' inverse
    weights are cached and enter the trace as constants; the key holds the parameters'
    `content_key`, so training (or loading new weights) makes the next call trace again. Looping
    over frames inside TorchScript took one take's sampling from 0.153 s to 0.132 s in one run (the
    flows side by side, chunks of 10 frames).
    """
    flow = step.flow
    shapes = (tuple(tuple(x.shape) for x in inputs), inputs[0].dtype, inputs[0].device,
              step.bounds is None, step.lips)
    versions = content_key(flow.parameters())
    cached = _COMPILED.setdefault(flow, {}).get(shapes)
    if cached is not None and cached[0] == versions:
        return cached[1]
    step(*inputs)
    with warnings.catch_warnings():  # shape checks frozen into the trace; trace's and script's deprecations
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(step, inputs, check_trace=False)
        chunk = torch.jit.script(_FrameChunk(traced))
    _COMPILED[flow][shapes] = (versions, chunk)
    return chunk


class _Rollout:
    """One flow's autoregressive state: its static context, latents, label, τ previous frames and
    the chunks of frames made so far."""

    def __init__(
        self, flow: SequenceFlow, static: Tensor, latents: Tensor, label: Tensor,
        bounds: tuple[Tensor, Tensor] | None, lips: tuple[int, int] | None,
    ) -> None:
        self.static, self.latents, self.label = static, latents, label
        n_takes, _, dim = latents.shape
        tau = flow.settings.tau
        self.previous = latents.new_zeros(n_takes, tau, dim)
        self.present = latents.new_zeros(n_takes, tau)
        self.chunks: list[Tensor] = []
        example = (latents[:, 0], static[:, 0], self.previous, self.present, label)
        self.run_chunk = _compiled_chunk(_FrameStep(flow, bounds, lips), example)

    def step(self, start: int, stop: int) -> None:
        """Generate frames [start, stop) of every take, each pushed into the previous frames."""
        frames, self.previous, self.present = self.run_chunk(
            self.latents[:, start:stop], self.static[:, start:stop], self.previous, self.present, self.label
        )
        self.chunks.append(frames)

    @property
    def output(self) -> Tensor:
        """The frames made so far. Shapes: -> (N, frames, D)."""
        return torch.cat(self.chunks, dim=1)


@torch.no_grad()
def sample_takes(
    model: CoeffModel,
    audio: np.ndarray,
    beta0: np.ndarray,
    settings: SampleSettings,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    loudness: np.ndarray | None = None,
    visemes: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``settings.takes`` takes at the model's fps.

    ``audio`` is one normalised log-mel row per model frame (`core.audio.audio_features` at
    ``model.config.fps``); ``beta0`` the source expression. ``progress(fraction)`` is called as
    frames complete; ``cancel()`` is polled between chunks of the manifold projection and of
    frames (`MAX_CHUNK_FRAMES`), and raises `GenerationCancelled`. With the clip's ``loudness`` per frame
    (`core.expression.frame_energy`) and no reference, the takes' emotion moves with the line
    (`move_with_emotion`). ``visemes``: each frame's viseme class from the line's known or heard
    phones (`core.visemes.frame_visemes`), read by a model with phone input (None: not known).
    Shapes: audio (T, F), beta0 (D,), loudness (T,), visemes (T,) -> exp (N, T, D), pose (N, T, 6) float32.
    """
    settings.check(model)
    config, device = model.config, model.lower.device
    if audio.ndim != 2 or audio.shape[1] != config.audio_width or len(audio) == 0:
        raise SettingsError(f"audio features must have shape (frames, {config.audio_width}), got {audio.shape}")
    frames, n_takes = len(audio), settings.takes
    windows = torch.as_tensor(frame_windows(audio, config.audio_before, config.audio_after), device=device)
    source = torch.as_tensor(np.asarray(beta0, dtype=np.float32), device=device)
    label = emotion_weights(settings).to(device).expand(n_takes, -1)  # (N, C) class weights
    apex = replace(settings, intensity=min(settings.intensity, 1.0))  # beyond 1: `exaggerate`
    exp_noise, pose_noise, style_noise = _draw_noise(model, take_seeds(settings), frames)
    latents = latent_centres(model, apex, source, frames) + settings.temperature * exp_noise.to(device)
    if settings.manifold_blend > 0:
        projected = project_to_manifold(latents.reshape(-1, model.dim), model.bank, settings.manifold_k,
                                        lambda: check_cancel(cancel, "during the manifold projection"))
        latents = latents + settings.manifold_blend * (projected.reshape(latents.shape) - latents)
    styles = take_styles(model, apex, source, style_noise.to(device))
    exp_static = model.exp_flow.static_context(
        windows[None], source[None], label, styles, _viseme_windows(visemes, frames, config, device)
    )  # (N, T, C)
    rollouts = [_Rollout(model.exp_flow, exp_static, latents, label,
                         (model.lower, model.upper), model.lips)]
    if settings.pose:
        pose_static = model.pose_flow.static_context(windows[None], None, None)
        pose_latents = settings.pose_temperature * pose_noise.to(device)
        rollouts.append(_Rollout(model.pose_flow, pose_static.expand(n_takes, -1, -1), pose_latents, label,
                                 bounds=(model.pose_lower, model.pose_upper), lips=None))
    _run(rollouts, frames, progress, cancel)
    exp = rollouts[0].output.cpu().numpy()
    if loudness is not None and settings.reference is None:
        exp = move_with_emotion(exp, model, np.asarray(beta0, np.float32), loudness)
    if settings.intensity > 1.0 and settings.reference is None:
        exp = exaggerate(exp, model, np.asarray(beta0, np.float32), settings.intensity)
    pose = (settings.pose_amount * rollouts[1].output.cpu().numpy() if settings.pose
            else np.zeros((n_takes, frames, POSE_DIM), np.float32))
    if settings.blinks and settings.reference is None and settings.temperature > 0:
        exp = add_blinks(exp, model, settings)
    if settings.gaze and settings.reference is None and settings.temperature > 0:
        exp = add_gaze(exp, pose, model, settings)
    return exp, pose


def _viseme_windows(
    visemes: np.ndarray | None, frames: int, config: CoeffConfig, device: torch.device
) -> Tensor | None:
    """Each frame's window of viseme classes over the audio window's frames, or None when not known.
    Shapes: visemes (T,) -> (1, T, W) int64."""
    if visemes is None:
        return None
    if np.shape(visemes) != (frames,):
        raise SettingsError(f"visemes must hold one class per frame ({frames}), got shape {np.shape(visemes)}")
    rows = frame_windows(np.asarray(visemes, np.int64)[:, None], config.audio_before, config.audio_after)[..., 0]
    return torch.as_tensor(rows, device=device)[None]


def move_with_emotion(exp: np.ndarray, model: CoeffModel, beta0: np.ndarray, loudness: np.ndarray) -> np.ndarray:
    """Takes whose emotion-bearing channels (`core.coeff.model.style_columns`) move with the line:
    `core.expression.move_with_the_line`, the corpus's own onset, pause and accent process, on
    each channel's departure from β₀, clamped to the bounds afterwards.

    The flows hold the level of a take's emotion (its style) and follow the audio's pauses only in
    part: on an 11-s real clip their signature channels move by 0.08-0.18 (90th - 10th percentile)
    where the corpus's curves move by 0.3 or more. This layer gives them the corpus's movement
    around the level they hold while the speaker talks. Shapes: exp (N, T, D), beta0 (D,), loudness (T,) -> (N, T, D).
    """
    columns = list(style_columns(model.names))
    moved = move_with_the_line(exp, beta0, columns, model.names, loudness, model.config.fps)
    return np.clip(moved, model.lower.cpu().numpy(), model.upper.cpu().numpy()).astype(np.float32)


def exaggerate(exp: np.ndarray, model: CoeffModel, beta0: np.ndarray, factor: float) -> np.ndarray:
    """Takes whose emotion-bearing channels (`core.coeff.model.style_columns`) depart from β₀
    ``factor`` times as far, clamped to the bounds; the lips and every other channel unchanged.
    Shapes: exp (N, T, D), beta0 (D,) -> (N, T, D)."""
    columns = list(style_columns(model.names))
    out = np.array(exp, dtype=np.float32)
    out[..., columns] = beta0[columns] + factor * (out[..., columns] - beta0[columns])
    return np.clip(out, model.lower.cpu().numpy(), model.upper.cpu().numpy()).astype(np.float32)


def add_blinks(exp: np.ndarray, model: CoeffModel, settings: SampleSettings) -> np.ndarray:
    """Each take plus random blinks at the emotion's rate, drawn from the take's own seed with the
    corpus's blink process (`core.blinks.blink_curves`), clipped to the bounds.

    ExpFlow draws one latent per frame, and a blink is a rare event that spans several frames:
    trained on the corpus, it blinks in under 1% of takes where the truth blinks about every four
    seconds. This layer gives animators blinking eyes on editable curves. Face models without
    eyeBlinkLeft/Right get none. Shapes: exp (N, T, D) -> (N, T, D).
    """
    if not set(BLINK_CHANNELS) <= set(model.names):
        return exp
    lower, upper = model.lower.cpu().numpy(), model.upper.cpu().numpy()
    emotion = EMOTIONS[emotion_index(settings.emotion)]  # the canonical name of a case-free one
    blinked = [
        np.clip(take + blink_curves(model.names, emotion, len(take), model.config.fps,
                                    np.random.default_rng([seed, _BLINK_STREAM])), lower, upper)
        for take, seed in zip(exp, take_seeds(settings))
    ]
    return np.stack(blinked).astype(np.float32)


def add_gaze(exp: np.ndarray, pose: np.ndarray, model: CoeffModel, settings: SampleSettings) -> np.ndarray:
    """Each take's eyes moving as a talker's do, drawn from the take's own seed
    (`core.gaze.with_gaze`: saccades to and from the listener at the emotion's rates, held on their
    target against the quick turns of the take's head ``pose``), clipped to the bounds.

    The corpus's eyeLook curves carry an emotion's gaze but no saccades, so the flows' eyes stare:
    every eyeLook curve of a take of J. F. Kennedy's line stays under 0.005. Face models without
    the eight eyeLook channels get none. Shapes: exp (N, T, D), pose (N, T, 6) -> (N, T, D).
    """
    if not set(GAZE_CHANNELS) <= set(model.names):
        return exp
    lower, upper = model.lower.cpu().numpy(), model.upper.cpu().numpy()
    emotion = EMOTIONS[emotion_index(settings.emotion)]
    moved = [
        np.clip(with_gaze(take, take_pose, model.names, emotion, model.config.fps,
                          np.random.default_rng([seed, _GAZE_STREAM])), lower, upper)
        for take, take_pose, seed in zip(exp, pose, take_seeds(settings))
    ]
    return np.stack(moved).astype(np.float32)


def _run(rollouts: list[_Rollout], frames: int, progress: ProgressFn | None, cancel: CancelFn | None) -> None:
    """Step every rollout through all frames (`_step_all`).

    The rollouts are independent (each reads only its own previous frames), so with two or more
    intra-op threads the first (the expression) steps on this thread while the others (the pose)
    step on a worker thread, side by side, with one intra-op thread each (the count is
    process-wide, and restored once both are done): a frame's operations are too small to gain
    much from sharing out, and TorchScript runs a chunk of frames without the GIL. One take of
    10 s on this project's 2-core CPU (`benchmarks/coeff_speed.py`, one run): 62.7x real time
    against 58.0x on one thread; its sampling alone 0.147 s against 0.168 s. With one thread they
    run one after the other. A cancel, or an error on either thread, stops both.
    """
    threads = torch.get_num_threads()
    if len(rollouts) == 1 or threads == 1:
        _step_all(rollouts, frames, progress, cancel)
        return
    stop = threading.Event()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="flowvq-rollout") as pool:
            others = pool.submit(_step_all, rollouts[1:], frames, None, stop.is_set)
            try:
                _step_all(rollouts[:1], frames, progress, lambda: _should_stop(cancel, others))
            except BaseException:
                stop.set()
                failure = others.exception()  # once the worker has stopped
                if failure is not None and not isinstance(failure, GenerationCancelled):
                    raise failure
                raise
            others.result()
    finally:
        torch.set_num_threads(threads)


def _should_stop(cancel: CancelFn | None, worker: Future[None]) -> bool:
    """Whether to stop this thread's rollout: ``cancel()`` says so, or the worker's rollout failed."""
    return (cancel is not None and cancel()) or (worker.done() and worker.exception() is not None)


def _step_all(rollouts: list[_Rollout], frames: int, progress: ProgressFn | None, cancel: CancelFn | None) -> None:
    """Step ``rollouts`` through all frames on the calling thread, in chunks of up to
    `MAX_CHUNK_FRAMES` (at least `MIN_PROGRESS_REPORTS` of them), ``cancel()`` polled before and
    progress reported after each."""
    chunk = min(MAX_CHUNK_FRAMES, max(1, frames // MIN_PROGRESS_REPORTS))
    for start in range(0, frames, chunk):
        check_cancel(cancel, f"at frame {start} of {frames}")
        stop = min(frames, start + chunk)
        for rollout in rollouts:
            rollout.step(start, stop)
        if progress is not None:
            progress(stop / frames)


def check_cancel(cancel: CancelFn | None, where: str) -> None:
    """Raise `GenerationCancelled` (saying ``where``) when ``cancel()`` says so."""
    if cancel is not None and cancel():
        raise GenerationCancelled(f"generation cancelled {where}")
