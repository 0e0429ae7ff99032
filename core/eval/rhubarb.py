"""A rule-based lip-sync baseline in the manner of Rhubarb Lip Sync: audio -> phones -> mouth curves.

    `core.recognize.recognize_phones`   16 kHz wave -> PocketSphinx phone recognition (no transcript)
                                        -> timed SAMPA phones
    rhubarb_curves     the recognised phones -> `core.visemes.viseme_curves` -> ARKit blendshape curves

Like Rhubarb Lip Sync's transcript-free "phonetic" recogniser, it runs PocketSphinx in allphone
mode: the bundled US-English acoustic model decodes the audio against a phone n-gram language model,
not against words, so it needs neither a transcript nor a vocabulary; its phones are the same kind
of phone list as a synthetic `core.corpus.speech.Utterance`'s.

How it differs from Rhubarb itself: Rhubarb first splits the audio into utterances with a voice
activity detector, recognises each one, and maps phones by hand-written rules onto its nine
cartoon mouth shapes A-H and X, then smooths away shapes too brief to see. This baseline decodes the
whole clip in one pass and lets our viseme table (`core.visemes.PHONE_VISEMES`) with its
dominance-blended coarticulation turn the phones into continuous ARKit curves, exactly as the
ground-truth curves are made from true phones; any difference between the two therefore comes
from recognition alone.
"""

from collections.abc import Sequence

import numpy as np

from core.visemes import viseme_curves

__all__ = ["rhubarb_curves"]


def rhubarb_curves(
    phones: Sequence[tuple[str, float, float]], names: Sequence[str], fps: float, frames: int
) -> np.ndarray:
    """Baseline lip-sync curves: a clip's recognised phones (`core.recognize.recognize_phones`)
    through `viseme_curves`.

    Shapes: phones [(SAMPA, start s, end s)] -> (frames, len(names)) float32 in [0, 1]; only the
    mouth channels are set. Raises `core.visemes.VisemeError` when ``names`` lacks a mouth channel.
    """
    return viseme_curves(list(phones), names, fps, frames)
