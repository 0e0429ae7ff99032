"""The built-in expression rig: the 52 ARKit blendshapes, authored from region definitions.

Each shape is a displacement field (V, 3) in metres at weight 1.0, built from three primitives:
moving a set of seed vertices with a smooth geodesic falloff (`_move`), closing or shifting the
eyelids along their contours (`_lid_shape`), and rotating the jaw about a hinge (`_jaw_weight`).
Shapes are authored for the subject's left side (+X) and the right side is their exact mirror image;
midline shapes are symmetrised. "Left" and "Right" mean the subject's own sides, as in ARKit.

The mesh has no eyeballs, teeth or tongue: the eyeLook* shapes move the lids the way lids follow
the gaze, and tongueOut parts the lips and pushes the lower lip forward.
"""

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from core.face.regions import falloff, geodesic_from
from core.face.topology import vertex_adjacency

__all__ = ["ARKIT_NAMES", "SHAPE_AREAS", "RigContext", "author_basis", "JAW_OPEN_ANGLE", "LIP_CHANNELS",
           "STYLE_PREFIXES"]

ARKIT_NAMES: tuple[str, ...] = (
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft",
    "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
    "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight",
    "jawForward", "jawLeft", "jawOpen", "jawRight",
    "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft",
    "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper",
    "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight", "tongueOut",
)

# The area (a key of the model's regions, "area_" prefixed) each shape must stay inside.
SHAPE_AREAS: dict[str, str] = {
    **{f"{base}{side}": f"area_brow_{side.lower()}" for base in ("browDown", "browOuterUp") for side in ("Left", "Right")},
    "browInnerUp": "area_brows",
    "cheekPuff": "area_cheeks",
    **{f"cheekSquint{s}": f"area_cheek_{s.lower()}" for s in ("Left", "Right")},
    **{f"{base}{s}": f"area_eye_{s.lower()}" for s in ("Left", "Right") for base in (
        "eyeBlink", "eyeLookDown", "eyeLookIn", "eyeLookOut", "eyeLookUp", "eyeSquint", "eyeWide")},
    **{f"{base}{s}": f"area_mouth_{s.lower()}" for s in ("Left", "Right") for base in (
        "mouthDimple", "mouthFrown", "mouthLowerDown", "mouthPress", "mouthSmile", "mouthStretch",
        "mouthUpperUp")},
    **{f"noseSneer{s}": "area_nose" for s in ("Left", "Right")},
    **{name: "area_lower_face" for name in (
        "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose", "mouthFunnel",
        "mouthLeft", "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper",
        "mouthShrugLower", "mouthShrugUpper", "tongueOut")},
}

# The jaw and the lip-closing shape: the lips meet where mouthClose reaches jawOpen (the models
# keep mouthClose <= jawOpen and read the lip gap from these two).
LIP_CHANNELS: tuple[str, str] = ("jawOpen", "mouthClose")
# The channels that carry an emotion by name prefix: the upper face (brows, eyes but the blinks,
# cheeks, nose) and the mouth's emotional shapes (smile, frown, dimple, stretch, press, raised upper
# lip, raised chin). Their mean over a take is its style: how strongly the take shows its emotion.
STYLE_PREFIXES: tuple[str, ...] = (
    "brow", "cheek", "eyeLook", "eyeSquint", "eyeWide", "nose",
    "mouthSmile", "mouthFrown", "mouthDimple", "mouthStretch", "mouthPress", "mouthUpperUp", "mouthShrugLower",
)
JAW_OPEN_ANGLE = np.deg2rad(22.0)  # jawOpen = 1.0 drops the chin by about 2.5 cm
MM = 0.001


@dataclass(frozen=True)
class RigContext:
    """What the authoring functions read: the neutral mesh, its graph, regions and mirror map.

    Shapes: neutral (V, 3) metres; faces (F, 3); partner (V,) the mirror vertex of each vertex.
    """

    neutral: np.ndarray
    faces: np.ndarray
    regions: dict[str, np.ndarray]
    partner: np.ndarray

    @cached_property
    def graph(self):
        return vertex_adjacency(self.faces, self.neutral)

    def dist(self, *names: str) -> np.ndarray:
        """Geodesic distance (V,) from the union of named regions."""
        seeds = np.concatenate([self.regions[n] for n in names])
        return geodesic_from(self.graph, seeds)

    def mirror(self, delta: np.ndarray) -> np.ndarray:
        """The mirror image of a displacement field: reflect X, swap partner vertices. (V, 3) -> (V, 3)."""
        return (delta * np.array([-1.0, 1.0, 1.0]))[self.partner]

    def symmetric(self, delta: np.ndarray) -> np.ndarray:
        """The symmetric part of a displacement field. (V, 3) -> (V, 3)."""
        return 0.5 * (delta + self.mirror(delta))


