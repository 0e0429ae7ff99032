"""Tests for `core.formats.takes`: wire format, validation, resampling, files and SadTalker export."""

import json

import numpy as np
import pytest
from scipy.io import loadmat

from core.emotions import REFERENCE
from core.face.bfm import read_sadtalker
from core.formats.takes import (
    Take,
    TakeError,
    load_takes,
    resample,
    save_sadtalker_mat,
    save_takes,
    to_sadtalker,
    validate,
)

# The take object of design section 6, written out here so the test checks the design itself.
DESIGN_KEYS = {"take", "seed", "emotion", "fps", "frames", "names", "exp", "pose", "face_model"}
ARKIT_NAMES = (
    "jawOpen", "mouthClose", "mouthFunnel", "mouthSmileLeft", "eyeBlinkLeft", "browInnerUp",
)


def make_take(
    frames: int = 12,
    names: tuple[str, ...] = ARKIT_NAMES,
    fps: float = 25.0,
    seed: int = 0,
    emotion: str = "happy",
    face_model: str = "builtin-arkit52@1",
) -> Take:
    rng = np.random.default_rng(seed)
    return Take(
        take=seed,
        seed=1000 + seed,
        emotion=emotion,
        fps=fps,
        names=names,
        exp=rng.uniform(0.0, 1.0, (frames, len(names))).astype(np.float32),
        pose=rng.normal(0.0, 0.1, (frames, 6)).astype(np.float32),
        face_model=face_model,
    )


def bfm_names(count: int) -> tuple[str, ...]:
    return tuple(f"exp{k:02d}" for k in range(count))


def assert_takes_match(actual: Take, expected: Take, atol: float) -> None:
    assert (actual.take, actual.seed, actual.emotion, actual.fps, actual.face_model) == (
        expected.take, expected.seed, expected.emotion, expected.fps, expected.face_model,
    )
    assert actual.names == expected.names
    np.testing.assert_allclose(actual.exp, expected.exp, atol=atol)
    np.testing.assert_allclose(actual.pose, expected.pose, atol=atol)


# --- the wire format ------------------------------------------------------------------------------


def test_json_round_trip_through_a_file_keeps_values_to_six_decimals(tmp_path):
    takes = [make_take(seed=0), make_take(frames=5, seed=1, emotion=REFERENCE)]
    path = tmp_path / "takes.json"
    save_takes(path, takes)
    loaded = load_takes(path)
    assert len(loaded) == len(takes)
    for actual, expected in zip(loaded, takes):
        assert_takes_match(actual, expected, atol=1e-6)
        assert actual.exp.dtype == np.float32 and actual.pose.dtype == np.float32


def test_to_dict_is_exactly_the_design_object():
    take = make_take(frames=4)
    obj = take.to_dict()
    assert set(obj) == DESIGN_KEYS
    assert obj["frames"] == take.frames == len(obj["exp"]) == len(obj["pose"])
    assert obj["names"] == list(take.names)
    assert all(len(row) == len(take.names) for row in obj["exp"])
    assert all(len(row) == 6 for row in obj["pose"])
    values = [v for row in obj["exp"] + obj["pose"] for v in row]
    assert all(isinstance(v, float) and round(v, 6) == v for v in values)
    json.dumps(obj, allow_nan=False)  # plain JSON types only


def test_takes_file_is_a_versioned_object(tmp_path):
    path = tmp_path / "takes.json"
    save_takes(path, [make_take()])
    raw = json.loads(path.read_text())
    assert raw["version"] == 1
    assert [set(t) for t in raw["takes"]] == [DESIGN_KEYS]


def test_load_accepts_a_bare_list_and_a_single_take_object(tmp_path):
    take = make_take()
    (tmp_path / "list.json").write_text(json.dumps([take.to_dict(), take.to_dict()]))
    (tmp_path / "one.json").write_text(json.dumps(take.to_dict()))
    assert len(load_takes(tmp_path / "list.json")) == 2
    (single,) = load_takes(tmp_path / "one.json")
    assert_takes_match(single, take, atol=1e-6)


def test_save_replaces_the_file_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "takes.json"
    save_takes(path, [make_take(seed=0)])
    save_takes(path, [make_take(seed=1), make_take(seed=2)])
    assert [t.take for t in load_takes(path)] == [1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["takes.json"]


def test_failed_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / "takes.json"
    save_takes(path, [make_take(seed=3)])
    before = path.read_text()
    broken = make_take(seed=4)
    broken.exp[2, 1] = np.nan
    with pytest.raises(TakeError):
        save_takes(path, [broken])
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["takes.json"]


@pytest.mark.parametrize("key", sorted(DESIGN_KEYS))
def test_take_object_missing_a_key_names_it(key):
    obj = make_take().to_dict()
    del obj[key]
    with pytest.raises(TakeError, match=f"missing key '{key}'"):
        Take.from_dict(obj)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("fps", "25"), ("take", 1.5), ("seed", True), ("names", "jawOpen"), ("emotion", 3),
        ("exp", {}),
    ],
)
def test_take_object_key_of_the_wrong_type_names_it(key, value):
    obj = make_take().to_dict()
    obj[key] = value
    with pytest.raises(TakeError, match=f"'{key}' must be"):
        Take.from_dict(obj)


