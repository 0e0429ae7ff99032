"""The training-free mesh-warp renderer: the portrait warped by its fitted face mesh (design section 4).

Per portrait (once, cached): FaceMesh landmarks, the fit, the square face crop
(`core.render.portrait`). Per frame: the person's shape moved by the expression deltas and re-posed
(`core.render.geometry`), projected, the crop warped piecewise-affinely through one dense map
(`core.render.raster`), the mouth cavity painted when the lips part (`core.render.mouth`), and the
warped face blended back into the untouched crop with a feathered edge. Pixels outside the fixed
ring around the face are the crop's own, exactly.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from core.coeff.sampler import CancelFn, GenerationCancelled
from core.face.measure import lip_gap
from core.render.geometry import (
    WarpMesh,
    build_warp_mesh,
    down_direction,
    expression_shape,
    head_rotation,
    person_offset,
    posed_landmarks,
)
from core.formats.render_inputs import check_coefficients
from core.render.mouth import LipContours, cavity_opacity, paint_cavity
from core.render.portrait import PreparedPortrait, prepare_portrait
from core.render.raster import bounding_box, warp

__all__ = ["FEATHER", "WarpScene", "WarpRenderer", "render_frame"]

FEATHER = 1.0 / 128.0  # blur of the blend mask's edge, as a fraction of the frame size


@dataclass(frozen=True, eq=False)
class WarpScene:
    """Everything a frame needs that does not change from frame to frame.

    Shapes: offset (V, 3) the person's `core.render.geometry.person_offset`; source (P, 2) warp
    points in the crop.
    """

    prepared: PreparedPortrait
    mesh: WarpMesh
    offset: np.ndarray
    source: np.ndarray
    lips: LipContours
    portrait_gap_m: float

    @classmethod
    def of(cls, prepared: PreparedPortrait) -> "WarpScene":
        """The scene of a prepared portrait."""
        portrait = prepared.portrait
        mesh = build_warp_mesh(portrait.face, prepared.points)
        shape = portrait.model_shape()
        return cls(prepared=prepared, mesh=mesh, offset=person_offset(portrait, shape),
                   source=mesh.points(prepared.points)[:, :2], lips=LipContours.from_regions(portrait.face.regions),
                   portrait_gap_m=lip_gap(portrait.face, shape))


def render_frame(scene: WarpScene, exp: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """One frame: the portrait with expression ``exp`` and relative pose ``pose``.

    Shapes: exp (D,), pose (6,) -> (size, size, 3) uint8 RGB.
    """
    prepared, portrait = scene.prepared, scene.prepared.portrait
    moved = expression_shape(portrait, scene.offset, exp)
    rotation = head_rotation(portrait, pose)
    vertices = prepared.to_frame(posed_landmarks(portrait, moved, rotation, pose[3:]))
    points = scene.mesh.points(vertices)
    box = bounding_box(points[:, :2], prepared.size)
    frame = prepared.image.copy()
    if box[2] <= box[0] or box[3] <= box[1]:
        return frame
    warped, ids = warp(prepared.image, points[:, :2], scene.source, scene.mesh.draw_order(points), box)
    offset = np.array(box[:2], np.float64)
    paint_cavity(warped, vertices[:, :2] - offset, scene.lips, down_direction(rotation),
                 portrait.fit.scale * prepared.zoom,
                 cavity_opacity(lip_gap(portrait.face, moved), scene.portrait_gap_m))
    _blend(frame, warped, ids > 0, box)
    return frame


def _blend(frame: np.ndarray, warped: np.ndarray, covered: np.ndarray, box: tuple[int, int, int, int]) -> None:
    """Blend the warped box into the frame in place through the covered mask, feathered inward;
    uncovered pixels keep the frame's values exactly. Shapes: warped (h, w, 3), covered (h, w) bool."""
    left, top, right, bottom = box
    mask = covered.astype(np.float32)
    alpha = cv2.GaussianBlur(mask, (0, 0), max(FEATHER * frame.shape[0], 0.5)) * mask
    region = frame[top:bottom, left:right].astype(np.float32)
    blended = region + alpha[..., None] * (warped.astype(np.float32) - region)
    frame[top:bottom, left:right] = np.rint(blended).astype(np.uint8)


class WarpRenderer:
    """`core.render.Renderer` that warps the portrait by the face mesh; needs no weights."""

    name = "warp"

    def render(self, source_image: np.ndarray, exp: np.ndarray, pose: np.ndarray, *, size: int = 256,
               cancel: CancelFn | None = None) -> Iterator[np.ndarray]:
        """Frames of the portrait animated by the coefficients, one per row.

        The portrait is detected, fitted and cropped now (cached per image content and size), so
        `NoFaceError`, `MultipleFacesError` and `RenderInputError` raise here, before any frame.
        ``cancel()`` is polled before each frame; True raises `GenerationCancelled`.
        Shapes: source_image (H, W, 3) uint8 RGB, exp (T, D), pose (T, 6) -> T frames
        (size, size, 3) uint8 RGB.
        """
        prepared = prepare_portrait(source_image, size)
        exp, pose = check_coefficients(exp, pose, prepared.portrait.face.n_expressions)
        return _frames(WarpScene.of(prepared), exp, pose, cancel)


def _frames(scene: WarpScene, exp: np.ndarray, pose: np.ndarray, cancel: CancelFn | None) -> Iterator[np.ndarray]:
    """Render the rows one at a time, polling ``cancel`` before each. Shapes: exp (T, D), pose (T, 6)."""
    for t in range(len(exp)):
        if cancel is not None and cancel():
            raise GenerationCancelled(f"rendering cancelled at frame {t} of {len(exp)}")
        yield render_frame(scene, exp[t], pose[t])
