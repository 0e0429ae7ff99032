"""The gaze layer (`core.gaze`): a talker's saccades to and from the listener at each emotion's
rates, held on their target against the head's motion, on the eyeLook channels."""

import numpy as np
import pytest

from core.face.pose import rotation_matrix
from core.face.rig import ARKIT_NAMES
from core.gaze import (
    GAZE_CHANNELS, GAZE_STYLES, LOOK_DEGREES, MAX_AVERSION, SACCADE_BASE, SACCADE_PER_DEGREE, GazeError,
    eye_angles, gaze_direction, gaze_targets, look_angles, look_channels, slow_head, with_gaze,
)

FPS = 25.0
NAMES = list(ARKIT_NAMES)
EYES = [NAMES.index(name) for name in GAZE_CHANNELS]


def long_gaze(emotion: str, seed: int = 0, seconds: float = 1200.0, fps: float = FPS) -> np.ndarray:
    """Twenty minutes of one emotion's gaze targets. Shapes: -> (T, 2) degrees."""
    return gaze_targets(emotion, int(seconds * fps), fps, np.random.default_rng(seed))


def away_share(gaze: np.ndarray) -> float:
    """The share of frames looking more than 4 degrees from the listener."""
    return float((np.linalg.norm(gaze, axis=1) > 4.0).mean())


def saccades_per_minute(gaze: np.ndarray, fps: float = FPS) -> float:
    """Starts of eye movements faster than 30 degrees per second, per minute."""
    fast = np.linalg.norm(np.diff(gaze, axis=0), axis=1) * fps > 30.0
    return float(np.count_nonzero(fast[1:] & ~fast[:-1]) / (len(gaze) / fps / 60.0))


def test_the_same_seed_gives_the_same_gaze_and_another_seed_another() -> None:
    np.testing.assert_array_equal(long_gaze("talk", seconds=20), long_gaze("talk", seconds=20))
    assert not np.allclose(long_gaze("talk", seconds=20), long_gaze("talk", seed=1, seconds=20))


@pytest.mark.parametrize("emotion", sorted(GAZE_STYLES))
def test_each_emotion_holds_the_listener_and_looks_away_for_its_share_of_the_time(emotion: str) -> None:
    """Over twenty minutes the gaze is away (beyond the re-fixation scatter) for about
    away / (hold + away) of the time, less the looks away too small to tell from the scatter;
    never further than `MAX_AVERSION`."""
    style = GAZE_STYLES[emotion]
    gaze = long_gaze(emotion)
    expected = style.away / (style.hold + style.away)
    assert 0.45 * expected < away_share(gaze) < 1.05 * expected
    assert np.linalg.norm(gaze, axis=1).max() <= MAX_AVERSION + 4 * style.scatter


def test_fear_scans_and_anger_stares() -> None:
    """Fear's eyes move most often and look away most, anger's least."""
    rates = {emotion: saccades_per_minute(long_gaze(emotion)) for emotion in GAZE_STYLES}
    assert max(rates, key=rates.get) == "fear" and min(rates, key=rates.get) == "angry"
    assert rates["talk"] > 20.0  # a saccade every few seconds at least
    shares = {emotion: away_share(long_gaze(emotion)) for emotion in ("fear", "angry", "talk")}
    assert shares["angry"] < shares["talk"] < shares["fear"]


def test_looks_away_are_mostly_sideways_and_sad_ones_mostly_down() -> None:
    talk, sad = long_gaze("talk"), long_gaze("sad")
    away = talk[np.linalg.norm(talk, axis=1) > 4.0]
    assert np.abs(away[:, 0]).mean() > 1.5 * np.abs(away[:, 1]).mean()
    assert abs(away[:, 1].mean()) < 1.0  # as often up as down
    sad_away = sad[np.linalg.norm(sad, axis=1) > 4.0]
    assert (sad_away[:, 1] > 0).mean() > 0.7  # pitch > 0 looks down


def test_a_saccade_takes_the_main_sequences_time() -> None:
    """At 1000 fps, a 10-degree look away moves over 21 ms + 2.2 ms per degree (43 ms) and
    stands still before and after."""
    gaze = long_gaze("talk", seconds=60, fps=1000.0)
    moving = np.linalg.norm(np.diff(gaze, axis=0), axis=1) > 1e-9
    edges = np.flatnonzero(np.diff(moving.astype(int)))
    runs = list(zip(edges[::2] + 1, edges[1::2] + 1))
    for start, stop in runs:
        size = np.linalg.norm(gaze[stop] - gaze[start - 1])
        if size > 5.0:
            duration = (stop - start) / 1000.0
            assert duration == pytest.approx(SACCADE_BASE + SACCADE_PER_DEGREE * size, abs=0.0025)
    assert sum(np.linalg.norm(gaze[stop] - gaze[start - 1]) > 5.0 for start, stop in runs) >= 5