def test_ragged_rows_are_reported_with_the_row():
    obj = make_take().to_dict()
    obj["exp"][3] = obj["exp"][3][:-1]
    with pytest.raises(TakeError, match="'exp' is ragged: row 3"):
        Take.from_dict(obj)


def test_non_numeric_value_is_reported_with_row_and_column():
    obj = make_take().to_dict()
    obj["pose"][2][4] = "0.1"
    with pytest.raises(TakeError, match="'pose' row 2 column 4 must be a number"):
        Take.from_dict(obj)


def test_frames_must_equal_the_number_of_exp_rows():
    obj = make_take(frames=6).to_dict()
    obj["frames"] = 7
    with pytest.raises(TakeError, match="'frames' is 7 but 'exp' has 6 rows"):
        Take.from_dict(obj)


def test_nan_in_the_wire_object_is_rejected():
    obj = make_take().to_dict()
    obj["exp"][5][0] = float("nan")
    with pytest.raises(TakeError, match="frame 5"):
        Take.from_dict(obj)


# --- validation ---------------------------------------------------------------------------------


def test_a_well_formed_take_validates():
    take = make_take()
    validate(take)
    take.validate(names=ARKIT_NAMES + ("cheekPuff",))
    assert take.duration == pytest.approx(take.frames / take.fps)


def test_nan_reports_array_frame_and_column_name():
    take = make_take()
    take.exp[7, 2] = np.nan
    take.exp[9, 0] = np.nan
    expected = rf"exp has a non-finite value .* frame 7, column 2 \('{ARKIT_NAMES[2]}'\)"
    with pytest.raises(TakeError, match=expected):
        validate(take)


def test_inf_in_pose_reports_the_pose_column():
    take = make_take()
    take.pose[4, 1] = np.inf
    expected = r"pose has a non-finite value \(inf\) at frame 4, column 1 \('yaw'\)"
    with pytest.raises(TakeError, match=expected):
        validate(take)


def test_exp_width_must_match_the_names():
    take = make_take()
    take.exp = take.exp[:, :-1]
    expected = f"exp has {len(ARKIT_NAMES) - 1} columns but names lists {len(ARKIT_NAMES)}"
    with pytest.raises(TakeError, match=expected):
        validate(take)


def test_pose_must_have_six_columns():
    take = make_take()
    take.pose = take.pose[:, :5]
    with pytest.raises(TakeError, match="pose has 5 columns, expected 6"):
        validate(take)


def test_exp_and_pose_frame_counts_must_agree():
    take = make_take(frames=10)
    take.pose = take.pose[:8]
    with pytest.raises(TakeError, match="exp has 10 frames but pose has 8"):
        validate(take)


def test_zero_frames_are_rejected():
    take = make_take(frames=0)
    with pytest.raises(TakeError, match="zero frames"):
        validate(take)


@pytest.mark.parametrize("fps", [0.0, -25.0, 240.5, float("nan"), float("inf")])
def test_fps_outside_0_to_240_is_rejected(fps):
    take = make_take(fps=fps)
    with pytest.raises(TakeError, match=r"fps is .* expected a frame rate in \(0, 240\]"):
        validate(take)


def test_unknown_emotion_is_rejected_and_reference_is_accepted():
    validate(make_take(emotion=REFERENCE))
    with pytest.raises(TakeError, match="unknown emotion 'elated'"):
        validate(make_take(emotion="elated"))


def test_names_outside_the_given_face_model_are_listed():
    take = make_take(names=("jawOpen", "tongueWag", "mouthClose", "earWiggle"))
    with pytest.raises(TakeError, match="names not in the face model .*: tongueWag, earWiggle"):
        validate(take, names=ARKIT_NAMES)


def test_duplicate_names_are_rejected():
    take = make_take(names=("jawOpen", "mouthClose", "jawOpen"))
    with pytest.raises(TakeError, match="names repeat: jawOpen"):
        validate(take)


# --- files --------------------------------------------------------------------------------------


def test_malformed_json_reports_the_line(tmp_path):
    path = tmp_path / "takes.json"
    path.write_text('{"version": 1,\n "takes": [\n   {"take": 0,, "seed": 1}\n ]}\n')
    with pytest.raises(TakeError, match="not valid JSON: .* line 3, column"):
        load_takes(path)


def test_missing_takes_file_raises(tmp_path):
    with pytest.raises(TakeError, match="not found"):
        load_takes(tmp_path / "absent.json")


