"""The face model's head pose as rotations and translations of a Blender transform owner. No bpy.

The pose convention is core's (``core/face/pose.py``, the server side's owner): a pose row is
``(pitch, yaw, roll, tx, ty, tz)``, ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)``, and a model point maps
to Blender by ``C @ v`` with ``C`` = `MODEL_TO_BLENDER`. In Blender space the pose is the rotation
``C @ R @ C.T`` and the translation ``C @ t``.

An owner (a pose bone, or an object's delta transforms) turns about its own axes, so the rotation
is re-expressed in them through ``frame``: the owner's rotation axes written in the face's frame.
Rotations become values of any Blender rotation mode: an Euler order ``"ABC"`` is the matrix
``R_C @ R_B @ R_A`` (A applied first), a quaternion is ``(w, x, y, z)``, an axis-angle is
``(angle, x, y, z)``. Values are continuous over time, so keyframes interpolate the short way.
"""

import numpy as np

__all__ = [
    "MODEL_TO_BLENDER",
    "EULER_ORDERS",
    "ROTATION_MODES",
    "model_rotations",
    "model_translations",
    "relative_rotations",
    "local_translations",
    "to_rotation_values",
    "from_rotation_values",
    "rotation_path",
    "value_count",
    "pose_rows",
    "orthonormal",
    "HALF_TURN",
    "facing_turn",
    "LOOK_DEGREES",
    "eye_pose_rows",
    "look_curves",
]

# (3, 3) rotation taking model coordinates to Blender coordinates: (x, y, z) -> (x, -z, y).
MODEL_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

EULER_ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")
ROTATION_MODES = EULER_ORDERS + ("QUATERNION", "AXIS_ANGLE")

# Euler orders that are cyclic shifts of XYZ (even permutations of the axes).
_EVEN_ORDERS = ("XYZ", "YZX", "ZXY")
# Below this cos(middle angle), an Euler decomposition is in gimbal lock.
_GIMBAL_EPS = 1e-12
# Below this |sin(angle / 2)|, an axis-angle has angle 0 and takes `_REST_AXIS`.
_ZERO_ANGLE_EPS = 1e-12
# Blender's axis of a zero axis-angle rotation (its rest value is (0, 0, 1, 0)).
_REST_AXIS = np.array([0.0, 1.0, 0.0])


def _check_mode(mode: str) -> None:
    """Raise ValueError unless ``mode`` is a Blender rotation mode."""
    if mode not in ROTATION_MODES:
        raise ValueError(f"unknown rotation mode {mode!r}; expected one of {', '.join(ROTATION_MODES)}")


def rotation_path(mode: str) -> str:
    """The owner's data path holding rotations of ``mode``."""
    _check_mode(mode)
    if mode == "QUATERNION":
        return "rotation_quaternion"
    if mode == "AXIS_ANGLE":
        return "rotation_axis_angle"
    return "rotation_euler"


def value_count(mode: str) -> int:
    """How many numbers one rotation of ``mode`` has (the length of its `rotation_path`)."""
    _check_mode(mode)
    return 3 if mode in EULER_ORDERS else 4


def _axis_rotations(angles: np.ndarray, axis: int) -> np.ndarray:
    """Rotations by ``angles`` about coordinate axis ``axis`` (0 = X, 1 = Y, 2 = Z).

    Shapes: angles (T,) -> (T, 3, 3).
    """
    c, s = np.cos(angles), np.sin(angles)
    i, j = (axis + 1) % 3, (axis + 2) % 3
    mats = np.zeros(angles.shape + (3, 3))
    mats[:, axis, axis] = 1.0
    mats[:, i, i], mats[:, i, j] = c, -s
    mats[:, j, i], mats[:, j, j] = s, c
    return mats


