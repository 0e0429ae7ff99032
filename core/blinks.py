"""Blinks: a Poisson process of eyelid closures at each emotion's rate, on eyeBlinkLeft/Right.

The synthetic corpus blinks this way (`core.corpus.performance`), and the sampler adds the same
process to the takes it generates (`core.coeff.sampler`), since the trained flows almost never
blink on their own. Each blink lasts `BLINK_SECONDS` (uniform), closes fast over `BLINK_CLOSING` of
it and opens more slowly; the gaps between blinks are exponential at the emotion's rate.
All randomness comes from the numpy Generator passed in.
"""

from collections.abc import Sequence

import numpy as np

from core.emotions import EMOTIONS
from core.errors import FlowVQError

__all__ = ["BlinkError", "BLINKS_PER_MINUTE", "BLINK_SECONDS", "BLINK_CLOSING", "BLINK_CHANNELS", "blink_curves"]

# Blinks per minute of each emotion class (fear blinks most, surprise least).
BLINKS_PER_MINUTE: dict[str, float] = {
    "neutral": 15.0, "talk": 20.0, "happy": 18.0, "sad": 11.0, "angry": 14.0, "fear": 26.0,
    "surprised": 9.0, "disgusted": 16.0, "contempt": 13.0,
}
BLINK_SECONDS = (0.1, 0.3)
BLINK_CLOSING = 0.35  # fraction of a blink spent closing
BLINK_CHANNELS = ("eyeBlinkLeft", "eyeBlinkRight")


class BlinkError(FlowVQError):
    """An emotion without a blink rate, or a face model without the blink channels."""

    code = "blink"


def _columns(names: Sequence[str]) -> list[int]:
    """The indices of `BLINK_CHANNELS` in ``names``; `BlinkError` when the face model lacks one."""
    missing = [channel for channel in BLINK_CHANNELS if channel not in names]
    if missing:
        raise BlinkError(f"the face model has no blendshape {missing[0]!r}")
    return [list(names).index(channel) for channel in BLINK_CHANNELS]


def blink_curves(
    names: Sequence[str], emotion: str, frames: int, fps: float, rng: np.random.Generator
) -> np.ndarray:
    """Random blinks at the emotion's rate on eyeBlinkLeft/Right.
    Shapes: -> (frames, len(names)) float32, zero outside the two blink channels."""
    if emotion not in BLINKS_PER_MINUTE:
        raise BlinkError(f"no blink rate for emotion {emotion!r}; known: {', '.join(EMOTIONS)}")
    gap = 60.0 / BLINKS_PER_MINUTE[emotion]
    columns = _columns(names)
    seconds = frames / fps
    times = (np.arange(frames) + 0.5) / fps
    closure = np.zeros(frames)
    start = rng.exponential(gap)
    while start < seconds:
        duration = rng.uniform(*BLINK_SECONDS)
        closure = np.maximum(closure, rng.uniform(0.9, 1.0) * _blink_shape(times - start, duration))
        start += duration + rng.exponential(gap)
    curves = np.zeros((frames, len(names)), np.float32)
    curves[:, columns] = closure[:, None]
    return curves


def _blink_shape(elapsed: np.ndarray, duration: float) -> np.ndarray:
    """Eyelid closure in [0, 1]: a fast close over `BLINK_CLOSING` of the blink, a slower open.
    Shapes: elapsed (T,) seconds since the blink began -> (T,)."""
    closing = BLINK_CLOSING * duration
    rise = np.clip(elapsed / closing, 0.0, 1.0)
    fall = np.clip(1.0 - (elapsed - closing) / (duration - closing), 0.0, 1.0)
    return np.where(elapsed < closing, np.sin(0.5 * np.pi * rise), fall * fall * (3.0 - 2.0 * fall))