def _move(ctx: RigContext, seeds: tuple[str, ...], radius: float, offset_mm: tuple[float, float, float]) -> np.ndarray:
    """Seed vertices moved by `offset_mm`, neighbours by a geodesic falloff over `radius` metres."""
    weight = falloff(ctx.dist(*seeds), radius)
    return weight[:, None] * (np.asarray(offset_mm) * MM)


def _left_half(ctx: RigContext, delta: np.ndarray, soft: float = 0.012) -> np.ndarray:
    """Keep a field on the subject's left: full for x >= soft, fading to zero at x = -soft."""
    x = ctx.neutral[:, 0]
    return delta * np.clip((x + soft) / (2 * soft), 0.0, 1.0)[:, None] ** 2


def _lid_shape(ctx: RigContext, side: str, upper_closure: float, lower_closure: float,
               shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0), ring: float = 0.010) -> np.ndarray:
    """Eyelid motion on one side (V, 3): lids travel toward their meeting line, plus a shift.

    `upper_closure` / `lower_closure` are the fractions of the lid gap each lid travels (negative
    opens); the lid contours move fully and the skin around them follows with a geodesic falloff.
    """
    upper, lower = ctx.regions[f"eye_{side}_upper"], ctx.regions[f"eye_{side}_lower"]
    pts = ctx.neutral
    lower_y_at_upper = np.interp(pts[upper, 0], pts[lower, 0], pts[lower, 1])
    upper_y_at_lower = np.interp(pts[lower, 0], pts[upper, 0], pts[upper, 1])
    contour_delta = np.zeros_like(pts)
    contour_delta[upper, 1] = upper_closure * (lower_y_at_upper - pts[upper, 1])
    contour_delta[lower, 1] = lower_closure * (upper_y_at_lower - pts[lower, 1])
    contour_delta[np.concatenate([upper, lower])] += np.asarray(shift_mm) * MM
    return _spread(ctx, contour_delta, np.concatenate([upper, lower]), ring, _eye_half(ctx, side))


def _eye_half(ctx: RigContext, side: str) -> np.ndarray:
    """Boolean (V,): vertices on the same side of the midline as the eye."""
    return ctx.neutral[:, 0] > 0 if side == "left" else ctx.neutral[:, 0] < 0


def _spread(ctx: RigContext, contour_delta: np.ndarray, contour: np.ndarray, ring: float,
            allowed: np.ndarray) -> np.ndarray:
    """Extend a displacement given on contour vertices to nearby skin by falloff (V, 3).

    Each non-contour vertex takes the displacement of its nearest contour vertex times a geodesic
    falloff, restricted to the `allowed` vertices, with the sides of the contour kept apart by
    assigning each vertex to the closest contour vertex along the mesh.
    """
    from scipy.sparse.csgraph import dijkstra

    dist, _, source = dijkstra(ctx.graph, directed=False, indices=contour, min_only=True, return_predecessors=True)
    delta = contour_delta[source] * falloff(dist, ring)[:, None]
    delta[~allowed] = 0.0
    delta[contour] = contour_delta[contour]
    return delta


def _jaw_weight(ctx: RigContext) -> np.ndarray:
    """How much each vertex follows the jaw (V,): 1 on the lower lip and chin, 0 above the mouth."""
    d_lower = ctx.dist("inner_lip_lower", "lower_lip_outer", "chin_area")
    d_upper = ctx.dist("inner_lip_upper", "upper_lip_outer", "subnasale")
    share = d_upper**2 / (d_upper**2 + d_lower**2 + 1e-12)
    corner_y = ctx.neutral[ctx.regions["lip_corner_left"], 1].mean()
    nose_y = ctx.neutral[ctx.regions["subnasale"], 1].mean()
    height = np.clip((nose_y - ctx.neutral[:, 1]) / (nose_y - corner_y), 0.0, 1.0)
    share[ctx.regions["inner_lip_corners"]] = 0.5
    return share * height**2


