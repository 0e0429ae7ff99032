"""Each ARKit blendshape of the built-in rig does what its name says, measured on the geometry."""

import numpy as np
import pytest

from core.face.measure import eye_aperture, lip_gap
from core.face.rig import ARKIT_NAMES, SHAPE_AREAS

SIDES = ("Left", "Right")


def _mesh(face, **weights: float) -> np.ndarray:
    exp = np.zeros(face.n_expressions)
    for name, w in weights.items():
        exp[face.names.index(name)] = w
    return face.expression_mesh(exp)


def _corner(face, v: np.ndarray, side: str) -> np.ndarray:
    return v[face.regions[f"lip_corner_{side}"]].mean(axis=0)


def test_rig_has_the_52_arkit_names_in_order(face):
    assert face.names == ARKIT_NAMES and len(set(face.names)) == len(face.names) == face.n_expressions


@pytest.mark.parametrize("side", SIDES)
def test_blink_closes_that_eye_fully_and_leaves_the_other(face, side):
    other = "right" if side == "Left" else "left"
    v = _mesh(face, **{f"eyeBlink{side}": 1.0})
    assert eye_aperture(face, face.neutral, side.lower()) > 0.006
    assert eye_aperture(face, v, side.lower()) < 0.0005
    assert eye_aperture(face, v, other) == pytest.approx(eye_aperture(face, face.neutral, other))


@pytest.mark.parametrize("side", SIDES)
def test_eye_wide_opens_and_squint_narrows(face, side):
    base = eye_aperture(face, face.neutral, side.lower())
    assert eye_aperture(face, _mesh(face, **{f"eyeWide{side}": 1.0}), side.lower()) > base + 0.002
    assert eye_aperture(face, _mesh(face, **{f"eyeSquint{side}": 1.0}), side.lower()) < base - 0.002


def test_lip_gap_grows_monotonically_with_jaw_open(face):
    gaps = [lip_gap(face, _mesh(face, jawOpen=w)) for w in np.linspace(0.0, 1.0, 11)]
    assert np.all(np.diff(gaps) > 0)
    assert gaps[-1] > 0.02  # a wide-open mouth at 1.0


def test_jaw_open_drops_the_chin_not_the_forehead(face):
    delta = _mesh(face, jawOpen=1.0) - face.neutral
    chin, top = face.regions["chin"][0], face.regions["forehead_top"][0]
    assert delta[chin, 1] < -0.02
    assert np.linalg.norm(delta[top]) == 0.0


def test_mouth_close_with_jaw_open_brings_the_lips_together(face):
    for jaw in (0.3, 0.6, 1.0):
        open_gap = lip_gap(face, _mesh(face, jawOpen=jaw))
        closed_gap = lip_gap(face, _mesh(face, jawOpen=jaw, mouthClose=jaw))
        assert closed_gap < 0.0015 < open_gap
    assert _mesh(face, jawOpen=1.0, mouthClose=1.0)[face.regions["chin"][0], 1] < face.neutral[face.regions["chin"][0], 1] - 0.02


@pytest.mark.parametrize("side", SIDES)
def test_smile_raises_and_widens_its_own_corner(face, side):
    v = _mesh(face, **{f"mouthSmile{side}": 1.0})
    own, other = side.lower(), ("right" if side == "Left" else "left")
    moved = _corner(face, v, own) - _corner(face, face.neutral, own)
    outward = np.sign(_corner(face, face.neutral, own)[0])
    assert moved[1] > 0.004 and moved[0] * outward > 0.003
    np.testing.assert_allclose(_corner(face, v, other), _corner(face, face.neutral, other), atol=2e-4)


@pytest.mark.parametrize("side", SIDES)
def test_frown_lowers_its_corner(face, side):
    moved = _corner(face, _mesh(face, **{f"mouthFrown{side}": 1.0}), side.lower()) - _corner(face, face.neutral, side.lower())
    assert moved[1] < -0.003


