"""The latent bank and manifold projection (paper §3.2, after Manifold Projection [24]).

After training, ExpFlow maps training frames (with their full context) to latents z; a random
subset is kept as the bank D (N, D) beside the weights. At sampling time each sampled ẑ is replaced
by Σ_k w_k z̄_k over its K nearest bank latents, with weights that minimise ‖ẑ - Σ w_k z̄_k‖² under
Σ w_k = 1 (solved in closed form as in locally linear embedding, with a small ridge), and blended
with ẑ by a factor.
"""

from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import Tensor

from core.coeff.model import CoeffModel

__all__ = ["project_to_manifold", "build_latent_bank", "RIDGE"]

RIDGE = 1e-3  # relative ridge on the local Gram matrix: keeps the solve stable for K > D or duplicates
_CHUNK = 2048  # query rows per distance matrix, bounding memory to _CHUNK × N floats


def project_to_manifold(z: Tensor, bank: Tensor, k: int, check: Callable[[], None] | None = None) -> Tensor:
    """Each row replaced by its constrained least-squares combination of its k nearest bank rows.

    ``check()`` is called before each chunk of `_CHUNK` rows and may raise to stop (a cancelled
    generation: a long take projects for tens of seconds). Shapes: z (M, D), bank (N, D) -> (M, D).
    k is capped at N.
    """
    if len(bank) == 0:
        raise ValueError("the latent bank is empty")
    k = min(k, len(bank))
    chunks = []
    for chunk in z.split(_CHUNK):
        if check is not None:
            check()
        chunks.append(_project_chunk(chunk, bank, k))
    return torch.cat(chunks) if chunks else z


def _project_chunk(z: Tensor, bank: Tensor, k: int) -> Tensor:
    """Shapes: z (M, D), bank (N, D) -> (M, D)."""
    nearest = torch.cdist(z, bank).topk(k, dim=1, largest=False).indices  # (M, k)
    neighbours = bank[nearest]  # (M, k, D)
    offsets = neighbours - z.unsqueeze(1)
    gram = offsets @ offsets.transpose(1, 2)  # (M, k, k)
    trace = gram.diagonal(dim1=1, dim2=2).sum(dim=1).clamp_min(1e-12)
    eye = torch.eye(k, dtype=z.dtype, device=z.device)
    gram = gram + (RIDGE * trace / k)[:, None, None] * eye
    weights = torch.linalg.solve(gram, torch.ones(len(z), k, 1, dtype=z.dtype, device=z.device))
    weights = weights.squeeze(-1)
    weights = weights / weights.sum(dim=1, keepdim=True)  # Σ w = 1
    return (weights.unsqueeze(-1) * neighbours).sum(dim=1)


@torch.no_grad()
def build_latent_bank(
    model: CoeffModel, batches: Iterable[dict[str, Tensor]], size: int, seed: int
) -> int:
    """Fill ``model.bank``/``bank_labels`` with ExpFlow latents of (a random ``size``-subset of)
    the frames in ``batches`` (window-1 batches of `core.formats.dataset.frame_batches`), each mapped
    with its full context: β₀, audio, emotion, every previous frame that exists and, for a model with
    phone input, the phones a recogniser heard in the frame's speech (what generation reads without
    a text). Returns the bank size.
    """
    flow = model.exp_flow
    latents, labels = [], []
    device = model.lower.device
    for batch in batches:
        batch = {key: value.to(device) for key, value in batch.items()}
        static = flow.static_context(batch["audio"], batch["beta0"], batch["label"], flow.batch_style(batch),
                                     batch.get("heard"))
        latents.append(flow.encode_windows(batch["exp"], batch["available"], static, batch["label"]))
        labels.append(batch["label"])
    z_all, label_all = torch.cat(latents), torch.cat(labels)
    keep = np.sort(np.random.default_rng(seed).permutation(len(z_all))[:size])
    keep_index = torch.as_tensor(keep, device=device)
    model.bank = z_all[keep_index].clone()
    model.bank_labels = label_all[keep_index].clone()
    return len(keep)