def _jaw_rotation(ctx: RigContext, angle: float) -> np.ndarray:
    """The jaw rotated about its hinge (an X-parallel axis through the sides near the ears). (V, 3)."""
    pts = ctx.neutral
    hinge = 0.5 * (pts[ctx.regions["side_left"]].mean(axis=0) + pts[ctx.regions["side_right"]].mean(axis=0))
    hinge = hinge + np.array([0.0, -0.02, -0.02])  # the jaw joint sits below and behind the ear-front vertices
    c, s = np.cos(angle), np.sin(angle)
    rel = pts - hinge
    rotated = np.stack([rel[:, 0], c * rel[:, 1] - s * rel[:, 2], s * rel[:, 1] + c * rel[:, 2]], axis=1)
    return _jaw_weight(ctx)[:, None] * (rotated - rel)


def _jaw_shift(ctx: RigContext, offset_mm: tuple[float, float, float]) -> np.ndarray:
    """The jaw translated (V, 3), weighted like the jaw rotation."""
    return _jaw_weight(ctx)[:, None] * (np.asarray(offset_mm) * MM)


def _lip_part(ctx: RigContext, upper_mm: float, lower_mm: float, radius: float = 0.012) -> np.ndarray:
    """Upper lip moved up by `upper_mm` and lower lip down by `lower_mm` (V, 3), corners half-way."""
    up = _move(ctx, ("inner_lip_upper",), radius, (0.0, upper_mm, 0.0))
    down = _move(ctx, ("inner_lip_lower",), radius, (0.0, -lower_mm, 0.0))
    return _above_below(ctx, up, down)


def _above_below(ctx: RigContext, upper_field: np.ndarray, lower_field: np.ndarray) -> np.ndarray:
    """Combine a field for the upper lip side and one for the lower side of the mouth line (V, 3)."""
    w = _jaw_weight(ctx)[:, None]
    below = np.clip(w * 2.0, 0.0, 1.0)
    return (1.0 - below) * upper_field + below * lower_field


def _mouth_close(ctx: RigContext) -> np.ndarray:
    """Lips brought together against jawOpen: each lip travels half the gap jawOpen makes (V, 3)."""
    jaw = _jaw_rotation(ctx, JAW_OPEN_ANGLE)
    pts = ctx.neutral
    lower, upper = ctx.regions["inner_lip_lower"], ctx.regions["inner_lip_upper"]
    order = np.argsort(pts[lower, 0])
    gap_at = lambda idx, k: np.interp(pts[idx, 0], pts[lower[order], 0], jaw[lower[order], k])  # noqa: E731
    contour_delta = np.zeros_like(pts)
    contour_delta[lower] = -0.5 * jaw[lower]
    contour_delta[upper] = 0.5 * np.stack([np.zeros(len(upper)), gap_at(upper, 1), gap_at(upper, 2)], axis=1)
    contour = np.concatenate([lower, upper])
    return _spread(ctx, contour_delta, contour, 0.010, np.ones(len(pts), dtype=bool))


def _left_shapes(ctx: RigContext) -> dict[str, np.ndarray]:
    """The one-sided shapes, authored on the subject's left (+X)."""
    lid = lambda *a, **k: _lid_shape(ctx, "left", *a, **k)  # noqa: E731
    corner = ("lip_corner_left",)
    return {
        "browDownLeft": _move(ctx, ("brow_left",), 0.022, (-1.5, -5.0, 0.0)) + lid(0.12, 0.0),
        "browOuterUpLeft": _move(ctx, ("brow_outer_left",), 0.025, (0.0, 5.0, 0.0)),
        "cheekSquintLeft": _move(ctx, ("cheek_left", "under_eye_left"), 0.015, (0.0, 3.5, 0.5)) + lid(0.0, 0.15),
        "eyeBlinkLeft": lid(0.8, 0.2),
        "eyeLookDownLeft": lid(0.15, -0.05, (0.0, -1.2, 0.0), ring=0.006),
        "eyeLookInLeft": lid(0.0, 0.0, (-1.5, 0.0, 0.0)),
        "eyeLookOutLeft": lid(0.0, 0.0, (1.5, 0.0, 0.0)),
        "eyeLookUpLeft": lid(-0.1, 0.0, (0.0, 1.0, 0.0), ring=0.006),
        "eyeSquintLeft": lid(0.15, 0.35) + _move(ctx, ("under_eye_left",), 0.008, (0.0, 1.5, 0.0)),
        "eyeWideLeft": lid(-0.35, -0.05, ring=0.014),
        "mouthDimpleLeft": _move(ctx, corner, 0.018, (2.0, 0.0, -4.0)),
        "mouthFrownLeft": _move(ctx, corner, 0.020, (0.5, -5.0, 0.0)),
        "mouthLowerDownLeft": _left_half(ctx, _lip_part(ctx, 0.0, 5.0)),
        "mouthPressLeft": _left_half(ctx, _move(ctx, ("upper_lip_outer",), 0.006, (0.0, -1.8, 0.0))
                                     + _move(ctx, ("lower_lip_outer",), 0.006, (0.0, 1.8, 0.0))),
        "mouthSmileLeft": _move(ctx, corner, 0.022, (5.0, 6.0, -3.0)) + _move(ctx, ("cheek_left",), 0.012, (0.0, 2.0, 1.0)),
        "mouthStretchLeft": _move(ctx, corner, 0.022, (5.0, -3.0, -1.0)),
        "mouthUpperUpLeft": _left_half(ctx, _lip_part(ctx, 5.0, 0.0)),
        "noseSneerLeft": _move(ctx, ("nostril_left",), 0.012, (0.0, 3.5, 0.5)) + _move(ctx, ("brow_inner_left",), 0.012, (0.0, -2.0, 0.0)),
    }