def _euler_matrices(angles: np.ndarray, order: str) -> np.ndarray:
    """``R_C @ R_B @ R_A`` for Euler ``order`` "ABC"; ``angles[:, n]`` is the angle about axis n.

    Shapes: angles (T, 3) -> (T, 3, 3).
    """
    result = np.broadcast_to(np.eye(3), angles.shape[:1] + (3, 3))
    for letter in order:
        axis = "XYZ".index(letter)
        result = _axis_rotations(angles[:, axis], axis) @ result
    return result


def model_rotations(pose: np.ndarray) -> np.ndarray:
    """The pose's rotation in Blender space, ``C @ R @ C.T``.

    Shapes: pose (T, 6) -> (T, 3, 3).
    """
    pose = np.asarray(pose, dtype=np.float64)
    return MODEL_TO_BLENDER @ _euler_matrices(pose[:, :3], "XYZ") @ MODEL_TO_BLENDER.T


def model_translations(pose: np.ndarray) -> np.ndarray:
    """The pose's translation in Blender space, ``C @ t``.

    Shapes: pose (T, 6) -> (T, 3).
    """
    return np.asarray(pose, dtype=np.float64)[:, 3:] @ MODEL_TO_BLENDER.T


def relative_rotations(pose: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """The pose's rotation about the owner's own axes, ``frame.T @ (C @ R @ C.T) @ frame``.

    ``frame`` (orthonormal) holds the owner's rotation axes in the face's frame: for a pose bone its
    rest rotation in armature space, for an object's delta rotation the inverse of the object's
    rotation. With ``frame`` = I this is core's Blender rotation.
    Shapes: pose (T, 6), frame (3, 3) -> (T, 3, 3).
    """
    frame = np.asarray(frame, dtype=np.float64)
    return frame.T @ model_rotations(pose) @ frame


def local_translations(pose: np.ndarray, face_to_local: np.ndarray) -> np.ndarray:
    """The pose's translation in the owner's location space, ``face_to_local @ C @ t``.

    ``face_to_local`` is the caller's linear map from the face's frame (it may carry scale).
    Shapes: pose (T, 6), face_to_local (3, 3) -> (T, 3).
    """
    return model_translations(pose) @ np.asarray(face_to_local, dtype=np.float64).T


def _quaternions(mats: np.ndarray) -> np.ndarray:
    """Unit quaternions (w, x, y, z) of rotation matrices, each with an arbitrary sign.

    Built from the largest of 4w², 4x², 4y², 4z² (Shepperd's method), so it is exact near 180°.
    Shapes: mats (T, 3, 3) -> (T, 4).
    """
    m = mats
    trace = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    # Row n of each (4, 4) block is 4 * q[n] * q; its diagonal is 4 * q[n]².
    cands = np.stack([
        np.stack([1 + trace, m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]], -1),
        np.stack([m[:, 2, 1] - m[:, 1, 2], 1 + 2 * m[:, 0, 0] - trace, m[:, 0, 1] + m[:, 1, 0],
                  m[:, 0, 2] + m[:, 2, 0]], -1),
        np.stack([m[:, 0, 2] - m[:, 2, 0], m[:, 0, 1] + m[:, 1, 0], 1 + 2 * m[:, 1, 1] - trace,
                  m[:, 1, 2] + m[:, 2, 1]], -1),
        np.stack([m[:, 1, 0] - m[:, 0, 1], m[:, 0, 2] + m[:, 2, 0], m[:, 1, 2] + m[:, 2, 1],
                  1 + 2 * m[:, 2, 2] - trace], -1),
    ], axis=1)
    best = np.argmax(np.diagonal(cands, axis1=1, axis2=2), axis=1)
    quats = cands[np.arange(len(m)), best]
    return quats / np.linalg.norm(quats, axis=1, keepdims=True)


