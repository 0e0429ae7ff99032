"""What every renderer receives (`core.render.Renderer.render`): the checks they share, and a
take's coefficients in a face model's order. Here rather than in `core.render` so that the
renderers of other packages (`core.vq.renderer`) use them without importing the registry."""

from collections.abc import Sequence

import numpy as np

from core.errors import FlowVQError
from core.formats.takes import Take

__all__ = ["MIN_SIZE", "MAX_SIZE", "RenderInputError", "check_image", "check_size", "check_coefficients",
           "take_coefficients"]

MIN_SIZE = 32
MAX_SIZE = 2048


class RenderInputError(FlowVQError):
    """A portrait, coefficient array or frame size that a renderer cannot use."""
    code = "render_input"


def check_image(image: np.ndarray) -> np.ndarray:
    """The image as a contiguous (H, W, 3) uint8 array; `RenderInputError` for anything else."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise RenderInputError(f"the source portrait must be an RGB uint8 image (H, W, 3), got "
                               f"{image.dtype} of shape {image.shape}")
    if min(image.shape[:2]) < MIN_SIZE:
        raise RenderInputError(f"the source portrait is {image.shape[1]}x{image.shape[0]} pixels; "
                               f"it needs at least {MIN_SIZE} on each side")
    return np.ascontiguousarray(image)


def check_size(size: int) -> int:
    """The frame size in pixels if it is an integer in [`MIN_SIZE`, `MAX_SIZE`]."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not MIN_SIZE <= size <= MAX_SIZE:
        raise RenderInputError(f"frame size must be an integer number of pixels in [{MIN_SIZE}, {MAX_SIZE}], "
                               f"got {size!r}")
    return int(size)


def check_coefficients(exp: np.ndarray, pose: np.ndarray, n_expressions: int) -> tuple[np.ndarray, np.ndarray]:
    """Expression and pose rows as float32 if their shapes match and every value is finite.

    Shapes: exp (T, D) with D = ``n_expressions``, pose (T, 6), T >= 1 -> the same, float32.
    """
    exp = np.asarray(exp, dtype=np.float32)
    pose = np.asarray(pose, dtype=np.float32)
    if exp.ndim != 2 or exp.shape[1] != n_expressions or len(exp) == 0:
        raise RenderInputError(f"exp must be (frames, {n_expressions}) expression coefficients with at least one "
                               f"frame, got shape {exp.shape}")
    if pose.shape != (len(exp), 6):
        raise RenderInputError(f"pose must be ({len(exp)}, 6): one (pitch, yaw, roll, tx, ty, tz) row per frame "
                               f"of exp, got shape {pose.shape}")
    if not (np.isfinite(exp).all() and np.isfinite(pose).all()):
        raise RenderInputError("exp and pose must hold finite numbers only (no NaN or infinity)")
    return exp, pose


def take_coefficients(take: Take, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """A take's expression columns reordered to a face model's ``names``, and its pose.

    Raises `RenderInputError` when the take lacks one of the names (a take of another face model).
    Shapes: take.exp (T, D') -> exp (T, len(names)) float32, pose (T, 6) float32.
    """
    missing = [name for name in names if name not in take.names]
    if missing:
        raise RenderInputError(f"take {take.take} ({take.face_model}) has no {', '.join(missing[:5])}"
                               f"{' ...' if len(missing) > 5 else ''}: the renderer animates the built-in "
                               "face model; generate the take with it")
    columns = [take.names.index(name) for name in names]
    return take.exp[:, columns], take.pose
