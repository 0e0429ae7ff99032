"""Image-quality metrics of rendered frames (the paper's §4): PSNR, SSIM, CPBD and FID.

Images are (H, W, 3) uint8 RGB (grayscale (H, W) also works for PSNR, SSIM and CPBD).

- **PSNR** (`psnr`, dB): ``10 log10(255² / MSE)``; identical images give infinity.
- **SSIM** (`ssim`, in [-1, 1]): scikit-image's structural similarity over the colour channels,
  Gaussian-weighted (σ = 1.5) as in Wang et al. 2004.
- **CPBD** (`cpbd`, in [0, 1], higher is sharper): the cumulative probability of blur detection of
  Narvekar & Karam (2011). The luma is split into 64×64 blocks; a block with more than 0.2% Canny
  edge pixels is an edge block. For each edge pixel of an edge block whose gradient is mostly
  horizontal, the edge width is the distance between the intensity extrema on either side along
  the row (Marziliano et al.), and the block's just-noticeable-blur width is 5 pixels when its
  contrast (max − min luma) is at most 50, else 3. The probability of detecting blur at that edge
  is ``1 − exp(−(w / w_JNB)^3.6)``; CPBD is the share of those edges whose probability is at most
  63% (the just-noticeable level). An image without edges scores 0.
- **FID** (`fid`): the Fréchet distance between Gaussians fitted to Inception-v3 pool features
  (2048-d) of two image sets. The weights are never downloaded: pass a torch state dict in
  torchvision's ``inception_v3`` layout (`InceptionV3` here, whose parameter names match it;
  torchvision is not needed); images are resized to 299×299 and scaled to [-1, 1], the input
  convention of those weights (torchvision's ``transform_input``). The auxiliary classifier and
  the final ``fc`` layer of such a file are ignored: only the pool features are used.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from torch import nn

from core.errors import FlowVQError

__all__ = [
    "BLOCK",
    "EDGE_BLOCK_SHARE",
    "JNB_WIDTHS",
    "JNB_CONTRAST",
    "BETA",
    "JNB_PROBABILITY",
    "ImageMetricError",
    "psnr",
    "ssim",
    "luma",
    "edge_widths",
    "cpbd",
    "frechet_distance",
    "InceptionV3",
    "load_inception",
    "inception_features",
    "fid",
]

BLOCK = 64
EDGE_BLOCK_SHARE = 0.002
JNB_WIDTHS = (5.0, 3.0)  # just-noticeable-blur width for low / high contrast blocks
JNB_CONTRAST = 50.0
BETA = 3.6
JNB_PROBABILITY = 0.63
_MAX_WIDTH_STEPS = 100
INCEPTION_SIZE = 299
_IGNORED_PREFIXES = ("AuxLogits.", "fc.")  # classifier heads of a torchvision file; FID uses pool features


class ImageMetricError(FlowVQError):
    """Images that cannot be compared (shapes differ, wrong type) or a missing Inception file."""
    code = "image_metric"


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two images of the same shape as float64; `ImageMetricError` otherwise."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim not in (2, 3):
        raise ImageMetricError(f"images must be (H, W) or (H, W, 3) of the same shape, got {a.shape} and {b.shape}")
    return a.astype(np.float64), b.astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB; infinity for identical images. Shapes: (H, W[, 3]) each."""
    a, b = _pair(a, b)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0.0 else float(10.0 * np.log10(data_range**2 / mse))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Structural similarity (Gaussian window, σ = 1.5), averaged over channels. Shapes: (H, W[, 3]) each."""
    from skimage.metrics import structural_similarity

    a, b = _pair(a, b)
    return float(structural_similarity(a, b, data_range=data_range, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, channel_axis=2 if a.ndim == 3 else None))


def luma(image: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of an RGB image, or a grayscale image as is. Shapes: (H, W[, 3]) -> (H, W) float64."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 2:
        return image
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageMetricError(f"expected an (H, W) or (H, W, 3) image, got shape {image.shape}")
    return image @ np.array([0.299, 0.587, 0.114])


def edge_widths(gray: np.ndarray, rows: np.ndarray, cols: np.ndarray, rising: np.ndarray) -> np.ndarray:
    """Marziliano edge widths along the row: from the edge pixel, walk left while the intensity
    keeps falling (rising edge) or rising (falling edge), walk right while it keeps rising
    (falling); the width is the distance between the two extrema, in pixels.

    Shapes: gray (H, W), rows, cols, rising (N,) -> (N,) float64.
    """
    width = gray.shape[1]
    sign = np.where(rising, 1.0, -1.0)
    total = np.zeros(len(rows))
    for direction in (-1, 1):
        position = cols.copy()
        active = np.ones(len(rows), dtype=bool)
        for _ in range(_MAX_WIDTH_STEPS):
            step = position + direction
            active &= (step >= 0) & (step < width)
            if not active.any():
                break
            here = gray[rows, np.clip(position, 0, width - 1)]
            there = gray[rows, np.clip(step, 0, width - 1)]
            active &= direction * sign * (there - here) > 0  # still moving away from the edge's middle
            position = np.where(active, step, position)
        total += np.abs(position - cols)
    return total


def cpbd(image: np.ndarray) -> float:
    """Cumulative probability of blur detection (module docstring), in [0, 1]; higher is sharper.

    Shapes: image (H, W[, 3]).
    """
    from skimage.feature import canny

    gray = luma(image)
    edges = canny(gray)
    grad_col = np.gradient(gray, axis=1)
    grad_row = np.gradient(gray, axis=0)
    probabilities = []
    for top in range(0, gray.shape[0] - BLOCK + 1, BLOCK):
        for left in range(0, gray.shape[1] - BLOCK + 1, BLOCK):
            block = (slice(top, top + BLOCK), slice(left, left + BLOCK))
            if edges[block].sum() <= EDGE_BLOCK_SHARE * BLOCK * BLOCK:
                continue
            rows, cols = np.nonzero(edges[block] & (np.abs(grad_col[block]) >= np.abs(grad_row[block])))
            if len(rows) == 0:
                continue
            rows, cols = rows + top, cols + left
            widths = edge_widths(gray, rows, cols, grad_col[rows, cols] > 0)
            contrast = float(np.ptp(gray[block]))
            jnb = JNB_WIDTHS[0] if contrast <= JNB_CONTRAST else JNB_WIDTHS[1]
            probabilities.append(1.0 - np.exp(-((widths / jnb) ** BETA)))
    if not probabilities:
        return 0.0
    return float(np.mean(np.concatenate(probabilities) <= JNB_PROBABILITY))


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance ``|μa − μb|² + Tr(Σa + Σb − 2 (Σa Σb)^½)`` between Gaussians fitted to two
    sets of feature rows (sample covariance, N − 1). Shapes: (Na, F), (Nb, F), Na, Nb >= 2."""
    if min(len(features_a), len(features_b)) < 2:
        raise ImageMetricError("a Fréchet distance needs at least two images in each set")
    a = np.asarray(features_a, np.float64)
    b = np.asarray(features_b, np.float64)
    ca = (a - a.mean(axis=0)) / np.sqrt(len(a) - 1)  # Σa = caᵀ ca
    cb = (b - b.mean(axis=0)) / np.sqrt(len(b) - 1)
    mean_term = float(np.sum((a.mean(axis=0) - b.mean(axis=0)) ** 2))
    return mean_term + float(np.sum(ca**2) + np.sum(cb**2)) - 2.0 * _trace_sqrt_product(ca, cb)


