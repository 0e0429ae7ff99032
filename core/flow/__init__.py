"""The invertible-flow toolkit of the coefficient generator (design section 3, paper §3.2).

Transforms (`core.flow.transforms`) map data to latent with ``forward(x, context, label) ->
(z, logdet)`` and back with ``inverse``; priors (`core.flow.priors`) give the latent densities.
"""

from core.flow.priors import StandardGaussian, StudentTMixture
from core.flow.transforms import (
    ActNorm,
    AffineCoupling,
    Composite,
    InvertibleLinear,
    MultiActNorm,
    Transform,
    flow_step,
)

__all__ = [
    "Transform",
    "Composite",
    "ActNorm",
    "MultiActNorm",
    "InvertibleLinear",
    "AffineCoupling",
    "flow_step",
    "StudentTMixture",
    "StandardGaussian",
]
