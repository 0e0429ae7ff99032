"""Where the face mesh goes in each frame, and the triangles the portrait is warped by.

**Re-posing.** The fit says ``landmarks ≈ s * (R0 @ m(β₀) + t0)`` (`core.face.fit`). Taking the
landmarks back through that similarity gives the person's own shape in model space, which keeps
every detail of the photo's face. A frame with expression β and pose (angles, t) moves that shape
by the basis deltas ``m(β) - m(β₀)`` (the expression REPLACES the fitted one) and poses it by
``R(angles) @ R0`` and ``t0 + t`` (the pose is RELATIVE to the portrait's: pose 0 keeps the photo's
head pose, and the rotation turns the head about its own origin in camera axes). Projection is
orthographic, like the fit, so tz only changes which triangles are in front.

**Warp mesh.** The 468 FaceMesh vertices and their triangles, plus (a) one centre vertex in each of
the mesh's holes (the two eyes and the mouth, `HOLES`) with a fan of triangles, so the eyes and
mouth interior move with the lids and lips, and (b) a fixed ring around the face: the face oval
scaled by `RING_SCALE` about its centre, joined to the oval by a strip of triangles. The ring
never moves, so the warp fades to the identity there and everything outside it (background, hair,
shoulders) stays exactly as in the portrait.
"""

from dataclasses import dataclass

import numpy as np

from core.face.model import FaceModel
from core.face.pose import rotation_matrix
from core.render.portrait import PortraitFit

__all__ = ["RING_SCALE", "HOLES", "WarpMesh", "build_warp_mesh", "person_offset", "expression_shape", "head_rotation",
           "posed_landmarks", "down_direction"]

RING_SCALE = 1.6  # ring radius / face-oval radius about the oval's centre (jawOpen moves the chin ~3.5 cm)
HOLES = ("eye_left", "eye_right", "inner_lips")


@dataclass(frozen=True, eq=False)
class WarpMesh:
    """Triangles over the face and its surroundings, indexing ``points`` of `WarpMesh.points`.

    Shapes: back_triangles (B, 3) the ring strip then the hole fans, drawn first in this fixed
    order; face_triangles (F, 3); loops: the hole boundaries (L_i,) in mesh vertices; ring (K, 3)
    the fixed ring in frame (col, row, depth 0). Point order: V mesh vertices, one centre per hole,
    then the K ring points.
    """

    back_triangles: np.ndarray
    face_triangles: np.ndarray
    loops: tuple[np.ndarray, ...]
    ring: np.ndarray

    def points(self, vertices: np.ndarray) -> np.ndarray:
        """All warp points for the mesh vertices of one frame: the vertices, the hole centres (mean of
        each loop) and the ring. Shapes: vertices (V, 3) frame (col, row, depth) -> (P, 3)."""
        centres = np.stack([vertices[loop].mean(axis=0) for loop in self.loops])
        return np.concatenate([vertices, centres, self.ring])

    def draw_order(self, points: np.ndarray) -> np.ndarray:
        """The triangles back to front: the ring, the hole fans, then the face by mean depth.

        Shapes: points (P, 3) of `points` -> (M, 3).
        """
        depth = points[self.face_triangles, 2].mean(axis=1)
        return np.concatenate([self.back_triangles, self.face_triangles[np.argsort(depth, kind="stable")]])


def build_warp_mesh(face: FaceModel, source: np.ndarray) -> WarpMesh:
    """The warp mesh of a portrait whose mesh vertices sit at ``source``.

    Shapes: source (V, 3) frame (col, row, depth) -> WarpMesh.
    """
    n = face.n_vertices
    loops = tuple(np.asarray(face.regions[name]) for name in HOLES)
    oval = np.asarray(face.regions["face_oval"])
    centre = source[oval, :2].mean(axis=0)
    ring = centre + RING_SCALE * (source[oval, :2] - centre)
    first_ring = n + len(loops)
    return WarpMesh(
        back_triangles=np.concatenate([_strip(oval, first_ring + np.arange(len(oval)))]
                                      + [_fan(loop, n + i) for i, loop in enumerate(loops)]),
        face_triangles=np.asarray(face.faces),
        loops=loops,
        ring=np.column_stack([ring, np.zeros(len(ring))]),
    )


def _fan(loop: np.ndarray, centre: int) -> np.ndarray:
    """Triangles joining each edge of a closed loop to a centre point. Shapes: (L,) -> (L, 3)."""
    return np.column_stack([loop, np.roll(loop, -1), np.full(len(loop), centre)])


def _strip(inner: np.ndarray, outer: np.ndarray) -> np.ndarray:
    """Triangles between two closed loops of equal length, vertex i facing vertex i. Shapes: (L,), (L,) -> (2L, 3)."""
    inner_next, outer_next = np.roll(inner, -1), np.roll(outer, -1)
    return np.concatenate([np.column_stack([inner, inner_next, outer]),
                           np.column_stack([inner_next, outer_next, outer])])


def person_offset(portrait: PortraitFit, shape: np.ndarray) -> np.ndarray:
    """What sets this person's shape apart from the face model at the fitted expression: added to
    ``face.expression_mesh(exp)`` it gives `expression_shape`. ``shape`` is
    `PortraitFit.model_shape()`. Shapes: shape (V, 3) -> (V, 3) metres."""
    return shape - portrait.face.expression_mesh(portrait.fit.exp)


def expression_shape(portrait: PortraitFit, offset: np.ndarray, exp: np.ndarray) -> np.ndarray:
    """The person's model-space shape with expression ``exp`` in place of the fitted one: the
    model's mesh for ``exp`` plus the person's `person_offset`. Shapes: offset (V, 3), exp (D,) -> (V, 3) metres."""
    return portrait.face.expression_mesh(exp) + offset


def head_rotation(portrait: PortraitFit, pose: np.ndarray) -> np.ndarray:
    """The head's rotation in a frame: ``R(pose angles) @ R(fitted angles)``. Shapes: pose (6,) -> (3, 3)."""
    return rotation_matrix(np.asarray(pose[:3], np.float64)) @ rotation_matrix(portrait.fit.pose[:3])


def posed_landmarks(portrait: PortraitFit, moved: np.ndarray, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """A model-space shape posed relative to the portrait's pose, in landmark pixels: turned by
    ``rotation`` (`head_rotation`) and moved by the fitted translation plus ``translation`` (a pose's
    ``[3:]``).

    With `expression_shape` at the fitted expression and a zero pose the result equals the detected
    landmarks. Shapes: moved (V, 3), rotation (3, 3), translation (3,) -> (V, 3) in
    `core.face.landmarks` axes.
    """
    fitted = portrait.fit
    return fitted.scale * (moved @ rotation.T + fitted.pose[3:] + np.asarray(translation, np.float64))


def down_direction(rotation: np.ndarray) -> np.ndarray:
    """The face's own downward direction (model -Y) in the frame for a head ``rotation``
    (`head_rotation`), as a unit (col, row) vector. Shapes: rotation (3, 3) -> (2,)."""
    down = -rotation[:, 1]  # landmark axes: x right, y up
    direction = np.array([down[0], -down[1]])
    return direction / max(float(np.linalg.norm(direction)), 1e-9)
