"""The Basel Face Model as Deep3DFaceRecon ships it, and Deep3DFaceRecon / SadTalker coefficients.

This is the paper-faithful face model of design section 2, supplied by the user:

- ``BFM_model_front.mat`` (made by Deep3DFaceRecon's ``transferBFM09``) becomes a `FaceModel` whose
  64 expression coefficients are BFM expression PCA weights, named ``exp00`` .. ``exp63``.
- Deep3DFaceRecon's 257 coefficients per frame are laid out as `D3D_SLICES`
  (id | exp | tex | angle | gamma | trans).
- SadTalker's coefficient sequences are ``T x 70``: 64 expression, 3 angles, 3 translations.

Angles are (pitch, yaw, roll) in radians and translations follow them, which is already this
project's pose order (`core.face.pose`), so a pose row is ``concat(angle, trans)``. BFM coordinates
and Deep3DFaceRecon translations are in the file's native unit, decimetres (``transferBFM09``
divides the BFM's micrometres by 1e5).
"""

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike
from scipy.io import loadmat, savemat
from scipy.io.matlab import MatReadError

from core.errors import FlowVQError
from core.face.model import FaceModel

__all__ = [
    "BFMError",
    "BFM_NAME",
    "BFM_VERSION",
    "D3D_SLICES",
    "D3D_DIM",
    "BFM_EXP_DIM",
    "SADTALKER_DIM",
    "SADTALKER_CROP_DIM",
    "load_bfm",
    "split_d3d",
    "join_d3d",
    "read_d3d",
    "write_d3d",
    "d3d_to_exp_pose",
    "join_sadtalker",
    "split_sadtalker",
    "read_sadtalker",
    "write_sadtalker",
]

BFM_NAME = "bfm-front"
BFM_VERSION = "1"

# Deep3DFaceRecon's per-frame coefficient vector: column ranges of each part.
D3D_SLICES: dict[str, slice] = {
    "id": slice(0, 80),
    "exp": slice(80, 144),
    "tex": slice(144, 224),
    "angle": slice(224, 227),
    "gamma": slice(227, 254),
    "trans": slice(254, 257),
}
D3D_DIM = max(s.stop for s in D3D_SLICES.values())

# The BFM expression basis size, as the coefficient layout defines it (the only place it is named).
BFM_EXP_DIM = D3D_SLICES["exp"].stop - D3D_SLICES["exp"].start
_POSE_DIM = (D3D_SLICES["angle"].stop - D3D_SLICES["angle"].start) + (
    D3D_SLICES["trans"].stop - D3D_SLICES["trans"].start
)

# SadTalker: exp | angle | trans per frame; its preprocess file appends 3 crop parameters.
SADTALKER_DIM = BFM_EXP_DIM + _POSE_DIM
SADTALKER_CROP_DIM = 3

_N_KEYPOINTS = 68


class BFMError(FlowVQError):
    """A BFM model or coefficient file that is missing, unreadable or not in the expected layout."""
    code = "bfm"


