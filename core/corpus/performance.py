"""Everything in a synthetic performance besides the lip shapes and the blinks: the emotion's facial
expression and how it moves over the line, head motion, the source face's resting expression, and
the emotion's speech prosody.

Per emotion class (`STYLES`): the expression at its apex (intensity 1) as ARKit blendshape weights,
a prosody range for the voice (speaking rate, pitch, pitch range, loudness) and a head-motion
scale. The apex follows the EMFACS prototype of the emotion (Ekman, Friesen & Hager, *Facial
Action Coding System: Investigator's Guide*, 2002, table of emotion predictions; docs/training.md
has the action units and their ARKit channels): happy AU6+12, sad AU1+4+15(+17), angry
AU4+5/7+23/24, surprised AU1+2+5+26, fear AU1+2+4+5+20+26 (the brow lowerer and the lip
stretcher set it apart from surprise), disgusted AU9+10(+15), contempt one-sided AU12+14.

Within a class every utterance draws its own intensity (`core.corpus.build.CorpusSpec.intensity`)
and a ±15% variation per channel. The expression moves with the line (`core.expression`): it
rises into the speech (onset), holds at the apex while the speaker talks, eases towards a lower
level (drawn per utterance from `HOLD_RANGE`) in long pauses and after the last word (offset), and
each channel is accented on loud syllables. Blinks are `core.blinks`'s (the sampler adds the same process to
generated takes). Head motion is smooth random rotation (filtered noise, a few degrees) plus nods
driven by speech energy; translation follows the rotation (a head turns about the neck, not its
own centre).

All randomness comes from the numpy Generator passed in. Names are looked up in the face model's
``names``; a channel the model lacks is an error, never a silent skip.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.align import SILENCE
from core.emotions import EMOTIONS, JAW_DROPS
from core.errors import FlowVQError
from core.expression import accent_depths, bridge_pauses, expression_envelope, low_pass, syllable_accent

__all__ = [
    "PerformanceError",
    "EmotionStyle",
    "STYLES",
    "SIGNATURES",
    "REST_CHANNELS",
    "emotion_curves",
    "speaking_frames",
    "head_motion",
    "resting_expression",
    "prosody_values",
]

VARIATION = 0.15  # per-channel relative variation of a style within its class
HOLD_RANGE = (0.3, 0.6)  # the share of the apex kept in long pauses and after the line (per utterance)
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
    "talk": EmotionStyle({"browInnerUp": 0.12, **_both("browOuterUp", 0.08)},
                         (1.0, 1.15), (0.95, 1.1), (1.0, 1.3), (0.9, 1.1), 1.0),
    # AU6 cheek raiser + AU12 lip corner puller (AU6 also narrows the eyes)
    "happy": EmotionStyle({**_both("mouthSmile", 0.95), **_both("cheekSquint", 0.9), **_both("eyeSquint", 0.3)},
                          (1.05, 1.2), (1.1, 1.25), (1.3, 1.7), (1.0, 1.2), 1.2),
    # AU1 inner brow raiser + AU4 brow lowerer + AU15 lip corner depressor (+ AU17 chin raiser, gaze down)
    "sad": EmotionStyle({"browInnerUp": 0.95, **_both("browDown", 0.3), **_both("mouthFrown", 0.9),
                         "mouthShrugLower": 0.3, **_both("eyeLookDown", 0.25)},
                        (0.75, 0.9), (0.85, 0.95), (0.4, 0.7), (0.7, 0.85), 0.5),
    # AU4 brow lowerer + AU7 lid tightener + AU23/24 lip tightener and pressor (+ AU9 a little)
    "angry": EmotionStyle({**_both("browDown", 1.0), **_both("eyeSquint", 0.8), **_both("mouthPress", 0.8),
                           **_both("noseSneer", 0.3)},
                          (1.05, 1.2), (1.0, 1.15), (1.2, 1.6), (1.2, 1.4), 1.3),
    # AU1+2 brow raisers + AU4 brow lowerer + AU5 upper lid raiser + AU20 lip stretcher + AU26 jaw drop
    "fear": EmotionStyle({"browInnerUp": 0.95, **_both("browOuterUp", 0.4), **_both("browDown", 0.55),
                          **_both("eyeWide", 0.9), **_both("mouthStretch", 0.8), "jawOpen": JAW_DROPS["fear"]},
                         (1.1, 1.3), (1.15, 1.3), (0.9, 1.3), (0.8, 1.0), 0.9),
    # AU1+2 brow raisers + AU5 upper lid raiser + AU26 jaw drop; no lowerer, no lip stretch
    "surprised": EmotionStyle({"browInnerUp": 0.9, **_both("browOuterUp", 0.95), **_both("eyeWide", 0.9),
                               "jawOpen": JAW_DROPS["surprised"]},
                              (0.95, 1.1), (1.15, 1.35), (1.4, 1.9), (1.0, 1.2), 1.1),
    # AU9 nose wrinkler + AU10 upper lip raiser + AU15 (+ the lowered brows and cheeks AU9 pulls)
    "disgusted": EmotionStyle({**_both("noseSneer", 0.95), **_both("mouthUpperUp", 0.8), **_both("mouthFrown", 0.4),
                               **_both("browDown", 0.4), **_both("eyeSquint", 0.45), **_both("cheekSquint", 0.3)},
                              (0.85, 1.0), (0.9, 1.0), (0.8, 1.1), (0.9, 1.05), 0.8),
    # one-sided AU14 dimpler + AU12 (left side only)
    "contempt": EmotionStyle({"mouthDimpleLeft": 0.9, "mouthSmileLeft": 0.45, "eyeSquintLeft": 0.25,
                              "browDownRight": 0.15},
                             (0.85, 1.0), (0.9, 1.0), (0.7, 1.0), (0.85, 1.0), 0.7),
}

# The channels that make each emotion read (its prototype's defining action units): what takes at
# intensity 1 must show strongly, and what other emotions must not.
SIGNATURES: dict[str, tuple[str, ...]] = {
    "happy": ("mouthSmileLeft", "mouthSmileRight", "cheekSquintLeft", "cheekSquintRight"),
    "sad": ("browInnerUp", "mouthFrownLeft", "mouthFrownRight"),
    "angry": ("browDownLeft", "browDownRight", "eyeSquintLeft", "eyeSquintRight", "mouthPressLeft", "mouthPressRight"),
    "fear": ("browInnerUp", "eyeWideLeft", "eyeWideRight", "mouthStretchLeft", "mouthStretchRight"),
    "surprised": ("browInnerUp", "browOuterUpLeft", "browOuterUpRight", "eyeWideLeft", "eyeWideRight"),
    "disgusted": ("noseSneerLeft", "noseSneerRight", "mouthUpperUpLeft", "mouthUpperUpRight"),
    "contempt": ("mouthDimpleLeft",),
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


def speaking_frames(phones: Sequence[tuple[str, float, float]], frames: int, fps: float) -> np.ndarray:
    """Frames whose centre lies inside a phone that is not `SILENCE`, with short pauses bridged
    (`core.expression.bridge_pauses`). ``phones`` are (symbol, start s, end s). Shapes: -> (frames,) bool."""
    times = (np.arange(frames) + 0.5) / fps
    speaking = np.zeros(frames, bool)
    for symbol, start, end in phones:
        if symbol != SILENCE:
            speaking |= (times >= start) & (times < end)
    return bridge_pauses(speaking, fps)


def emotion_curves(
    names: Sequence[str], emotion: str, intensity: float, phones: Sequence[tuple[str, float, float]],
    energy: np.ndarray, fps: float, rng: np.random.Generator,
) -> np.ndarray:
    """The emotion's expression at ``intensity`` with per-utterance variation, moving with the line:
    its apex times `expression_envelope` of the speech in ``phones`` (symbol, start s, end s),
    accented by the loudness ``energy`` per frame (in [0, 1], 1 = loudest) by `core.expression.ACCENT_DEPTH`.
    Shapes: energy (T,) -> (T, len(names)) float32, zero outside the style's channels."""
    style = _style(emotion)
    frames = len(energy)
    curves = np.zeros((frames, len(names)), np.float32)
    if not style.face:
        return curves
    envelope = expression_envelope(speaking_frames(phones, frames, fps), rng.uniform(*HOLD_RANGE), fps)
    accent = syllable_accent(energy, fps)
    depths = accent_depths(list(style.face))
    for (channel, weight), depth in zip(style.face.items(), depths):
        apex = min(1.0, intensity * weight * (1.0 + rng.uniform(-VARIATION, VARIATION)))
        curves[:, _column(names, channel)] = apex * envelope * (1.0 - depth + depth * accent)
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
        smooth = low_pass(rng.standard_normal(frames + warm_up), 0.6 * fps)[warm_up:]
        angles[:, axis] = smooth / max(smooth.std(), 1e-9) * np.radians(HEAD_DEGREES) * style.head_motion
    nods = low_pass(np.clip(np.diff(energy, prepend=energy[:1]), 0.0, None), 0.12 * fps)
    angles[:, 0] += NOD_RADIANS * style.head_motion * nods / max(nods.max(), 1e-9)
    pitch, yaw = angles[:, 0], angles[:, 1]
    translation = np.stack([NECK_METRES * np.sin(yaw), NECK_METRES * (1.0 - np.cos(pitch)),
                            NECK_METRES * np.sin(pitch)], axis=1)
    return np.concatenate([angles, translation], axis=1).astype(np.float32)


def resting_expression(names: Sequence[str], rng: np.random.Generator) -> np.ndarray:
    """A source face's own resting expression (β₀): each of `REST_CHANNELS` is present with
    probability 0.3, at a weight in [0, 0.25]. Shapes: -> (len(names),) float32."""
    rest = np.zeros(len(names), np.float32)
    for channel in REST_CHANNELS:
        if rng.random() < 0.3:
            rest[_column(names, channel)] = rng.uniform(0.0, 0.25)
    return rest
