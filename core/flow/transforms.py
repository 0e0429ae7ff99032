"""Invertible transforms of the flow-based coefficient generator (design section 3, paper §3.2).

One contract for every transform (`Transform`):

* ``forward(x, context, label) -> (z, logdet)`` maps data to latent (the *normalizing* direction,
  the paper's f⁻¹), with ``logdet = log|det dz/dx|`` per sample;
* ``inverse(z, context, label) -> x`` generates (the paper's f).

Shapes: x, z (B, D); context (B, C) or None; label (B,) long emotion class, (B, n_classes) float
weights of a blend of classes (`class_rows`), or None; logdet (B,).

A flow step (`flow_step`) is multi-actnorm → invertible 1×1 linear (LU form, Glow) → affine
coupling with a transformer conditioner, as in the paper's Fig. 2b; `Composite` chains steps and
sums their log-dets.
"""

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "content_key",
    "class_rows",
    "Transform",
    "Composite",
    "Standardize",
    "ActNorm",
    "MultiActNorm",
    "InvertibleLinear",
    "AffineCoupling",
    "ContextAffine",
    "TransformerBlock",
    "flow_step",
    "replace_column",
]


def content_key(tensors: Iterable[Tensor]) -> tuple:
    """A key of the tensors' current contents: shape, dtype, device and two float64 checksums of
    the values (their sum and their position-weighted sum), so a change of any value, a swap of
    two, a cast or a move gives another key. Caches of what is derived from weights (an inverse,
    a traced step) compare it, with public API only; reading the values costs one pass over them.
    Shapes: each tensor any shape."""
    key = []
    for tensor in tensors:
        flat = tensor.detach().reshape(-1).to(torch.float64)
        ramp = torch.arange(1, flat.numel() + 1, dtype=torch.float64, device=flat.device)
        key.append((tuple(tensor.shape), tensor.dtype, str(tensor.device), float(flat.sum()), float(flat @ ramp)))
    return tuple(key)


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