def _trace_sqrt_product(ca: np.ndarray, cb: np.ndarray) -> float:
    """``Tr((caᵀ ca cbᵀ cb)^½)``. The non-zero eigenvalues of that product are the squared singular
    values of ``ca cbᵀ``, so with fewer samples than features the small (Na, Nb) matrix's nuclear
    norm gives it exactly; otherwise the (F, F) matrix square root does. Shapes: (Na, F), (Nb, F)."""
    features = ca.shape[1]
    if len(ca) * len(cb) <= features * features:
        return float(np.linalg.svd(ca @ cb.T, compute_uv=False).sum())
    return float(np.trace(np.real(linalg.sqrtm((ca.T @ ca) @ (cb.T @ cb)))))


class _Conv(nn.Module):
    """Convolution (no bias), batch norm (eps 0.001), ReLU: torchvision's ``BasicConv2d``."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class _BlockA(nn.Module):
    """35×35 block: 1×1, 5×5, double 3×3 and pooled 1×1 branches."""

    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = _Conv(cin, 64, 1)
        self.branch5x5_1, self.branch5x5_2 = _Conv(cin, 48, 1), _Conv(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _Conv(cin, 64, 1)
        self.branch3x3dbl_2, self.branch3x3dbl_3 = _Conv(64, 96, 3, padding=1), _Conv(96, 96, 3, padding=1)
        self.branch_pool = _Conv(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        double = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pooled = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1))
        return torch.cat([self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)), double, pooled], 1)


class _BlockB(nn.Module):
    """35×35 -> 17×17 reduction."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = _Conv(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = _Conv(cin, 64, 1)
        self.branch3x3dbl_2, self.branch3x3dbl_3 = _Conv(64, 96, 3, padding=1), _Conv(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        double = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), double, F.max_pool2d(x, 3, stride=2)], 1)