def load_bfm(path: str | Path, unit_scale: float = 1.0) -> FaceModel:
    """Read Deep3DFaceRecon's ``BFM_model_front.mat`` as a `FaceModel` of 64 expression PCA weights.

    Uses ``meanshape`` (1, 3V), ``exBase`` (3V, 64), ``tri`` (F, 3) and ``keypoints`` (1, 68); the
    flat arrays are laid out x0, y0, z0, x1, ... and the index arrays are 1-based. The identity and
    texture bases, ``point_buf`` and the masks are not used. As in Deep3DFaceRecon (``recenter``),
    the neutral is the mean shape moved so its centroid is the origin.

    ``unit_scale`` multiplies the neutral and the basis: 1.0 keeps the file's decimetres (the unit
    Deep3DFaceRecon's translations are in), 0.1 gives metres.

    Coefficients are PCA weights, so ``lower``/``upper`` are -inf/+inf (unbounded). ``uv`` is a
    frontal (x, y) projection of the neutral scaled into [0, 1] without distortion, and
    ``regions["keypoints68"]`` holds the 68 landmark vertex indices (0-based).
    Shapes of the result: neutral (V, 3), faces (F, 3), uv (V, 2), basis (64, V, 3).
    """
    path = Path(path)
    if not (np.isfinite(unit_scale) and unit_scale > 0):
        raise BFMError(f"unit_scale must be a positive finite number, got {unit_scale}")
    mat = _load_mat(path, "BFM model file")
    flat_mean = _vector(_mat_array(mat, "meanshape", path, "(1, 3V)"), "meanshape", path, "(1, 3V)")
    if flat_mean.size == 0 or flat_mean.size % 3:
        raise BFMError(
            f"{path}: 'meanshape' has {flat_mean.size} values, expected 3 per vertex (1, 3V)"
        )
    n_vertices = flat_mean.size // 3
    ex_base = _mat_array(mat, "exBase", path, f"(3V, {BFM_EXP_DIM})")
    if ex_base.shape != (3 * n_vertices, BFM_EXP_DIM):
        raise BFMError(
            f"{path}: 'exBase' has shape {ex_base.shape}, expected (3V, {BFM_EXP_DIM}) = "
            f"({3 * n_vertices}, {BFM_EXP_DIM}) for the {n_vertices} vertices of 'meanshape'"
        )
    tri = _mat_array(mat, "tri", path, "(F, 3)")
    if tri.ndim != 2 or tri.shape[1] != 3 or tri.shape[0] == 0:
        raise BFMError(f"{path}: 'tri' has shape {tri.shape}, expected (F, 3) triangles")
    keypoints = _mat_array(mat, "keypoints", path, f"(1, {_N_KEYPOINTS})")
    keypoints = _vector(keypoints, "keypoints", path, f"(1, {_N_KEYPOINTS})")
    if keypoints.size != _N_KEYPOINTS:
        raise BFMError(
            f"{path}: 'keypoints' has {keypoints.size} indices, expected (1, {_N_KEYPOINTS})"
        )

    mean = flat_mean.astype(np.float64).reshape(n_vertices, 3)
    neutral = (mean - mean.mean(axis=0)) * unit_scale
    basis = ex_base.astype(np.float64).T.reshape(BFM_EXP_DIM, n_vertices, 3) * unit_scale
    return FaceModel(
        name=BFM_NAME,
        version=BFM_VERSION,
        neutral=neutral,
        faces=_zero_based(tri, "tri", path, n_vertices),
        uv=_frontal_uv(neutral, path),
        basis=basis,
        names=tuple(f"exp{k:02d}" for k in range(BFM_EXP_DIM)),
        lower=np.full(BFM_EXP_DIM, -np.inf),
        upper=np.full(BFM_EXP_DIM, np.inf),
        regions={"keypoints68": _zero_based(keypoints, "keypoints", path, n_vertices)},
    )


def split_d3d(coeffs: ArrayLike) -> dict[str, np.ndarray]:
    """Deep3DFaceRecon coefficients into their parts (views, not copies).

    Shapes: coeffs (..., 257) -> {"id": (..., 80), "exp": (..., 64), "tex": (..., 80),
    "angle": (..., 3), "gamma": (..., 27), "trans": (..., 3)}.
    """
    coeffs = np.asarray(coeffs)
    if coeffs.ndim == 0 or coeffs.shape[-1] != D3D_DIM:
        raise BFMError(
            f"Deep3DFaceRecon coefficients have shape {coeffs.shape}, expected (..., {D3D_DIM})"
        )
    return {name: coeffs[..., part] for name, part in D3D_SLICES.items()}


def join_d3d(parts: Mapping[str, ArrayLike]) -> np.ndarray:
    """Deep3DFaceRecon parts (keys of `D3D_SLICES`) into one float32 array; missing parts are zeros.

    All parts share the leading shape. Shapes: parts[name] (..., width of name) -> (..., 257).
    """
    unknown = sorted(set(parts) - set(D3D_SLICES))
    if unknown:
        raise BFMError(
            f"unknown Deep3DFaceRecon part(s) {', '.join(unknown)}; the parts are "
            f"{', '.join(D3D_SLICES)}"
        )
    if not parts:
        raise BFMError(f"no Deep3DFaceRecon parts given; pass some of {', '.join(D3D_SLICES)}")
    arrays = {name: np.asarray(value, dtype=np.float32) for name, value in parts.items()}
    lead = next(iter(arrays.values())).shape[:-1]
    out = np.zeros(lead + (D3D_DIM,), dtype=np.float32)
    for name, array in arrays.items():
        part = D3D_SLICES[name]
        expected = lead + (part.stop - part.start,)
        if array.shape != expected:
            raise BFMError(
                f"Deep3DFaceRecon part {name!r} has shape {array.shape}, expected {expected} "
                f"(columns {part.start}:{part.stop} of the {D3D_DIM})"
            )
        out[..., part] = array
    return out


