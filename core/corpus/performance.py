"""Everything in a synthetic performance besides the lip shapes and the blinks: the emotion's facial
style, head motion, the source face's resting expression, and the emotion's speech prosody.

Per emotion class (`STYLES`): target weights on the non-mouth and mouth-corner blendshapes at full
intensity, a prosody range for the voice (speaking rate, pitch, pitch range, loudness) and a
head-motion scale. Within a class every utterance draws its own intensity and a ±20%
variation per channel, and the style builds up over the first half second. Blinks are
`core.blinks`'s (the sampler adds the same process to generated takes). Head motion is smooth
random rotation (filtered noise, a few degrees) plus nods driven by speech energy; translation
follows the rotation (a head turns about the neck, not its own centre).

All randomness comes from the numpy Generator passed in. Names are looked up in the face model's
``names``; a channel the model lacks is an error, never a silent skip.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from core.emotions import EMOTIONS
from core.errors import FlowVQError

__all__ = [
    "PerformanceError",
    "EmotionStyle",
    "STYLES",
    "REST_CHANNELS",
    "emotion_curves",
    "head_motion",
    "resting_expression",
    "prosody_values",
]

ONSET_SECONDS = 0.5  # the style builds up over this long
VARIATION = 0.2  # per-channel relative variation of a style within its class
HEAD_DEGREES = 2.5  # std of each rotation angle at head_motion 1
NOD_RADIANS = 0.03  # pitch nod per unit of speech energy at head_motion 1
NECK_METRES = 0.1  # the head rotates about a point this far below and behind its own centre
REST_CHANNELS: tuple[str, ...] = (
    "browInnerUp", "browDownLeft", "browDownRight", "mouthSmileLeft", "mouthSmileRight",
    "eyeSquintLeft", "eyeSquintRight", "mouthFrownLeft", "mouthFrownRight",
)


class PerformanceError(FlowVQError):
    """A face model without a channel a style needs, or an unknown emotion."""
    code = "performance"


@dataclass(frozen=True)
class EmotionStyle:
    """One emotion class: ``face`` weights at intensity 1; prosody ranges (low, high) for the speaking
    rate, pitch ratio, pitch-range ratio and loudness ratio; head-motion scale (its blink rate is
    `core.blinks.BLINKS_PER_MINUTE`)."""

    face: Mapping[str, float]
    rate: tuple[float, float]
    pitch: tuple[float, float]
    pitch_range: tuple[float, float]
    volume: tuple[float, float]
    head_motion: float


def _both(name: str, value: float) -> dict[str, float]:
    """A Left/Right pair of channels with the same weight."""
    return {f"{name}Left": value, f"{name}Right": value}


STYLES: dict[str, EmotionStyle] = {
    "neutral": EmotionStyle({}, (0.95, 1.05), (0.95, 1.05), (0.8, 1.0), (0.9, 1.0), 0.6),
    "talk": EmotionStyle({"browInnerUp": 0.1}, (1.0, 1.15), (0.95, 1.1), (1.0, 1.3), (0.9, 1.1), 1.0),
    "happy": EmotionStyle({**_both("mouthSmile", 0.55), **_both("cheekSquint", 0.35), **_both("eyeSquint", 0.2)},
                          (1.05, 1.2), (1.1, 1.25), (1.3, 1.7), (1.0, 1.2), 1.2),
    "sad": EmotionStyle({"browInnerUp": 0.55, **_both("mouthFrown", 0.45), **_both("eyeLookDown", 0.2),
                         **_both("eyeSquint", 0.1)},
                        (0.75, 0.9), (0.85, 0.95), (0.4, 0.7), (0.7, 0.85), 0.5),
    "angry": EmotionStyle({**_both("browDown", 0.65), **_both("noseSneer", 0.25), **_both("eyeSquint", 0.3),
                           **_both("mouthPress", 0.2)},
                          (1.05, 1.2), (1.0, 1.15), (1.2, 1.6), (1.2, 1.4), 1.3),
    "fear": EmotionStyle({"browInnerUp": 0.6, **_both("browOuterUp", 0.25), **_both("eyeWide", 0.5),
                          **_both("mouthStretch", 0.25)},
                         (1.1, 1.3), (1.15, 1.3), (0.9, 1.3), (0.8, 1.0), 0.9),
    "surprised": EmotionStyle({"browInnerUp": 0.55, **_both("browOuterUp", 0.6), **_both("eyeWide", 0.6),
                               "jawOpen": 0.08},
                              (0.95, 1.1), (1.15, 1.35), (1.4, 1.9), (1.0, 1.2), 1.1),
    "disgusted": EmotionStyle({**_both("noseSneer", 0.6), **_both("mouthUpperUp", 0.35), **_both("browDown", 0.3),
                               **_both("eyeSquint", 0.25)},
                              (0.85, 1.0), (0.9, 1.0), (0.8, 1.1), (0.9, 1.05), 0.8),
    "contempt": EmotionStyle({"mouthDimpleLeft": 0.45, "mouthSmileLeft": 0.25, "browDownRight": 0.2,
                              "eyeSquintLeft": 0.15},
                             (0.85, 1.0), (0.9, 1.0), (0.7, 1.0), (0.85, 1.0), 0.7),
}


def _style(emotion: str) -> EmotionStyle:
    style = STYLES.get(emotion)
    if style is None:
        raise PerformanceError(f"no performance style for emotion {emotion!r}; known: {', '.join(EMOTIONS)}")
    return style


def _column(names: Sequence[str], channel: str) -> int:
    """The index of ``channel`` in ``names``; `PerformanceError` when the face model lacks it."""
    try:
        return list(names).index(channel)
    except ValueError:
        raise PerformanceError(f"the face model has no blendshape {channel!r}") from None


def prosody_values(emotion: str, rng: np.random.Generator) -> dict[str, float]:
    """The emotion's voice for one utterance: rate, pitch, pitch_range and volume ratios drawn
    uniformly from its ranges (the keyword arguments of `core.corpus.speech.Prosody`)."""
    style = _style(emotion)
    return {key: float(rng.uniform(*getattr(style, key))) for key in ("rate", "pitch", "pitch_range", "volume")}


def emotion_curves(
    names: Sequence[str], emotion: str, intensity: float, frames: int, fps: float, rng: np.random.Generator
) -> np.ndarray:
    """The emotion's facial style at ``intensity`` with per-utterance variation, building up over
    `ONSET_SECONDS`. Shapes: -> (frames, len(names)) float32, zero outside the style's channels."""
    style = _style(emotion)
    curves = np.zeros((frames, len(names)), np.float32)
    build_up = np.clip((np.arange(frames) + 0.5) / fps / ONSET_SECONDS, 0.0, 1.0)
    ramp = build_up * build_up * (3.0 - 2.0 * build_up)  # smoothstep
    for channel, weight in style.face.items():
        value = intensity * weight * (1.0 + rng.uniform(-VARIATION, VARIATION))
        curves[:, _column(names, channel)] = value * ramp
    return curves


