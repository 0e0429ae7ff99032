"""The mesh-warp renderer on the real astronaut portrait, and the renderer registry."""

import numpy as np
import pytest

from core.coeff.sampler import GenerationCancelled
from core.errors import FlowVQError
from core.face.landmarks import MultipleFacesError, NoFaceError
from core.render import Renderer, RendererError, available_renderers, load_renderer
from core.render.geometry import expression_shape, head_rotation, posed_landmarks
from core.formats.render_inputs import RenderInputError
from core.render.portrait import prepare_portrait
from core.render.raster import triangle_ids
from core.render.warp import WarpScene, _blend

SIZE = 160


@pytest.fixture(scope="module")
def portrait(photos) -> np.ndarray:
    return photos["astronaut"]


@pytest.fixture(scope="module")
def prepared(portrait):
    return prepare_portrait(portrait, SIZE)


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return load_renderer("warp")


def fitted_rows(prepared, frames: int = 1, **weights: float) -> tuple[np.ndarray, np.ndarray]:
    """The portrait's fitted expression (with ``weights`` set) and zero pose, repeated. -> (T, D), (T, 6)."""
    face = prepared.portrait.face
    exp = np.tile(prepared.portrait.fit.exp.astype(np.float32), (frames, 1))
    for name, weight in weights.items():
        exp[:, face.names.index(name)] = weight
    return exp, np.zeros((frames, 6), np.float32)


def one_frame(renderer, portrait, exp, pose) -> np.ndarray:
    frames = list(renderer.render(portrait, exp, pose, size=SIZE))
    assert len(frames) == 1
    return frames[0]


def far_from_face(prepared) -> np.ndarray:
    """(SIZE, SIZE) bool: pixels further from the face oval's centre than 1.7x its largest radius."""
    oval = prepared.points[prepared.portrait.face.regions["face_oval"], :2]
    centre = oval.mean(axis=0)
    radius = np.linalg.norm(oval - centre, axis=1).max()
    rows, cols = np.indices((SIZE, SIZE))
    return np.hypot(cols - centre[0], rows - centre[1]) > 1.7 * radius


def lips_box(prepared) -> tuple[slice, slice]:
    """Rows and columns around the lips in the frame."""
    lips = prepared.points[prepared.portrait.face.regions["lips"], :2]
    (left, top), (right, bottom) = np.floor(lips.min(axis=0)).astype(int), np.ceil(lips.max(axis=0)).astype(int)
    return slice(top, bottom + 1), slice(left, right + 1)