def test_a_bad_take_in_a_file_is_reported_with_its_index(tmp_path):
    good, bad = make_take(seed=0).to_dict(), make_take(seed=1).to_dict()
    del bad["pose"]
    (tmp_path / "takes.json").write_text(json.dumps({"version": 1, "takes": [good, bad]}))
    with pytest.raises(TakeError, match=r"take #1: .*missing key 'pose'"):
        load_takes(tmp_path / "takes.json")


def test_unknown_file_version_is_rejected(tmp_path):
    (tmp_path / "takes.json").write_text(json.dumps({"version": 2, "takes": []}))
    with pytest.raises(TakeError, match="version 2"):
        load_takes(tmp_path / "takes.json")


# --- resampling ---------------------------------------------------------------------------------


def test_resample_25_to_50_doubles_the_frames():
    take = make_take(frames=10, fps=25.0)
    doubled = resample(take, 50.0)
    assert doubled.fps == 50.0
    assert doubled.frames == 2 * take.frames
    np.testing.assert_allclose(doubled.exp[::2], take.exp, atol=1e-6)


def test_linear_ramp_stays_linear_and_clamps_at_the_last_frame():
    frames, fps, new_fps = 11, 25.0, 60.0
    rng = np.random.default_rng(5)
    slopes, offsets = rng.normal(size=len(ARKIT_NAMES)), rng.normal(size=len(ARKIT_NAMES))
    times = np.arange(frames) / fps
    take = make_take(frames=frames, fps=fps)
    take.exp = (offsets + np.outer(times, slopes)).astype(np.float32)
    resampled = resample(take, new_fps)
    new_times = np.minimum(np.arange(resampled.frames) / new_fps, times[-1])
    np.testing.assert_allclose(resampled.exp, offsets + np.outer(new_times, slopes), atol=1e-5)


def test_resample_there_and_back_returns_the_original():
    take = make_take(frames=13, fps=25.0)
    back = resample(resample(take, 50.0), 25.0)
    assert back.frames == take.frames
    np.testing.assert_allclose(back.exp, take.exp, atol=1e-6)
    np.testing.assert_allclose(back.pose, take.pose, atol=1e-6)


@pytest.mark.parametrize(
    ("frames", "fps", "new_fps"),
    [(10, 25.0, 50.0), (100, 25.0, 30.0), (7, 30.0, 24.0), (1, 25.0, 10.0), (3, 60.0, 1.0)],
)
def test_resampled_frame_count_is_round_of_t_times_rate_ratio_at_least_one(frames, fps, new_fps):
    resampled = resample(make_take(frames=frames, fps=fps), new_fps)
    assert resampled.frames == max(1, round(frames * new_fps / fps))
    assert resampled.pose.shape == (resampled.frames, 6)
    validate(resampled)


def test_resample_leaves_the_original_untouched():
    take = make_take(frames=9, fps=25.0)
    exp, pose = take.exp.copy(), take.pose.copy()
    resampled = resample(take, 30.0)
    resampled.exp[:] = 0.0
    assert take.fps == 25.0
    np.testing.assert_array_equal(take.exp, exp)
    np.testing.assert_array_equal(take.pose, pose)


def test_resample_to_an_invalid_rate_is_rejected():
    with pytest.raises(TakeError, match="fps is 0"):
        resample(make_take(), 0)


# --- SadTalker export ---------------------------------------------------------------------------


def test_sadtalker_export_puts_exp_angles_and_translations_in_their_columns():
    d = 64
    take = make_take(names=bfm_names(d), face_model="bfm-front@1")
    coeffs = to_sadtalker(take)
    assert coeffs.shape == (take.frames, d + 6)
    np.testing.assert_array_equal(coeffs[:, :d], take.exp)
    np.testing.assert_array_equal(coeffs[:, d : d + 3], take.pose[:, :3])
    np.testing.assert_array_equal(coeffs[:, d + 3 :], take.pose[:, 3:])


def test_sadtalker_mat_round_trips_through_the_bfm_reader(tmp_path):
    take = make_take(names=bfm_names(64), face_model="bfm-front@1", seed=7)
    path = tmp_path / "portrait##speech.mat"
    save_sadtalker_mat(path, take)
    np.testing.assert_array_equal(loadmat(path)["coeff_3dmm"], to_sadtalker(take))
    exp, pose = read_sadtalker(path)
    np.testing.assert_array_equal(exp, take.exp)
    np.testing.assert_array_equal(pose, take.pose)


@pytest.mark.parametrize("d", [52, 63])
def test_sadtalker_export_of_a_non_bfm_take_explains_the_layout(tmp_path, d):
    take = make_take(names=tuple(f"shape{k}" for k in range(d)))
    with pytest.raises(TakeError, match=rf"64 BFM expression PCA coefficients.*D={d}"):
        to_sadtalker(take)
    with pytest.raises(TakeError, match=f"D={d}"):
        save_sadtalker_mat(tmp_path / "x.mat", take)
    assert not (tmp_path / "x.mat").exists()
