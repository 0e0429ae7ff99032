"""The learned renderer of the preview (design section 4): the VQIG behind the renderer interface
that the server and the CLI call, shared with the training-free mesh-warp renderer (`core.render`).

`VQIGRenderer.render` animates a source portrait by coefficient sequences, frame by frame: the
portrait is centre-cropped and resized to the model's resolution, each frame's coefficient window
is centred on it (edges repeated, `core.vq.vqig.coefficient_windows`), frames are generated in
batches, and the output is resized to ``size``. Generation is deterministic: the model is in eval
mode and draws nothing at random, so the same inputs give the same frames.
"""

from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

from core.coeff.sampler import GenerationCancelled
from core.device import resolve_device
from core.errors import FlowVQError
from core.face import builtin
from core.vq.config import PRESETS
from core.vq.data import image_tensor
from core.vq.vqig import POSE_DIM, VQIG, coefficient_windows
from core.vq.weights import CONFIG_FILE, VQIG_FILE, VQIG_FORMAT, VQWeightsError, load_vqig, read_config

__all__ = ["VQIGRenderer", "RenderInputError", "has_weights", "FRAMES_PER_BATCH"]

FRAMES_PER_BATCH = 8
_PRESET_SEED = 0


class RenderInputError(FlowVQError):
    """A source image or coefficient array of the wrong shape or type."""


def has_weights(weights_dir: Path) -> bool:
    """Whether ``weights_dir`` holds VQIG weights (config.yaml of the right format and vqig.safetensors)."""
    weights_dir = Path(weights_dir)
    if not (weights_dir / CONFIG_FILE).is_file() or not (weights_dir / VQIG_FILE).is_file():
        return False
    try:
        read_config(weights_dir, VQIG_FORMAT)
    except VQWeightsError:
        return False
    return True


class VQIGRenderer:
    """Renders portrait frames from coefficients with a `VQIG` on one device."""

    name = "vqig"

    def __init__(self, model: VQIG, device: torch.device) -> None:
        self.model = model.to(device).eval()
        self.device = device

    @classmethod
    def load(cls, weights_dir: Path, device: str = "auto") -> "VQIGRenderer":
        """The VQIG weights in ``weights_dir`` (`core.vq.weights`), for the built-in face model."""
        target = resolve_device(device)
        return cls(load_vqig(weights_dir, builtin(), device=target), target)

    @classmethod
    def from_preset(cls, preset: str, device: str = "auto") -> "VQIGRenderer":
        """A randomly initialised (seeded) VQIG of a `core.vq.config.PRESETS` preset: for speed benchmarks."""
        if preset not in PRESETS:
            raise FlowVQError(f"unknown image-generator preset {preset!r}; choose one of: {', '.join(PRESETS)}")
        torch.manual_seed(_PRESET_SEED)
        return cls(VQIG(PRESETS[preset], builtin().n_expressions), resolve_device(device))

    @property
    def resolution(self) -> int:
        """The model's image side S."""
        return self.model.config.codebook.resolution

    def source_tensor(self, source_image: np.ndarray) -> Tensor:
        """The portrait as model input. Shapes: (H, W, 3) uint8 RGB -> (1, 3, S, S) on the device."""
        if source_image.ndim != 3 or source_image.shape[2] != 3 or source_image.dtype != np.uint8:
            raise RenderInputError(
                f"the source image must be an (H, W, 3) uint8 RGB array, got {source_image.shape} {source_image.dtype}"
            )
        return image_tensor(source_image, self.resolution)[None].to(self.device)

    @torch.no_grad()
    def render_batch(self, source: Tensor, exp_windows: Tensor, pose_windows: Tensor) -> Tensor:
        """One batch of frames from one source, under autocast on CUDA (bfloat16).
        Shapes: source (1, 3, S, S), exp_windows (B, W, D), pose_windows (B, W, 6) -> (B, 3, S, S)
        float32 in [-1, 1]."""
        batch = exp_windows.shape[0]
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" else nullcontext())
        with autocast:
            output = self.model(source.expand(batch, -1, -1, -1), exp_windows, pose_windows)
        return output.image.float()

    def render(
        self, source_image: np.ndarray, exp: np.ndarray, pose: np.ndarray, *, size: int = 256,
        cancel: Callable[[], bool] | None = None,
    ) -> Iterator[np.ndarray]:
        """One (size, size, 3) uint8 RGB frame per coefficient row, generated lazily; inputs are
        checked at once; ``cancel()`` is checked before each frame and `GenerationCancelled` raised
        when it returns True.
        Shapes: source_image (H, W, 3) uint8, exp (T, D), pose (T, 6) float32."""
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise RenderInputError(f"size must be a positive integer, got {size!r}")
        exp, pose = self._coefficients(exp, pose)
        source = self.source_tensor(source_image)
        window = self.model.config.vqig.window
        exp_windows = torch.from_numpy(coefficient_windows(exp, window))  # (T, W, D)
        pose_windows = torch.from_numpy(coefficient_windows(pose, window))  # (T, W, 6)
        return self._frames(source, exp_windows, pose_windows, size, cancel)

    def _frames(
        self, source: Tensor, exp_windows: Tensor, pose_windows: Tensor, size: int,
        cancel: Callable[[], bool] | None,
    ) -> Iterator[np.ndarray]:
        """The frames of `render`, generated lazily in batches of `FRAMES_PER_BATCH`.
        Shapes: source (1, 3, S, S), exp_windows (T, W, D), pose_windows (T, W, 6)."""
        pending: list[np.ndarray] = []
        for frame in range(len(exp_windows)):
            if cancel is not None and cancel():
                raise GenerationCancelled("rendering was cancelled")
            if not pending:  # the next batch of frames
                stop = frame + FRAMES_PER_BATCH
                images = self.render_batch(source, exp_windows[frame:stop].to(self.device),
                                           pose_windows[frame:stop].to(self.device))
                pending = _to_uint8(images, size)
            yield pending.pop(0)

    def _coefficients(self, exp: np.ndarray, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Check and convert the coefficient arrays. Shapes: -> exp (T, D), pose (T, 6) float32."""
        exp, pose = np.asarray(exp, dtype=np.float32), np.asarray(pose, dtype=np.float32)
        if exp.ndim != 2 or exp.shape[1] != self.model.exp_dim:
            raise RenderInputError(f"exp must have shape (frames, {self.model.exp_dim}), got {exp.shape}")
        if pose.shape != (len(exp), POSE_DIM):
            raise RenderInputError(f"pose must have shape ({len(exp)}, {POSE_DIM}), got {pose.shape}")
        if not (np.isfinite(exp).all() and np.isfinite(pose).all()):
            raise RenderInputError("exp and pose must be finite")
        return exp, pose


def _to_uint8(images: Tensor, size: int) -> list[np.ndarray]:
    """Model output as RGB frames. Shapes: (B, 3, S, S) in [-1, 1] -> B × (size, size, 3) uint8."""
    frames = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    if frames.shape[1] == size:
        return list(frames)
    interpolation = cv2.INTER_AREA if frames.shape[1] > size else cv2.INTER_LINEAR
    return [cv2.resize(frame, (size, size), interpolation=interpolation) for frame in frames]
