"""Estimating the built-in neutral face from FaceMesh landmarks on real frontal photos.

Each photo's 468 landmarks are made exactly left/right symmetric in a canonical frame (symmetry
plane x = 0, forehead and chin at equal depth, eye-centre distance 63 mm), the photos are averaged,
and the origin is put at the head pivot (see `canonical_frame`). Units are metres.
"""

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = [
    "EYE_CENTRE_DISTANCE_M",
    "mirror_permutation",
    "rigid_fit",
    "symmetrize",
    "canonical_frame",
    "estimate_neutral",
]

# Mean adult interpupillary distance (about 63 mm), used as the scale reference.
EYE_CENTRE_DISTANCE_M = 0.063

_REFLECT_X = np.diag([-1.0, 1.0, 1.0])


def mirror_permutation(points: np.ndarray, midline: np.ndarray) -> np.ndarray:
    """For each point, the index of its left/right mirror partner (itself on the midline).

    The symmetry plane is fitted to the `midline` points (least squares); the points are matched
    to their reflections about it by minimum total distance, which gives an involution.
    Shapes: points (V, 3), midline (M,) indices -> (V,) int.
    """
    centre = points[midline].mean(axis=0)
    normal = np.linalg.svd(points[midline] - centre)[2][2]  # least-variance direction of the plane
    centred = points - centre
    reflected = centred - 2.0 * np.outer(centred @ normal, normal)
    cost = np.linalg.norm(centred[:, None, :] - reflected[None, :, :], axis=-1)
    return linear_sum_assignment(cost)[1]


def rigid_fit(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation and translation minimising ``|R @ source + t - target|`` (Kabsch).

    Shapes: source, target (V, 3) -> R (3, 3), t (3,).
    """
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    u, _, vt = np.linalg.svd((source - mu_s).T @ (target - mu_t))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rot = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return rot, mu_t - rot @ mu_s


def symmetrize(points: np.ndarray, partner: np.ndarray) -> np.ndarray:
    """The points rotated so their best symmetry plane is x = 0, then exactly mirror-averaged.

    Shapes: points (V, 3), partner (V,) -> (V, 3).
    """
    mirrored = (points @ _REFLECT_X)[partner]
    rot, trans = rigid_fit(mirrored, points)
    half = 0.5 * (points + mirrored @ rot.T + trans)  # symmetric under x -> rot @ M @ x + trans
    reflection = rot @ _REFLECT_X
    values, vectors = np.linalg.eig(reflection)
    normal = np.real(vectors[:, np.argmin(np.real(values))])
    normal *= np.sign(normal[0]) or 1.0
    frame = _frame_with_x(normal)
    aligned = (half - half.mean(axis=0)) @ frame.T
    aligned[:, 0] -= aligned[partner == np.arange(len(partner)), 0].mean()
    return 0.5 * (aligned + (aligned @ _REFLECT_X)[partner])


def _frame_with_x(normal: np.ndarray) -> np.ndarray:
    """A rotation whose first row is `normal`, changing +Y and +Z as little as possible."""
    y = np.array([0.0, 1.0, 0.0]) - normal[1] * normal
    y /= np.linalg.norm(y)
    return np.stack([normal, y, np.cross(normal, y)])


def canonical_frame(points: np.ndarray, regions: dict[str, np.ndarray]) -> np.ndarray:
    """Symmetric points put in the model frame: upright, at scale, origin at the head pivot.

    Pitch: the forehead-top and chin vertices at equal depth. Scale: eye-loop centres 63 mm apart.
    Origin: midway between the two outermost side vertices (near the ears) — the head pivot that
    poses rotate about. Needs regions "forehead_top", "chin", "eye_left", "eye_right", "side_left",
    "side_right" (index arrays). Shapes: points (V, 3) -> (V, 3).
    """
    top = points[regions["forehead_top"]].mean(axis=0)
    chin = points[regions["chin"]].mean(axis=0)
    up = top - chin
    pitch = np.arctan2(up[2], up[1])  # rotate about X so the chin->top vector has no Z component
    c, s = np.cos(pitch), np.sin(pitch)
    rot_x = np.array([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]])
    upright = points @ rot_x.T
    eyes = upright[regions["eye_left"]].mean(axis=0) - upright[regions["eye_right"]].mean(axis=0)
    scaled = upright * (EYE_CENTRE_DISTANCE_M / np.linalg.norm(eyes))
    pivot = 0.5 * (scaled[regions["side_left"]].mean(axis=0) + scaled[regions["side_right"]].mean(axis=0))
    return scaled - pivot


def estimate_neutral(
    landmark_sets: list[np.ndarray], partner: np.ndarray, regions: dict[str, np.ndarray]
) -> np.ndarray:
    """Average of the photos' symmetric, canonical landmark shapes. Shapes: list of (V, 3) -> (V, 3)."""
    shapes = [canonical_frame(symmetrize(p, partner), regions) for p in landmark_sets]
    return np.mean(shapes, axis=0)
