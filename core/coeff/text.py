"""Known phones on a take's lips: the flows' mouth, sealed around every /p b m/ and held in the
/f v/ and /r/ shapes through every /f v r/ of a line's aligned text or of what a recogniser hears in
the clip (`seal_lips`).

When the text of the line is known (game and film pipelines have it), `core.align.align_text` gives
the time of every phone; without it, `core.recognize.heard_phones` listens to the clip (phone or word
recognition on a model trained on real speakers). Either way the lips seal around each bilabial,
from just before it through its end (an aligner's or recogniser's times can be a frame or two off
the lips: on the synthetic test voices the aligned /m/ lands 27 ms late or 13 ms early in the
median, and sealing only to its centre sealed 84% of the true closures, through its end 94%). The
/f v/ (lower lip under the upper teeth) and /r/ (a light pucker) bring real speakers' lips as close
together as a /p b m/ does, and the corpus holds them so too (`core.visemes.hold_lip_consonants`):
the takes hold them the same way through the phone's end. A
model with phone input (`core.coeff.config.CoeffConfig.phone_dim`) also reads the same phones'
visemes in its context.

With a line (`line_lips`), the jaw also follows the line's aligned phones as real speakers move it
(`core.visemes.jaw_curve`: the visemes' jaw targets, fitted to real speakers' lips, which the
shipped flows also learned from the audio), plus the emotion's own jaw drop (`emotion_jaw_drop`);
everything else of the take stays the flows' own (smiles, frowns, rounding, the emotion's mouth).
On real speakers whose lines are known it catches more of their closures than the flows' own jaw
and follows their lip gap better on the test and held-out clips (docs/real-speech.md, "A line's
text on the lips"). Recognised phones are too often wrong for that (the heard phones' jaw follows
the test speakers' lips less well than the flows' jaw), so without a line only the seal is applied
(`seal_lips`).

Driving the whole mouth from the aligned phones with the corpus's own visemes (as Rhubarb's dialog
option and JALI do) was measured and dropped: on the real speakers with known lines it follows their
lips less well than the flows' own mouth with the same closures sealed (gap correlation 0.50
against 0.59, speaker closures caught 23% against 44%; docs/real-speech.md).
"""

from collections.abc import Callable, Sequence

import numpy as np

from core.align import AlignmentError, align_text
from core.emotions import JAW_DROPS
from core.visemes import hold_lip_consonants, jaw_curve, seal_bilabials

__all__ = ["line_phones", "seal_lips", "emotion_jaw_drop", "line_lips", "known_lips"]


def line_phones(
    wave: np.ndarray, text: str | None, note: Callable[[str], None] | None = None
) -> list[tuple[str, float, float]] | None:
    """The line's phones aligned to the wave; None without a text (None or blank) or when it cannot
    be aligned (then ``note`` gets why, worded for the user: the takes follow the heard closures).
    Shapes: wave (N,) at 16 kHz."""
    if text is None or not text.strip():
        return None
    try:
        return align_text(wave, text)
    except AlignmentError as err:
        if note is not None:
            note(f"the text was not used, the lips follow the audio and the closures heard in it: {err}")
        return None


def seal_lips(exp: np.ndarray, phones: Sequence[tuple[str, float, float]], names: Sequence[str], fps: float) -> np.ndarray:
    """Each take with its lips in the /f v/ and /r/ shapes through every such phone of ``phones``
    (`hold_lip_consonants`) and sealed around every /p b m/ through the phone's end
    (`seal_bilabials`), the rest unchanged; a new array. Shapes: exp (N, T, D) at ``fps`` -> (N, T, D) float32."""
    out, columns = np.array(exp, dtype=np.float32), list(names)
    for take in out:
        hold_lip_consonants(take, columns, phones, fps, to_end=True)
        seal_bilabials(take, columns, phones, fps, to_end=True)
    return out


def emotion_jaw_drop(emotion: str, intensity: float, blend: str | None = None, blend_weight: float = 0.0) -> float:
    """How far ``emotion`` at ``intensity`` drops the jaw beyond speech: its `core.emotions.JAW_DROPS`
    (fear 0.12, surprised 0.22 at intensity 1, as the corpus's styles animate it) times
    ``intensity``; 0 for the other emotions and for a reference take's style, which has no name.
    With a ``blend`` mixed in at ``blend_weight`` w, the two drops mixed 1 - w and w, as the sampler
    mixes the emotions."""
    if blend is None:
        return intensity * JAW_DROPS.get(emotion, 0.0)
    return intensity * ((1.0 - blend_weight) * JAW_DROPS.get(emotion, 0.0) + blend_weight * JAW_DROPS.get(blend, 0.0))


def line_lips(
    exp: np.ndarray, phones: Sequence[tuple[str, float, float]], names: Sequence[str], fps: float, jaw_drop: float = 0.0
) -> np.ndarray:
    """Each take with its jaw following a line's aligned ``phones`` as real speakers move it
    (`core.visemes.jaw_curve`) plus ``jaw_drop`` (`emotion_jaw_drop`), mouthClose kept at or below
    that jaw (lips that meet do not pass through each other), and the lips sealed around every
    /p b m/ and held in the /f v r/ shapes (`seal_lips`); every other channel unchanged; a new array.
    Shapes: exp (N, T, D) at ``fps`` -> (N, T, D) float32."""
    out, columns = np.array(exp, dtype=np.float32), list(names)
    jaw, close = columns.index("jawOpen"), columns.index("mouthClose")
    out[..., jaw] = np.clip(jaw_curve(phones, fps, out.shape[1]) + jaw_drop, 0.0, 1.0)
    out[..., close] = np.minimum(out[..., close], out[..., jaw])
    return seal_lips(out, phones, names, fps)


def known_lips(
    exp: np.ndarray, phones: Sequence[tuple[str, float, float]], names: Sequence[str], fps: float, line: bool,
    jaw_drop: float = 0.0,
) -> np.ndarray:
    """The takes' lips on the phones known in the clip: `line_lips` when they are a line's aligned
    phones (``line``), else `seal_lips` (heard phones: the seal only, ``jaw_drop`` unused).
    Shapes: exp (N, T, D) at ``fps`` -> (N, T, D) float32."""
    return line_lips(exp, phones, names, fps, jaw_drop) if line else seal_lips(exp, phones, names, fps)
