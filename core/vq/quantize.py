"""Nearest-neighbour vector quantisation with a straight-through gradient (paper Eq. 13 and 16).

``q(z_h)`` replaces every latent vector by its nearest codebook entry. The forward value is the
code; the backward pass copies the gradient straight through to ``z_h`` (VQ-VAE), so the encoder
learns from the decoder's loss. The two code-level losses are returned separately:

* ``code``  = ||sg(z_h) - z_c||²  moves the codes toward the encoder outputs (Eq. 16, left);
* ``feat``  = ||z_h - sg(z_c)||²  commits the encoder to its codes (Eq. 16, right), weighted by
  λ_feat (0.25 in the paper) in the total loss.
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["QuantizerLosses", "Quantized", "VectorQuantizer"]


class QuantizerLosses(NamedTuple):
    """Code-level losses, each a scalar mean over latent cells and channels."""

    code: Tensor
    feat: Tensor


class Quantized(NamedTuple):
    """What quantising a latent gives. Shapes: quantized (B, d, m, n), indices (B, m, n) int64."""

    quantized: Tensor
    indices: Tensor
    losses: QuantizerLosses


class VectorQuantizer(nn.Module):
    """A codebook of ``size`` vectors of ``dim`` values and the nearest-code lookup."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(size, dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / size, 1.0 / size)

    @property
    def size(self) -> int:
        """N, the number of codes."""
        return self.embedding.num_embeddings

    def nearest(self, z: Tensor) -> Tensor:
        """Index of the nearest code of each latent vector. Shapes: z (B, d, m, n) -> (B, m, n) int64."""
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])  # (B*m*n, d)
        codes = self.embedding.weight
        distances = (
            flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codes.t() + codes.pow(2).sum(1)[None]
        )  # (B*m*n, N)
        return distances.argmin(1).view(z.shape[0], z.shape[2], z.shape[3])

    def lookup(self, indices: Tensor) -> Tensor:
        """The codes of an index grid. Shapes: indices (B, m, n) -> (B, d, m, n)."""
        return self.embedding(indices).permute(0, 3, 1, 2)

    def soft_lookup(self, logits: Tensor) -> Tensor:
        """Hard lookup of the most likely code with the softmax's gradient (straight-through), so
        that image losses reach the code logits. Shapes: logits (B, m, n, N) -> (B, d, m, n)."""
        probs = logits.softmax(-1)
        hard = F.one_hot(probs.argmax(-1), self.size).to(probs.dtype)
        weights = hard + probs - probs.detach()  # value: one-hot; gradient: softmax's
        return (weights @ self.embedding.weight.to(probs.dtype)).permute(0, 3, 1, 2)

    def forward(self, z: Tensor) -> Quantized:
        """Quantise with the straight-through estimator. Shapes: z (B, d, m, n) -> `Quantized`."""
        indices = self.nearest(z.detach())
        codes = self.lookup(indices)
        losses = QuantizerLosses(code=F.mse_loss(codes, z.detach()), feat=F.mse_loss(z, codes.detach()))
        quantized = codes.detach() + (z - z.detach())  # value: exactly the codes; gradient: identity onto z
        return Quantized(quantized, indices, losses)

    @torch.no_grad()
    def init_codes(self, z: Tensor, generator: torch.Generator) -> None:
        """Set the codes to randomly chosen latent vectors (with repeats only when there are fewer
        vectors than codes), so that every code starts in use. Shapes: z (B, d, m, n)."""
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])  # (B*m*n, d)
        if len(flat) >= self.size:
            chosen = torch.randperm(len(flat), generator=generator, device=generator.device)[: self.size]
        else:
            chosen = torch.randint(len(flat), (self.size,), generator=generator, device=generator.device)
        self.embedding.weight.copy_(flat[chosen.to(flat.device)])
