"""Renderers: speech-driven coefficients + a portrait -> talking-portrait frames (design section 4).

Every renderer has one interface, `Renderer.render(source_image, exp, pose)`, yielding frames one at
a time. Two kinds:

- ``"warp"``: the training-free mesh-warp renderer (`core.render.warp.WarpRenderer`), always
  available; the preview default.
- ``"vqig"``: the learned VQIG (`core.vq.renderer.VQIGRenderer`, imported only when asked for),
  available when its weights (``config.yaml`` + ``vqig.safetensors``) are found (`find_vqig_weights`).

Frames are a square crop around the portrait's face (`core.render.portrait`); the expression
replaces the portrait's fitted one and the pose is relative to the portrait's own head pose
(pose 0 = the photo's pose; `core.render.geometry`).
"""

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from core.coeff.sampler import CancelFn, GenerationCancelled
from core.errors import FlowVQError
from core.formats.render_inputs import RenderInputError

__all__ = [
    "RENDERER_KINDS",
    "VQIG_MODULE",
    "CancelFn",
    "GenerationCancelled",
    "Renderer",
    "RendererError",
    "RenderInputError",
    "default_vqig_weights_dir",
    "find_vqig_weights",
    "available_renderers",
    "load_renderer",
]

RENDERER_KINDS: tuple[str, ...] = ("auto", "warp", "vqig")
VQIG_MODULE = "core.vq.renderer"


class RendererError(FlowVQError):
    """An unknown renderer kind, or the VQIG asked for without its weights or its package."""
    code = "renderer"


@runtime_checkable
class Renderer(Protocol):
    """What every renderer offers: a ``name`` ("warp", "vqig") and `render`."""

    name: str

    def render(self, source_image: np.ndarray, exp: np.ndarray, pose: np.ndarray, *, size: int = 256,
               cancel: CancelFn | None = None) -> Iterator[np.ndarray]:
        """Frames of the portrait animated by one take's coefficients, yielded one at a time.

        ``cancel()`` is checked before each frame; when it returns True, `GenerationCancelled` is
        raised. Shapes: source_image (H, W, 3) uint8 RGB, exp (T, D) float32, pose (T, 6) float32
        -> T frames (size, size, 3) uint8 RGB.
        """
        ...


def default_vqig_weights_dir() -> Path:
    """Where default VQIG weights would ship inside the package (``core/vq/assets/default``)."""
    return Path(__file__).resolve().parent.parent / "vq" / "assets" / "default"


def find_vqig_weights(weights_dir: Path | None = None) -> Path | None:
    """The VQIG weights directory: ``weights_dir`` (else `default_vqig_weights_dir`) when the VQIG
    package is installed and says the directory holds its weights
    (``core.vq.renderer.has_weights``), else None."""
    directory = Path(weights_dir) if weights_dir is not None else default_vqig_weights_dir()
    if not _vqig_installed():
        return None
    from core.vq.renderer import has_weights

    return directory if has_weights(directory) else None


def _vqig_installed() -> bool:
    """Whether the VQIG package (`VQIG_MODULE`) is present."""
    try:
        return importlib.util.find_spec(VQIG_MODULE) is not None
    except ModuleNotFoundError:
        return False


def available_renderers(weights_dir: Path | None = None) -> list[str]:
    """``["warp"]``, plus ``"vqig"`` when its package is installed and its weights are found."""
    return ["warp", "vqig"] if find_vqig_weights(weights_dir) is not None else ["warp"]


def load_renderer(kind: str = "auto", weights_dir: Path | None = None, device: str = "auto") -> Renderer:
    """A renderer by kind: ``"warp"``, ``"vqig"``, or ``"auto"`` (the VQIG when it is available,
    else the mesh warp). ``device`` is used by the VQIG only ("auto", "cpu", "cuda[:N]").

    Raises `RendererError` for an unknown kind, or ``"vqig"`` without its package or weights.
    """
    if kind not in RENDERER_KINDS:
        raise RendererError(f"unknown renderer {kind!r}; choose one of {', '.join(RENDERER_KINDS)}")
    if kind == "auto":
        kind = available_renderers(weights_dir)[-1]
    if kind == "warp":
        from core.render.warp import WarpRenderer

        return WarpRenderer()
    return _load_vqig(weights_dir, device)


def _load_vqig(weights_dir: Path | None, device: str) -> Renderer:
    """The VQIG renderer from its weights; `RendererError` when its package or weights are missing."""
    if not _vqig_installed():
        raise RendererError(f"the VQIG renderer is not installed ({VQIG_MODULE} is missing); "
                            "use the mesh-warp renderer (warp)")
    directory = find_vqig_weights(weights_dir)
    if directory is None:
        where = weights_dir if weights_dir is not None else default_vqig_weights_dir()
        raise RendererError(f"no VQIG weights found in {where}; train the VQIG (`flowvq train vqig`) and pass its "
                            "weights directory, or use the mesh-warp renderer (warp)")
    from core.vq.renderer import VQIGRenderer

    return VQIGRenderer.load(directory, device)
