"""`addon/posemath.py` against Blender's own mathutils, in every rotation mode: the values it writes
are the ones Blender reads back as the same rotation. mathutils computes in single precision."""

import numpy as np
import pytest

from .pure import pure_module

bpy = pytest.importorskip("bpy")
posemath = pure_module("posemath")

ATOL = 2e-5  # mathutils' float32


def random_rotations(rng: np.random.Generator, count: int) -> np.ndarray:
    """Uniformly random rotations (QR of Gaussian matrices, det +1). Shapes: -> (count, 3, 3)."""
    q, r = np.linalg.qr(rng.normal(size=(count, 3, 3)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    q[np.linalg.det(q) < 0] *= -1
    return q


@pytest.mark.parametrize("order", posemath.EULER_ORDERS)
def test_euler_values_match_to_euler(order):
    import mathutils

    for mat in random_rotations(np.random.default_rng(20), 100):
        values = posemath.to_rotation_values(mat[None], order)[0]
        np.testing.assert_allclose(values, mathutils.Matrix(mat.tolist()).to_euler(order), atol=ATOL)


@pytest.mark.parametrize("order", posemath.EULER_ORDERS)
def test_continuous_euler_values_match_compatible_to_euler(order):
    """Over a path of 1.5 turns, Blender's ``to_euler(order, previous)`` picks the same values."""
    import mathutils

    rng = np.random.default_rng(21)
    start = random_rotations(rng, 1)[0]
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    quats = [mathutils.Quaternion(axis.tolist(), angle) for angle in np.linspace(0, 3 * np.pi, 300)]
    mats = np.array([np.array(q.to_matrix()) for q in quats]) @ start
    values = posemath.to_rotation_values(mats, order)
    previous = mathutils.Matrix(mats[0].tolist()).to_euler(order)
    for mat, value in zip(mats, values):
        previous = mathutils.Matrix(mat.tolist()).to_euler(order, previous)
        np.testing.assert_allclose(value, previous, atol=1e-4)


@pytest.mark.parametrize("order", posemath.EULER_ORDERS)
def test_euler_matrices_match_euler_to_matrix(order):
    import mathutils

    values = np.random.default_rng(22).uniform(-4, 4, (100, 3))
    expected = [np.array(mathutils.Euler(v.tolist(), order).to_matrix()) for v in values]
    np.testing.assert_allclose(posemath.from_rotation_values(values, order), expected, atol=ATOL)


def test_quaternion_values_match_to_quaternion_up_to_sign():
    import mathutils

    mats = random_rotations(np.random.default_rng(23), 200)
    values = posemath.to_rotation_values(mats, "QUATERNION")
    expected = np.array([mathutils.Matrix(m.tolist()).to_quaternion() for m in mats])
    signs = np.sign(np.sum(values * expected, axis=1))[:, None]
    np.testing.assert_allclose(values * signs, expected, atol=ATOL)


def test_quaternion_matrices_match_quaternion_to_matrix():
    import mathutils

    values = np.random.default_rng(24).normal(size=(100, 4))
    values /= np.linalg.norm(values, axis=1, keepdims=True)
    expected = [np.array(mathutils.Quaternion(v.tolist()).to_matrix()) for v in values]
    np.testing.assert_allclose(posemath.from_rotation_values(values, "QUATERNION"), expected, atol=ATOL)


def test_axis_angle_values_match_to_axis_angle():
    import mathutils

    mats = random_rotations(np.random.default_rng(25), 200)
    values = posemath.to_rotation_values(mats, "AXIS_ANGLE")
    for mat, value in zip(mats, values):
        axis, angle = mathutils.Matrix(mat.tolist()).to_quaternion().to_axis_angle()
        np.testing.assert_allclose(value, [angle, *axis], atol=1e-4)


def test_axis_angle_matrices_match_blenders():
    import mathutils

    rng = np.random.default_rng(26)
    values = np.concatenate([rng.uniform(-4, 4, (100, 1)), rng.normal(size=(100, 3))], axis=1)
    expected = [np.array(mathutils.Matrix.Rotation(v[0], 3, mathutils.Vector(v[1:]).normalized()))
                for v in values]
    np.testing.assert_allclose(posemath.from_rotation_values(values, "AXIS_ANGLE"), expected, atol=ATOL)