def _continuous_quaternions(quats: np.ndarray) -> np.ndarray:
    """``quats`` with signs flipped so each lies on the previous one's hemisphere, the first w >= 0.

    Shapes: quats (T, 4) -> (T, 4).
    """
    first = np.where(quats[:1, 0] < 0, -1.0, 1.0)
    steps = np.where(np.sum(quats[1:] * quats[:-1], axis=1) < 0, -1.0, 1.0)
    return quats * np.cumprod(np.concatenate([first, steps]))[:, None]


def _axis_angles(quats: np.ndarray) -> np.ndarray:
    """(angle, x, y, z) of quaternions, angle in [0, pi], axis `_REST_AXIS` when the angle is 0.

    Shapes: quats (T, 4) -> (T, 4).
    """
    quats = quats * np.where(quats[:, :1] < 0, -1.0, 1.0)
    sin_half = np.linalg.norm(quats[:, 1:], axis=1)
    zero = sin_half < _ZERO_ANGLE_EPS
    angle = np.where(zero, 0.0, 2 * np.arctan2(sin_half, quats[:, 0]))
    axis = np.where(zero[:, None], _REST_AXIS, quats[:, 1:] / np.where(zero, 1.0, sin_half)[:, None])
    return np.concatenate([angle[:, None], axis], axis=1)


def _euler_candidates(mats: np.ndarray, order: str) -> np.ndarray:
    """Both Euler solutions of each matrix for ``order``, each angle in (-pi, pi].

    The order's axes permute the matrix into an XYZ problem (``Rz @ Ry @ Rx``); an odd permutation
    mirrors it, which negates the angles. In gimbal lock both solutions are the same one, with the
    last angle 0.
    Shapes: mats (T, 3, 3) -> (T, 2, 3) (angles indexed by axis X, Y, Z).
    """
    axes = ["XYZ".index(letter) for letter in order]
    n = mats[:, axes][:, :, axes]
    sign = 1.0 if order in _EVEN_ORDERS else -1.0
    cos_mid = np.hypot(n[:, 0, 0], n[:, 1, 0])
    locked = cos_mid < _GIMBAL_EPS
    first = np.stack([
        np.where(locked, np.arctan2(-n[:, 1, 2], n[:, 1, 1]), np.arctan2(n[:, 2, 1], n[:, 2, 2])),
        np.arctan2(-n[:, 2, 0], cos_mid),
        np.where(locked, 0.0, np.arctan2(n[:, 1, 0], n[:, 0, 0])),
    ], -1)
    second = np.where(locked[:, None], first, np.stack([
        np.arctan2(-n[:, 2, 1], -n[:, 2, 2]),
        np.arctan2(-n[:, 2, 0], -cos_mid),
        np.arctan2(-n[:, 1, 0], -n[:, 0, 0]),
    ], -1))
    ordered = sign * np.stack([first, second], axis=1)  # angles in the order's own axis order
    by_axis = np.empty_like(ordered)
    by_axis[:, :, axes] = ordered
    return by_axis


def _wrapped(angles: np.ndarray) -> np.ndarray:
    """Angles wrapped into [-pi, pi). Shapes: (...) -> (...)."""
    return (angles + np.pi) % (2 * np.pi) - np.pi


def _continuous_eulers(cands: np.ndarray) -> np.ndarray:
    """One Euler solution per frame, continuous over time.

    The first frame takes the solution with the smaller sum of |angles| (as Blender's ``to_euler``);
    each later frame the one nearer the previous frame's, angles compared modulo 2 pi. The angles
    are then unwrapped so no step exceeds pi.
    Shapes: cands (T, 2, 3) -> (T, 3).
    """
    if len(cands) == 0:
        return cands[:, 0]
    choice = [int(np.sum(np.abs(cands[0, 1])) < np.sum(np.abs(cands[0, 0])))]
    # distance[t, new, previous]: how far solution ``new`` of frame t is from ``previous`` of t - 1.
    distance = np.abs(_wrapped(cands[1:, :, None] - cands[:-1, None, :])).sum(-1)
    for step in distance:
        choice.append(int(step[1, choice[-1]] < step[0, choice[-1]]))
    chosen = cands[np.arange(len(cands)), choice]
    return np.unwrap(chosen, axis=0)


