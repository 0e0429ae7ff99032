"""Landmark detection, fitting and the head-pose convention (including Blender's axes)."""

from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import lsq_linear

from core.face.fit import RIDGE, FitError, _expression_solve, fit
from core.face.landmarks import LandmarkDetector, MultipleFacesError, NoFaceError, detect_landmarks
from core.face.pose import (
    BLENDER_EULER_ORDER,
    angles_from_matrix,
    apply_pose,
    pose_from_blender,
    pose_to_blender,
    rotation_matrix,
    to_blender_vertices,
)

# Round-trip tolerances, measured over 30 seeds with 0.3 mm landmark noise (worst seen in brackets):
# the fitted mesh is within 0.25 mm RMS of the true one (0.14 mm); the shapes that carry speech and
# emotion are each within 0.2 (0.17) -- near-collinear subtle shapes (eyeLookUp vs eyeWide) trade
# weight without changing the mesh, so they are judged by the mesh; angles within 0.005 rad.
NOISE_M, MESH_TOL_M, KEY_TOL, ANGLE_TOL = 0.0003, 0.00025, 0.2, 0.005
KEY_SHAPES = ("jawOpen", "mouthClose", "mouthSmileLeft", "mouthSmileRight", "eyeBlinkLeft", "eyeBlinkRight",
              "browInnerUp", "browDownLeft", "browDownRight", "mouthFunnel", "mouthPucker")


def _axis_rotation(axis: int, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    m = np.eye(3)
    m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
    return m


def test_rotation_is_roll_yaw_pitch_with_pitch_applied_first():
    pitch, yaw, roll = 0.3, -0.2, 0.1
    expected = _axis_rotation(2, roll) @ _axis_rotation(1, yaw) @ _axis_rotation(0, pitch)
    np.testing.assert_allclose(rotation_matrix(np.array([pitch, yaw, roll])), expected, atol=1e-12)


def test_positive_yaw_turns_the_nose_toward_the_subjects_left(face):
    nose = face.regions["nose_tip"][0]
    turned = apply_pose(face.neutral, np.array([0.0, 0.3, 0.0, 0.0, 0.0, 0.0]))
    assert turned[nose, 0] > face.neutral[nose, 0] + 0.01


def test_angles_from_matrix_inverts_rotation_matrix():
    angles = np.random.default_rng(1).uniform(-1.2, 1.2, (100, 3))
    np.testing.assert_allclose(angles_from_matrix(rotation_matrix(angles)), angles, atol=1e-9)


def test_blender_mapping_matches_blenders_own_euler_math():
    import bpy  # noqa: F401 - the Blender module (a dev dependency) provides mathutils
    import mathutils

    rng = np.random.default_rng(2)
    to_b = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])
    for pose in np.c_[rng.uniform(-0.8, 0.8, (20, 3)), rng.uniform(-0.1, 0.1, (20, 3))]:
        euler, location = pose_to_blender(pose)
        world = np.array(mathutils.Euler(euler.tolist(), BLENDER_EULER_ORDER).to_matrix())
        np.testing.assert_allclose(world, to_b @ rotation_matrix(pose[:3]) @ to_b.T, atol=1e-6)
        points = rng.normal(size=(5, 3)) * 0.1
        in_blender = to_blender_vertices(points) @ world.T + location
        np.testing.assert_allclose(in_blender, to_blender_vertices(apply_pose(points, pose)), atol=1e-6)
        np.testing.assert_allclose(pose_from_blender(euler, location), pose, atol=1e-12)


def test_model_axes_land_upright_and_facing_minus_y_in_blender(face):
    v = to_blender_vertices(face.neutral)
    top, chin, nose = (face.regions[k][0] for k in ("forehead_top", "chin", "nose_tip"))
    assert v[top, 2] > v[chin, 2] + 0.1  # up is +Z
    assert v[nose, 1] < v[:, 1].mean() - 0.03  # the nose points along -Y
    left_eye = v[face.regions["eye_left"]].mean(0)
    assert left_eye[0] > 0.02  # the subject's left is Blender's +X, the front view's right


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_fit_recovers_coefficients_and_pose_from_noisy_landmarks(face, seed):
    rng = np.random.default_rng(seed)
    exp = rng.uniform(0.0, 1.0, face.n_expressions) * (rng.uniform(size=face.n_expressions) < 0.3)
    pose = np.r_[rng.uniform(-0.3, 0.3, 3), rng.uniform(-0.02, 0.02, 3)]
    scale = 2500.0  # pixels per metre
    landmarks = scale * (apply_pose(face.expression_mesh(exp), pose) + rng.normal(0.0, NOISE_M, (face.n_vertices, 3)))
    result = fit(face, landmarks)
    mesh_error = np.linalg.norm(face.expression_mesh(result.exp) - face.expression_mesh(exp), axis=1)
    assert np.sqrt((mesh_error**2).mean()) < MESH_TOL_M
    for name in KEY_SHAPES:
        i = face.names.index(name)
        assert abs(result.exp[i] - exp[i]) < KEY_TOL, name
    np.testing.assert_allclose(result.pose[:3], pose[:3], atol=ANGLE_TOL)
    np.testing.assert_allclose(result.pose[3:], pose[3:], atol=1e-3)
    assert result.scale == pytest.approx(scale, rel=0.01)
    assert ((result.exp >= face.lower) & (result.exp <= face.upper)).all()


