"""A line of dialogue's text on a take's lips: the aligned phones drive the mouth, the flows the rest.

When the text of the line is known (game and film pipelines have it), `core.align.align_text` gives
the time of every phone, and `text_lips` rewrites each take's mouth from those phones with the very
generator the training curves come from (`core.visemes.viseme_curves` and `seal_bilabials`), so
every /p b m/ of the text seals and every vowel opens as its viseme says:

* the speech-only mouth channels (jaw, mouthClose, funnel, pucker, lower-lip roll, tongue) become
  the visemes plus the source's resting face β₀, plus how much further the take's own median opens
  each of them than the visemes' median does (an emotion's dropped jaw or pursed lips stay);
* mouth channels an emotion also uses (smile, press, stretch, upper lip up) take the larger of the
  take's value and the viseme's, so a smile stays while an /i/ spreads the lips;
* the lips are then sealed around each bilabial, and mouthClose kept at most jawOpen.

Everything else (brows, eyes, blinks, cheeks, nose, head motion) stays the flows' own. The flows
are not conditioned on the phones: this is the phone-driven lip-sync of Rhubarb's dialog option and
JALI, on top of the flows' emotion and variety.
"""

from collections.abc import Sequence

import numpy as np

from core.visemes import MOUTH_CHANNELS, seal_bilabials, viseme_curves

__all__ = ["SPEECH_CHANNELS", "text_lips"]

# The mouth channels only speech moves (the rest of MOUTH_CHANNELS are also emotions' channels).
SPEECH_CHANNELS: tuple[str, ...] = ("jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthRollLower",
                                    "tongueOut")


def text_lips(
    exp: np.ndarray, phones: Sequence[tuple[str, float, float]], names: Sequence[str], fps: float,
    beta0: np.ndarray,
) -> np.ndarray:
    """Each take with its mouth driven by ``phones`` (module docstring); a new array.

    Shapes: exp (N, T, D) in [0, 1] at ``fps``, phones [(SAMPA, start s, end s)], beta0 (D,)
    -> (N, T, D) float32 in [0, 1]."""
    columns = list(names)
    visemes = viseme_curves(list(phones), columns, fps, exp.shape[1]) + beta0[None]  # (T, D)
    speech = [columns.index(c) for c in SPEECH_CHANNELS if c in columns]
    shared = [columns.index(c) for c in MOUTH_CHANNELS if c in columns and c not in SPEECH_CHANNELS]
    jaw, close = columns.index("jawOpen"), columns.index("mouthClose")
    out = np.array(exp, dtype=np.float32)
    for take in out:
        extra = np.maximum(np.median(take[:, speech], axis=0) - np.median(visemes[:, speech], axis=0), 0.0)
        take[:, speech] = visemes[:, speech] + extra[None]
        take[:, shared] = np.maximum(take[:, shared], visemes[:, shared])
        np.clip(take, 0.0, 1.0, out=take)
        seal_bilabials(take, columns, phones, fps)
        take[:, close] = np.minimum(take[:, close], take[:, jaw])
    return out
