"""The shipped weights show each emotion at full strength, moving with the line, at the chosen
intensity, and blend two emotions: measured on takes of a real speaker (J. F. Kennedy, public domain)
that the project did not make (`core.eval.emotions`)."""

from pathlib import Path

import numpy as np
import pytest

from core.coeff.generator import CoeffGenerator
from core.corpus.performance import SIGNATURES
from core.eval.emotions import emotion_row, emotion_takes, signature_curve

CLIP = Path(__file__).parents[1] / "data" / "real" / "jfk.flac"


@pytest.fixture(scope="module")
def generator() -> CoeffGenerator:
    return CoeffGenerator.load(None, device="cpu")


@pytest.fixture(scope="module")
def takes(generator: CoeffGenerator) -> dict[tuple[str, float], np.ndarray]:
    """One take per signature emotion and intensity. Shapes: values (T, D)."""
    return {(emotion, level): emotion_takes(generator, CLIP, emotion, level)
            for emotion in SIGNATURES for level in (0.0, 0.5, 1.0, 1.5)}


def channel_mean(take: np.ndarray, generator: CoeffGenerator, channel: str) -> float:
    return float(take[:, generator.names.index(channel)].mean())


@pytest.mark.parametrize("emotion", list(SIGNATURES))
def test_each_emotion_reads_at_full_strength_as_itself_and_moves_with_the_line(generator, takes, emotion) -> None:
    row = emotion_row(takes[emotion, 1.0], takes[emotion, 0.5], generator.names, emotion)
    assert row.p90 >= 0.6, f"{emotion}: weakest signature channel's 90th percentile {row.p90:.2f}"
    assert row.others < 0.2, f"{emotion}: another emotion's signature channel at {row.others:.2f} on average"
    assert row.range >= 0.25, f"{emotion}: signature envelope 90th-10th percentile {row.range:.2f}"
    assert 0.35 <= row.half <= 0.65, f"{emotion}: intensity 0.5 gives {row.half:.0%} of intensity 1"


def test_fear_stretches_the_lips_and_lowers_the_brows_where_surprise_does_not(generator, takes) -> None:
    fear = emotion_row(takes["fear", 1.0], takes["fear", 0.5], generator.names, "fear")
    surprise = emotion_row(takes["surprised", 1.0], takes["surprised", 0.5], generator.names, "surprised")
    assert fear.stretch >= 0.3 and fear.lowerer >= 0.3
    assert surprise.stretch < 0.15 and surprise.lowerer < 0.15


def test_contempt_stays_one_sided(generator, takes) -> None:
    take = takes["contempt", 1.0]
    assert channel_mean(take, generator, "mouthDimpleRight") < 0.3 * channel_mean(take, generator, "mouthDimpleLeft")


@pytest.mark.parametrize("emotion", list(SIGNATURES))
def test_intensity_raises_every_signature_channel_and_exaggerates_inside_the_rig(generator, takes, emotion) -> None:
    for channel in SIGNATURES[emotion]:
        levels = [channel_mean(takes[emotion, level], generator, channel) for level in (0.0, 0.5, 1.0, 1.5)]
        assert np.all(np.diff(levels) > 0), f"{emotion} {channel}: {np.round(levels, 3)}"
    lower, upper = generator.model.lower.numpy(), generator.model.upper.numpy()
    assert (takes[emotion, 1.5] >= lower - 1e-6).all() and (takes[emotion, 1.5] <= upper + 1e-6).all()


def test_a_blend_lands_between_its_two_emotions(generator) -> None:
    sad = emotion_takes(generator, CLIP, "sad", 1.0)
    angry = emotion_takes(generator, CLIP, "angry", 1.0)
    mix = emotion_takes(generator, CLIP, "sad", 1.0, blend="angry", blend_weight=0.3)
    for channel in ("browDownLeft", "mouthFrownLeft", "mouthPressLeft", "eyeSquintLeft"):
        ends = sorted((channel_mean(sad, generator, channel), channel_mean(angry, generator, channel)))
        value = channel_mean(mix, generator, channel)
        assert ends[0] < value < ends[1], f"{channel}: {value:.3f} not between {ends}"
    # mostly sad: closer to sad's signature than to angry's
    sad_signature, mix_signature = signature_curve(sad, generator.names, "sad"), signature_curve(mix, generator.names, "sad")
    angry_signature = signature_curve(angry, generator.names, "sad")
    assert abs(mix_signature.mean() - sad_signature.mean()) < abs(mix_signature.mean() - angry_signature.mean())
