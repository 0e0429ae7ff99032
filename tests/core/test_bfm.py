"""Tests for `core.face.bfm`: the Deep3DFaceRecon BFM file and the 257 / SadTalker coefficients.

The BFM file here is synthetic (the real one is licence-restricted) but has the real file's keys,
array layouts and 1-based indices, as Deep3DFaceRecon's ``transferBFM09`` writes them.
"""

from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from core.face.bfm import (
    BFM_EXP_DIM,
    D3D_DIM,
    D3D_SLICES,
    SADTALKER_CROP_DIM,
    SADTALKER_DIM,
    BFMError,
    d3d_to_exp_pose,
    join_d3d,
    load_bfm,
    read_d3d,
    read_sadtalker,
    split_d3d,
    write_d3d,
    write_sadtalker,
)
from core.face.model import FaceModel

N_VERTICES = 80
N_FACES = 30


def bfm_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """Arrays with the keys, shapes and 1-based indices of Deep3DFaceRecon's BFM_model_front.mat."""
    rng = np.random.default_rng(seed)
    n3 = 3 * N_VERTICES
    return {
        "meanshape": rng.normal(0.0, 1.0, (1, n3)) + np.tile([0.3, -0.2, 9.0], N_VERTICES),
        "exBase": rng.normal(0.0, 0.01, (n3, BFM_EXP_DIM)),
        "idBase": rng.normal(0.0, 0.01, (n3, 80)),
        "meantex": rng.uniform(0.0, 255.0, (1, n3)),
        "texBase": rng.normal(0.0, 1.0, (n3, 80)),
        "tri": rng.integers(1, N_VERTICES + 1, (N_FACES, 3)).astype(np.float64),
        "keypoints": (rng.permutation(N_VERTICES)[:68] + 1).astype(np.float64).reshape(1, 68),
        "point_buf": rng.integers(1, N_FACES + 1, (N_VERTICES, 8)).astype(np.float64),
        "tri_mask2": rng.integers(1, N_VERTICES + 1, (N_FACES // 2, 3)).astype(np.float64),
        "frontmask2_idx": np.arange(1, N_VERTICES // 2 + 1, dtype=np.float64).reshape(-1, 1),
        "skinmask": np.ones((1, N_VERTICES)),
    }


def write_bfm(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    savemat(path, arrays)
    return path


@pytest.fixture
def bfm_file(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    arrays = bfm_arrays()
    return write_bfm(tmp_path / "BFM_model_front.mat", arrays), arrays


def recentred_vertices(flat: np.ndarray, centre_of: np.ndarray) -> np.ndarray:
    """Flat x0,y0,z0,x1,... values as (V, 3), minus the centroid of ``centre_of`` (also flat)."""
    return flat.reshape(-1, 3) - centre_of.reshape(-1, 3).mean(axis=0)


# --- the BFM face model -------------------------------------------------------------------------


def test_neutral_is_the_meanshape_recentred_to_its_centroid(bfm_file):
    path, arrays = bfm_file
    model = load_bfm(path)
    np.testing.assert_allclose(
        model.neutral, recentred_vertices(arrays["meanshape"], arrays["meanshape"]), atol=1e-12
    )
    np.testing.assert_allclose(model.neutral.mean(axis=0), 0.0, atol=1e-12)


def test_triangles_and_keypoints_become_zero_based(bfm_file):
    path, arrays = bfm_file
    model = load_bfm(path)
    np.testing.assert_array_equal(model.faces, arrays["tri"].astype(np.int64) - 1)
    np.testing.assert_array_equal(
        model.regions["keypoints68"], arrays["keypoints"].reshape(-1).astype(np.int64) - 1
    )


@pytest.mark.parametrize("k", [0, 17, BFM_EXP_DIM - 1])
def test_basis_k_is_exbase_column_k_as_vertex_deltas(bfm_file, k):
    path, arrays = bfm_file
    model = load_bfm(path)
    np.testing.assert_allclose(model.basis[k], arrays["exBase"][:, k].reshape(-1, 3), atol=1e-12)


def test_expression_mesh_is_meanshape_plus_exbase_times_coefficients(bfm_file):
    path, arrays = bfm_file
    model = load_bfm(path)
    exp = np.random.default_rng(1).normal(0.0, 1.0, BFM_EXP_DIM)
    expected = recentred_vertices(
        arrays["meanshape"].reshape(-1) + arrays["exBase"] @ exp, arrays["meanshape"]
    )
    np.testing.assert_allclose(model.expression_mesh(exp), expected, atol=1e-10)


def test_unit_scale_scales_neutral_and_basis(bfm_file):
    path, _ = bfm_file
    native = load_bfm(path)
    metres = load_bfm(path, unit_scale=0.1)
    np.testing.assert_allclose(metres.neutral, 0.1 * native.neutral, atol=1e-12)
    np.testing.assert_allclose(metres.basis, 0.1 * native.basis, atol=1e-12)
    exp = np.random.default_rng(2).normal(0.0, 1.0, BFM_EXP_DIM)
    np.testing.assert_allclose(
        metres.expression_mesh(exp), 0.1 * native.expression_mesh(exp), atol=1e-12
    )


@pytest.mark.parametrize("unit_scale", [0.0, -1.0, float("nan")])
def test_non_positive_unit_scale_is_rejected(bfm_file, unit_scale):
    path, _ = bfm_file
    with pytest.raises(BFMError, match="unit_scale"):
        load_bfm(path, unit_scale=unit_scale)


def test_uv_is_an_undistorted_front_view_inside_the_unit_square(bfm_file):
    path, _ = bfm_file
    model = load_bfm(path)
    assert model.uv.shape == (model.n_vertices, 2)
    assert model.uv.min() >= 0.0 and model.uv.max() <= 1.0
    assert np.isclose(np.ptp(model.uv, axis=0).max(), 1.0)
    # One uniform scale for u and v: uv differences are proportional to (x, y) differences.
    ratio = np.ptp(model.uv, axis=0) / np.ptp(model.neutral[:, :2], axis=0)
    assert np.isclose(ratio[0], ratio[1])


def test_model_has_unbounded_named_pca_coefficients_and_survives_save(bfm_file, tmp_path):
    path, _ = bfm_file
    model = load_bfm(path)
    assert model.n_expressions == BFM_EXP_DIM
    assert model.names == tuple(f"exp{k:02d}" for k in range(BFM_EXP_DIM))
    assert np.all(np.isneginf(model.lower)) and np.all(np.isposinf(model.upper))
    model.save(tmp_path / "bfm.npz")
    reloaded = FaceModel.load(tmp_path / "bfm.npz")
    assert reloaded.id == model.id
    assert np.all(np.isposinf(reloaded.upper))
    np.testing.assert_allclose(reloaded.basis, model.basis, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("key", ["meanshape", "exBase", "tri", "keypoints"])
def test_missing_key_raises_naming_the_key(tmp_path, key):
    arrays = bfm_arrays()
    del arrays[key]
    path = write_bfm(tmp_path / "BFM_model_front.mat", arrays)
    with pytest.raises(BFMError, match=f"no '{key}' array"):
        load_bfm(path)


def test_wrong_exbase_shape_raises_naming_key_and_expected_shape(tmp_path):
    arrays = bfm_arrays()
    arrays["exBase"] = arrays["exBase"][:, :-1]
    path = write_bfm(tmp_path / "BFM_model_front.mat", arrays)
    with pytest.raises(BFMError, match=rf"'exBase' has shape .*expected \(3V, {BFM_EXP_DIM}\)"):
        load_bfm(path)


def test_wrong_triangle_shape_raises_naming_the_key(tmp_path):
    arrays = bfm_arrays()
    arrays["tri"] = np.ones((N_FACES, 4))
    path = write_bfm(tmp_path / "BFM_model_front.mat", arrays)
    with pytest.raises(BFMError, match=r"'tri' has shape \(30, 4\), expected \(F, 3\)"):
        load_bfm(path)


def test_zero_based_triangles_are_rejected_as_out_of_range(tmp_path):
    arrays = bfm_arrays()
    arrays["tri"] = arrays["tri"] - 1  # as if someone saved 0-based indices
    arrays["tri"][0, 0] = 0
    path = write_bfm(tmp_path / "BFM_model_front.mat", arrays)
    with pytest.raises(BFMError, match="'tri' holds vertex index 0.*1-based"):
        load_bfm(path)


def test_missing_bfm_file_raises(tmp_path):
    with pytest.raises(BFMError, match="not found"):
        load_bfm(tmp_path / "absent.mat")


def test_non_mat_file_raises(tmp_path):
    path = tmp_path / "BFM_model_front.mat"
    path.write_text("not a matlab file")
    with pytest.raises(BFMError, match="not a readable MATLAB"):
        load_bfm(path)


# --- Deep3DFaceRecon 257 coefficients ------------------------------------------------------------


def test_d3d_slices_tile_the_257_columns_in_the_design_order():
    names = ["id", "exp", "tex", "angle", "gamma", "trans"]
    widths = [80, 64, 80, 3, 27, 3]
    assert list(D3D_SLICES) == names
    assert [s.stop - s.start for s in D3D_SLICES.values()] == widths
    stops = [0] + [s.stop for s in D3D_SLICES.values()]
    assert [s.start for s in D3D_SLICES.values()] == stops[:-1]
    assert D3D_DIM == sum(widths) == 257


@pytest.mark.parametrize("lead", [(5,), (2, 3), ()])
def test_split_then_join_round_trips(lead):
    coeffs = np.random.default_rng(3).normal(size=lead + (D3D_DIM,)).astype(np.float32)
    parts = split_d3d(coeffs)
    for name, part in D3D_SLICES.items():
        np.testing.assert_array_equal(parts[name], coeffs[..., part])
    np.testing.assert_array_equal(join_d3d(parts), coeffs)


def test_join_fills_missing_parts_with_zeros():
    exp = np.random.default_rng(4).normal(size=(6, BFM_EXP_DIM)).astype(np.float32)
    joined = join_d3d({"exp": exp})
    np.testing.assert_array_equal(joined[:, D3D_SLICES["exp"]], exp)
    rest = np.delete(joined, np.arange(D3D_DIM)[D3D_SLICES["exp"]], axis=1)
    assert not rest.any()


def test_join_rejects_a_part_of_the_wrong_width():
    with pytest.raises(BFMError, match="'angle' has shape"):
        join_d3d({"exp": np.zeros((4, BFM_EXP_DIM)), "angle": np.zeros((4, 4))})


def test_join_rejects_an_unknown_part():
    with pytest.raises(BFMError, match="unknown Deep3DFaceRecon part"):
        join_d3d({"shape": np.zeros((1, 80))})


def test_split_rejects_wrong_width():
    with pytest.raises(BFMError, match=f"expected \\(..., {D3D_DIM}\\)"):
        split_d3d(np.zeros((3, D3D_DIM - 1)))


@pytest.mark.parametrize("suffix", [".mat", ".npy", ".txt"])
def test_write_then_read_d3d_round_trips(tmp_path, suffix):
    coeffs = np.random.default_rng(5).normal(size=(7, D3D_DIM)).astype(np.float32)
    path = tmp_path / f"clip{suffix}"
    write_d3d(path, coeffs)
    assert path.is_file()
    np.testing.assert_allclose(read_d3d(path), coeffs, rtol=1e-6, atol=1e-7)


def test_written_mat_uses_the_coeff_key(tmp_path):
    coeffs = np.random.default_rng(6).normal(size=(3, D3D_DIM)).astype(np.float32)
    write_d3d(tmp_path / "clip.mat", coeffs)
    np.testing.assert_array_equal(loadmat(tmp_path / "clip.mat")["coeff"], coeffs)


def test_reads_sadtalker_full_3dmm_key(tmp_path):
    full = np.random.default_rng(7).normal(size=(1, D3D_DIM)).astype(np.float32)
    savemat(tmp_path / "portrait.mat", {"coeff_3dmm": np.zeros((1, 73)), "full_3dmm": full})
    np.testing.assert_array_equal(read_d3d(tmp_path / "portrait.mat"), full)


def test_reads_deep3dfacerecon_pytorch_part_keys(tmp_path):
    coeffs = np.random.default_rng(8).normal(size=(1, D3D_DIM)).astype(np.float32)
    parts = split_d3d(coeffs)
    savemat(tmp_path / "image.mat", {**parts, "lm68": np.zeros((1, 68, 2))})
    np.testing.assert_array_equal(read_d3d(tmp_path / "image.mat"), coeffs)


def test_single_frame_npy_reads_as_one_row(tmp_path):
    frame = np.random.default_rng(9).normal(size=D3D_DIM).astype(np.float32)
    np.save(tmp_path / "frame.npy", frame)
    np.testing.assert_array_equal(read_d3d(tmp_path / "frame.npy"), frame[None])


def test_mat_without_coefficients_names_the_keys_it_expected(tmp_path):
    savemat(tmp_path / "other.mat", {"something": np.zeros((2, 2))})
    with pytest.raises(BFMError, match="'coeff', 'full_3dmm'.*keys found: something"):
        read_d3d(tmp_path / "other.mat")


def test_d3d_file_of_wrong_width_raises(tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((4, 70), dtype=np.float32))
    with pytest.raises(BFMError, match=r"shape \(4, 70\), expected \(T, 257\)"):
        read_d3d(tmp_path / "bad.npy")


def test_d3d_to_exp_pose_takes_exp_then_angle_and_trans():
    coeffs = np.random.default_rng(10).normal(size=(5, D3D_DIM)).astype(np.float32)
    exp, pose = d3d_to_exp_pose(coeffs)
    np.testing.assert_array_equal(exp, coeffs[:, 80:144])
    np.testing.assert_array_equal(pose[:, :3], coeffs[:, 224:227])
    np.testing.assert_array_equal(pose[:, 3:], coeffs[:, 254:257])


# --- SadTalker T x 70 ----------------------------------------------------------------------------


def test_sadtalker_write_then_read_round_trips_in_the_70_column_layout(tmp_path):
    rng = np.random.default_rng(11)
    exp = rng.normal(size=(9, BFM_EXP_DIM)).astype(np.float32)
    pose = rng.normal(size=(9, 6)).astype(np.float32)
    path = tmp_path / "portrait##speech.mat"
    write_sadtalker(path, exp, pose)
    stored = loadmat(path)["coeff_3dmm"]
    assert stored.shape == (9, SADTALKER_DIM)
    np.testing.assert_array_equal(stored[:, :BFM_EXP_DIM], exp)
    np.testing.assert_array_equal(stored[:, BFM_EXP_DIM:], pose)
    read_exp, read_pose = read_sadtalker(path)
    np.testing.assert_array_equal(read_exp, exp)
    np.testing.assert_array_equal(read_pose, pose)


def test_sadtalker_preprocess_file_drops_the_three_crop_columns(tmp_path):
    coeffs = np.random.default_rng(12).normal(size=(1, SADTALKER_DIM + SADTALKER_CROP_DIM))
    savemat(tmp_path / "portrait.mat", {"coeff_3dmm": coeffs, "full_3dmm": np.zeros((1, 257))})
    exp, pose = read_sadtalker(tmp_path / "portrait.mat")
    np.testing.assert_allclose(exp, coeffs[:, :BFM_EXP_DIM], rtol=1e-6)
    np.testing.assert_allclose(pose, coeffs[:, BFM_EXP_DIM:SADTALKER_DIM], rtol=1e-6)


def test_sadtalker_file_of_another_width_raises_naming_the_width(tmp_path):
    savemat(tmp_path / "odd.mat", {"coeff_3dmm": np.zeros((4, 71))})
    with pytest.raises(BFMError, match="width 71"):
        read_sadtalker(tmp_path / "odd.mat")


def test_sadtalker_file_without_coeff_3dmm_raises_naming_the_key(tmp_path):
    savemat(tmp_path / "odd.mat", {"coeff": np.zeros((4, 257))})
    with pytest.raises(BFMError, match="no 'coeff_3dmm' array"):
        read_sadtalker(tmp_path / "odd.mat")


def test_write_sadtalker_rejects_mismatched_pose_rows(tmp_path):
    with pytest.raises(BFMError, match="pose has shape"):
        write_sadtalker(tmp_path / "x.mat", np.zeros((4, BFM_EXP_DIM)), np.zeros((3, 6)))
