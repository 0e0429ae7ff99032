"""The Vector-Quantized Image Generator of paper §3.3 (Fig. 3b).

Given a source portrait I₀ and a window of coefficients (β̂, ρ̂) around the output frame:

1. identity: z_c = q(E_h(I₀)) with the frozen codebook autoencoder;
2. motion: the mapping net Φ turns the window into a motion descriptor σ;
3. warp: the warping net W predicts a dense flow from (I₀, σ) that warps I₀ into I_w; its layers
   are modulated by AdaIN from σ — the *image-level* AdaIN of the paper;
4. the warped-image encoder E_w (initialised from E_h, then fine-tuned) gives z_w;
5. the fuse net φ combines z_c and z_w into z_f;
6. multi-head cross-attention lets z_f query z_c (identity and texture), then AdaIN from σ — the
   *feature-level* AdaIN — gives the fused features ẑ_f (what L_feat compares with the target's z_c);
7. the transformer T predicts one code index per latent cell; the codes are looked up in C and
   decoded by the frozen D_h.

Images are in [-1, 1], shape (B, 3, S, S); the latent grid is (m, n); N codes of d values; W the
coefficient window, D the face model's expression count.
"""

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.formats.takes import POSE_DIM
from core.vq.codebook import CodebookAE, Encoder, ResBlock
from core.vq.config import VQConfig

__all__ = [
    "VQIGOutput", "coefficient_windows", "warp_image", "AdaIN", "MappingNet", "WarpNet",
    "FuseNet", "CrossAttention", "CodeTransformer", "VQIG",
]



class VQIGOutput(NamedTuple):
    """One VQIG pass. Shapes: logits (B, m*n, N); features ẑ_f (B, d, m, n); warped I_w
    (B, 3, S, S); image Î (B, 3, S, S), None when decoding was not asked for."""

    logits: Tensor
    features: Tensor
    warped: Tensor
    image: Tensor | None


def coefficient_windows(values: np.ndarray, window: int) -> np.ndarray:
    """The ``window`` rows centred on every row, edge rows repeated (odd ``window``).
    Shapes: values (T, C) -> (T, window, C)."""
    half = window // 2
    padded = np.concatenate([values[:1].repeat(half, 0), values, values[-1:].repeat(half, 0)])  # (T+2h, C)
    index = np.arange(len(values))[:, None] + np.arange(window)[None]  # (T, window)
    return padded[index]


def warp_image(image: Tensor, flow: Tensor) -> Tensor:
    """Backward warp: output pixel p samples ``image`` at p + flow(p) (bilinear, border padding).
    ``flow`` is in normalised units (2 = the image's width/height), x then y.
    Shapes: image (B, C, H, W), flow (B, 2, H, W) -> (B, C, H, W)."""
    _, _, height, width = image.shape
    ys = (torch.arange(height, device=image.device, dtype=flow.dtype) * 2 + 1) / height - 1
    xs = (torch.arange(width, device=image.device, dtype=flow.dtype) * 2 + 1) / width - 1
    base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)  # (H, W, 2), (x, y) per pixel
    grid = base[None] + flow.permute(0, 2, 3, 1)  # (B, H, W, 2)
    return F.grid_sample(image, grid.to(image.dtype), mode="bilinear", padding_mode="border", align_corners=False)


class AdaIN(nn.Module):
    """Instance-normalise, then scale by (1 + γ(σ)) and shift by β(σ).
    Shapes: x (B, C, H, W), sigma (B, M) -> (B, C, H, W)."""

    def __init__(self, channels: int, motion_dim: int) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.affine = nn.Linear(motion_dim, 2 * channels)

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        gamma, beta = self.affine(sigma)[:, :, None, None].chunk(2, dim=1)  # (B, C, 1, 1) each
        return self.norm(x) * (1 + gamma) + beta