class _BlockC(nn.Module):
    """17×17 block with factorised 7×7 convolutions of ``c7`` channels."""

    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))  # (kernel, padding) pairs
        self.branch1x1 = _Conv(cin, 192, 1)
        self.branch7x7_1 = _Conv(cin, c7, 1)
        self.branch7x7_2 = _Conv(c7, c7, row[0], padding=row[1])
        self.branch7x7_3 = _Conv(c7, 192, col[0], padding=col[1])
        self.branch7x7dbl_1 = _Conv(cin, c7, 1)
        self.branch7x7dbl_2 = _Conv(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_3 = _Conv(c7, c7, row[0], padding=row[1])
        self.branch7x7dbl_4 = _Conv(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_5 = _Conv(c7, 192, row[0], padding=row[1])
        self.branch_pool = _Conv(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        single = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        double = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            double = layer(double)
        pooled = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1))
        return torch.cat([self.branch1x1(x), single, double, pooled], 1)


class _BlockD(nn.Module):
    """17×17 -> 8×8 reduction."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1, self.branch3x3_2 = _Conv(cin, 192, 1), _Conv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _Conv(cin, 192, 1)
        self.branch7x7x3_2 = _Conv(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _Conv(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _Conv(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seven = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            seven = layer(seven)
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), seven, F.max_pool2d(x, 3, stride=2)], 1)


class _BlockE(nn.Module):
    """8×8 block with split 1×3 / 3×1 branches."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch1x1 = _Conv(cin, 320, 1)
        self.branch3x3_1 = _Conv(cin, 384, 1)
        self.branch3x3_2a = _Conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1, self.branch3x3dbl_2 = _Conv(cin, 448, 1), _Conv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _Conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _Conv(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        single = self.branch3x3_1(x)
        double = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1))
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(single), self.branch3x3_2b(single),
                          self.branch3x3dbl_3a(double), self.branch3x3dbl_3b(double), pooled], 1)


class InceptionV3(nn.Module):
    """Inception-v3 up to its 2048-d average-pooled features, with torchvision's parameter names.

    Shapes: forward x (N, 3, 299, 299) scaled to [-1, 1] -> (N, 2048).
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = _Conv(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _Conv(32, 32, 3)
        self.Conv2d_2b_3x3 = _Conv(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = _Conv(64, 80, 1)
        self.Conv2d_4a_3x3 = _Conv(80, 192, 3)
        self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = _BlockA(192, 32), _BlockA(256, 64), _BlockA(288, 64)
        self.Mixed_6a = _BlockB(288)
        self.Mixed_6b, self.Mixed_6c = _BlockC(768, 128), _BlockC(768, 160)
        self.Mixed_6d, self.Mixed_6e = _BlockC(768, 160), _BlockC(768, 192)
        self.Mixed_7a, self.Mixed_7b, self.Mixed_7c = _BlockD(768), _BlockE(1280), _BlockE(2048)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(F.max_pool2d(x, 3, stride=2)))
        x = F.max_pool2d(x, 3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def load_inception(path: Path, device: str = "cpu") -> InceptionV3:
    """`InceptionV3` in eval mode with the weights of a torchvision ``inception_v3`` state dict.

    Raises `ImageMetricError` for a missing or unreadable file or one of another layout.
    """
    if not path.is_file():
        raise ImageMetricError(f"Inception weights not found: {path}; pass a torchvision inception_v3 state dict")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a foreign file
        raise ImageMetricError(f"cannot read Inception weights {path}: {exc}") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ImageMetricError(f"{path} holds a {type(state).__name__}, not a state dict")
    network = InceptionV3()
    features = {k: v for k, v in state.items() if not k.startswith(_IGNORED_PREFIXES)}
    missing, unexpected = network.load_state_dict(features, strict=False)
    if missing or unexpected:
        raise ImageMetricError(f"{path} is not a torchvision inception_v3 state dict: missing {missing[:3]}, "
                               f"unexpected {unexpected[:3]}")
    return network.to(device).eval()


def inception_features(network: InceptionV3, images: Sequence[np.ndarray], device: str = "cpu",
                       batch: int = 16) -> np.ndarray:
    """Pool features of RGB uint8 images, resized to 299×299 (bilinear) and scaled to [-1, 1].

    Shapes: each image (H, W, 3) uint8 -> (N, 2048) float64.
    """
    rows = []
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            chunk = [torch.from_numpy(np.ascontiguousarray(_rgb(image))) for image in images[start:start + batch]]
            x = torch.stack([F.interpolate(c.permute(2, 0, 1)[None].float(), size=(INCEPTION_SIZE, INCEPTION_SIZE),
                                           mode="bilinear", align_corners=False)[0] for c in chunk])
            rows.append(network(x.to(device) / 127.5 - 1.0).double().cpu().numpy())
    return np.concatenate(rows) if rows else np.zeros((0, 2048))


def _rgb(image: np.ndarray) -> np.ndarray:
    """An (H, W, 3) uint8 image, or `ImageMetricError`."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ImageMetricError(f"FID takes RGB uint8 images (H, W, 3), got {image.dtype} of shape {image.shape}")
    return image


def fid(real: Sequence[np.ndarray], fake: Sequence[np.ndarray], inception_weights: str | Path | None,
        device: str = "cpu", batch: int = 16) -> float:
    """Fréchet Inception Distance between two sets of RGB uint8 images (module docstring).

    ``inception_weights``: a torch state dict in torchvision's ``inception_v3`` layout; without it
    `ImageMetricError` says how to get one. Shapes: each image (H, W, 3) uint8; at least 2 per set.
    """
    if inception_weights is None:
        raise ImageMetricError("FID needs Inception-v3 weights, which are never downloaded: pass the path of a "
                               "torchvision inception_v3 state dict (e.g. inception_v3_google-0cc3c7bd.pth)")
    network = load_inception(Path(inception_weights), device)
    return frechet_distance(inception_features(network, real, device, batch),
                            inception_features(network, fake, device, batch))