def to_rotation_values(mats: np.ndarray, mode: str) -> np.ndarray:
    """Values of rotation ``mode`` for each rotation matrix, continuous over time.

    QUATERNION: (w, x, y, z), each on the previous one's hemisphere, the first with w >= 0.
    AXIS_ANGLE: (angle, x, y, z), angle in [0, pi], axis (0, 1, 0) for angle 0.
    Euler orders: (x, y, z) angles, unwrapped over time.
    Shapes: mats (T, 3, 3) -> (T, 4) for QUATERNION and AXIS_ANGLE, (T, 3) for Euler orders.
    """
    _check_mode(mode)
    mats = np.asarray(mats, dtype=np.float64)
    if mode == "QUATERNION":
        return _continuous_quaternions(_quaternions(mats))
    if mode == "AXIS_ANGLE":
        return _axis_angles(_quaternions(mats))
    return _continuous_eulers(_euler_candidates(mats, mode))


def _quaternion_matrices(quats: np.ndarray) -> np.ndarray:
    """Rotation matrices of quaternions (w, x, y, z), normalised first as Blender does.

    Shapes: quats (T, 4) -> (T, 3, 3).
    """
    w, x, y, z = (quats / np.linalg.norm(quats, axis=1, keepdims=True)).T
    return np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).reshape(-1, 3, 3)


def _axis_angle_matrices(values: np.ndarray) -> np.ndarray:
    """Rotation matrices of (angle, x, y, z); the axis is normalised, a zero axis is no rotation.

    Shapes: values (T, 4) -> (T, 3, 3).
    """
    angle, axis = values[:, 0], values[:, 1:]
    length = np.linalg.norm(axis, axis=1)
    zero = length < _ZERO_ANGLE_EPS
    half = np.where(zero, 0.0, angle / 2)
    unit = axis / np.where(zero, 1.0, length)[:, None]
    return _quaternion_matrices(np.concatenate([np.cos(half)[:, None], np.sin(half)[:, None] * unit], 1))


def from_rotation_values(values: np.ndarray, mode: str) -> np.ndarray:
    """Rotation matrices of values of rotation ``mode`` (the inverse of `to_rotation_values`).

    Shapes: values (T, 4) for QUATERNION and AXIS_ANGLE, (T, 3) for Euler orders -> (T, 3, 3).
    """
    _check_mode(mode)
    values = np.asarray(values, dtype=np.float64)
    if mode == "QUATERNION":
        return _quaternion_matrices(values)
    if mode == "AXIS_ANGLE":
        return _axis_angle_matrices(values)
    return _euler_matrices(values, mode)


def pose_rows(rotations: np.ndarray, translations: np.ndarray, frame: np.ndarray,
              face_to_local: np.ndarray) -> np.ndarray:
    """Pose rows back from an owner's rotations and translations (inverse of `relative_rotations`
    and `local_translations`).

    Angles as core's ``angles_from_matrix`` (yaw in [-pi/2, pi/2]) of
    ``C.T @ frame @ rotation @ frame.T @ C``; translation ``C.T @ inv(face_to_local) @ t``.
    Shapes: rotations (T, 3, 3), translations (T, 3), frame (3, 3), face_to_local (3, 3) -> (T, 6).
    """
    frame = np.asarray(frame, dtype=np.float64)
    world = frame @ np.asarray(rotations, dtype=np.float64) @ frame.T
    rot = MODEL_TO_BLENDER.T @ world @ MODEL_TO_BLENDER
    yaw = np.arcsin(np.clip(-rot[:, 2, 0], -1.0, 1.0))
    pitch = np.arctan2(rot[:, 2, 1], rot[:, 2, 2])
    roll = np.arctan2(rot[:, 1, 0], rot[:, 0, 0])
    face = np.linalg.solve(np.asarray(face_to_local, dtype=np.float64),
                           np.asarray(translations, dtype=np.float64).T).T
    return np.concatenate([np.stack([pitch, yaw, roll], -1), face @ MODEL_TO_BLENDER], axis=1)


