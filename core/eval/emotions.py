"""`flowvq eval --emotions CLIP`: how strongly and how alive each emotion reads on generated takes.

For one speech clip, one take per emotion (seed fixed, no head pose) is generated at intensity 1
and at half intensity, and each emotion's signature channels (`core.corpus.performance.SIGNATURES`,
its prototype's defining action units on ARKit channels) are measured:

    p90        the 90th percentile over the take of the signature channels (their mean per frame
               is the signature curve; p90 is of every channel's own curve, the lowest one shown)
    range      90th - 10th percentile of the signature curve: does the expression move with the
               line (onset, accents, easing) or sit as a constant layer
    others     the largest mean, over the take, of the other emotions' signature channels that this
               emotion's prototype does not use: does it read as itself and nothing else
    half       the signature curve's mean at intensity 0.5 over its mean at intensity 1

plus, for fear and surprise, the means of the lip stretcher and the brow lowerer that keep them
apart. ``--previous W`` measures other weights side by side in the same run.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.coeff.generator import CoeffGenerator, GenerateSettings
from core.coeff.sampler import SampleSettings
from core.corpus.performance import SIGNATURES, STYLES

__all__ = ["EmotionRow", "SEED", "emotion_takes", "emotion_rows", "evaluate_emotions", "format_emotion_table"]

SEED = 5
APART = ("mouthStretchLeft", "mouthStretchRight", "browDownLeft", "browDownRight")  # fear vs surprise


@dataclass(frozen=True)
class EmotionRow:
    """One emotion's numbers on one set of weights (module docstring)."""

    emotion: str
    p90: float
    range: float
    others: float
    half: float
    stretch: float
    lowerer: float


def emotion_takes(
    generator: CoeffGenerator, audio: Path | str, emotion: str, intensity: float, *, blend: str | None = None,
    blend_weight: float = 0.0, seed: int = SEED,
) -> np.ndarray:
    """One take of ``audio`` at the model's fps with no head pose. Shapes: -> exp (T, D)."""
    sample = SampleSettings(emotion=emotion, intensity=intensity, blend=blend, blend_weight=blend_weight,
                            seed=seed, pose=False)
    return generator.generate(audio, GenerateSettings(sample=sample))[0].exp


def _columns(names: Sequence[str], channels: Sequence[str]) -> list[int]:
    return [list(names).index(channel) for channel in channels]


def signature_curve(exp: np.ndarray, names: Sequence[str], emotion: str) -> np.ndarray:
    """The mean of the emotion's signature channels per frame. Shapes: exp (T, D) -> (T,)."""
    return exp[:, _columns(names, SIGNATURES[emotion])].mean(axis=1)


def other_signatures(names: Sequence[str], emotion: str) -> list[str]:
    """The other emotions' signature channels that ``emotion``'s prototype leaves at zero."""
    own = set(STYLES[emotion].face)
    return sorted({c for e, channels in SIGNATURES.items() if e != emotion for c in channels} - own)


def emotion_row(full: np.ndarray, half: np.ndarray, names: Sequence[str], emotion: str) -> EmotionRow:
    """The numbers of one emotion from its takes at intensity 1 and 0.5. Shapes: full, half (T, D)."""
    curve = signature_curve(full, names, emotion)
    p90 = min(float(np.percentile(full[:, c], 90)) for c in _columns(names, SIGNATURES[emotion]))
    others = full[:, _columns(names, other_signatures(names, emotion))].mean(axis=0)
    apart = full[:, _columns(names, APART)].mean(axis=0)
    return EmotionRow(
        emotion=emotion, p90=p90, range=float(np.percentile(curve, 90) - np.percentile(curve, 10)),
        others=float(others.max()), half=float(signature_curve(half, names, emotion).mean() / max(curve.mean(), 1e-9)),
        stretch=float(apart[:2].mean()), lowerer=float(apart[2:].mean()),
    )


def emotion_rows(generator: CoeffGenerator, audio: Path | str, seed: int = SEED) -> list[EmotionRow]:
    """Every signature emotion's row on ``generator``'s weights."""
    return [emotion_row(emotion_takes(generator, audio, emotion, 1.0, seed=seed),
                        emotion_takes(generator, audio, emotion, 0.5, seed=seed), generator.names, emotion)
            for emotion in SIGNATURES]


def evaluate_emotions(
    audio: Path | str, *, weights: Path | None = None, previous: Path | None = None, seed: int = SEED,
    device: str = "cpu",
) -> dict[str, Any]:
    """The report: {"clip", "seed", "weights": {label: [row dicts]}} for the weights and, when
    given, the previous weights."""
    sets = {"weights": weights, **({"previous": previous} if previous is not None else {})}
    rows = {label: [vars(row) for row in emotion_rows(CoeffGenerator.load(path, device=device), audio, seed)]
            for label, path in sets.items()}
    return {"clip": str(audio), "seed": seed, "weights": rows}


def format_emotion_table(report: dict[str, Any]) -> str:
    """The report as a text table, one line per emotion and set of weights."""
    header = f"{'emotion':<10} {'weights':<9} {'p90':>5} {'range':>6} {'others':>7} {'half':>5} {'stretch':>8} {'lowerer':>8}"
    lines = [f"emotions on {report['clip']} (seed {report['seed']}, intensity 1; half = 0.5 / 1)", header]
    for index, emotion in enumerate(SIGNATURES):
        for label, rows in report["weights"].items():
            row = rows[index]
            lines.append(f"{emotion:<10} {label:<9} {row['p90']:>5.2f} {row['range']:>6.2f} {row['others']:>7.2f} "
                         f"{row['half']:>5.2f} {row['stretch']:>8.2f} {row['lowerer']:>8.2f}")
    return "\n".join(lines)

