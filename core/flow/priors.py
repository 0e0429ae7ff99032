"""Latent priors of the flows (design section 3, paper Eqs. 7-8).

`StudentTMixture` is ExpFlow's prior: one multivariate-t component per emotion class, means drawn
once from N(0, I) and kept (a buffer, never trained), identity scale, ν degrees of freedom, equal
weights 1/C. `StandardGaussian` is PoseFlow's prior. Temperature scales the spread of samples.

Shapes: z (B, D); label (B,) long; log-densities (B,).
"""

import math

import torch
from torch import Tensor, nn

__all__ = ["StudentTMixture", "StandardGaussian", "t_noise", "standard_gamma"]


class StudentTMixture(nn.Module):
    """Mixture of multivariate t distributions t_ν(μ_i, I), i = 1..C, with weights 1/C.

    Shapes: means (C, D).
    """

    def __init__(self, dim: int, n_classes: int, nu: float, seed: int) -> None:
        super().__init__()
        if nu <= 0:
            raise ValueError(f"degrees of freedom nu must be positive, got {nu}")
        self.nu = float(nu)
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("means", torch.randn(n_classes, dim, generator=generator))

    def _log_density(self, z: Tensor, means: Tensor) -> Tensor:
        """Identity-scale t log-density, broadcast over leading dims.

        Shapes: z (B, D), means (B, D) -> (B,); or z (B, 1, D), means (C, D) -> (B, C).
        """
        nu, dim = self.nu, z.shape[-1]
        squared = ((z - means) ** 2).sum(dim=-1)
        log_norm = (
            math.lgamma((nu + dim) / 2) - math.lgamma(nu / 2) - dim / 2 * math.log(nu * math.pi)
        )
        return log_norm - (nu + dim) / 2 * torch.log1p(squared / nu)

    def log_prob_class(self, z: Tensor, label: Tensor) -> Tensor:
        """log t_ν(z | μ_label, I) (paper Eq. 7). Shapes: z (B, D), label (B,) -> (B,)."""
        return self._log_density(z, self.means[label])

    def log_prob(self, z: Tensor) -> Tensor:
        """log Σ_i (1/C) t_ν(z | μ_i, I) (paper Eq. 8). Shapes: z (B, D) -> (B,)."""
        per_class = self._log_density(z.unsqueeze(1), self.means)  # (B, C)
        return torch.logsumexp(per_class, dim=1) - math.log(self.means.shape[0])

    def sample(
        self, label: Tensor, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """μ_label + temperature · ε with ε ~ t_ν(0, I). Shapes: label (B,) -> (B, D).

        ε = n / sqrt(w), n ~ N(0, I) and w ~ Gamma(ν/2, rate ν/2) = χ²(ν)/ν, both drawn from
        ``generator`` (`standard_gamma`), so a seeded generator repeats samples.
        """
        means = self.means[label]  # (B, D)
        noise = t_noise(self.nu, means.shape[0], means.shape[1], generator, means.dtype, means.device)
        return means + temperature * noise


def t_noise(
    nu: float, batch: int, dim: int, generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32, device: torch.device | str | None = None,
) -> Tensor:
    """Standard multivariate t noise t_ν(0, I): n / sqrt(w), n ~ N(0, I), w ~ χ²(ν)/ν.

    Draws the normal block first, then the gamma column, from ``generator`` (which must live on
    ``device``). Shapes: -> (batch, dim).
    """
    normal = torch.randn((batch, dim), generator=generator, dtype=dtype, device=device)
    w = standard_gamma(nu / 2, batch, generator, dtype, device) / (nu / 2)
    return normal / torch.sqrt(w).unsqueeze(1)


def standard_gamma(
    alpha: float, count: int, generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32, device: torch.device | str | None = None,
) -> Tensor:
    """``count`` draws of Gamma(alpha, rate 1) from ``generator``, with public sampling calls only
    (`torch.distributions.Gamma` takes no generator).

    Marsaglia & Tsang (2000), "A simple method for generating gamma variables": for alpha ≥ 1,
    d = alpha - 1/3, c = 1/sqrt(9d), x ~ N(0, 1), v = (1 + c x)³, u ~ U(0, 1), accept d·v when
    v > 0 and log u < x²/2 + d - d v + d log v (over 95% of proposals are accepted); rounds of
    proposals for the draws still pending run until all are accepted. For alpha < 1, a draw of
    Gamma(alpha + 1) times u^(1/alpha). Computed in float64, returned in ``dtype``.
    Shapes: -> (count,).
    """
    if alpha <= 0:
        raise ValueError(f"gamma shape alpha must be positive, got {alpha}")
    boost = alpha < 1
    d = (alpha + 1 if boost else alpha) - 1 / 3
    c = 1 / math.sqrt(9 * d)
    draws = torch.empty(count, dtype=torch.float64, device=device)
    pending = torch.arange(count, device=device)
    while len(pending):
        x = torch.randn(len(pending), generator=generator, dtype=torch.float64, device=device)
        u = torch.rand(len(pending), generator=generator, dtype=torch.float64, device=device)
        v = (1 + c * x) ** 3
        accept = (v > 0) & (torch.log(u) < 0.5 * x**2 + d - d * v + d * torch.log(v.clamp_min(1e-300)))
        draws[pending[accept]] = d * v[accept]
        pending = pending[~accept]
    if boost:
        u = torch.rand(count, generator=generator, dtype=torch.float64, device=device)
        draws = draws * u ** (1 / alpha)
    return draws.to(dtype)


class StandardGaussian(nn.Module):
    """N(0, I) in ``dim`` dimensions; ``loc``, a zero non-persistent buffer, tracks dtype/device."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("loc", torch.zeros(dim), persistent=False)

    def log_prob(self, z: Tensor) -> Tensor:
        """Shapes: z (B, D) -> (B,)."""
        dim = z.shape[-1]
        return -0.5 * (z**2).sum(dim=-1) - dim / 2 * math.log(2 * math.pi)

    def sample(
        self, batch: int, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """temperature · n, n ~ N(0, I) from ``generator``. Shapes: -> (batch, D)."""
        shape = (batch, self.loc.shape[0])
        return self.loc + temperature * torch.randn(
            shape, generator=generator, dtype=self.loc.dtype, device=self.loc.device
        )