def test_funnel_and_pucker_round_and_push_the_lips(face):
    def width(v):
        return _corner(face, v, "left")[0] - _corner(face, v, "right")[0]

    lips = face.regions["inner_lips"]
    neutral_width = width(face.neutral)
    funnel, pucker = _mesh(face, mouthFunnel=1.0), _mesh(face, mouthPucker=1.0)
    assert width(pucker) < width(funnel) < neutral_width - 0.008
    for v in (funnel, pucker):
        assert (v[lips, 2] - face.neutral[lips, 2]).mean() > 0.003
    assert lip_gap(face, funnel) > lip_gap(face, pucker) + 0.002  # a funnel is open, a pucker is not


def test_brows_move_the_right_way(face):
    def brow_y(v, side):
        return v[face.regions[f"brow_{side}"], 1].mean()

    for side in ("left", "right"):
        cap = side.capitalize()
        assert brow_y(_mesh(face, **{f"browDown{cap}": 1.0}), side) < brow_y(face.neutral, side) - 0.003
        assert brow_y(_mesh(face, **{f"browOuterUp{cap}": 1.0}), side) > brow_y(face.neutral, side) + 0.002
    inner = face.regions["brow_inner_left"]
    assert (_mesh(face, browInnerUp=1.0)[inner, 1] - face.neutral[inner, 1]).mean() > 0.004


def test_sideways_shapes_move_toward_the_named_side(face):
    lips, chin = face.regions["inner_lips"], face.regions["chin"][0]
    assert (_mesh(face, mouthLeft=1.0)[lips, 0] - face.neutral[lips, 0]).mean() > 0.004  # +X = subject's left
    assert (_mesh(face, mouthRight=1.0)[lips, 0] - face.neutral[lips, 0]).mean() < -0.004
    assert _mesh(face, jawLeft=1.0)[chin, 0] > 0.004 and _mesh(face, jawRight=1.0)[chin, 0] < -0.004
    assert _mesh(face, jawForward=1.0)[chin, 2] > face.neutral[chin, 2] + 0.004


def test_cheek_puff_pushes_both_cheeks_out(face):
    v = _mesh(face, cheekPuff=1.0)
    for side, sign in (("left", 1.0), ("right", -1.0)):
        cheek = face.regions[f"cheek_{side}"]
        assert sign * (v[cheek, 0] - face.neutral[cheek, 0]).mean() > 0.003


@pytest.mark.parametrize("base", sorted({n[:-4] for n in ARKIT_NAMES if n.endswith("Left")}))
def test_left_and_right_shapes_are_mirror_images(face, base):
    from tests.core.test_face_model import _mirror_map

    partner = _mirror_map(face.neutral)
    left, right = face.basis[face.names.index(base + "Left")], face.basis[face.names.index(base + "Right")]
    np.testing.assert_allclose((left * np.array([-1.0, 1.0, 1.0]))[partner], right, atol=1e-7)


@pytest.mark.parametrize("name", [n for n in ARKIT_NAMES if not n.endswith(("Left", "Right"))])
def test_midline_shapes_are_symmetric(face, name):
    from tests.core.test_face_model import _mirror_map

    delta = face.basis[face.names.index(name)]
    np.testing.assert_allclose((delta * np.array([-1.0, 1.0, 1.0]))[_mirror_map(face.neutral)], delta, atol=1e-7)


@pytest.mark.parametrize("name", ARKIT_NAMES)
def test_each_shape_moves_only_inside_its_area_and_within_bounds(face, name):
    delta = np.linalg.norm(face.basis[face.names.index(name)], axis=1)
    outside = np.ones(face.n_vertices, dtype=bool)
    outside[face.regions[SHAPE_AREAS[name]]] = False
    assert delta[outside].max(initial=0.0) == 0.0
    assert 0.001 < delta.max() < 0.045  # visible, and no vertex flies further than a wide-open jaw


def test_areas_keep_eyes_and_mouth_apart(face):
    mouth = set(face.regions["inner_lips"].tolist())
    for side in ("left", "right"):
        assert not mouth & set(face.regions[f"area_eye_{side}"].tolist())
        assert not set(face.regions[f"eye_{side}"].tolist()) & set(face.regions["area_lower_face"].tolist())
