"""core.corpus.performance and core.blinks: emotion styles, blinks, head motion, resting faces and prosody draws."""

import numpy as np
import pytest

from core.blinks import BLINK_SECONDS, BLINKS_PER_MINUTE, BlinkError, blink_curves
from core.corpus.performance import (
    HEAD_DEGREES,
    HOLD_RANGE,
    REST_CHANNELS,
    SIGNATURES,
    STYLES,
    VARIATION,
    PerformanceError,
    emotion_curves,
    head_motion,
    prosody_values,
    resting_expression,
    speaking_frames,
)
from core.emotions import EMOTIONS
from core.expression import expression_envelope

FPS = 25.0
# 0.4 s of silence, 1.2 s of speech, a 0.8 s pause, 1.2 s of speech, 1 s of silence (4.6 s).
LINE = [("_", 0.0, 0.4), ("a", 0.4, 1.6), ("_", 1.6, 2.4), ("a", 2.4, 3.6), ("_", 3.6, 4.6)]
LINE_FRAMES = int(4.6 * FPS)


def syllables(frames: int, period: int = 6) -> np.ndarray:
    """Loudness of a syllable every ``period`` frames (loud half, quiet half). Shapes: -> (frames,)."""
    return (np.arange(frames) % period < period // 2).astype(float)


def test_every_emotion_class_has_a_style_on_channels_the_face_model_has(face) -> None:
    assert set(STYLES) == set(EMOTIONS)
    for style in STYLES.values():
        assert set(style.face) <= set(face.names)


@pytest.mark.parametrize("emotion", [e for e in EMOTIONS if STYLES[e].face])
def test_the_expression_reaches_its_apex_while_speaking_and_only_on_its_own_channels(face, emotion) -> None:
    energy = np.ones(LINE_FRAMES)
    curves = emotion_curves(face.names, emotion, 0.8, LINE, energy, FPS, np.random.default_rng(0))
    apex = curves[int(1.5 * FPS)]  # well into the first stretch of speech, every syllable loud
    for channel, weight in STYLES[emotion].face.items():
        value = apex[face.names.index(channel)]
        assert 0.95 * 0.8 * weight * (1 - VARIATION) <= value <= min(1.0, 0.8 * weight * (1 + VARIATION)) + 1e-6
    others = [i for i, n in enumerate(face.names) if n not in STYLES[emotion].face]
    assert not curves[:, others].any()


def test_every_signature_is_on_its_emotions_channels_at_full_strength() -> None:
    for emotion, channels in SIGNATURES.items():
        assert all(STYLES[emotion].face[channel] >= 0.8 for channel in channels)
    assert STYLES["fear"].face["mouthStretchLeft"] >= 0.5 and STYLES["fear"].face["browDownLeft"] >= 0.5
    assert "mouthStretchLeft" not in STYLES["surprised"].face and "browDownLeft" not in STYLES["surprised"].face
    assert not any(channel.endswith("Right") for channel in SIGNATURES["contempt"] + tuple(
        c for c in STYLES["contempt"].face if c.startswith("mouth")))


def test_the_expression_rises_into_the_line_eases_in_pauses_and_after_it(face) -> None:
    speaking = speaking_frames(LINE, LINE_FRAMES, FPS)
    assert not speaking[: int(0.4 * FPS)].any() and speaking[int(0.5 * FPS): int(1.5 * FPS)].all()
    envelope = expression_envelope(speaking, 0.4, FPS)
    assert envelope[0] < 0.05  # from the neutral face
    assert envelope[int(0.3 * FPS)] > envelope[0]  # it starts just before the first word
    assert envelope[int(1.5 * FPS)] > 0.95  # apex while speaking
    pause = envelope[int(2.3 * FPS)]
    assert 0.4 < pause < 0.85  # eased towards the hold level in the pause
    assert envelope[int(3.5 * FPS)] > 0.95  # and back for the second stretch
    assert envelope[-1] < 0.6  # relaxed after the line
    assert np.all(np.abs(np.diff(envelope)) < 0.3)  # no jumps


def test_short_pauses_keep_the_apex(face) -> None:
    line = [("a", 0.0, 1.0), ("_", 1.0, 1.2), ("a", 1.2, 2.0)]
    assert speaking_frames(line, int(2.0 * FPS), FPS).all()


def test_loud_syllables_accent_the_expression(face) -> None:
    energy = syllables(LINE_FRAMES)
    curves = emotion_curves(face.names, "surprised", 1.0, LINE, energy, FPS, np.random.default_rng(1))
    brow = curves[int(0.9 * FPS): int(1.6 * FPS), face.names.index("browOuterUpLeft")]
    loud = energy[int(0.9 * FPS): int(1.6 * FPS)] > 0.5
    assert brow[loud].mean() > 1.15 * brow[~loud].mean()
    signature = curves[:, [face.names.index(c) for c in SIGNATURES["surprised"]]].mean(axis=1)
    assert np.percentile(signature, 90) - np.percentile(signature, 10) >= 0.25  # it moves with the line


def test_intensity_scales_the_expression_and_zero_is_none(face) -> None:
    energy = syllables(LINE_FRAMES)
    full = emotion_curves(face.names, "sad", 1.0, LINE, energy, FPS, np.random.default_rng(2))
    half = emotion_curves(face.names, "sad", 0.5, LINE, energy, FPS, np.random.default_rng(2))
    np.testing.assert_allclose(half, 0.5 * full, atol=1e-6)
    assert not emotion_curves(face.names, "angry", 0.0, LINE, energy, FPS, np.random.default_rng(1)).any()


def test_the_hold_level_is_drawn_per_utterance(face) -> None:
    silent_end = [("a", 0.0, 0.6), ("_", 0.6, 6.0)]
    ends = [emotion_curves(face.names, "happy", 1.0, silent_end, np.ones(150), FPS, np.random.default_rng(seed))[
        -1, face.names.index("mouthSmileLeft")] for seed in range(20)]
    assert np.ptp(ends) > 0.05
    assert min(ends) >= HOLD_RANGE[0] * 0.95 * (1 - VARIATION) * (1 - 0.2) - 1e-6


def blink_events(closure: np.ndarray) -> list[int]:
    """Lengths in frames of the runs where the lids are more than half closed."""
    closed = np.concatenate([[False], closure > 0.5, [False]])
    edges = np.flatnonzero(np.diff(closed.astype(int)))
    return list(edges[1::2] - edges[0::2])


@pytest.mark.parametrize("emotion", ["sad", "fear", "talk"])
def test_blinks_come_at_the_emotion_rate_with_realistic_durations(face, emotion) -> None:
    fps, minutes = 100.0, 10
    curves = blink_curves(face.names, emotion, int(minutes * 60 * fps), fps, np.random.default_rng(2))
    left, right = curves[:, face.names.index("eyeBlinkLeft")], curves[:, face.names.index("eyeBlinkRight")]
    np.testing.assert_array_equal(left, right)
    events = blink_events(left)
    expected = BLINKS_PER_MINUTE[emotion] * minutes
    assert abs(len(events) - expected) < 4 * np.sqrt(expected)  # Poisson: within 4 standard deviations
    assert all(1 <= n <= BLINK_SECONDS[1] * fps for n in events)
    assert left.max() >= 0.9 and left.min() == 0.0
    assert set(np.flatnonzero(np.abs(curves).max(axis=0))) == {face.names.index("eyeBlinkLeft"),
                                                               face.names.index("eyeBlinkRight")}


def test_a_blink_closes_faster_than_it_opens(face) -> None:
    fps = 1000.0
    curves = blink_curves(face.names, "fear", int(60 * fps), fps, np.random.default_rng(3))
    lid = curves[:, face.names.index("eyeBlinkLeft")]
    peak = int(np.argmax(lid))
    start = peak - np.argmax(lid[:peak][::-1] == 0)
    end = peak + np.argmax(lid[peak:] == 0)
    assert (peak - start) < (end - peak)


def test_head_motion_is_smooth_sized_by_emotion_and_nods_with_speech() -> None:
    fps, frames = FPS, int(120 * FPS)
    rng_energy = np.random.default_rng(4)
    energy = (rng_energy.random(frames // 10).repeat(10) > 0.5).astype(float)
    calm = head_motion(energy, "sad", fps, np.random.default_rng(5))
    lively = head_motion(energy, "angry", fps, np.random.default_rng(5))
    assert calm.shape == (frames, 6) and calm.dtype == np.float32
    assert calm[:, 1].std() < lively[:, 1].std()
    expected = np.radians(HEAD_DEGREES) * STYLES["angry"].head_motion
    assert 0.7 * expected < lively[:, 1].std() < 1.3 * expected
    assert np.abs(np.diff(lively[:, :3], axis=0)).max() < np.radians(2.5)  # under 60 degrees/s at 25 fps
    onsets = np.flatnonzero(np.diff(energy) > 0)
    quiet = head_motion(np.zeros(frames), "angry", fps, np.random.default_rng(5))
    nod = lively[onsets + 3, 0] - quiet[onsets + 3, 0]
    assert (nod > 0).all()


def test_resting_expression_uses_only_rest_channels_lightly(face) -> None:
    rests = np.stack([resting_expression(face.names, np.random.default_rng(seed)) for seed in range(50)])
    used = {face.names[i] for i in np.flatnonzero(rests.max(axis=0) > 0)}
    assert used and used <= set(REST_CHANNELS)
    assert rests.min() >= 0.0 and rests.max() <= 0.25


def test_prosody_draws_stay_in_the_emotion_ranges_and_repeat_with_the_seed() -> None:
    for emotion, style in STYLES.items():
        values = prosody_values(emotion, np.random.default_rng(6))
        for key, value in values.items():
            low, high = getattr(style, key)
            assert low <= value <= high
        assert values == prosody_values(emotion, np.random.default_rng(6))
    assert STYLES["sad"].rate[1] < STYLES["happy"].rate[0]
    assert STYLES["sad"].pitch_range[1] < STYLES["surprised"].pitch_range[0]


def test_unknown_emotions_and_missing_channels_are_named(face) -> None:
    with pytest.raises(PerformanceError, match="bored"):
        emotion_curves(face.names, "bored", 1.0, LINE, np.ones(5), FPS, np.random.default_rng(0))
    with pytest.raises(BlinkError, match="eyeBlinkLeft"):
        blink_curves(["jawOpen"], "talk", 5, FPS, np.random.default_rng(0))
    with pytest.raises(BlinkError, match="bored"):
        blink_curves(face.names, "bored", 5, FPS, np.random.default_rng(0))
