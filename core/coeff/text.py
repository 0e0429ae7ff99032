"""Known phones on a take's lips: the flows' mouth, sealed around every /p b m/ of a line's aligned
text or of what a recogniser hears in the clip (`seal_lips`).

When the text of the line is known (game and film pipelines have it), `core.align.align_text` gives
the time of every phone; without it, `core.recognize.heard_phones` listens to the clip (phone or word
recognition on a model trained on real speakers). Either way the lips seal around each bilabial,
from just before it through its end (an aligner's or recogniser's times can be a frame or two off
the lips: on the synthetic test voices the aligned /m/ lands 27 ms late or 13 ms early in the
median, and sealing only to its centre sealed 84% of the true closures, through its end 94%), and
everything else of the take stays the flows' own; a model with phone input
(`core.coeff.config.CoeffConfig.phone_dim`) also reads the same phones' visemes in its context.

Driving the whole mouth from the aligned phones with the visemes the training curves come from (as
Rhubarb's dialog option and JALI do) was measured and dropped: on the synthetic test voices, whose
truth that very viseme generator made, it is far closer (M-LMD 1.16 against 1.75 mm), but on the
real speakers with known lines it follows their lips less well than the flows' own mouth with the
same closures sealed (gap correlation 0.50 against 0.59, speaker closures caught 23% against 44%;
docs/real-speech.md).
"""

from collections.abc import Callable, Sequence

import numpy as np

from core.align import AlignmentError, align_text
from core.visemes import seal_bilabials

__all__ = ["line_phones", "seal_lips"]


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
    """Each take with its lips sealed around every /p b m/ of ``phones`` through the phone's end
    (`seal_bilabials`), the rest unchanged; a new array. Shapes: exp (N, T, D) at ``fps`` -> (N, T, D) float32."""
    out, columns = np.array(exp, dtype=np.float32), list(names)
    for take in out:
        seal_bilabials(take, columns, phones, fps, to_end=True)
    return out
