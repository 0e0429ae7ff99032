"""The mouth cavity: when the lips part further than on the portrait, the inner-lip polygon is filled
with a dark mouth, upper teeth below the upper lip and a little of the lower teeth, softly shaded.

The cavity's opacity ramps from 0 to 1 as the lip gap (`core.face.measure.lip_gap`, in model
metres) grows `OPEN_RAMP_M` beyond the portrait's own gap, so a portrait whose mouth is already
open keeps its real teeth until the lips part further.
"""

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["MOUTH_RGB", "TONGUE_RGB", "UPPER_TEETH_RGB", "LOWER_TEETH_RGB", "OPEN_RAMP_M", "TEETH_M", "LipContours",
           "cavity_opacity", "paint_cavity"]

MOUTH_RGB = (46, 12, 16)
TONGUE_RGB = (150, 62, 66)
UPPER_TEETH_RGB = (232, 226, 212)
LOWER_TEETH_RGB = (176, 166, 152)
OPEN_RAMP_M = 0.004  # extra lip gap over which the cavity fades in
TEETH_M = 0.006  # the most upper tooth that shows, metres
_UPPER_SHARE, _LOWER_SHARE = 0.3, 0.08  # the most of the gap each row of teeth fills
_TONGUE_FROM = 0.55  # the tongue shows from this fraction of the gap down to the lower lip
_SHADE_SIGMA = 0.03  # blur of the cavity layer, as a fraction of the gap
_FIXED_BITS = 4  # fraction bits of the fixed-point polygon corners


@dataclass(frozen=True)
class LipContours:
    """The inner lip loop and its two halves, corner to corner, as mesh vertex indices.

    Shapes: loop (L,) closed, in walking order; upper, lower (n + 2,) from one corner to the other.
    """

    loop: np.ndarray
    upper: np.ndarray
    lower: np.ndarray

    @classmethod
    def from_regions(cls, regions: dict[str, np.ndarray]) -> "LipContours":
        """From the face model's ``inner_lips``, ``inner_lip_upper/lower`` and ``inner_lip_corners``."""
        first, last = regions["inner_lip_corners"]
        return cls(loop=np.asarray(regions["inner_lips"]),
                   upper=np.concatenate([[first], regions["inner_lip_upper"], [last]]),
                   lower=np.concatenate([[first], regions["inner_lip_lower"], [last]]))


def cavity_opacity(gap_m: float, portrait_gap_m: float) -> float:
    """How much of the cavity shows, in [0, 1], for a lip gap against the portrait's, both metres."""
    return float(np.clip((gap_m - portrait_gap_m) / OPEN_RAMP_M, 0.0, 1.0))


def paint_cavity(image: np.ndarray, points: np.ndarray, lips: LipContours, down: np.ndarray,
                 pixels_per_m: float, opacity: float) -> None:
    """Paint the mouth cavity into ``image`` in place, inside the inner-lip polygon at ``points``.

    ``down`` is the face's downward unit direction in the image; ``pixels_per_m`` the face's scale.
    Shapes: image (H, W, 3) uint8, points (V, 2) image (col, row), down (2,).
    """
    if opacity <= 0.0:
        return
    polygon = points[lips.loop]
    gap = _gap_pixels(points, lips, down)
    left, top = np.floor(polygon.min(axis=0)).astype(int) - 2
    right, bottom = np.ceil(polygon.max(axis=0)).astype(int) + 3
    left, top = max(left, 0), max(top, 0)
    right, bottom = min(right, image.shape[1]), min(bottom, image.shape[0])
    if right <= left or bottom <= top or gap < 0.5:
        return
    offset = np.array([left, top], np.float64)
    layer = _cavity_layer((bottom - top, right - left), points - offset, lips, down,
                          min(_UPPER_SHARE * gap, TEETH_M * pixels_per_m), _LOWER_SHARE * gap)
    layer = cv2.GaussianBlur(layer, (0, 0), max(_SHADE_SIGMA * gap, 0.5))
    mask = _polygon_mask((bottom - top, right - left), polygon - offset) * opacity
    box = image[top:bottom, left:right].astype(np.float32)
    image[top:bottom, left:right] = np.rint(box + mask[..., None] * (layer - box)).astype(np.uint8)


def _gap_pixels(points: np.ndarray, lips: LipContours, down: np.ndarray) -> float:
    """The widest opening between the lip halves along ``down``, in pixels. Shapes: points (V, 2)."""
    upper = points[lips.upper[1:-1]] @ down
    lower = points[lips.lower[1:-1]] @ down
    return float(lower.max() - upper.min())


def _cavity_layer(shape: tuple[int, int], points: np.ndarray, lips: LipContours, down: np.ndarray,
                  upper_teeth: float, lower_teeth: float) -> np.ndarray:
    """Dark mouth shading to the tongue's colour toward the lower lip, with rows of teeth hanging
    ``upper_teeth`` pixels below the upper lip and rising ``lower_teeth`` above the lower lip.
    Shapes: points (V, 2) box (col, row) -> (h, w, 3) float32."""
    rows, cols = np.indices(shape, dtype=np.float32)
    along = cols * np.float32(down[0]) + rows * np.float32(down[1])  # (h, w) distance along down
    top = float((points[lips.upper] @ down).min())
    bottom = float((points[lips.lower] @ down).max())
    tongue = np.clip((along - top) / max(bottom - top, 1e-6) - _TONGUE_FROM, 0.0, 1.0 - _TONGUE_FROM)
    tongue = (tongue / (1.0 - _TONGUE_FROM))[..., None]
    layer = (np.float32(MOUTH_RGB) + tongue * (np.float32(TONGUE_RGB) - np.float32(MOUTH_RGB))).astype(np.float32)
    for contour, depth, rgb in ((lips.upper, upper_teeth, UPPER_TEETH_RGB), (lips.lower, -lower_teeth, LOWER_TEETH_RGB)):
        edge = points[contour[1:-1]]  # teeth stop short of the mouth corners
        band = np.concatenate([edge, edge[::-1] + depth * down])
        cv2.fillPoly(layer, [_fixed(band)], rgb, lineType=cv2.LINE_AA, shift=_FIXED_BITS)
    return layer


def _fixed(points: np.ndarray) -> np.ndarray:
    """Points as OpenCV fixed-point int32 with `_FIXED_BITS` fraction bits. Shapes: (N, 2) -> (N, 2)."""
    return np.round(points * (1 << _FIXED_BITS)).astype(np.int32)


def _polygon_mask(shape: tuple[int, int], polygon: np.ndarray) -> np.ndarray:
    """An anti-aliased filled polygon as coverage in [0, 1]. Shapes: polygon (L, 2) -> (h, w) float32."""
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [_fixed(polygon)], 255, lineType=cv2.LINE_AA, shift=_FIXED_BITS)
    return mask.astype(np.float32) / 255.0
