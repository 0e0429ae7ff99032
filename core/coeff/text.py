"""Known phones on a take's lips: a line's aligned text drives the mouth (`text_lips`), or the
bilabials a recogniser hears in the clip seal it (`heard_lips`); the flows do the rest.

When the text of the line is known (game and film pipelines have it), `core.align.align_text` gives
the time of every phone, and `text_lips` rewrites each take's mouth from those phones with the very
generator the training curves come from (`core.visemes.viseme_curves` and `seal_bilabials`), so
every /p b m/ of the text seals and every vowel opens as its viseme says:

* the speech-only mouth channels (jaw, mouthClose, funnel, pucker, lower-lip roll, tongue) become
  the visemes plus the source's resting face β₀, plus how much further the take's own median opens
  each of them than the visemes' median does (an emotion's dropped jaw or pursed lips stay);
* mouth channels an emotion also uses (smile, press, stretch, upper lip up) take the larger of the
  take's value and the viseme's, so a smile stays while an /i/ spreads the lips;
* the lips are then sealed around each bilabial through the aligned phone's end (an aligner's times
  can be a frame or two off the lips: on the synthetic test voices this seals 94% of the true
  closures where sealing to the centre sealed 84%), and mouthClose kept at most jawOpen.

Everything else (brows, eyes, blinks, cheeks, nose, head motion) stays the flows' own: this is the
phone-driven lip-sync of Rhubarb's dialog option and JALI, on top of the flows' emotion and variety.
A model with phone input (`core.coeff.config.CoeffConfig.phone_dim`) also reads the same phones'
visemes in its context before this rewrite.

Without a text, `core.recognize.heard_phones` listens to the clip (phone or word recognition on a
model trained on real speakers) and `heard_lips` only seals the lips around each /p b m/ it hears,
keeping everything else of the take: on the real-speaker dev set this catches more of the speakers'
closures than the flows alone (docs/real-speech.md), where recognised vowels and consonants are too
unreliable to drive the whole mouth.
"""

from collections.abc import Sequence

import numpy as np

from core.visemes import MOUTH_CHANNELS, seal_bilabials, viseme_curves

__all__ = ["SPEECH_CHANNELS", "text_lips", "heard_lips"]

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
        seal_bilabials(take, columns, phones, fps, to_end=True)
        take[:, close] = np.minimum(take[:, close], take[:, jaw])
    return out


def heard_lips(exp: np.ndarray, phones: Sequence[tuple[str, float, float]], names: Sequence[str], fps: float) -> np.ndarray:
    """Each take with its lips sealed around every /p b m/ of ``phones`` through the phone's end
    (`seal_bilabials`: a recogniser's times may be a frame off), the rest unchanged; a new array.
    Shapes: exp (N, T, D) at ``fps`` -> (N, T, D) float32."""
    out, columns = np.array(exp, dtype=np.float32), list(names)
    for take in out:
        seal_bilabials(take, columns, phones, fps, to_end=True)
    return out