class MappingNet(nn.Module):
    """Φ: a window of coefficients to the motion descriptor σ (1-D convolutions over time, then the
    temporal mean). Shapes: coeffs (B, W, D + 6) -> (B, motion_dim)."""

    def __init__(self, coeff_dim: int, channels: int, layers: int, motion_dim: int) -> None:
        super().__init__()
        self.first = nn.Conv1d(coeff_dim, channels, 3, padding=1)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LeakyReLU(0.1), nn.Conv1d(channels, channels, 3, padding=1)) for _ in range(layers)
        )
        self.out = nn.Linear(channels, motion_dim)

    def forward(self, coeffs: Tensor) -> Tensor:
        x = self.first(coeffs.transpose(1, 2))  # (B, channels, W)
        for block in self.blocks:
            x = x + block(x)
        return self.out(F.leaky_relu(x, 0.1).mean(-1))


class _ModulatedConv(nn.Module):
    """conv (stride 1 or 2), AdaIN from σ, LeakyReLU. Shapes: (B, c_in, H, W) -> (B, c_out, H/stride, W/stride)."""

    def __init__(self, c_in: int, c_out: int, motion_dim: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
        self.adain = AdaIN(c_out, motion_dim)

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        return F.leaky_relu(self.adain(self.conv(x), sigma), 0.2)


class WarpNet(nn.Module):
    """W: an AdaIN-modulated hourglass on I₀ at half resolution predicting a dense flow, upsampled to
    full size. The flow head starts at zero, so an untrained W is the identity warp.
    Shapes: image (B, 3, S, S), sigma (B, M) -> flow (B, 2, S, S)."""

    def __init__(self, channels: int, levels: int, motion_dim: int) -> None:
        super().__init__()
        widths = [channels * 2 ** min(level, 3) for level in range(levels + 1)]
        self.stem = nn.Conv2d(3, widths[0], 3, padding=1)
        self.down = nn.ModuleList(
            _ModulatedConv(widths[i], widths[i + 1], motion_dim, stride=2) for i in range(levels)
        )
        self.up = nn.ModuleList(
            _ModulatedConv(widths[i + 1] + widths[i], widths[i], motion_dim) for i in reversed(range(levels))
        )
        self.flow = nn.Conv2d(widths[0], 2, 3, padding=1)
        nn.init.zeros_(self.flow.weight)
        nn.init.zeros_(self.flow.bias)

    def forward(self, image: Tensor, sigma: Tensor) -> Tensor:
        x = self.stem(F.avg_pool2d(image, 2))  # (B, c, S/2, S/2)
        skips = []
        for layer in self.down:
            skips.append(x)
            x = layer(x, sigma)  # halves H and W
        for layer in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")  # doubles H and W
            x = layer(torch.cat([x, skip], 1), sigma)
        return F.interpolate(self.flow(x), scale_factor=2.0, mode="bilinear", align_corners=False)


class FuseNet(nn.Module):
    """φ: z_f = z_w + a residual computed from both latents. Shapes: z_c, z_w (B, d, m, n) -> (B, d, m, n)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(2 * dim, dim, 3, padding=1), ResBlock(dim, dim), nn.Conv2d(dim, dim, 1))

    def forward(self, z_c: Tensor, z_w: Tensor) -> Tensor:
        return z_w + self.net(torch.cat([z_c, z_w], 1))


class CrossAttention(nn.Module):
    """Multi-head cross-attention: every cell of z_f queries all cells of z_c; residual.
    Shapes: z_f, z_c (B, d, m, n) -> (B, d, m, n)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm_query, self.norm_context = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, z_f: Tensor, z_c: Tensor) -> Tensor:
        batch, dim, rows, cols = z_f.shape
        query = z_f.flatten(2).transpose(1, 2)  # (B, m*n, d)
        context = self.norm_context(z_c.flatten(2).transpose(1, 2))  # (B, m*n, d)
        attended, _ = self.attention(self.norm_query(query), context, context, need_weights=False)
        return (query + attended).transpose(1, 2).reshape(batch, dim, rows, cols)