def test_warp_is_a_renderer_yielding_square_rgb_frames(renderer, portrait, prepared):
    exp, pose = fitted_rows(prepared, frames=3)
    frames = list(renderer.render(portrait, exp, pose, size=SIZE))
    assert isinstance(renderer, Renderer) and renderer.name == "warp"
    assert len(frames) == 3
    assert all(f.shape == (SIZE, SIZE, 3) and f.dtype == np.uint8 for f in frames)
    smaller = list(renderer.render(portrait, exp[:1], pose[:1], size=SIZE // 2))  # a second size of one portrait
    assert smaller[0].shape == (SIZE // 2, SIZE // 2, 3)


def test_fitted_expression_and_zero_pose_reproduce_the_portrait_crop(renderer, portrait, prepared):
    frame = one_frame(renderer, portrait, *fitted_rows(prepared))
    assert np.abs(frame.astype(int) - prepared.image).max() <= 1


def test_jaw_open_changes_the_mouth_and_leaves_the_background_exactly(renderer, portrait, prepared):
    closed = one_frame(renderer, portrait, *fitted_rows(prepared, jawOpen=0.0))
    opened = one_frame(renderer, portrait, *fitted_rows(prepared, jawOpen=1.0))
    rows, cols = lips_box(prepared)
    assert np.abs(opened[rows, cols].astype(float) - closed[rows, cols]).mean() > 15.0
    background = far_from_face(prepared)
    assert background.mean() > 0.1  # the test looks at a real share of the frame
    for frame in (closed, opened):
        np.testing.assert_array_equal(frame[background], prepared.image[background])


def test_head_turn_moves_the_face_and_leaves_the_background_exactly(renderer, portrait, prepared):
    exp, pose = fitted_rows(prepared)
    turned = one_frame(renderer, portrait, exp, pose + np.array([0.1, 0.25, 0.05, 0, 0, 0], np.float32))
    rows, cols = lips_box(prepared)
    assert np.abs(turned[rows, cols].astype(float) - prepared.image[rows, cols]).mean() > 5.0
    background = far_from_face(prepared)
    np.testing.assert_array_equal(turned[background], prepared.image[background])


def test_pose_zero_gives_the_landmarks_and_a_translation_shifts_them_in_the_frame(prepared):
    portrait = prepared.portrait
    moved = expression_shape(portrait, WarpScene.of(prepared).offset, portrait.fit.exp)

    def frame_points(pose: np.ndarray) -> np.ndarray:
        return prepared.to_frame(posed_landmarks(portrait, moved, head_rotation(portrait, pose), pose[3:]))

    still = frame_points(np.zeros(6))
    np.testing.assert_allclose(still, prepared.points, atol=1e-6)
    shifted = frame_points(np.array([0.0, 0.0, 0.0, 0.01, 0.02, 0.5]))
    pixels_per_m = portrait.fit.scale * prepared.zoom
    np.testing.assert_allclose(shifted[:, :2] - still[:, :2], np.tile([0.01, -0.02], (len(still), 1)) * pixels_per_m,
                               atol=1e-6)  # landmark y is up, frame rows go down


def test_face_triangles_are_drawn_back_to_front_after_the_ring_and_holes(prepared):
    portrait, mesh = prepared.portrait, WarpScene.of(prepared).mesh
    turn = np.array([0.0, 0.6, 0.0, 0.0, 0.0, 0.0])  # a turned head: its triangles' depths reorder
    points = mesh.points(prepared.to_frame(posed_landmarks(portrait, portrait.model_shape(),
                                                           head_rotation(portrait, turn), turn[3:])))
    order = mesh.draw_order(points)
    back = len(mesh.back_triangles)
    np.testing.assert_array_equal(order[:back], mesh.back_triangles)
    depth = points[order[back:], 2].mean(axis=1)
    assert np.all(np.diff(depth) >= 0)
    # and the rasteriser paints later triangles over earlier ones
    square = np.array([[0.0, 0.0], [8.0, 0.0], [8.0, 8.0], [0.0, 8.0]])
    ids = triangle_ids(square, np.array([[0, 1, 2], [0, 2, 3], [0, 1, 2]]), (0, 0, 9, 9))
    assert ids[1, 6] == 3 and ids[6, 1] == 2


def test_blend_is_feathered_inside_the_covered_region_and_exact_outside():
    frame = np.zeros((SIZE, SIZE, 3), np.uint8)
    warped = np.full((60, 60, 3), 255, np.uint8)
    covered = np.zeros((60, 60), bool)
    covered[10:50, 10:50] = True
    _blend(frame, warped, covered, (50, 50, 110, 110))
    inside = frame[50:110, 50:110, 0]
    assert inside[30, 30] == 255  # deep inside: the warped pixel
    assert 0 < inside[30, 10] < 255  # the covered edge fades in
    np.testing.assert_array_equal(inside[~covered], 0)  # uncovered pixels keep the frame's values
    frame[50:110, 50:110][covered] = 0
    assert not frame.any()  # nothing outside the box changed


def test_parted_lips_show_a_dark_mouth_cavity(renderer, portrait, prepared):
    rows, cols = lips_box(prepared)
    rows = slice(rows.start, rows.stop + SIZE // 10)  # the lower lip moves down with the jaw
    dark = lambda frame: (frame[rows, cols].mean(axis=2) < 60).mean()  # noqa: E731 - share of dark pixels
    closed = one_frame(renderer, portrait, *fitted_rows(prepared, jawOpen=0.0))
    opened = one_frame(renderer, portrait, *fitted_rows(prepared, jawOpen=1.0))
    assert dark(closed) < 0.02
    assert dark(opened) > 0.15


def test_same_inputs_give_identical_frames(portrait, prepared):
    exp, pose = fitted_rows(prepared, frames=4, jawOpen=0.6)
    pose[:, 1] = np.linspace(-0.2, 0.2, 4)
    first = list(load_renderer("warp").render(portrait, exp, pose, size=SIZE))
    second = list(load_renderer("warp").render(portrait.copy(), exp.copy(), pose.copy(), size=SIZE))
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_portrait_without_a_face_is_refused_before_any_frame(renderer, prepared):
    exp, pose = fitted_rows(prepared)
    with pytest.raises(NoFaceError, match="no face"):
        renderer.render(np.full((256, 256, 3), 128, np.uint8), exp, pose, size=SIZE)


def test_a_portrait_with_two_faces_is_refused(renderer, portrait, prepared):
    face_crop = portrait[0:300, 80:330]
    exp, pose = fitted_rows(prepared)
    with pytest.raises(MultipleFacesError, match="2 faces"):
        renderer.render(np.concatenate([face_crop, face_crop], axis=1), exp, pose, size=SIZE)


def test_coefficients_of_the_wrong_width_are_refused(renderer, portrait, prepared):
    exp, pose = fitted_rows(prepared)
    with pytest.raises(RenderInputError, match="expression coefficients"):
        renderer.render(portrait, exp[:, :10], pose, size=SIZE)


def test_cancel_stops_rendering_before_the_next_frame(renderer, portrait, prepared):
    exp, pose = fitted_rows(prepared, frames=5)
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 2

    frames = renderer.render(portrait, exp, pose, size=SIZE, cancel=cancel)
    assert next(frames).shape == (SIZE, SIZE, 3) and next(frames).shape == (SIZE, SIZE, 3)
    with pytest.raises(GenerationCancelled, match="frame 2 of 5"):
        next(frames)


def test_auto_uses_the_warp_without_vqig_weights_and_vqig_alone_is_a_clear_error(tmp_path):
    assert available_renderers(tmp_path) == ["warp"]
    assert load_renderer("auto", tmp_path).name == "warp"
    with pytest.raises(RendererError, match="VQIG") as error:
        load_renderer("vqig", tmp_path)
    assert isinstance(error.value, FlowVQError)
    with pytest.raises(RendererError, match="unknown renderer"):
        load_renderer("raytrace")


def test_auto_picks_the_vqig_when_its_weights_are_present(tmp_path, face):
    pytest.importorskip("core.vq.renderer")
    from core.vq.config import PRESETS
    from core.vq.vqig import VQIG
    from core.vq.weights import save_vqig

    save_vqig(tmp_path, VQIG(PRESETS["tiny"], face.n_expressions), face)
    assert available_renderers(tmp_path) == ["warp", "vqig"]
    assert load_renderer("auto", tmp_path, device="cpu").name == "vqig"
    assert load_renderer("warp", tmp_path).name == "warp"
