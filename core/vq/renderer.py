"""The learned renderer of the preview (design section 4): the VQIG behind the renderer interface
that the server and the CLI call, shared with the training-free mesh-warp renderer (`core.render`).

`VQIGRenderer.render` animates a source portrait by coefficient sequences, frame by frame: the
portrait is centre-cropped and resized to the model's resolution, each frame's coefficient window
is centred on it (edges repeated, `core.vq.vqig.coefficient_windows`), frames are generated in
batches, and the output is resized to ``size``. Generation is deterministic: the model is in eval
mode and draws nothing at random, so the same inputs give the same frames.
"""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

from core.coeff.sampler import GenerationCancelled
from core.device import resolve_device
from core.errors import FlowVQError
from core.face import builtin
from core.formats.render_inputs import check_coefficients, check_image, check_size
from core.vq.config import PRESETS
from core.vq.data import image_tensor
from core.vq.vqig import VQIG, coefficient_windows
from core.vq.weights import CONFIG_FILE, VQIG_FILE, VQIG_FORMAT, VQWeightsError, load_vqig, read_config

__all__ = ["VQIGRenderer", "has_weights", "FRAMES_PER_BATCH"]

FRAMES_PER_BATCH = 8
_PRESET_SEED = 0


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
        return image_tensor(check_image(source_image), self.resolution)[None].to(self.device)

    def _autocast(self) -> AbstractContextManager:
        """bfloat16 autocast on CUDA, nothing on the CPU."""
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" else nullcontext()

    @torch.no_grad()
    def identity(self, source: Tensor) -> Tensor:
        """The source's z_c (`core.vq.vqig.VQIG.identity`), shared by all its frames.
        Shapes: source (1, 3, S, S) -> (1, d, m, n)."""
        with self._autocast():
            return self.model.identity(source)

    @torch.no_grad()
    def render_batch(
        self, source: Tensor, exp_windows: Tensor, pose_windows: Tensor, identity: Tensor | None = None,
    ) -> Tensor:
        """One batch of frames from one source, under autocast on CUDA (bfloat16); ``identity``
        (`identity` of ``source``) is computed when not given.
        Shapes: source (1, 3, S, S), exp_windows (B, W, D), pose_windows (B, W, 6) -> (B, 3, S, S)
        float32 in [-1, 1]."""
        identity = self.identity(source) if identity is None else identity
        batch = exp_windows.shape[0]
        with self._autocast():
            output = self.model(source.expand(batch, -1, -1, -1), exp_windows, pose_windows,
                                identity=identity.expand(batch, -1, -1, -1))
        return output.image.float()

    def render(
        self, source_image: np.ndarray, exp: np.ndarray, pose: np.ndarray, *, size: int = 256,
        cancel: Callable[[], bool] | None = None,
    ) -> Iterator[np.ndarray]:
        """One (size, size, 3) uint8 RGB frame per coefficient row, generated lazily; inputs are
        checked at once; ``cancel()`` is checked before each frame and `GenerationCancelled` raised
        when it returns True.
        Shapes: source_image (H, W, 3) uint8, exp (T, D), pose (T, 6) float32."""
        size = check_size(size)
        exp, pose = check_coefficients(exp, pose, self.model.exp_dim)
        source = self.source_tensor(source_image)
        window = self.model.config.vqig.window
        exp_windows = torch.from_numpy(coefficient_windows(exp, window))  # (T, W, D)
        pose_windows = torch.from_numpy(coefficient_windows(pose, window))  # (T, W, 6)
        return self._frames(source, exp_windows, pose_windows, size, cancel)

    def _frames(
        self, source: Tensor, exp_windows: Tensor, pose_windows: Tensor, size: int,
        cancel: Callable[[], bool] | None,
    ) -> Iterator[np.ndarray]:
        """The frames of `render`, generated lazily in batches of `FRAMES_PER_BATCH`; the source is
        encoded once. Shapes: source (1, 3, S, S), exp_windows (T, W, D), pose_windows (T, W, 6)."""
        identity = self.identity(source)
        pending: list[np.ndarray] = []
        for frame in range(len(exp_windows)):
            if cancel is not None and cancel():
                raise GenerationCancelled("rendering was cancelled")
            if not pending:  # the next batch of frames
                stop = frame + FRAMES_PER_BATCH
                images = self.render_batch(source, exp_windows[frame:stop].to(self.device),
                                           pose_windows[frame:stop].to(self.device), identity)
                pending = _to_uint8(images, size)
            yield pending.pop(0)


def _to_uint8(images: Tensor, size: int) -> list[np.ndarray]:
    """Model output as RGB frames. Shapes: (B, 3, S, S) in [-1, 1] -> B × (size, size, 3) uint8."""
    frames = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    if frames.shape[1] == size:
        return list(frames)
    interpolation = cv2.INTER_AREA if frames.shape[1] > size else cv2.INTER_LINEAR
    return [cv2.resize(frame, (size, size), interpolation=interpolation) for frame in frames]