class CodeTransformer(nn.Module):
    """T: a pre-norm transformer encoder over the latent cells predicting code logits.
    Shapes: features (B, d, m, n) -> logits (B, m*n, N)."""

    def __init__(self, dim: int, cells: int, width: int, heads: int, layers: int, codes: int) -> None:
        super().__init__()
        self.embed = nn.Linear(dim, width)
        self.position = nn.Parameter(torch.zeros(1, cells, width))
        nn.init.normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(
            width, heads, dim_feedforward=2 * width, dropout=0.0, activation="gelu", batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, codes))

    def forward(self, features: Tensor) -> Tensor:
        tokens = self.embed(features.flatten(2).transpose(1, 2)) + self.position  # (B, m*n, width)
        return self.head(self.blocks(tokens))


class VQIG(nn.Module):
    """The whole generator around a frozen `CodebookAE`; ``exp_dim`` is the face model's D."""

    def __init__(self, config: VQConfig, exp_dim: int) -> None:
        super().__init__()
        config.check()
        self.config, self.exp_dim = config, exp_dim
        book, settings = config.codebook, config.vqig
        self.codebook = CodebookAE(book).requires_grad_(False)
        self.mapping = MappingNet(exp_dim + POSE_DIM, settings.mapping_channels, settings.mapping_layers,
                                  settings.motion_dim)
        self.warp = WarpNet(settings.warp_channels, settings.warp_levels, settings.motion_dim)
        self.warped_encoder = Encoder(book)
        self.warped_encoder.load_state_dict(self.codebook.encoder.state_dict())
        self.fuse = FuseNet(book.code_dim)
        self.attention = CrossAttention(book.code_dim, settings.heads)
        self.feature_adain = AdaIN(book.code_dim, settings.motion_dim)
        self.transformer = CodeTransformer(
            book.code_dim, book.latent_size ** 2, settings.transformer_dim, settings.transformer_heads,
            settings.transformer_layers, book.codebook_size,
        )

    def init_from_codebook(self, codebook: CodebookAE) -> None:
        """Take a trained codebook autoencoder's E_h, C and D_h (kept frozen) and start E_w as E_h."""
        self.codebook.load_state_dict(codebook.state_dict())
        self.warped_encoder.load_state_dict(codebook.encoder.state_dict())

    def predict_indices(self, logits: Tensor) -> Tensor:
        """The most likely code of each cell. Shapes: logits (B, m*n, N) -> (B, m, n) int64."""
        side = self.config.codebook.latent_size
        return logits.argmax(-1).view(-1, side, side)

    @torch.no_grad()
    def identity(self, source: Tensor) -> Tensor:
        """z_c = q(E_h(I₀)) with the frozen codebook autoencoder: what `forward` takes from the
        source alone. Shapes: source (B, 3, S, S) -> (B, d, m, n)."""
        return self.codebook.encode(source).quantized

    def forward(
        self, source: Tensor, exp: Tensor, pose: Tensor, decode: bool = True, identity: Tensor | None = None,
    ) -> VQIGOutput:
        """Animate ``source`` by the coefficient windows. With ``decode`` the image is D_h of the
        looked-up codes, whose gradient reaches the logits straight through (`soft_lookup`).
        ``identity``: the source's `identity` when the caller already has it (a renderer animating
        one portrait computes it once), else it is computed here.
        Shapes: source (B, 3, S, S), exp (B, W, D), pose (B, W, 6), identity (B, d, m, n) -> `VQIGOutput`."""
        z_c = self.identity(source) if identity is None else identity  # (B, d, m, n), frozen
        # ---- motion descriptor and warp ----
        sigma = self.mapping(torch.cat([exp, pose], -1))  # (B, M)
        warped = warp_image(source, self.warp(source, sigma))  # (B, 3, S, S)
        # ---- fusion: φ, cross-attention, feature-level AdaIN ----
        z_f = self.fuse(z_c, self.warped_encoder(warped))
        features = self.feature_adain(self.attention(z_f, z_c), sigma)  # (B, d, m, n)
        # ---- code prediction, lookup, decoding ----
        logits = self.transformer(features)  # (B, m*n, N)
        image = None
        if decode:
            side = self.config.codebook.latent_size
            grid = logits.view(logits.shape[0], side, side, -1)  # (B, m, n, N)
            image = self.codebook.decode(self.codebook.quantizer.soft_lookup(grid))
        return VQIGOutput(logits, features, warped, image)
