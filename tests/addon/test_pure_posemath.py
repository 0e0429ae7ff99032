"""`addon/posemath.py` without Blender: agreement with core's pose convention, round trips in every
rotation mode, continuity over time, the inverse back to pose rows, and what ``frame`` means."""

import numpy as np
import pytest

from .pure import pure_module

posemath = pure_module("posemath")

MODES = posemath.ROTATION_MODES


def random_poses(rng: np.random.Generator, count: int) -> np.ndarray:
    """Pose rows with angles within ±0.6 rad and translations within ±0.05 m. Shapes: -> (count, 6)."""
    return np.concatenate([rng.uniform(-0.6, 0.6, (count, 3)), rng.uniform(-0.05, 0.05, (count, 3))], 1)


def random_rotations(rng: np.random.Generator, count: int) -> np.ndarray:
    """Uniformly random rotations (QR of Gaussian matrices, det +1). Shapes: -> (count, 3, 3)."""
    q, r = np.linalg.qr(rng.normal(size=(count, 3, 3)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    q[np.linalg.det(q) < 0] *= -1
    return q


def rodrigues(axes: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Rotations by ``angles`` about unit ``axes``, written out independently of the module.

    Shapes: axes (T, 3), angles (T,) -> (T, 3, 3).
    """
    k = np.zeros((len(axes), 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axes[:, 2], axes[:, 1], -axes[:, 0]
    k = k - k.transpose(0, 2, 1)
    s, c = np.sin(angles)[:, None, None], np.cos(angles)[:, None, None]
    return np.eye(3) + s * k + (1 - c) * k @ k


def near_half_turns(rng: np.random.Generator, count: int) -> np.ndarray:
    """Rotations within 1e-3 rad of 180° (and exactly 180°) about random axes. Shapes: -> (count, 3, 3)."""
    axes = rng.normal(size=(count, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.pi - rng.uniform(0, 1e-3, count)
    angles[0] = np.pi
    return rodrigues(axes, angles)


def test_model_to_blender_and_model_rotations_match_core():
    pose_module = pytest.importorskip("core.face.pose")
    poses = random_poses(np.random.default_rng(0), 50)
    c = pose_module.MODEL_TO_BLENDER
    np.testing.assert_array_equal(posemath.MODEL_TO_BLENDER, c)
    expected = c @ pose_module.rotation_matrix(poses[:, :3]) @ c.T
    np.testing.assert_allclose(posemath.model_rotations(poses), expected, atol=1e-12)


def test_unrotated_owner_gets_cores_blender_euler_and_location():
    pose_module = pytest.importorskip("core.face.pose")
    poses = random_poses(np.random.default_rng(1), 50)
    euler, location = pose_module.pose_to_blender(poses)
    values = posemath.to_rotation_values(posemath.relative_rotations(poses, np.eye(3)),
                                         pose_module.BLENDER_EULER_ORDER)
    np.testing.assert_allclose(values, euler, atol=1e-12)
    np.testing.assert_allclose(posemath.local_translations(poses, np.eye(3)), location, atol=1e-15)


def test_pose_rows_of_an_unrotated_owner_match_cores_pose_from_blender():
    pose_module = pytest.importorskip("core.face.pose")
    poses = random_poses(np.random.default_rng(2), 50)
    euler, location = pose_module.pose_to_blender(poses)
    rotations = posemath.from_rotation_values(euler, pose_module.BLENDER_EULER_ORDER)
    rows = posemath.pose_rows(rotations, location, np.eye(3), np.eye(3))
    np.testing.assert_allclose(rows, pose_module.pose_from_blender(euler, location), atol=1e-12)


def test_euler_values_rebuild_the_documented_axis_products():
    """"XZY" is Ry @ Rz @ Rx: X applied first (the order's letters, first to last)."""
    rng = np.random.default_rng(3)
    angles = rng.uniform(-1.0, 1.0, (20, 3))
    x, y, z = (rodrigues(np.tile(axis, (20, 1)), angles[:, n]) for n, axis in enumerate(np.eye(3)))
    np.testing.assert_allclose(posemath.from_rotation_values(angles, "XZY"), y @ z @ x, atol=1e-12)
    np.testing.assert_allclose(posemath.from_rotation_values(angles, "ZYX"), x @ y @ z, atol=1e-12)
    np.testing.assert_allclose(posemath.from_rotation_values(angles, "YXZ"), z @ x @ y, atol=1e-12)


def test_quaternion_and_axis_angle_values_mean_blenders_rotation():
    rng = np.random.default_rng(4)
    axes = rng.normal(size=(20, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = rng.uniform(0.01, np.pi - 0.01, 20)
    mats = rodrigues(axes, angles)
    axis_angle = posemath.to_rotation_values(mats, "AXIS_ANGLE")
    np.testing.assert_allclose(axis_angle[:, 0], angles, atol=1e-12)
    np.testing.assert_allclose(axis_angle[:, 1:], axes, atol=1e-10)
    quats = posemath.to_rotation_values(mats[:1], "QUATERNION")[0]
    expected = np.concatenate([[np.cos(angles[0] / 2)], np.sin(angles[0] / 2) * axes[0]])
    np.testing.assert_allclose(quats, expected, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_round_trip_returns_the_matrices(mode):
    rng = np.random.default_rng(5)
    mats = np.concatenate([random_rotations(rng, 200), near_half_turns(rng, 50), np.eye(3)[None]])
    values = posemath.to_rotation_values(mats, mode)
    assert values.shape == (len(mats), posemath.value_count(mode))
    np.testing.assert_allclose(posemath.from_rotation_values(values, mode), mats, atol=1e-9)


@pytest.mark.parametrize("mode", MODES)
def test_no_frames_give_no_values(mode):
    values = posemath.to_rotation_values(np.zeros((0, 3, 3)), mode)
    assert values.shape == (0, posemath.value_count(mode))
    assert posemath.from_rotation_values(values, mode).shape == (0, 3, 3)


@pytest.mark.parametrize("mode", MODES)
def test_each_frame_alone_round_trips(mode):
    """Frame by frame (no history), so the first-frame choices are exercised on every matrix."""
    rng = np.random.default_rng(6)
    for mat in np.concatenate([random_rotations(rng, 50), near_half_turns(rng, 10)]):
        values = posemath.to_rotation_values(mat[None], mode)
        np.testing.assert_allclose(posemath.from_rotation_values(values, mode)[0], mat, atol=1e-9)


def test_first_quaternion_has_non_negative_w_and_axis_angle_stays_in_range():
    mats = random_rotations(np.random.default_rng(7), 200)
    assert posemath.to_rotation_values(mats[:1], "QUATERNION")[0, 0] >= 0
    axis_angle = posemath.to_rotation_values(mats, "AXIS_ANGLE")
    assert np.all((axis_angle[:, 0] >= 0) & (axis_angle[:, 0] <= np.pi))
    np.testing.assert_allclose(np.linalg.norm(axis_angle[:, 1:], axis=1), 1.0, atol=1e-12)


def test_zero_axis_angle_has_blenders_rest_axis():
    np.testing.assert_array_equal(posemath.to_rotation_values(np.eye(3)[None], "AXIS_ANGLE"), [[0, 0, 1, 0]])
    np.testing.assert_allclose(posemath.from_rotation_values([[0.0, 0.0, 0.0, 0.0]], "AXIS_ANGLE"), [np.eye(3)])


def spin_path(axis: np.ndarray, tilt: float, frames: int, turns: float) -> np.ndarray:
    """A smooth path: ``turns`` full turns about ``axis`` after a fixed tilt. Shapes: -> (frames, 3, 3)."""
    angles = np.linspace(0, 2 * np.pi * turns, frames)
    spin = rodrigues(np.tile(axis / np.linalg.norm(axis), (frames, 1)), angles)
    return spin @ rodrigues(np.array([[0.0, 1.0, 0.0]]), np.array([tilt]))


@pytest.mark.parametrize("mode", posemath.EULER_ORDERS + ("QUATERNION",))
def test_values_stay_continuous_through_sign_flips_and_angle_wraps(mode):
    """1.5 turns cross w = 0 (a naive quaternion flips sign there) and every Euler ±pi seam."""
    frames = 600
    mats = spin_path(np.array([0.3, -0.5, 0.8]), 0.4, frames, 1.5)
    values = posemath.to_rotation_values(mats, mode)
    # Consecutive rotations are 2 pi * 1.5 / 599 ≈ 0.016 rad apart; values may move a few times that.
    assert np.max(np.abs(np.diff(values, axis=0))) < 0.1
    np.testing.assert_allclose(posemath.from_rotation_values(values, mode), mats, atol=1e-9)
    if mode == "QUATERNION":
        assert values[0, 0] >= 0 and np.any(values[:, 0] < -0.5)  # it really went past w = 0
    else:
        assert np.ptp(values, axis=0).max() > 2 * np.pi  # it really went past the ±pi seam


@pytest.mark.parametrize("order", posemath.EULER_ORDERS)
def test_euler_switches_solution_when_the_middle_angle_passes_a_quarter_turn(order):
    """A full turn about the order's middle axis takes its angle past ±pi/2, where the solution with
    the middle angle in [-pi/2, pi/2] jumps by pi in the other two angles; the path must not."""
    mats = spin_path(np.eye(3)["XYZ".index(order[1])], 0.0, 400, 1.0)
    values = posemath.to_rotation_values(mats, order)
    assert np.max(np.abs(np.diff(values, axis=0))) < 0.1
    np.testing.assert_allclose(posemath.from_rotation_values(values, order), mats, atol=1e-9)


def test_pose_rows_invert_relative_rotations_and_local_translations():
    rng = np.random.default_rng(8)
    poses = random_poses(rng, 100)
    frame = random_rotations(rng, 1)[0]
    face_to_local = random_rotations(rng, 1)[0] @ np.diag([2.0, 0.5, 3.0]) * 0.01
    rotations = posemath.relative_rotations(poses, frame)
    translations = posemath.local_translations(poses, face_to_local)
    assert not np.allclose(rotations, posemath.model_rotations(poses), atol=1e-3)  # frame matters
    np.testing.assert_allclose(posemath.pose_rows(rotations, translations, frame, face_to_local), poses,
                               atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_pose_rows_invert_through_rotation_values(mode):
    rng = np.random.default_rng(9)
    poses = random_poses(rng, 100)
    frame = random_rotations(rng, 1)[0]
    values = posemath.to_rotation_values(posemath.relative_rotations(poses, frame), mode)
    rotations = posemath.from_rotation_values(values, mode)
    rows = posemath.pose_rows(rotations, posemath.local_translations(poses, np.eye(3)), frame, np.eye(3))
    np.testing.assert_allclose(rows, poses, atol=1e-10)


def test_frame_expresses_the_same_world_motion_in_the_owners_axes():
    """A rotation R_rel about the owner's axes (columns of Q in the face's frame) turns the world
    by Q R_rel Q^T: the head's own motion. Checked on points, not just matrices."""
    rng = np.random.default_rng(10)
    poses = random_poses(rng, 30)
    q = random_rotations(rng, 1)[0]
    relative = posemath.relative_rotations(poses, q)
    world = posemath.model_rotations(poses)
    np.testing.assert_allclose(q @ relative @ q.T, world, atol=1e-12)
    points = rng.normal(size=(30, 3))
    owner_points = points @ q  # the points in the owner's axes: Q^T p
    moved = np.einsum("tij,tj->ti", relative, owner_points) @ q.T  # back to the face's frame
    np.testing.assert_allclose(moved, np.einsum("tij,tj->ti", world, points), atol=1e-12)


def test_orthonormal_strips_scale_and_shear():
    rng = np.random.default_rng(11)
    rot = random_rotations(rng, 10)
    scale_shear = np.triu(rng.uniform(0.1, 0.4, (10, 3, 3)), 1) + np.eye(3) * rng.uniform(0.5, 3, (10, 1, 3))
    # The rotation part of R @ S with S symmetric positive definite is R.
    spd = scale_shear @ scale_shear.transpose(0, 2, 1)
    np.testing.assert_allclose(posemath.orthonormal(rot @ spd), rot, atol=1e-12)
    result = posemath.orthonormal(rot @ scale_shear)
    np.testing.assert_allclose(result @ result.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (10, 3, 3)),
                               atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(result), 1.0, atol=1e-12)
    mirrored = posemath.orthonormal(rot @ np.diag([-2.0, 1.0, 0.5]))  # negative scale: still a rotation
    np.testing.assert_allclose(np.linalg.det(mirrored), 1.0, atol=1e-12)
    np.testing.assert_allclose(mirrored @ mirrored.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (10, 3, 3)),
                               atol=1e-12)


@pytest.mark.parametrize("mode, path, count", [
    ("QUATERNION", "rotation_quaternion", 4), ("AXIS_ANGLE", "rotation_axis_angle", 4),
    *[(order, "rotation_euler", 3) for order in ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")],
])
def test_rotation_path_and_value_count(mode, path, count):
    assert posemath.rotation_path(mode) == path and posemath.value_count(mode) == count


@pytest.mark.parametrize("call", [
    lambda: posemath.to_rotation_values(np.eye(3)[None], "XYX"),
    lambda: posemath.from_rotation_values(np.zeros((1, 3)), "XYX"),
    lambda: posemath.rotation_path("XYX"),
    lambda: posemath.value_count("XYX"),
])
def test_unknown_mode_is_a_value_error_naming_it(call):
    with pytest.raises(ValueError, match="'XYX'"):
        call()


@pytest.mark.parametrize("offset, turned", [
    ((0.0, -0.07, -0.05), False),  # the face model's way, and RPM, CC4, Mixamo characters
    ((0.0, 0.07, -0.05), True),    # a VRM 0.x character after Blender's glTF import
    ((0.01, 0.08, 0.02), True),
    ((0.09, 0.02, 0.0), False),    # mostly to the side: in doubt, the face model's way
    ((0.0, 0.0, 0.1), False),      # straight above
])
def test_a_face_on_the_plus_y_side_turns_the_frame_half_round(offset, turned):
    turn = posemath.facing_turn(np.array(offset))
    np.testing.assert_array_equal(turn, posemath.HALF_TURN if turned else np.eye(3))
    # Then a pitch moves the character's mouth (in front of and below the pivot, its own way) up
    # or down as it moves the face model's: a pitch that tips the model's face down tips its face
    # down (keyed in the character's own space, here a bone at rest in it).
    row = np.array([[0.3, 0.0, 0.0, 0.0, 0.0, 0.0]])
    model_mouth = np.array([0.0, -0.08, -0.05])
    model_rise = (posemath.model_rotations(row)[0] @ model_mouth - model_mouth)[2]
    mouth = turn @ model_mouth
    rise = (posemath.relative_rotations(row, turn)[0] @ mouth - mouth)[2]
    assert abs(model_rise) > 0.01 and rise == pytest.approx(model_rise)


def test_eye_turns_agree_with_cores_gaze_convention():
    """The eye bones turn as `core.gaze` reads the eyeLook curves: the same degrees at 1, the same
    signs (yaw toward the subject's left, pitch down), both ways."""
    from core.gaze import GAZE_CHANNELS, LOOK_DEGREES, look_angles, look_channels

    assert posemath.LOOK_DEGREES == LOOK_DEGREES
    channels = np.random.default_rng(3).uniform(0.0, 1.0, (40, len(GAZE_CHANNELS)))
    angles = look_angles(channels)  # (left yaw, left pitch, right yaw, right pitch) in degrees
    for index, side in enumerate(("Left", "Right")):
        rows = posemath.eye_pose_rows(channels, list(GAZE_CHANNELS), side)
        np.testing.assert_allclose(np.degrees(rows[:, [1, 0]]), angles[:, 2 * index:2 * index + 2], atol=1e-9)
        back = posemath.look_curves(rows, side)
        expected = look_channels(angles)
        for name, values in back.items():
            np.testing.assert_allclose(values, expected[:, GAZE_CHANNELS.index(name)], atol=1e-9, err_msg=name)
