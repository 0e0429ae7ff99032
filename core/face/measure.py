"""Geometric measures on face-model meshes, used by tests, the corpus and evaluation.

Vertices are (V, 3) in model axes (metres, +Y up); regions come from the face model.
"""

import numpy as np

from core.face.model import FaceModel

__all__ = ["lip_gap", "eye_aperture"]


def _vertical_gap(vertices: np.ndarray, upper: np.ndarray, lower: np.ndarray) -> float:
    """Largest height of the upper contour over the lower one, compared at the same x."""
    order = np.argsort(vertices[lower, 0])
    below = np.interp(vertices[upper, 0], vertices[lower[order], 0], vertices[lower[order], 1])
    return float((vertices[upper, 1] - below).max())


def lip_gap(face: FaceModel, vertices: np.ndarray) -> float:
    """Largest vertical opening between the inner lip contours, metres. Shapes: vertices (V, 3)."""
    return _vertical_gap(vertices, face.regions["inner_lip_upper"], face.regions["inner_lip_lower"])


def eye_aperture(face: FaceModel, vertices: np.ndarray, side: str) -> float:
    """Largest vertical lid gap of the ``side`` ("left"/"right") eye, metres. Shapes: vertices (V, 3)."""
    return _vertical_gap(vertices, face.regions[f"eye_{side}_upper"], face.regions[f"eye_{side}_lower"])
