"""Piecewise-affine warping with one dense map: the destination mesh is rasterised into a triangle-id
image, each pixel's source position is its triangle's affine map applied to the pixel, and the
whole region is resampled by one `cv2.remap`. Much faster than one `cv2.warpAffine` per triangle,
and seamless: neighbouring triangles' affine maps agree on their shared edge.

Coordinates are frame (col, row) of pixel centres; a region of interest ``box = (left, top, right,
bottom)`` (right and bottom exclusive) limits the work to the pixels the mesh covers.
"""

import cv2
import numpy as np

__all__ = ["SUBPIXEL_BITS", "bounding_box", "triangle_ids", "affine_maps", "dense_map", "warp"]

SUBPIXEL_BITS = 4  # fixed-point fraction bits of the rasterised vertex positions
_DEGENERATE_AREA = 1e-6  # twice the area, in square pixels, under which a triangle is a point


def bounding_box(points: np.ndarray, size: int) -> tuple[int, int, int, int]:
    """The pixels whose centres the points span, clipped to a size x size frame.

    Shapes: points (P, 2) -> (left, top, right, bottom), right and bottom exclusive.
    """
    low = np.clip(np.floor(points.min(axis=0)).astype(int), 0, size)
    high = np.clip(np.ceil(points.max(axis=0)).astype(int) + 1, 0, size)
    return int(low[0]), int(low[1]), int(high[0]), int(high[1])


def triangle_ids(points: np.ndarray, triangles: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Which triangle covers each pixel of the box: 0 for none, k + 1 for ``triangles[k]``.

    Triangles are painted in order, so a later one covers an earlier one (painter's algorithm).
    Shapes: points (P, 2) frame (col, row), triangles (M, 3) -> (bottom - top, right - left) int32.
    """
    left, top, right, bottom = box
    ids = np.zeros((bottom - top, right - left), np.int32)
    fixed = np.round((points - (left, top)) * (1 << SUBPIXEL_BITS)).astype(np.int32)
    for k, corners in enumerate(fixed[triangles]):
        cv2.fillConvexPoly(ids, corners, k + 1, lineType=cv2.LINE_8, shift=SUBPIXEL_BITS)
    return ids


def affine_maps(destination: np.ndarray, source: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Per triangle, the affine map taking its destination corners to its source corners.

    A triangle of (near) zero destination area maps to its source centroid.
    Shapes: destination, source (P, 2), triangles (M, 3) -> (M, 2, 3), ``src = A @ (col, row, 1)``.
    """
    dst = np.concatenate([destination[triangles], np.ones(triangles.shape + (1,))], axis=2)  # (M, 3, 3)
    src = source[triangles]  # (M, 3, 2)
    degenerate = np.abs(np.linalg.det(dst)) < _DEGENERATE_AREA
    dst[degenerate] = np.eye(3)
    maps = np.linalg.solve(dst, src).transpose(0, 2, 1)  # rows: dst @ A.T = src
    maps[degenerate] = 0.0
    maps[degenerate, :, 2] = src[degenerate].mean(axis=1)
    return maps


def dense_map(ids: np.ndarray, maps: np.ndarray, box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Source (col, row) of every pixel of the box: its triangle's affine map, or itself where no
    triangle covers it. Shapes: ids (h, w), maps (M, 2, 3) -> map_x, map_y (h, w) float32."""
    left, top, right, bottom = box
    table = np.concatenate([np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]), maps]).reshape(-1, 6)
    coefficients = table.astype(np.float32)[ids]  # (h, w, 6)
    cols = np.arange(left, right, dtype=np.float32)[None, :]
    rows = np.arange(top, bottom, dtype=np.float32)[:, None]
    map_x = coefficients[..., 0] * cols + coefficients[..., 1] * rows + coefficients[..., 2]
    map_y = coefficients[..., 3] * cols + coefficients[..., 4] * rows + coefficients[..., 5]
    return map_x, map_y


def warp(image: np.ndarray, destination: np.ndarray, source: np.ndarray, triangles: np.ndarray,
         box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The image warped so that each source triangle lands on its destination triangle, inside the box.

    Returns the warped box and its triangle ids (0 where no triangle covers a pixel: there the
    warped pixel is the image's own). Shapes: image (H, W, 3) uint8, destination, source (P, 2),
    triangles (M, 3) -> (h, w, 3) uint8, (h, w) int32.
    """
    ids = triangle_ids(destination, triangles, box)
    map_x, map_y = dense_map(ids, affine_maps(destination, source, triangles), box)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE), ids
