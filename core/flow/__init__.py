"""The invertible-flow toolkit of the coefficient generator (design section 3, paper §3.2).

Transforms (`core.flow.transforms`) map data to latent with ``forward(x, context, label) ->
(z, logdet)`` and back with ``inverse``; priors (`core.flow.priors`) give the latent densities.
"""

from core.flow import priors, transforms
from core.flow.priors import *  # noqa: F401,F403 - the package re-exports both modules' API
from core.flow.transforms import *  # noqa: F401,F403

__all__ = transforms.__all__ + priors.__all__