def test_the_eyes_hold_still_against_a_quick_nod_and_follow_a_held_turn() -> None:
    """A 10-degree nod down over 0.2 s turns the eyes up by nearly as much (they hold their target);
    a head turned 10 degrees toward its left for 4 s looks that way too, its eyes ahead at the
    middle of the hold."""
    frames = 200
    nod, turn = np.zeros((frames, 6)), np.zeros((frames, 6))
    nod[95:100, 0] = np.deg2rad(10.0)  # pitch down, 0.2 s
    turn[50:150, 1] = np.deg2rad(10.0)  # yaw toward the subject's left (+X), 4 s
    still = np.zeros((frames, 2))
    nodded = eye_angles(still, nod, FPS)
    assert -10.0 < nodded[97, 1] < -7.0 and abs(nodded[97, 0]) < 1e-9
    turned = eye_angles(still, turn, FPS)
    assert np.abs(turned[90:110]).max() < 0.1
    assert turned[51, 0] < -3.0  # at the turn's start the eyes hold a moment


def test_the_eyes_direction_turned_by_the_head_is_the_target_turned_by_the_slow_head() -> None:
    rng = np.random.default_rng(3)
    targets = rng.uniform(-15, 15, (50, 2))
    pose = np.concatenate([rng.uniform(-0.4, 0.4, (50, 3)), np.zeros((50, 3))], 1)
    seen = np.einsum("tij,tj->ti", rotation_matrix(pose[:, :3]), gaze_direction(eye_angles(targets, pose, FPS)))
    expected = np.einsum("tij,tj->ti", rotation_matrix(slow_head(pose[:, :3], FPS)), gaze_direction(targets))
    np.testing.assert_allclose(seen, expected, atol=1e-9)
    steady = np.tile([0.1, -0.2, 0.05], (60, 1))
    np.testing.assert_allclose(slow_head(steady, FPS), steady, atol=1e-12)


def test_gaze_direction_turns_toward_the_subjects_left_and_down() -> None:
    np.testing.assert_allclose(gaze_direction(np.array([0.0, 0.0])), [0.0, 0.0, 1.0], atol=1e-12)
    assert gaze_direction(np.array([20.0, 0.0]))[0] > 0.3  # +X: the subject's left
    assert gaze_direction(np.array([0.0, 20.0]))[1] < -0.3  # -Y: down


def test_looking_to_the_subjects_left_turns_the_left_eye_out_and_the_right_eye_in() -> None:
    """ARKit's eyeLook channels name each eye's own direction: Out of the left eye and In of the
    right one look toward the subject's left, at `LOOK_DEGREES` per unit."""
    side, vertical = LOOK_DEGREES
    channels = dict(zip(GAZE_CHANNELS, look_channels(np.array([[side / 2, vertical / 4, side / 2, vertical / 4]]))[0]))
    assert channels["eyeLookOutLeft"] == pytest.approx(0.5) and channels["eyeLookInRight"] == pytest.approx(0.5)
    assert channels["eyeLookDownLeft"] == pytest.approx(0.25) and channels["eyeLookDownRight"] == pytest.approx(0.25)
    for name in ("eyeLookInLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight"):
        assert channels[name] == 0.0
    turns = np.random.default_rng(4).normal(0.0, 10.0, (20, 4))
    np.testing.assert_allclose(look_angles(look_channels(turns)), turns, atol=1e-12)


def test_with_gaze_adds_to_the_takes_own_eye_turn_and_touches_nothing_else() -> None:
    """A sad take looking 5 degrees down keeps looking down about that much on average (the
    layer's own looks away pull down too) and moves around it; no other channel changes."""
    frames = 1500
    take = np.random.default_rng(5).uniform(0.0, 0.3, (frames, len(NAMES))).astype(np.float32)
    take[:, EYES] = 0.0
    take[:, [NAMES.index("eyeLookDownLeft"), NAMES.index("eyeLookDownRight")]] = 5.0 / LOOK_DEGREES[1]
    moved = with_gaze(take, np.zeros((frames, 6)), NAMES, "sad", FPS, np.random.default_rng(6))
    others = [k for k in range(len(NAMES)) if k not in EYES]
    np.testing.assert_array_equal(moved[:, others], take[:, others])
    angles = look_angles(moved[:, EYES])
    assert 5.0 <= np.median(angles[:, 1]) < 8.0
    assert np.ptp(angles[:, 0]) > 10.0
    np.testing.assert_allclose(angles[:, :2], angles[:, 2:], atol=1e-5)  # both eyes look the same way


def test_bad_inputs_are_named() -> None:
    take = np.zeros((10, len(NAMES)), np.float32)
    with pytest.raises(GazeError, match="no gaze style for emotion 'bored'"):
        with_gaze(take, np.zeros((10, 6)), NAMES, "bored", FPS, np.random.default_rng(0))
    blind = [name for name in NAMES if name != "eyeLookInLeft"]
    with pytest.raises(GazeError, match="no blendshape 'eyeLookInLeft'"):
        with_gaze(take[:, 1:], np.zeros((10, 6)), blind, "talk", FPS, np.random.default_rng(0))
    with pytest.raises(GazeError, match="one row of 6 per frame"):
        with_gaze(take, np.zeros((9, 6)), NAMES, "talk", FPS, np.random.default_rng(0))