def read_d3d(path: str | Path) -> np.ndarray:
    """Read Deep3DFaceRecon coefficients from ``.mat``, ``.npy`` or ``.txt``. Shape: (T, 257).

    A ``.mat`` is read from key ``coeff`` (Deep3DFaceRecon's test script), ``full_3dmm``
    (SadTalker's preprocess), or the six part keys id/exp/tex/angle/gamma/trans
    (Deep3DFaceRecon_pytorch). A single frame of shape (257,) is read as (1, 257). Result: float32.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".mat", ".npy", ".txt"):
        raise _unsupported_suffix(path)
    if suffix == ".mat":
        coeffs = _d3d_from_mat(_load_mat(path, "Deep3DFaceRecon coefficient file"), path)
    else:
        coeffs = _load_text_or_npy(path)
    coeffs = np.atleast_2d(coeffs)
    if coeffs.ndim != 2 or coeffs.shape[1] != D3D_DIM:
        raise BFMError(
            f"{path} holds coefficients of shape {coeffs.shape}, expected (T, {D3D_DIM}) in "
            f"Deep3DFaceRecon's layout ({', '.join(D3D_SLICES)})"
        )
    return coeffs.astype(np.float32)


def write_d3d(path: str | Path, coeffs: ArrayLike) -> None:
    """Write coefficients (T, 257) to ``.mat`` (key ``coeff``), ``.npy`` or ``.txt``."""
    path = Path(path)
    coeffs = np.asarray(coeffs, dtype=np.float32)
    if coeffs.ndim != 2 or coeffs.shape[1] != D3D_DIM:
        raise BFMError(f"coefficients have shape {coeffs.shape}, expected (T, {D3D_DIM})")
    suffix = path.suffix.lower()
    if suffix == ".mat":
        _save_mat(path, {"coeff": coeffs})
    elif suffix == ".npy":
        np.save(path, coeffs)
    elif suffix == ".txt":
        np.savetxt(path, coeffs)
    else:
        raise _unsupported_suffix(path)


def d3d_to_exp_pose(coeffs: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Expression and pose from Deep3DFaceRecon coefficients.

    The pose row is ``concat(angle, trans)``, the order of `core.face.pose`.
    Shapes: coeffs (..., 257) -> exp (..., 64), pose (..., 6).
    """
    parts = split_d3d(coeffs)
    return parts["exp"], np.concatenate([parts["angle"], parts["trans"]], axis=-1)


def join_sadtalker(exp: ArrayLike, pose: ArrayLike) -> np.ndarray:
    """SadTalker's layout exp | angle | trans. Shapes: exp (T, 64), pose (T, 6) -> (T, 70)."""
    exp = np.asarray(exp, dtype=np.float32)
    pose = np.asarray(pose, dtype=np.float32)
    if exp.ndim != 2 or exp.shape[1] != BFM_EXP_DIM:
        raise BFMError(f"SadTalker expression has shape {exp.shape}, expected (T, {BFM_EXP_DIM})")
    if pose.shape != (exp.shape[0], _POSE_DIM):
        raise BFMError(
            f"SadTalker pose has shape {pose.shape}, expected ({exp.shape[0]}, {_POSE_DIM}): "
            "one (pitch, yaw, roll, tx, ty, tz) row per expression row"
        )
    return np.concatenate([exp, pose], axis=1)