def test_fit_on_the_real_smiling_portrait_finds_a_smile_and_open_eyes(face, photo_landmarks):
    result = fit(face, photo_landmarks["astronaut"])
    w = dict(zip(face.names, result.exp))
    assert w["mouthSmileLeft"] > 0.4 and w["mouthSmileRight"] > 0.4
    assert w["eyeBlinkLeft"] < 0.2 and w["eyeBlinkRight"] < 0.2
    assert result.rms_m < 0.003
    assert abs(result.pose[1]) < 0.3  # a roughly frontal photo


def test_the_expression_step_has_the_minimiser_of_the_full_bounded_least_squares(face):
    """`fit` solves each expression step on the (D, D) reduction of `_expression_solve`; it must
    land where the stacked (V*3 + D, D) problem with the ridge rows does, bounds active included."""
    rng = np.random.default_rng(0)
    d = face.n_expressions
    true = rng.uniform(-0.3, 1.3, d) * (rng.random(d) < 0.4)  # some weights past the bounds
    residual = (np.einsum("d,dvk->vk", true, face.basis) + rng.normal(0.0, 3e-4, face.neutral.shape)).reshape(-1)
    design = np.vstack([face.basis.reshape(d, -1).T, np.sqrt(RIDGE) * 1e-3 * np.eye(d)])
    full = lsq_linear(design, np.concatenate([residual, np.zeros(d)]), bounds=(face.lower, face.upper)).x
    q_data, r = _expression_solve(face)
    reduced = lsq_linear(r, q_data.T @ residual, bounds=(face.lower, face.upper)).x
    assert ((full <= face.lower + 1e-9) | (full >= face.upper - 1e-9)).sum() >= 3
    np.testing.assert_allclose(reduced, full, atol=1e-6)


def test_a_fit_on_some_channels_holds_the_others_at_zero_and_explains_the_face_with_the_chosen(face):
    rng = np.random.default_rng(5)
    mouth = np.isin(face.names, ("jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthSmileLeft",
                                 "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight"))
    exp = np.where(mouth, rng.uniform(0.0, 0.7, face.n_expressions), 0.0)
    pose = np.array([0.1, -0.2, 0.05, 0.01, 0.0, -0.01])
    landmarks = 2500.0 * (apply_pose(face.expression_mesh(exp), pose) + rng.normal(0.0, NOISE_M, face.neutral.shape))
    chosen = fit(face, landmarks, channels=mouth)
    assert (chosen.exp[~mouth] == 0.0).all()
    mesh_error = np.linalg.norm(face.expression_mesh(chosen.exp) - face.expression_mesh(exp), axis=1)
    assert np.sqrt((mesh_error**2).mean()) < MESH_TOL_M
    np.testing.assert_allclose(chosen.exp[mouth], exp[mouth], atol=KEY_TOL)
    np.testing.assert_allclose(chosen.pose[:3], pose[:3], atol=ANGLE_TOL)
    # A shape outside the chosen channels cannot be explained by them: the fit leaves it unexplained.
    rolled = exp + np.isin(face.names, ("mouthRollUpper",))
    landmarks = 2500.0 * apply_pose(face.expression_mesh(rolled), pose)
    assert fit(face, landmarks, channels=mouth).rms_m > 2 * fit(face, landmarks).rms_m


def test_a_fit_refuses_a_channel_choice_that_is_not_one_flag_per_channel(face):
    landmarks = face.neutral * 2500.0
    for channels in (np.ones(3, bool), np.ones(face.n_expressions), np.zeros(face.n_expressions, bool)):
        with pytest.raises(FitError, match="channels must mark"):
            fit(face, landmarks, channels=channels)


def test_one_detector_for_a_videos_frames_finds_what_each_frame_alone_gives():
    import av

    with av.open(str(Path(__file__).parents[1] / "data" / "real" / "grid_lbax4n.mpg")) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame, _ in zip(container.decode(video=0), range(4))]
    with LandmarkDetector() as detector:
        together = [detector.detect(frame) for frame in frames]
    for frame, landmarks in zip(frames, together):
        np.testing.assert_array_equal(landmarks, detect_landmarks(frame))


def test_fit_rejects_wrong_landmark_count_and_nan(face):
    with pytest.raises(FitError, match="468"):
        fit(face, np.zeros((10, 3)))
    bad = face.neutral.copy()
    bad[5, 1] = np.nan
    with pytest.raises(FitError, match="NaN"):
        fit(face, bad)


def test_landmarks_on_a_photo_lie_inside_the_image_in_model_axes(photos, photo_landmarks):
    h, w = photos["astronaut"].shape[:2]
    lm = photo_landmarks["astronaut"]
    assert lm.shape == (468, 3)
    assert (lm[:, 0] >= 0).all() and (lm[:, 0] <= w).all() and (lm[:, 1] >= 0).all() and (lm[:, 1] <= h).all()
    assert lm[263, 0] > lm[33, 0]  # the subject's left eye corner is on the image's right (+X)
    assert lm[10, 1] > lm[152, 1]  # forehead above chin (+Y up)
    assert lm[1, 2] > lm[234, 2]  # nose tip nearer the camera than the face's side (+Z toward viewer)


def test_detection_refuses_no_face_and_two_faces(photos):
    with pytest.raises(NoFaceError, match="no face"):
        detect_landmarks(np.full((256, 256, 3), 127, dtype=np.uint8))
    portrait = photos["grace_hopper"]
    with pytest.raises(MultipleFacesError, match="2 faces"):
        detect_landmarks(np.concatenate([portrait, portrait], axis=1))
