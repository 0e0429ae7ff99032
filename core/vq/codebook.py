"""The codebook autoencoder of paper §3.3 (Fig. 3a): encoder E_h, codebook C, decoder D_h.

Images are float tensors in [-1, 1], shape (B, 3, S, S) with S = ``config.resolution``; the latent
grid is (m, n) = (S / 2**downsamples,) * 2 cells of ``code_dim`` values. ``decode_indices`` of the
indices `encode` returns reproduces ``decode`` of its quantized latent exactly.
"""

import math

from torch import Tensor, nn

from core.vq.config import CodebookConfig
from core.vq.quantize import Quantized, VectorQuantizer

__all__ = ["group_norm", "ResBlock", "Encoder", "Decoder", "CodebookAE"]


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 32 groups that divide ``channels``."""
    return nn.GroupNorm(math.gcd(32, channels), channels, eps=1e-6)


class ResBlock(nn.Module):
    """norm-SiLU-conv twice plus a (1×1-projected when widths differ) skip.
    Shapes: (B, c_in, H, W) -> (B, c_out, H, W)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            group_norm(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1),
            group_norm(c_out), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1),
        )
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.skip(x) + self.body(x)


def _level_widths(config: CodebookConfig) -> list[int]:
    """Channels of each resolution level, from the image side to the latent side."""
    return [config.channels * mult for mult in config.channel_mult]


def _res_blocks(c_in: int, width: int, count: int) -> list[nn.Module]:
    """One resolution level's residual blocks: ``c_in`` -> ``width`` channels, then ``width`` -> ``width``."""
    return [ResBlock(c_in if index == 0 else width, width) for index in range(count)]


class Encoder(nn.Module):
    """E_h: image to continuous latent z_h. Shapes: (B, 3, S, S) -> (B, d, m, n)."""

    def __init__(self, config: CodebookConfig) -> None:
        super().__init__()
        widths = _level_widths(config)
        layers: list[nn.Module] = [nn.Conv2d(3, widths[0], 3, padding=1)]
        c_in = widths[0]
        for level, width in enumerate(widths):
            layers += _res_blocks(c_in, width, config.res_blocks)
            c_in = width
            if level < len(widths) - 1:
                layers.append(nn.Conv2d(width, width, 3, stride=2, padding=1))  # halves H and W
        layers += [ResBlock(c_in, c_in), group_norm(c_in), nn.SiLU(), nn.Conv2d(c_in, config.code_dim, 1)]
        self.layers = nn.Sequential(*layers)

    def forward(self, image: Tensor) -> Tensor:
        return self.layers(image)


class Decoder(nn.Module):
    """D_h: quantized latent to image in [-1, 1]. Shapes: (B, d, m, n) -> (B, 3, S, S)."""

    def __init__(self, config: CodebookConfig) -> None:
        super().__init__()
        widths = _level_widths(config)[::-1]
        c_in = widths[0]
        layers: list[nn.Module] = [nn.Conv2d(config.code_dim, c_in, 3, padding=1), ResBlock(c_in, c_in)]
        for level, width in enumerate(widths):
            layers += _res_blocks(c_in, width, config.res_blocks)
            c_in = width
            if level < len(widths) - 1:
                layers += [nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(width, width, 3, padding=1)]
        layers += [group_norm(c_in), nn.SiLU(), nn.Conv2d(c_in, 3, 3, padding=1), nn.Tanh()]
        self.layers = nn.Sequential(*layers)

    def forward(self, latent: Tensor) -> Tensor:
        return self.layers(latent)


class CodebookAE(nn.Module):
    """E_h, C and D_h trained by self-reconstruction (paper Eq. 13-17)."""

    def __init__(self, config: CodebookConfig) -> None:
        super().__init__()
        config.check()
        self.config = config
        self.encoder = Encoder(config)
        self.quantizer = VectorQuantizer(config.codebook_size, config.code_dim)
        self.decoder = Decoder(config)

    def encode(self, image: Tensor) -> Quantized:
        """z_c = q(E_h(I)). Shapes: image (B, 3, S, S) -> quantized (B, d, m, n), indices (B, m, n)."""
        return self.quantizer(self.encoder(image))

    def decode(self, quantized: Tensor) -> Tensor:
        """D_h. Shapes: (B, d, m, n) -> (B, 3, S, S) in [-1, 1]."""
        return self.decoder(quantized)

    def decode_indices(self, indices: Tensor) -> Tensor:
        """D_h of the codes of an index grid. Shapes: (B, m, n) int64 -> (B, 3, S, S)."""
        return self.decoder(self.quantizer.lookup(indices))

    def forward(self, image: Tensor) -> tuple[Tensor, Quantized]:
        """Reconstruction and its quantisation. Shapes: (B, 3, S, S) -> ((B, 3, S, S), `Quantized`)."""
        encoded = self.encode(image)
        return self.decode(encoded.quantized), encoded