def _centre_shapes(ctx: RigContext) -> dict[str, np.ndarray]:
    """The midline shapes and the left versions of jawLeft / mouthLeft."""
    mouth = ("inner_lips", "upper_lip_outer", "lower_lip_outer")
    return {
        "browInnerUp": _move(ctx, ("brow_inner_left", "brow_inner_right"), 0.025, (0.0, 6.0, 0.0)),
        "cheekPuff": _move(ctx, ("cheek_left",), 0.025, (6.0, -1.0, 2.0)) + _move(ctx, ("cheek_right",), 0.025, (-6.0, -1.0, 2.0)),
        "jawForward": _jaw_shift(ctx, (0.0, 0.0, 6.0)),
        "jawLeft": _jaw_shift(ctx, (6.0, 0.0, 0.0)),
        "jawOpen": _jaw_rotation(ctx, JAW_OPEN_ANGLE),
        "mouthClose": _mouth_close(ctx),
        "mouthFunnel": _funnel(ctx, 7.0, 5.0, 4.0),
        "mouthLeft": _move(ctx, mouth, 0.020, (8.0, 0.0, 0.0)),
        "mouthPucker": _funnel(ctx, 11.0, 8.0, 0.0),
        "mouthRollLower": _move(ctx, ("lower_lip_outer",), 0.008, (0.0, 2.5, -4.0)),
        "mouthRollUpper": _move(ctx, ("upper_lip_outer",), 0.008, (0.0, -2.5, -4.0)),
        "mouthShrugLower": _move(ctx, ("lower_lip_outer", "chin_area"), 0.015, (0.0, 4.0, 2.0)),
        "mouthShrugUpper": _move(ctx, ("upper_lip_outer",), 0.012, (0.0, 3.0, 1.0)),
        "tongueOut": _lip_part(ctx, 1.0, 5.0) + _move(ctx, ("lower_lip_outer",), 0.010, (0.0, 0.0, 4.0)),
    }


def _funnel(ctx: RigContext, inward_mm: float, forward_mm: float, open_mm: float) -> np.ndarray:
    """Lips rounded: corners drawn toward the midline, lips pushed forward, optionally parted (V, 3)."""
    left = _move(ctx, ("lip_corner_left",), 0.020, (-inward_mm, 0.0, 0.0))
    right = _move(ctx, ("lip_corner_right",), 0.020, (inward_mm, 0.0, 0.0))
    forward = _move(ctx, ("inner_lips", "upper_lip_outer", "lower_lip_outer"), 0.012, (0.0, 0.0, forward_mm))
    return left + right + forward + _lip_part(ctx, open_mm / 2, open_mm / 2)


def author_basis(ctx: RigContext) -> np.ndarray:
    """All 52 shapes in `ARKIT_NAMES` order, as a (52, V, 3) array of deltas in metres."""
    shapes = _left_shapes(ctx)
    shapes.update({name.replace("Left", "Right"): ctx.mirror(d) for name, d in list(shapes.items())})
    centre = _centre_shapes(ctx)
    one_sided = {"jawLeft", "mouthLeft"}
    shapes.update({name.replace("Left", "Right"): ctx.mirror(centre[name]) for name in one_sided})
    shapes.update({name: d if name in one_sided else ctx.symmetric(d) for name, d in centre.items()})
    return np.stack([shapes[name] for name in ARKIT_NAMES])
