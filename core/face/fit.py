"""Fitting the face model to landmarks: similarity alignment + bounded linear least squares.

``landmarks ≈ scale * apply_pose(model.expression_mesh(exp), pose)``: the pose's rotation and
translation, and a scale that takes model metres to the landmarks' units (pixels for a photo).
Alignment uses the vertices that no expression moves much; the expression weights are then solved
within the model's bounds (ARKit weights in [0, 1]) with a small ridge term, and the two steps
alternate a few times. A fit may be limited to some expression channels (``channels``): the others
are held at 0 (or the nearest bound) and the landmarks are explained by the chosen ones alone.
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.optimize import lsq_linear

from core.errors import FlowVQError
from core.face.model import FaceModel
from core.face.pose import angles_from_matrix, apply_pose

__all__ = ["FitResult", "FitError", "fit", "similarity_fit"]

STABLE_MOTION_M = 0.0015  # vertices no expression moves further than this anchor the alignment
RIDGE = 1e-3  # ridge weight on the coefficients, relative to a 1 mm residual


class FitError(FlowVQError):
    """Landmarks that cannot be fitted (wrong count, NaN)."""
    code = "fit"


@dataclass(frozen=True)
class FitResult:
    """A fit: exp (D,), pose (6,) in the model convention, scale (model metres -> landmark units)
    and the rms landmark residual in metres."""

    exp: np.ndarray
    pose: np.ndarray
    scale: float
    rms_m: float


def similarity_fit(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Scale, rotation and translation minimising ``|s * R @ source + t - target|`` (Umeyama).

    Shapes: source, target (N, 3) -> s, R (3, 3), t (3,).
    """
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    src, tgt = source - mu_s, target - mu_t
    u, sing, vt = np.linalg.svd(tgt.T @ src)
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ d @ vt
    scale = float(np.trace(np.diag(sing) @ d) / (src**2).sum())
    return scale, rot, mu_t - scale * rot @ mu_s


@lru_cache(maxsize=8)
def _expression_solve(model: FaceModel) -> tuple[np.ndarray, np.ndarray]:
    """The expression step's least squares, reduced once per model.

    The step minimises ``|B exp - residual|^2 + ridge^2 |exp|^2`` within the bounds, B the basis as
    a (V*3, D) design. With ``[B; ridge I] = Q R`` that is ``|R exp - Q_data^T residual|^2`` plus a
    constant, Q_data the first V*3 rows of Q: the same minimiser from a (D, D) problem.
    Shapes: -> Q_data (V*3, D), R (D, D).
    """
    design = model.basis.reshape(model.n_expressions, -1).T  # (V*3, D)
    ridge = np.sqrt(RIDGE) * 1e-3 * np.eye(model.n_expressions)
    q, r = np.linalg.qr(np.vstack([design, ridge]))
    return q[:design.shape[0]], r


@lru_cache(maxsize=8)
def _stable_vertices(model: FaceModel) -> np.ndarray:
    """Boolean (V,): vertices no coefficient moves further than `STABLE_MOTION_M` within its range.

    Unbounded coefficients (BFM's PCA weights) are judged at ±3, three standard deviations; if too
    few vertices qualify, every vertex anchors the alignment.
    """
    reach = np.maximum(np.abs(model.lower), np.abs(model.upper)).clip(max=3.0)  # (D,)
    motion = np.linalg.norm(model.basis * reach[:, None, None], axis=2).max(axis=0)  # (V,)
    stable = motion < STABLE_MOTION_M
    return stable if stable.sum() >= 3 else np.ones_like(stable)


def _solved_channels(model: FaceModel, channels: np.ndarray | None) -> np.ndarray:
    """``channels`` checked against the model, or every channel. Shapes: -> (D,) bool."""
    if channels is None:
        return np.ones(model.n_expressions, bool)
    channels = np.asarray(channels)
    if channels.shape != (model.n_expressions,) or channels.dtype != bool or not channels.any():
        raise FitError(f"channels must mark at least one of the model's {model.n_expressions} expression "
                       f"channels as a boolean array, got shape {channels.shape} of {channels.dtype}")
    return channels


def fit(model: FaceModel, landmarks: np.ndarray, iterations: int = 6, channels: np.ndarray | None = None) -> FitResult:
    """Expression weights and head pose that best explain the landmarks.

    ``channels`` marks the expression channels to solve for (None: all); each other one stays at
    0 clipped to its bounds. The reduced problem of `_expression_solve` restricted to the chosen
    columns of R is exactly the full one with the others fixed at 0.
    Shapes: landmarks (V, 3) in the model's axes (see `core.face.landmarks`), channels (D,) bool -> FitResult.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != model.neutral.shape:
        raise FitError(f"expected {model.n_vertices} landmarks of 3 coordinates, got shape {landmarks.shape}")
    if not np.isfinite(landmarks).all():
        raise FitError("landmarks contain NaN or infinite values")
    solved = _solved_channels(model, channels)
    stable = _stable_vertices(model)
    q_data, r = _expression_solve(model)
    exp = np.clip(np.zeros(model.n_expressions), model.lower, model.upper)
    for _ in range(iterations):
        mesh = model.expression_mesh(exp)
        scale, rot, trans = similarity_fit(mesh[stable], landmarks[stable])
        in_model = ((landmarks - trans) @ rot) / scale  # (V, 3) landmarks in model space
        residual = (in_model - model.neutral).reshape(-1)
        target = q_data.T @ residual - r[:, ~solved] @ exp[~solved]
        exp[solved] = lsq_linear(r[:, solved], target, bounds=(model.lower[solved], model.upper[solved])).x
    mesh = model.expression_mesh(exp)
    scale, rot, trans = similarity_fit(mesh, landmarks)
    pose = np.concatenate([angles_from_matrix(rot), trans / scale])
    residual = scale * apply_pose(mesh, pose) - landmarks
    rms = float(np.sqrt((residual**2).sum(axis=1).mean()) / scale)
    return FitResult(exp=exp, pose=pose, scale=scale, rms_m=rms)