class Standardize(Transform):
    """Fixed per-dimension standardisation ``z = (x - mean) / std`` from training-data statistics,
    optionally with one coordinate read as a gap between two others.

    Not trained: ``mean`` and ``std`` are buffers set once by `set_statistics` and saved with the
    weights, so every later layer sees data of unit scale whatever its units (radians, metres,
    blendshape weights). A fresh one is the identity. Shapes: mean, std (D,).

    With ``gap=(j, c)`` the flow sees coordinate j as ``(x_j - x_c) / std_j`` instead of
    ``(x_j - mean_j) / std_j``: for jawOpen and mouthClose that is how far apart the lips are in
    units of the jaw's spread, 0 where they meet, so a closure is one value of one coordinate
    rather than two values that must agree (x_c keeps its own coordinate). The map is triangular
    with the same diagonal, so the log-determinant stays ``-sum(log std)``. `normalize` stays
    per-dimension.
    """

    def __init__(self, dim: int, gap: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.gap = gap
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def set_statistics(self, data: Tensor, min_std: float = 1e-3) -> None:
        """Set mean and std (floored at ``min_std``) from samples. Shapes: data (N, D)."""
        self.mean.copy_(data.mean(dim=0))
        self.std.copy_(data.std(dim=0).clamp_min(min_std))

    def normalize(self, x: Tensor) -> Tensor:
        """``(x - mean) / std`` without the log-determinant. Shapes: x (..., D) -> (..., D)."""
        return (x - self.mean) / self.std

    def coordinates(self, x: Tensor) -> Tensor:
        """The flow's coordinates of data ``x``: `normalize` with the gap in place of coordinate
        j. Shapes: x (..., D) -> (..., D)."""
        z = self.normalize(x)
        if self.gap is None:
            return z
        j, c = self.gap
        return replace_column(z, j, (x[..., j] - x[..., c]) / self.std[j])

    def forward(
        self, x: Tensor, context: Tensor | None = None, label: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Shapes: x (B, D) -> z (B, D), logdet (B,)."""
        return self.coordinates(x), (-torch.log(self.std).sum()).expand(x.shape[0])

    def inverse(
        self, z: Tensor, context: Tensor | None = None, label: Tensor | None = None
    ) -> Tensor:
        """Shapes: z (B, D) -> x (B, D)."""
        x = z * self.std + self.mean
        if self.gap is None:
            return x
        j, c = self.gap
        return replace_column(x, j, x[..., c] + self.std[j] * z[..., j])


def replace_column(x: Tensor, index: int, column: Tensor) -> Tensor:
    """``x`` with its last-axis entry ``index`` replaced by ``column``, out of place (autograd and
    tracing safe). Shapes: x (..., D), column (...) -> (..., D)."""
    return torch.cat([x[..., :index], column.unsqueeze(-1), x[..., index + 1 :]], dim=-1)


def class_rows(table: Tensor, label: Tensor) -> Tensor:
    """Per-class rows of ``table`` for each batch entry: picked by class index, or mixed by weights
    over the classes (a blend of emotions). Shapes: table (C, ...), label (B,) long or (B, C) float
    -> (B, ...)."""
    if label.is_floating_point():
        return torch.tensordot(label.to(table.dtype), table, dims=1)
    return table[label]


class MultiActNorm(Transform):
    """ActNorm with a (mu, log_scale) row per emotion class, picked by ``label``: h' = (β - μ) / δ.

    All classes start equal, at the identity. A label is required in both directions: class indices
    (B,), or weights over the classes (B, C) that mix the rows (`class_rows`).
    Shapes: mu, log_scale (n_classes, D).
    """

    def __init__(self, dim: int, n_classes: int) -> None:
        super().__init__()
        self.mu = nn.Parameter(torch.zeros(n_classes, dim))
        self.log_scale = nn.Parameter(torch.zeros(n_classes, dim))

    def _rows(self, label: Tensor | None) -> tuple[Tensor, Tensor]:
        """The selected (or mixed) classes' parameters. Shapes: label (B,) or (B, C) -> mu (B, D),
        log_scale (B, D)."""
        if label is None:
            raise ValueError("MultiActNorm needs an emotion label (B,) to pick its class row")
        return class_rows(self.mu, label), class_rows(self.log_scale, label)

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

    `inverse` solves two triangular systems while autograd records (training's reverse pass); with
    gradients off (sampling) it multiplies by W⁻¹, computed once and reused until a parameter's
    values change (`content_key`).
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
        self._inverse_cache: tuple[tuple, Tensor] | None = None

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
        """Solve P L U xᵀ = zᵀ (see the class docstring). Shapes: z (B, D) -> x (B, D)."""
        if torch.is_grad_enabled():
            return self._solve(z.T).T
        return z @ self._cached_inverse_weight().T

    def _solve(self, rhs: Tensor) -> Tensor:
        """W⁻¹ rhs by two triangular solves. Shapes: rhs (D, B) -> (D, B)."""
        lower, upper = self._factors()
        y = torch.linalg.solve_triangular(lower, self.perm.T @ rhs, upper=False, unitriangular=True)
        return torch.linalg.solve_triangular(upper, y, upper=True)

    def _cached_inverse_weight(self) -> Tensor:
        """W⁻¹, recomputed only when a parameter's values, dtype or device changed. Shapes: (D, D)."""
        key = content_key((self.lower, self.upper, self.log_s))
        if self._inverse_cache is None or self._inverse_cache[0] != key:
            eye = torch.eye(self.lower.shape[0], dtype=self.lower.dtype, device=self.lower.device)
            self._inverse_cache = (key, self._solve(eye))
        return self._inverse_cache[1]


class TransformerBlock(nn.Module):
    """A post-norm transformer encoder layer without dropout (so deterministic):
    x = LN(x + MHA(x)); x = LN(x + W₂ relu(W₁ x)), feed-forward width 2 · hidden.

    Written with `torch.nn.functional.scaled_dot_product_attention` and four linears because on
    a CPU, at the few-token, batch-of-one sizes of frame-by-frame sampling, it takes about two
    thirds of the time of `torch.nn.TransformerEncoderLayer`. Shapes: (B, N, hidden) -> same.
    """

    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden size {hidden} must be a multiple of the number of heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.norm1 = nn.LayerNorm(hidden)
        self.ff1 = nn.Linear(hidden, 2 * hidden)
        self.ff2 = nn.Linear(2 * hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden)

    def forward(self, x: Tensor) -> Tensor:
        """Shapes: (B, N, hidden) -> (B, N, hidden)."""
        batch, tokens, hidden = x.shape
        heads = self.qkv(x).view(batch, tokens, 3, self.heads, hidden // self.heads)
        q, k, v = heads.permute(2, 0, 3, 1, 4)  # each (B, heads, N, hidden / heads)
        attended = nn.functional.scaled_dot_product_attention(q, k, v)
        x = self.norm1(x + self.out(attended.transpose(1, 2).reshape(batch, tokens, hidden)))
        return self.norm2(x + self.ff2(nn.functional.relu(self.ff1(x))))


def bounded_log_scale(s_raw: Tensor, bound: float) -> Tensor:
    """``bound * tanh(s_raw / bound)``: the identity near 0, never beyond ±bound, so exp(±log_s)
    stays finite however large the network's output. Shapes: any -> the same."""
    return bound * torch.tanh(s_raw / bound)


class AffineCoupling(Transform):
    """Affine coupling, transformer conditioner (paper Eq. 5): h = [h1, (h2 + t) ⊙ exp(log_s)].

    x splits into h1 = x[:, :D//2] (kept) and h2 = x[:, D//2:] (transformed). The conditioner reads
    ``value_tokens`` tokens built from h1 and ``context_tokens`` tokens built from the context: each
    token set is one linear map of its input reshaped into tokens of width ``hidden`` (the bias is
    the tokens' learned position embedding). Few tokens built in one matrix product each are what
    make frame-by-frame sampling fast. ``layers`` `TransformerBlock`s mix the tokens; their mean
    goes through a final linear to (t, s_raw), with ``log_s = m * tanh(s_raw / m)`` bounded by
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
        value_tokens: int = 4,
        context_tokens: int = 4,
    ) -> None:
        super().__init__()
        if dim < 2:
            raise ValueError(f"AffineCoupling needs at least 2 dimensions, got {dim}")
        self.split = dim // 2
        self.context_dim = context_dim
        self.hidden = hidden
        self.max_log_scale = max_log_scale
        self.value_tokens = nn.Linear(self.split, value_tokens * hidden)
        self.context_tokens = nn.Linear(context_dim, context_tokens * hidden) if context_dim else None
        self.encoder = nn.Sequential(*(TransformerBlock(hidden, heads) for _ in range(layers)))
        self.head = nn.Linear(hidden, 2 * (dim - self.split))
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def conditioner(self, h1: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        """The shift t and bounded log-scale for h2.

        Shapes: h1 (B, D//2), context (B, C) -> t, log_s (B, D - D//2).
        """
        batch = h1.shape[0]
        tokens = self.value_tokens(h1).view(batch, -1, self.hidden)  # (B, value_tokens, hidden)
        if self.context_tokens is not None:
            if context is None or context.shape != (batch, self.context_dim):
                raise ValueError(f"AffineCoupling needs a context of shape {(batch, self.context_dim)}")
            context_tokens = self.context_tokens(context).view(batch, -1, self.hidden)
            tokens = torch.cat([tokens, context_tokens], dim=1)
        pooled = self.encoder(tokens).mean(dim=1)  # (B, hidden)
        t, s_raw = self.head(pooled).chunk(2, dim=1)
        return t, bounded_log_scale(s_raw, self.max_log_scale)

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


class ContextAffine(Transform):
    """Elementwise affine map set by the context alone: z = (x - m(c)) ⊙ exp(-log_s(c)).

    m and s_raw come from a two-layer MLP of the context; ``log_s = b * tanh(s_raw / b)`` with
    b = ``max_log_scale``. It gives the flow a direct path from the context (audio) to every
    coefficient's location and spread, which couplings reach only through their data tokens. The
    last layer is zero-initialised, so a fresh one is the identity. logdet = -sum(log_s).
    Shapes: x, z (B, D), context (B, C).
    """

    def __init__(self, dim: int, context_dim: int, max_log_scale: float = 3.0) -> None:
        super().__init__()
        self.max_log_scale = max_log_scale
        self.net = nn.Sequential(
            nn.Linear(context_dim, 2 * context_dim), nn.GELU(), nn.Linear(2 * context_dim, 2 * dim)
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def location_scale(self, context: Tensor | None) -> tuple[Tensor, Tensor]:
        """m(c) and the bounded log_s(c). Shapes: context (B, C) -> (B, D), (B, D)."""
        if context is None:
            raise ValueError("ContextAffine needs a context (B, C)")
        shift, s_raw = self.net(context).chunk(2, dim=1)
        return shift, bounded_log_scale(s_raw, self.max_log_scale)

    def forward(
        self, x: Tensor, context: Tensor | None = None, label: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Shapes: x (B, D), context (B, C) -> z (B, D), logdet (B,)."""
        shift, log_s = self.location_scale(context)
        return (x - shift) * torch.exp(-log_s), -log_s.sum(dim=1)

    def inverse(
        self, z: Tensor, context: Tensor | None = None, label: Tensor | None = None
    ) -> Tensor:
        """Shapes: z (B, D), context (B, C) -> x (B, D)."""
        shift, log_s = self.location_scale(context)
        return z * torch.exp(log_s) + shift


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
