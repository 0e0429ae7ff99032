"""Head pose: the one place that defines what the 6 pose numbers mean, in the model and in Blender.

Model space (the face model's vertices, and Deep3DFaceRecon's/BFM's convention): right-handed,
+X toward the subject's left (the viewer's right), +Y up, +Z out of the face toward the viewer;
units are metres.

A pose row is ``(pitch, yaw, roll, tx, ty, tz)``: angles in radians about model X, Y and Z, then a
translation in metres (Deep3DFaceRecon's angle+trans order). A posed vertex is
``R @ v + t`` with ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)`` (pitch applied first), as in
Deep3DFaceRecon's ``compute_rotation``.

Blender space: Z up, the face looking along -Y (toward a front-view camera), +X to the viewer's
right. A model point maps to Blender by ``C @ v`` with ``C`` the +90 degree rotation about X, so
``(x, y, z) -> (x, -z, y)``. The same pose in Blender is the object rotation
``C @ R @ C.T``, which is Blender's Euler mode ``'XZY'`` with angles ``(pitch, -roll, yaw)``, and the
object location ``C @ t``.
"""

import numpy as np

__all__ = [
    "MODEL_TO_BLENDER",
    "BLENDER_EULER_ORDER",
    "rotation_matrix",
    "apply_pose",
    "to_blender_vertices",
    "pose_to_blender",
    "pose_from_blender",
    "angles_from_matrix",
]

# (3, 3) rotation taking model coordinates to Blender coordinates: (x, y, z) -> (x, -z, y).
MODEL_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

# Blender Euler order whose matrix is Ry @ Rz @ Rx: X first, then Z, then Y.
BLENDER_EULER_ORDER = "XZY"


def rotation_matrix(angles: np.ndarray) -> np.ndarray:
    """``Rz(roll) @ Ry(yaw) @ Rx(pitch)`` for angles ``(..., 3)`` = (pitch, yaw, roll) in radians.

    Shapes: angles (..., 3) -> (..., 3, 3).
    """
    a = np.asarray(angles, dtype=np.float64)
    cx, cy, cz = np.cos(a[..., 0]), np.cos(a[..., 1]), np.cos(a[..., 2])
    sx, sy, sz = np.sin(a[..., 0]), np.sin(a[..., 1]), np.sin(a[..., 2])
    one, zero = np.ones_like(cx), np.zeros_like(cx)
    rx = np.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).reshape(a.shape[:-1] + (3, 3))
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(a.shape[:-1] + (3, 3))
    rz = np.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).reshape(a.shape[:-1] + (3, 3))
    return rz @ ry @ rx


def apply_pose(vertices: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Rotate then translate model-space vertices by a pose row.

    Shapes: vertices (..., V, 3), pose (..., 6) -> (..., V, 3).
    """
    pose = np.asarray(pose, dtype=np.float64)
    rot = rotation_matrix(pose[..., :3])  # (..., 3, 3)
    return np.einsum("...ij,...vj->...vi", rot, vertices) + pose[..., None, 3:]


def to_blender_vertices(vertices: np.ndarray) -> np.ndarray:
    """Model-space points to Blender space. Shapes: (..., 3) -> (..., 3)."""
    return np.asarray(vertices, dtype=np.float64) @ MODEL_TO_BLENDER.T


def pose_to_blender(pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A model pose as Blender object transforms.

    Returns ``(euler, location)``: Euler angles for rotation mode ``BLENDER_EULER_ORDER`` and the
    location, so that the object's world matrix times ``to_blender_vertices(v)`` equals
    ``to_blender_vertices(apply_pose(v, pose))``.
    Shapes: pose (..., 6) -> euler (..., 3), location (..., 3).
    """
    pose = np.asarray(pose, dtype=np.float64)
    pitch, yaw, roll = pose[..., 0], pose[..., 1], pose[..., 2]
    euler = np.stack([pitch, -roll, yaw], axis=-1)
    return euler, to_blender_vertices(pose[..., 3:])


def pose_from_blender(euler: np.ndarray, location: np.ndarray) -> np.ndarray:
    """Inverse of `pose_to_blender`. Shapes: euler (..., 3), location (..., 3) -> pose (..., 6)."""
    euler = np.asarray(euler, dtype=np.float64)
    trans = np.asarray(location, dtype=np.float64) @ MODEL_TO_BLENDER  # C.T @ loc, row-wise
    angles = np.stack([euler[..., 0], euler[..., 2], -euler[..., 1]], axis=-1)
    return np.concatenate([angles, trans], axis=-1)


def angles_from_matrix(rot: np.ndarray) -> np.ndarray:
    """(pitch, yaw, roll) of ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)``; yaw in [-pi/2, pi/2].

    Shapes: rot (..., 3, 3) -> (..., 3).
    """
    rot = np.asarray(rot, dtype=np.float64)
    yaw = np.arcsin(np.clip(-rot[..., 2, 0], -1.0, 1.0))
    pitch = np.arctan2(rot[..., 2, 1], rot[..., 2, 2])
    roll = np.arctan2(rot[..., 1, 0], rot[..., 0, 0])
    return np.stack([pitch, yaw, roll], axis=-1)