def split_sadtalker(coeffs: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """SadTalker coefficients into expression and pose.

    Width 70 is audio2coeff's output; width 73 is the first-frame file of SadTalker's preprocess,
    whose last 3 columns are crop parameters (scale and 2D shift of the crop), which are dropped.
    Shapes: coeffs (T, 70) or (T, 73) -> exp (T, 64) float32, pose (T, 6) float32.
    """
    coeffs = np.atleast_2d(np.asarray(coeffs, dtype=np.float32))
    widths = (SADTALKER_DIM, SADTALKER_DIM + SADTALKER_CROP_DIM)
    if coeffs.ndim != 2 or coeffs.shape[1] not in widths:
        raise BFMError(
            f"SadTalker coefficients have width {coeffs.shape[-1]} (shape {coeffs.shape}), "
            f"expected "
            f"{widths[0]} ({BFM_EXP_DIM} exp + 3 angle + 3 trans) or {widths[1]} "
            f"(the same plus {SADTALKER_CROP_DIM} crop parameters)"
        )
    return coeffs[:, :BFM_EXP_DIM], coeffs[:, BFM_EXP_DIM:SADTALKER_DIM]


def read_sadtalker(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a SadTalker ``.mat`` (key ``coeff_3dmm``); see `split_sadtalker`.

    Shapes: -> exp (T, 64), pose (T, 6).
    """
    path = Path(path)
    mat = _load_mat(path, "SadTalker coefficient file")
    coeffs = _mat_array(mat, "coeff_3dmm", path, f"(T, {SADTALKER_DIM})")
    try:
        return split_sadtalker(coeffs)
    except BFMError as exc:
        raise BFMError(f"{path}, key 'coeff_3dmm': {exc}") from exc


def write_sadtalker(path: str | Path, exp: ArrayLike, pose: ArrayLike) -> None:
    """Write a SadTalker ``.mat``, key ``coeff_3dmm`` (T, 70). Shapes: exp (T, 64), pose (T, 6)."""
    _save_mat(Path(path), {"coeff_3dmm": join_sadtalker(exp, pose)})


def _load_mat(path: Path, what: str) -> dict[str, np.ndarray]:
    """All arrays of a MATLAB (v5/v7) file, or `BFMError` if it is missing or unreadable."""
    if not path.is_file():
        raise BFMError(f"{what} not found: {path}")
    try:
        return loadmat(path)
    except NotImplementedError as exc:  # scipy's answer to MATLAB v7.3 (HDF5) files
        raise BFMError(
            f"{path} is a MATLAB v7.3 file; save it as a v7 (or older) .mat: {exc}"
        ) from exc
    except (MatReadError, ValueError, TypeError, OSError) as exc:
        raise BFMError(f"{path} is not a readable MATLAB .mat file: {exc}") from exc


def _mat_array(mat: Mapping[str, np.ndarray], key: str, path: Path, expected: str) -> np.ndarray:
    """The numeric array ``mat[key]``, else `BFMError` naming the key and its expected shape."""
    if key not in mat:
        found = ", ".join(k for k in mat if not k.startswith("__")) or "none"
        raise BFMError(
            f"{path} has no {key!r} array (expected shape {expected}); keys found: {found}"
        )
    array = np.asarray(mat[key])
    if not np.issubdtype(array.dtype, np.number):
        raise BFMError(
            f"{path}: {key!r} holds {array.dtype} data, expected numbers of shape {expected}"
        )
    return array


def _vector(array: np.ndarray, key: str, path: Path, expected: str) -> np.ndarray:
    """A row or column array as 1-D. Shapes: (1, N), (N, 1) or (N,) -> (N,)."""
    if array.ndim == 1 or (array.ndim == 2 and 1 in array.shape):
        return array.reshape(-1)
    raise BFMError(f"{path}: {key!r} has shape {array.shape}, expected {expected}")


def _zero_based(indices: np.ndarray, key: str, path: Path, n_vertices: int) -> np.ndarray:
    """1-based vertex indices (MATLAB) as 0-based int64, checked to lie in 1..n_vertices."""
    if not np.array_equal(indices, np.round(indices)):
        raise BFMError(f"{path}: {key!r} must hold whole-number vertex indices")
    indices = indices.astype(np.int64)
    outside = (indices < 1) | (indices > n_vertices)
    if outside.any():
        raise BFMError(
            f"{path}: {key!r} holds vertex index {indices[outside][0]}, outside 1..{n_vertices} "
            "(the file's indices are 1-based)"
        )
    return indices - 1


def _frontal_uv(neutral: np.ndarray, path: Path) -> np.ndarray:
    """Front view (x, y) of the mesh, scaled uniformly into [0, 1]. Shapes: (V, 3) -> (V, 2)."""
    xy = neutral[:, :2]
    low, high = xy.min(axis=0), xy.max(axis=0)
    extent = float((high - low).max())
    if extent <= 0:
        raise BFMError(f"{path}: 'meanshape' has no extent in x or y; it is not a face mesh")
    return 0.5 + (xy - (low + high) / 2) / extent


def _d3d_from_mat(mat: Mapping[str, np.ndarray], path: Path) -> np.ndarray:
    """The coefficients of a Deep3DFaceRecon or SadTalker ``.mat``. Shape: (T, 257) or (257,)."""
    for key in ("coeff", "full_3dmm"):
        if key in mat:
            return _mat_array(mat, key, path, f"(T, {D3D_DIM})")
    if all(name in mat for name in D3D_SLICES):
        parts = {
            name: np.atleast_2d(_mat_array(mat, name, path, "(T, width)")) for name in D3D_SLICES
        }
        try:
            return join_d3d(parts)
        except BFMError as exc:
            raise BFMError(f"{path}: {exc}") from exc
    found = ", ".join(k for k in mat if not k.startswith("__")) or "none"
    raise BFMError(
        f"{path} has no Deep3DFaceRecon coefficients: expected key 'coeff', 'full_3dmm', or all of "
        f"{', '.join(D3D_SLICES)}; keys found: {found}"
    )


def _load_text_or_npy(path: Path) -> np.ndarray:
    """A numeric array from a ``.npy`` or whitespace-separated ``.txt`` file."""
    if not path.is_file():
        raise BFMError(f"coefficient file not found: {path}")
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        return np.loadtxt(path, ndmin=2)
    except (ValueError, OSError) as exc:
        raise BFMError(f"{path} is not a readable numeric array file: {exc}") from exc


def _unsupported_suffix(path: Path) -> BFMError:
    """The error for a coefficient file that is not .mat, .npy or .txt."""
    return BFMError(
        f"{path}: unsupported coefficient file type {path.suffix!r}; use .mat, .npy or .txt"
    )


def _save_mat(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write a MATLAB v5 file at exactly ``path`` (scipy would otherwise append ``.mat``)."""
    with path.open("wb") as handle:
        savemat(handle, arrays)
