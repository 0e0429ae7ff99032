"""Image metrics: PSNR, SSIM, CPBD (Narvekar & Karam 2011) and FID."""

import cv2
import numpy as np
import pytest
import torch
from scipy import linalg

from core.eval.image import (
    ImageMetricError,
    InceptionV3,
    cpbd,
    edge_widths,
    fid,
    frechet_distance,
    psnr,
    ssim,
)


@pytest.fixture(scope="module")
def astronaut(photos) -> np.ndarray:
    return photos["astronaut"]


def step_image(ramp: int) -> np.ndarray:
    """(128, 128) vertical edges between 40 and 200: two bright bands entered and left by ``ramp``-pixel
    linear ramps (the first rising ramp spans columns 16 .. 16 + ramp, the first falling one 48 .. 48 + ramp)."""
    up, down = np.linspace(40.0, 200.0, ramp + 1), np.linspace(200.0, 40.0, ramp + 1)
    profile = np.full(128, 40.0)
    for start in (16, 70):
        profile[start:start + 32] = 200.0
        profile[start:start + ramp + 1] = up
        profile[start + 32:start + 32 + ramp + 1] = down
    return np.tile(profile, (128, 1)).astype(np.uint8)


def test_psnr_is_infinite_for_identical_images_and_matches_its_definition(astronaut):
    assert psnr(astronaut, astronaut) == float("inf")
    brighter = np.clip(astronaut.astype(int) + 10, 0, 255).astype(np.uint8)
    mse = np.mean((brighter.astype(float) - astronaut) ** 2)
    assert psnr(astronaut, brighter) == pytest.approx(10 * np.log10(255**2 / mse))


def test_ssim_is_one_for_identical_images_and_drops_with_noise(astronaut):
    noisy = np.clip(astronaut + np.random.default_rng(0).normal(0, 25, astronaut.shape), 0, 255).astype(np.uint8)
    assert ssim(astronaut, astronaut) == pytest.approx(1.0)
    assert ssim(astronaut, noisy) < 0.7


def test_metrics_refuse_images_of_different_shapes(astronaut):
    with pytest.raises(ImageMetricError, match="same shape"):
        psnr(astronaut, astronaut[:100])


def test_edge_width_is_the_distance_between_the_extrema_around_the_edge():
    gray = step_image(ramp=6).astype(np.float64)
    widths = edge_widths(gray, np.array([5, 5]), np.array([19, 51]), np.array([True, False]))
    np.testing.assert_array_equal(widths, [6, 6])


def test_cpbd_scores_sharp_edges_one_and_wide_ramps_zero():
    assert cpbd(step_image(ramp=1)) == 1.0
    assert cpbd(step_image(ramp=12)) == 0.0
    assert cpbd(np.full((128, 128), 90, np.uint8)) == 0.0  # no edges


def test_cpbd_drops_when_the_portrait_is_blurred(astronaut):
    blurred = cv2.GaussianBlur(astronaut, (0, 0), 2.0)
    assert cpbd(astronaut) > cpbd(blurred) + 0.2


def test_frechet_distance_matches_the_closed_form():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, (3, 8)), rng.normal(0.5, 2, (4, 8))  # fewer samples than features
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = np.real(linalg.sqrtm(cov_a @ cov_b))
    expected = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(cov_a + cov_b - 2 * root)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    one_a, one_b = rng.normal(1, 2, (50, 1)), rng.normal(3, 1, (60, 1))  # 1-D: (μa-μb)² + (σa-σb)²
    closed = (one_a.mean() - one_b.mean()) ** 2 + (one_a.std(ddof=1) - one_b.std(ddof=1)) ** 2
    assert frechet_distance(one_a, one_b) == pytest.approx(closed, rel=1e-6)


def test_fid_without_inception_weights_says_how_to_get_them(astronaut, tmp_path):
    with pytest.raises(ImageMetricError, match="inception_v3 state dict"):
        fid([astronaut] * 2, [astronaut] * 2, None)
    with pytest.raises(ImageMetricError, match="not found"):
        fid([astronaut] * 2, [astronaut] * 2, tmp_path / "missing.pth")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ImageMetricError, match="not a torchvision inception_v3"):
        fid([astronaut] * 2, [astronaut] * 2, tmp_path / "other.pth")


def test_fid_is_zero_for_the_same_images_and_grows_for_different_ones(astronaut, tmp_path):
    torch.manual_seed(0)
    network = InceptionV3()
    for module in network.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    state = network.state_dict() | {"fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000)}
    torch.save(state, tmp_path / "inception.pth")  # a torchvision-layout file, classifier included
    crops = [astronaut[:256, :256], astronaut[256:, 256:], astronaut[:256, 256:]]
    blurred = [cv2.GaussianBlur(c, (0, 0), 4.0) for c in crops]
    same = fid(crops, crops, tmp_path / "inception.pth")
    different = fid(crops, blurred, tmp_path / "inception.pth")
    assert abs(same) < 1e-6 * different
    assert different > 0.0
