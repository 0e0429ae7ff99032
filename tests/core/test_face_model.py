"""The built-in face model: topology, neutral shape, asset reproducibility and the file format."""

from collections import Counter

import numpy as np
import pytest

from core.face import FaceModel, FaceModelError
from core.face.landmarks import tessellation_edges
from core.face.topology import boundary_loops


def _mirror_map(points: np.ndarray) -> np.ndarray:
    """Nearest vertex to each vertex's reflection through x = 0."""
    reflected = points * np.array([-1.0, 1.0, 1.0])
    return np.linalg.norm(points[:, None] - reflected[None], axis=-1).argmin(axis=1)


def test_triangles_use_only_mediapipe_tessellation_edges_and_cover_them(face):
    mesh_edges = {tuple(sorted(e)) for t in face.faces.tolist() for e in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0]))}
    shipped = {tuple(sorted(e)) for e in tessellation_edges().tolist()}
    assert mesh_edges == shipped


def test_mesh_is_manifold_with_consistent_winding(face):
    directed = Counter((t[i], t[(i + 1) % 3]) for t in face.faces.tolist() for i in range(3))
    assert max(directed.values()) == 1, "a directed edge used twice means two faces disagree on winding"
    undirected = Counter(tuple(sorted(e)) for e in directed)
    assert max(undirected.values()) <= 2


def test_boundaries_are_face_outline_mouth_and_two_eyes(face):
    assert [len(loop) for loop in boundary_loops(face.faces)] == [36, 20, 16, 16]


def test_normals_point_outward_toward_the_viewer(face):
    tri = face.neutral[face.faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    centre = face.neutral.mean(axis=0) - np.array([0.0, 0.0, 0.05])  # behind the face surface
    outward = np.einsum("fk,fk->f", normals, tri.mean(axis=1) - centre) > 0
    assert outward.mean() > 0.9


def test_neutral_is_left_right_symmetric_about_x_zero(face):
    partner = _mirror_map(face.neutral)
    assert np.array_equal(partner[partner], np.arange(face.n_vertices))
    mirrored = (face.neutral * np.array([-1.0, 1.0, 1.0]))[partner]
    np.testing.assert_allclose(mirrored, face.neutral, atol=1e-6)
    np.testing.assert_allclose(face.neutral[face.regions["midline"], 0], 0.0, atol=1e-6)


def test_neutral_is_real_world_size_in_metres(face):
    eyes = face.neutral[face.regions["eye_left"]].mean(0) - face.neutral[face.regions["eye_right"]].mean(0)
    assert np.linalg.norm(eyes) == pytest.approx(0.063, abs=1e-4)
    height = face.neutral[face.regions["forehead_top"][0], 1] - face.neutral[face.regions["chin"][0], 1]
    assert 0.13 < height < 0.19  # hairline-to-chin of an adult face


def test_neutral_has_open_eyes_closed_lips_and_no_smile(face):
    v = face.neutral
    for side in ("left", "right"):
        up, lo = face.regions[f"eye_{side}_upper"], face.regions[f"eye_{side}_lower"]
        assert v[up, 1].max() - v[lo, 1].min() > 0.006
    up, lo = face.regions["inner_lip_upper"], face.regions["inner_lip_lower"]
    gap = v[up, 1] - np.interp(v[up, 0], v[lo, 0], v[lo, 1])
    assert gap.max() < 0.0015
    corners = v[face.regions["lip_corner_left"], 1].mean()
    assert corners < v[up, 1].mean() + 0.002  # corners not raised above the lip line


def test_uvs_are_in_unit_square_and_distinct(face):
    assert face.uv.min() >= 0.0 and face.uv.max() <= 1.0
    assert len(np.unique(face.uv.round(6), axis=0)) == face.n_vertices


def test_committed_asset_is_what_the_generator_builds(face, photos):
    from core.face.build import build_builtin

    rebuilt = build_builtin(photos)
    assert rebuilt.id == face.id and rebuilt.names == face.names
    np.testing.assert_array_equal(rebuilt.faces, face.faces)
    np.testing.assert_allclose(rebuilt.neutral, face.neutral, atol=1e-6)
    np.testing.assert_allclose(rebuilt.basis, face.basis, atol=1e-6)


def test_save_load_round_trip(face, tmp_path):
    path = tmp_path / "model.npz"
    face.save(path)
    loaded = FaceModel.load(path)
    assert loaded.id == face.id and loaded.names == face.names
    np.testing.assert_allclose(loaded.basis, face.basis, atol=1e-7)
    assert set(loaded.regions) == set(face.regions)
    exp = np.random.default_rng(0).uniform(0, 1, face.n_expressions)
    np.testing.assert_allclose(loaded.expression_mesh(exp), face.expression_mesh(exp), atol=1e-6)


def test_loading_a_foreign_or_missing_file_says_so(tmp_path):
    with pytest.raises(FaceModelError, match="not found"):
        FaceModel.load(tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, something=np.zeros(3))
    with pytest.raises(FaceModelError, match="not a FlowVQ face-model"):
        FaceModel.load(bad)


def test_expression_mesh_rejects_wrong_width(face):
    with pytest.raises(FaceModelError, match=str(face.n_expressions)):
        face.expression_mesh(np.zeros(face.n_expressions + 1))
