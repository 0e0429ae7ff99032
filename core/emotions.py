"""The emotion classes of the coefficient generator: MEAD's eight plus "talk" (HDTF-style speech).

The order is part of trained weights (one prior component per class), so it never changes.
"""

from core.errors import FlowVQError

__all__ = ["EMOTIONS", "TALK", "REFERENCE", "JAW_DROPS", "UnknownEmotionError", "emotion_index"]

# Plain speech with no pronounced emotion: the default class, and the label of data without one.
TALK = "talk"
EMOTIONS: tuple[str, ...] = (
    "neutral", "angry", "contempt", "disgusted", "fear", "happy", "sad", "surprised", TALK,
)

# The label a take carries when its emotion came from reference coefficients (emotion transfer).
REFERENCE = "reference"

# jawOpen that an emotion adds beyond speech at full intensity (AU26 jaw drop): the corpus's styles
# (`core.corpus.performance.STYLES`) animate it and a line's jaw keeps it (`core.coeff.text.line_lips`).
JAW_DROPS: dict[str, float] = {"fear": 0.12, "surprised": 0.22}


class UnknownEmotionError(FlowVQError):
    """An emotion label that is not one of `EMOTIONS`."""
    code = "unknown_emotion"


def emotion_index(label: str) -> int:
    """Index of `label` in `EMOTIONS` (case-insensitive); raises `UnknownEmotionError` otherwise."""
    key = label.strip().lower()
    if key not in EMOTIONS:
        raise UnknownEmotionError(
            f"unknown emotion {label!r}; choose one of: {', '.join(EMOTIONS)}"
        )
    return EMOTIONS.index(key)
