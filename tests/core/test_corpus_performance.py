"""core.corpus.performance and core.blinks: emotion styles, blinks, head motion, resting faces and prosody draws."""

import numpy as np
import pytest

from core.blinks import BLINK_SECONDS, BLINKS_PER_MINUTE, BlinkError, blink_curves
from core.corpus.performance import (
    HEAD_DEGREES,
    ONSET_SECONDS,
    REST_CHANNELS,
    STYLES,
    VARIATION,
    PerformanceError,
    emotion_curves,
    head_motion,
    prosody_values,
    resting_expression,
)
from core.emotions import EMOTIONS

FPS = 25.0


def test_every_emotion_class_has_a_style_on_channels_the_face_model_has(face) -> None:
    assert set(STYLES) == set(EMOTIONS)
    for style in STYLES.values():
        assert set(style.face) <= set(face.names)


@pytest.mark.parametrize("emotion", [e for e in EMOTIONS if STYLES[e].face])
def test_style_reaches_its_weights_after_the_onset_within_the_class_variation(face, emotion) -> None:
    frames = int(2 * FPS)
    curves = emotion_curves(face.names, emotion, 0.8, frames, FPS, np.random.default_rng(0))
    settled = curves[int(ONSET_SECONDS * FPS) + 1]
    for channel, weight in STYLES[emotion].face.items():
        value = settled[face.names.index(channel)]
        assert 0.8 * weight * (1 - VARIATION) - 1e-6 <= value <= 0.8 * weight * (1 + VARIATION) + 1e-6
    assert np.abs(curves[0]).max() < np.abs(settled).max() / 10  # it builds up from rest
    others = [i for i, n in enumerate(face.names) if n not in STYLES[emotion].face]
    assert not curves[:, others].any()


def test_intensity_zero_is_no_style(face) -> None:
    assert not emotion_curves(face.names, "angry", 0.0, 30, FPS, np.random.default_rng(1)).any()


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
        emotion_curves(face.names, "bored", 1.0, 5, FPS, np.random.default_rng(0))
    with pytest.raises(BlinkError, match="eyeBlinkLeft"):
        blink_curves(["jawOpen"], "talk", 5, FPS, np.random.default_rng(0))
    with pytest.raises(BlinkError, match="bored"):
        blink_curves(face.names, "bored", 5, FPS, np.random.default_rng(0))