def orthonormal(m: np.ndarray) -> np.ndarray:
    """The rotation part of a matrix that may carry scale or shear (polar decomposition, det +1).

    Shapes: m (..., 3, 3) -> (..., 3, 3).
    """
    u, _, vt = np.linalg.svd(np.asarray(m, dtype=np.float64))
    det = np.linalg.det(u @ vt)
    fix = np.ones(det.shape + (3,))
    fix[..., 2] = det
    return (u * fix[..., None, :]) @ vt


# (3, 3) a half turn about the vertical (Blender's Z): the face model's frame for a character that
# faces +Y.
HALF_TURN = np.diag([-1.0, -1.0, 1.0])


def facing_turn(face_offset: np.ndarray) -> np.ndarray:
    """The turn from the face model's frame (looking along -Y, Z up) to a character's whose face
    lies ``face_offset`` from the pivot of its head, in the axes the head pose is keyed in: `HALF_TURN`
    when the face is on the +Y side, more in front than to a side (a VRM 0.x character as Blender's
    glTF importer brings it in faces +Y), else none (the face model's own way, and any case in doubt).
    Shapes: face_offset (3,) -> (3, 3).
    """
    x, y, _ = np.asarray(face_offset, dtype=np.float64)
    return HALF_TURN.copy() if y > abs(x) else np.eye(3)


# Degrees an eye turns at eyeLook* = 1, (sideways, up or down): core's gaze convention (`core.gaze`).
LOOK_DEGREES = (30.0, 25.0)


def eye_pose_rows(exp: np.ndarray, names: list[str], side: str, turn: float = 1.0,
                  held: frozenset[str] = frozenset()) -> np.ndarray:
    """The turn of one eye (``side`` "Left" or "Right") that a take's eyeLook curves show, times
    ``turn``, as pose rows: yaw toward the character's left (its left eye looking out, its right
    eye in), pitch downward, as the head pose's; curves the take lacks, and the ``held`` ones
    (shown by shape keys), read 0. Shapes: exp (T, D) -> (T, 6)."""
    exp = np.asarray(exp, dtype=np.float64)

    def curve(direction: str) -> np.ndarray:
        name = f"eyeLook{direction}{side}"
        return exp[:, names.index(name)] if name in names and name not in held else np.zeros(len(exp))

    toward_left = curve("Out") - curve("In") if side == "Left" else curve("In") - curve("Out")
    rows = np.zeros((len(exp), 6))
    rows[:, 0] = turn * np.deg2rad(LOOK_DEGREES[1]) * (curve("Down") - curve("Up"))
    rows[:, 1] = turn * np.deg2rad(LOOK_DEGREES[0]) * toward_left
    return rows


def look_curves(rows: np.ndarray, side: str, turn: float = 1.0) -> dict[str, np.ndarray]:
    """The eyeLook curves of one eye's turn, inverse of `eye_pose_rows` with the same ``turn`` (> 0;
    of each pair, in and out, up and down, one is 0). Shapes: rows (T, 6) -> each (T,)."""
    rows = np.asarray(rows, dtype=np.float64) / turn
    toward_left = rows[:, 1] / np.deg2rad(LOOK_DEGREES[0])
    down = rows[:, 0] / np.deg2rad(LOOK_DEGREES[1])
    outward = toward_left if side == "Left" else -toward_left
    return {f"eyeLookOut{side}": np.maximum(outward, 0.0), f"eyeLookIn{side}": np.maximum(-outward, 0.0),
            f"eyeLookDown{side}": np.maximum(down, 0.0), f"eyeLookUp{side}": np.maximum(-down, 0.0)}
