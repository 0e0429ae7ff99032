"""Invertible transforms of the flow-based coefficient generator (design section 3, paper §3.2).

One contract for every transform (`Transform`):

* ``forward(x, context, label) -> (z, logdet)`` maps data to latent (the *normalizing* direction,
  the paper's f⁻¹), with ``logdet = log|det dz/dx|`` per sample;
* ``inverse(z, context, label) -> x`` generates (the paper's f).

Shapes: x, z (B, D); context (B, C) or None; label (B,) long emotion class or None; logdet (B,).

A flow step (`flow_step`) is multi-actnorm → invertible 1×1 linear (LU form, Glow) → affine
coupling with a transformer conditioner, as in the paper's Fig. 2b; `Composite` chains steps and
sums their log-dets.
"""

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "Transform",
    "Composite",
    "ActNorm",
    "MultiActNorm",
    "InvertibleLinear",
    "AffineCoupling",
    "flow_step",
]


class Transform(nn.Module, ABC):
    """An invertible map with a tractable log-determinant; the module docstring has the contract."""

    @abstractmethod
    def forward(
        self, x: Tensor, context: Tensor | None = None, label: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Data to latent. Shapes: x (B, D) -> z (B, D), logdet (B,)."""

    @abstractmethod
    def inverse(
        self, z: Tensor, context: Tensor | None = None, label: Tensor | None = None
    ) -> Tensor:
        """Latent to data. Shapes: z (B, D) -> x (B, D)."""


class Composite(Transform):
    """Transforms applied in order by `forward` (log-dets summed), in reverse order by `inverse`."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    def forward(
        self, x: Tensor, context: Tensor | None = None, label: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Shapes: x (B, D) -> z (B, D), logdet (B,)."""
        logdet = x.new_zeros(x.shape[0])
        for transform in self.transforms:
            x, step_logdet = transform(x, context, label)
            logdet = logdet + step_logdet
        return x, logdet

    def inverse(
        self, z: Tensor, context: Tensor | None = None, label: Tensor | None = None
    ) -> Tensor:
        """Shapes: z (B, D) -> x (B, D)."""
        for transform in reversed(self.transforms):
            z = transform.inverse(z, context, label)
        return z


class MultiActNorm(Transform):
    """ActNorm with a (mu, log_scale) row per emotion class, picked by ``label``: h' = (β - μ) / δ.

    All classes start equal, at the identity. A label is required in both directions.
    Shapes: mu, log_scale (n_classes, D).
    """

    def __init__(self, dim: int, n_classes: int) -> None:
        super().__init__()
        self.mu = nn.Parameter(torch.zeros(n_classes, dim))
        self.log_scale = nn.Parameter(torch.zeros(n_classes, dim))

    def _rows(self, label: Tensor | None) -> tuple[Tensor, Tensor]:
        """The selected classes' parameters. Shapes: label (B,) -> mu (B, D), log_scale (B, D)."""
        if label is None:
            raise ValueError("MultiActNorm needs an emotion label (B,) to pick its class row")
        return self.mu[label], self.log_scale[label]

    def forward(
        self, x: Tensor, context: Tensor | None = None, label: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Shapes: x (B, D), label (B,) -> z (B, D), logdet (B,)."""
        mu, log_scale = self._rows(label)
        return (x - mu) * torch.exp(-log_scale), (-log_scale.sum(dim=1)).expand(x.shape[0])

    def inverse(
        self, z: Tensor, context: Tensor | None = None, label: Tensor | None = None
    ) -> Tensor:
        """Shapes: z (B, D), label (B,) -> x (B, D)."""
        mu, log_scale = self._rows(label)
        return z * torch.exp(log_scale) + mu


class ActNorm(MultiActNorm):
    """Per-dimension affine normalisation ``z = (x - mu) * exp(-log_scale)``; δ = exp(log_scale).

    A `MultiActNorm` with one class that needs no label. Both parameters start at zero, so a fresh
    ActNorm is the identity (no data-dependent init). Shapes: mu, log_scale (1, D).
    """

    def __init__(self, dim: int) -> None:
        super().__init__(dim, n_classes=1)

    def _rows(self, label: Tensor | None) -> tuple[Tensor, Tensor]:
        """The one row for every sample. Shapes: -> mu (1, D), log_scale (1, D), broadcast over B."""
        return self.mu, self.log_scale


class InvertibleLinear(Transform):
    """Invertible 1×1 linear in LU form (Glow): ``z = x Wᵀ`` with ``W = P L U``.

    P is a fixed permutation, L unit lower-triangular, U upper-triangular with diagonal
    ``sign * exp(log_s)`` (sign fixed). W starts as a random orthogonal matrix drawn from
    ``torch.Generator().manual_seed(seed)``. logdet = sum(log_s).
    Shapes: perm, lower, upper (D, D); sign, log_s (D,).
    """

    def __init__(self, dim: int, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        orthogonal, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator))
        perm, lower, upper = torch.linalg.lu(orthogonal)
        diagonal = torch.diagonal(upper)
        self.register_buffer("perm", perm)
        self.register_buffer("sign", torch.sign(diagonal))
        self.register_buffer("lower_mask", torch.tril(torch.ones(dim, dim), diagonal=-1))
        self.lower = nn.Parameter(lower * self.lower_mask)
        self.upper = nn.Parameter(torch.triu(upper, diagonal=1))
        self.log_s = nn.Parameter(torch.log(diagonal.abs()))

    def _factors(self) -> tuple[Tensor, Tensor]:
        """The triangular factors with their structure enforced. Shapes: L, U (D, D)."""
        eye = torch.eye(self.lower.shape[0], dtype=self.lower.dtype, device=self.lower.device)
        lower = self.lower * self.lower_mask + eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign * torch.exp(self.log_s))
        return lower, upper

    def weight(self) -> Tensor:
        """The matrix W = P L U. Shapes: (D, D)."""
        lower, upper = self._factors()
        return self.perm @ lower @ upper

    def forward(
        self, x: Tensor, context: Tensor | None = None, label: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Shapes: x (B, D) -> z (B, D), logdet (B,)."""
        return x @ self.weight().T, self.log_s.sum().expand(x.shape[0])

    def inverse(
        self, z: Tensor, context: Tensor | None = None, label: Tensor | None = None
    ) -> Tensor:
        """Solve P L U xᵀ = zᵀ with two triangular solves. Shapes: z (B, D) -> x (B, D)."""
        lower, upper = self._factors()
        rhs = self.perm.T @ z.T  # (D, B)
        y = torch.linalg.solve_triangular(lower, rhs, upper=False, unitriangular=True)
        return torch.linalg.solve_triangular(upper, y, upper=True).T


class AffineCoupling(Transform):
    """Affine coupling, transformer conditioner (paper Eq. 5): h = [h1, (h2 + t) ⊙ exp(log_s)].

    x splits into h1 = x[:, :D//2] (kept) and h2 = x[:, D//2:] (transformed). The conditioner reads
    tokens: each scalar of h1 is one token (linear embed of the value + a learned position
    embedding), and the context is cut into ``ceil(C / context_token_dim)`` chunks of
    ``context_token_dim`` values (the last zero-padded), each linearly embedded + its own position
    embedding. A `torch.nn.TransformerEncoder` (dropout 0, so deterministic) mixes the tokens; their
    mean goes through a final linear to (t, s_raw), with ``log_s = m * tanh(s_raw / m)`` bounded by
    m = ``max_log_scale``. The final linear is zero-initialised: a fresh coupling is the identity.
    logdet = sum(log_s).
    """

    def __init__(
        self,
        dim: int,
        context_dim: int,
        hidden: int = 64,
        heads: int = 4,
        layers: int = 2,
        max_log_scale: float = 3.0,
        context_token_dim: int = 16,
    ) -> None:
        super().__init__()
        if dim < 2:
            raise ValueError(f"AffineCoupling needs at least 2 dimensions, got {dim}")
        self.split = dim // 2
        self.context_dim = context_dim
        self.context_token_dim = context_token_dim
        self.max_log_scale = max_log_scale
        n_context_tokens = math.ceil(context_dim / context_token_dim)
        self.value_embed = nn.Linear(1, hidden)
        self.value_position = nn.Parameter(0.02 * torch.randn(self.split, hidden))
        self.context_embed = nn.Linear(context_token_dim, hidden) if n_context_tokens else None
        self.context_position = (
            nn.Parameter(0.02 * torch.randn(n_context_tokens, hidden)) if n_context_tokens else None
        )
        layer = nn.TransformerEncoderLayer(
            hidden, heads, dim_feedforward=2 * hidden, dropout=0.0, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(hidden, 2 * (dim - self.split))
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def _context_tokens(self, context: Tensor | None, batch: int) -> Tensor:
        """Embedded context chunks. Shapes: context (B, C) -> (B, ceil(C / k), hidden)."""
        if context is None or context.shape != (batch, self.context_dim):
            expected = (batch, self.context_dim)
            raise ValueError(f"AffineCoupling needs a context of shape {expected}")
        n_tokens = self.context_position.shape[0]
        padding = n_tokens * self.context_token_dim - self.context_dim
        padded = nn.functional.pad(context, (0, padding))
        chunks = padded.reshape(batch, n_tokens, self.context_token_dim)  # (B, n, k)
        return self.context_embed(chunks) + self.context_position

    def conditioner(self, h1: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        """The shift t and bounded log-scale for h2.

        Shapes: h1 (B, D//2), context (B, C) -> t, log_s (B, D - D//2).
        """
        tokens = self.value_embed(h1.unsqueeze(-1)) + self.value_position  # (B, D//2, hidden)
        if self.context_dim:
            tokens = torch.cat([tokens, self._context_tokens(context, h1.shape[0])], dim=1)
        pooled = self.encoder(tokens).mean(dim=1)  # (B, hidden)
        t, s_raw = self.head(pooled).chunk(2, dim=1)
        return t, self.max_log_scale * torch.tanh(s_raw / self.max_log_scale)

    def forward(
        self, x: Tensor, context: Tensor | None = None, label: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Shapes: x (B, D), context (B, C) -> z (B, D), logdet (B,)."""
        h1, h2 = x[:, : self.split], x[:, self.split :]
        t, log_s = self.conditioner(h1, context)
        return torch.cat([h1, (h2 + t) * torch.exp(log_s)], dim=1), log_s.sum(dim=1)

    def inverse(
        self, z: Tensor, context: Tensor | None = None, label: Tensor | None = None
    ) -> Tensor:
        """Shapes: z (B, D), context (B, C) -> x (B, D)."""
        h1, z2 = z[:, : self.split], z[:, self.split :]
        t, log_s = self.conditioner(h1, context)
        return torch.cat([h1, z2 * torch.exp(-log_s) - t], dim=1)


def flow_step(
    dim: int, context_dim: int, n_classes: int | None, seed: int, **coupling_kwargs: int | float
) -> Composite:
    """One flow step: (Multi)ActNorm → InvertibleLinear(seed) → AffineCoupling(coupling_kwargs).

    MultiActNorm when ``n_classes`` is given (ExpFlow), plain ActNorm when it is None (PoseFlow).
    The same seed builds the same initial step, without touching the global random state.
    """
    with torch.random.fork_rng(devices=[]):  # the conditioner's initial weights come from `seed`
        torch.manual_seed(seed)
        norm = ActNorm(dim) if n_classes is None else MultiActNorm(dim, n_classes)
        coupling = AffineCoupling(dim, context_dim, **coupling_kwargs)
    return Composite([norm, InvertibleLinear(dim, seed), coupling])