def head_motion(
    energy: np.ndarray, emotion: str, fps: float, rng: np.random.Generator
) -> np.ndarray:
    """Head pose per frame: smooth random rotation plus energy-driven nods, translation from
    rotating about the neck. ``energy`` (T,) is speech loudness per frame scaled to [0, 1].
    Shapes: -> (T, 6) float32 (pitch, yaw, roll rad, tx, ty, tz m)."""
    style = _style(emotion)
    frames = len(energy)
    warm_up = int(2 * fps)  # drop the filters' start-up transient
    angles = np.empty((frames, 3))
    for axis in range(3):
        smooth = _smooth(rng.standard_normal(frames + warm_up), 0.6 * fps)[warm_up:]
        angles[:, axis] = smooth / max(smooth.std(), 1e-9) * np.radians(HEAD_DEGREES) * style.head_motion
    nods = _smooth(np.clip(np.diff(energy, prepend=energy[:1]), 0.0, None), 0.12 * fps)
    angles[:, 0] += NOD_RADIANS * style.head_motion * nods / max(nods.max(), 1e-9)
    pitch, yaw = angles[:, 0], angles[:, 1]
    translation = np.stack([NECK_METRES * np.sin(yaw), NECK_METRES * (1.0 - np.cos(pitch)),
                            NECK_METRES * np.sin(pitch)], axis=1)
    return np.concatenate([angles, translation], axis=1).astype(np.float32)


def _smooth(signal: np.ndarray, frames: float) -> np.ndarray:
    """Two passes of a one-pole low-pass with time constant ``frames``. Shapes: (T,) -> (T,)."""
    pole = np.exp(-1.0 / frames)
    return lfilter([1.0 - pole], [1.0, -pole], lfilter([1.0 - pole], [1.0, -pole], signal))


def resting_expression(names: Sequence[str], rng: np.random.Generator) -> np.ndarray:
    """A source face's own resting expression (β₀): each of `REST_CHANNELS` is present with
    probability 0.3, at a weight in [0, 0.25]. Shapes: -> (len(names),) float32."""
    rest = np.zeros(len(names), np.float32)
    for channel in REST_CHANNELS:
        if rng.random() < 0.3:
            rest[_column(names, channel)] = rng.uniform(0.0, 0.25)
    return rest
