"""The deterministic baseline of `flowvq eval`: ExpFlow's conditioner with an MSE regression head.

The paper's argument for flows is that a regressor trained with a mean-squared error predicts the
average face for a sound, so emotion and lip detail wash out and every take is the same. This
baseline makes that comparison fair: it uses *exactly* ExpFlow's conditioner (the same audio
window encoder with look-ahead, standardised β₀, emotion embedding, τ previous frames with data
dropout; built as an ExpFlow with zero flow steps, so only the fixed standardisation remains) and
replaces the flow by a two-layer head predicting the standardised coefficients of the frame. It is
trained on the same windows with the MSE in standardised units and runs autoregressively on its
own predictions. It has no head-pose model and no sampling: every take is the same.

Weights live in a folder: ``regressor.yaml`` (format, face model, names, CoeffConfig, provenance)
and ``regressor.safetensors``.
"""

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm import tqdm

from core.audio import frame_windows
from core.coeff.config import CoeffConfig
from core.coeff.model import ExpFlow, limit_lips, lip_columns
from core.emotions import emotion_index
from core.errors import FlowVQError
from core.face.model import FaceModel
from core.fileio import write_atomic
from core.formats.dataset import CoeffSequence, WindowSampler

__all__ = [
    "RegressorError", "MSERegressor", "train_regressor", "save_regressor", "load_regressor",
    "REGRESSOR_CONFIG", "REGRESSOR_WEIGHTS",
]

REGRESSOR_CONFIG = "regressor.yaml"
REGRESSOR_WEIGHTS = "regressor.safetensors"
REGRESSOR_FORMAT = "flowvq-mse-regressor"


class RegressorError(FlowVQError):
    """Regressor weights that cannot be read or do not fit the face model."""
    code = "regressor"


class MSERegressor(nn.Module):
    """ExpFlow's conditioner + a regression head (module docstring).

    Buffers lower/upper (D,) clamp predictions to the face model's coefficient range; like the
    flows' takes, predictions keep mouthClose at most jawOpen (`core.coeff.model.limit_lips`).
    """

    def __init__(self, config: CoeffConfig, face: FaceModel, seed: int = 0) -> None:
        super().__init__()
        self.config, self.names, self.face_model = config, tuple(face.names), face.id
        self.lips = lip_columns(self.names)
        dim = len(self.names)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.conditioner = ExpFlow(dim, replace(config, exp=replace(config.exp, steps=0)), seed)
            width = config.exp.context_dim
            self.head = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, dim))
        self.register_buffer("lower", torch.as_tensor(face.lower, dtype=torch.float32).clone())
        self.register_buffer("upper", torch.as_tensor(face.upper, dtype=torch.float32).clone())

    @torch.no_grad()
    def initialise_flow(self, flow: ExpFlow) -> None:
        """Start ``flow`` from this regressor: its conditioner (audio encoder, static and dynamic
        context layers, emotion embedding, standardisation) is copied (the flow's take-style
        inputs, which the regressor lacks, start at zero), and the head becomes the
        location m(c) of the flow's `core.flow.ContextAffine` (its scale stays the identity; the
        head's output is mapped into the flow's coordinates, `core.flow.Standardize.coordinates`,
        when the flow models the lip gap), so the untrained flow already places every frame where the
        regressor does. The flow needs the regressor's conditioner shape (exp audio/context
        widths, tau, emotion_dim, audio window)."""
        state = self.conditioner.state_dict()
        shared = {key: value for key, value in state.items()
                  if not key.startswith("prior.") and key != "static.weight"}
        try:
            unexpected = flow.load_state_dict(shared, strict=False).unexpected_keys
        except RuntimeError as err:
            raise RegressorError(f"the regressor's conditioner does not fit this flow: {err}") from err
        if unexpected:
            raise RegressorError(f"the flow has no place for the regressor's {', '.join(unexpected)}")
        _load_static(flow.static.weight, self.conditioner.static.weight)
        dim = len(self.names)  # the widths match: the conditioner's own weights loaded above
        first, last = flow.located.net[0], flow.located.net[-1]
        first.load_state_dict(self.head[0].state_dict())
        origin = _reframe(flow, torch.zeros_like(self.head[2].bias))  # the map is affine
        last.weight.zero_()
        last.bias.zero_()
        last.weight[:dim] = (_reframe(flow, self.head[2].weight.T) - origin).T
        last.bias[:dim] = _reframe(flow, self.head[2].bias)

    def set_statistics(self, exp: Tensor, beta0: Tensor) -> None:
        """Fix the standardisation from training frames and the source range from the training
        sequences' β₀. Shapes: exp (N, D), beta0 (S, D)."""
        self.conditioner.standardize.set_statistics(exp)
        self.conditioner.set_source_range(beta0)

    def window_loss(self, batch: dict[str, Tensor], generator: torch.Generator | None) -> Tensor:
        """Mean squared error in standardised units on the last L frames of each training window,
        with the conditioner's data dropout on the previous frames."""
        data = batch["exp"]  # (B, τ_b + L, D)
        n_batch, length = batch["audio"].shape[:2]
        static = self.conditioner.static_context(batch["audio"], batch["beta0"], batch["label"])
        keep = torch.rand((n_batch, length, 1), generator=generator) >= self.config.exp.dropout
        context = self.conditioner.window_contexts(data, batch["available"], static, keep.to(data.dtype))
        target = self.conditioner.standardize.normalize(data[:, -length:].reshape(n_batch * length, -1))
        return ((self.head(context) - target) ** 2).mean()

    @torch.no_grad()
    def predict(self, audio: np.ndarray, beta0: np.ndarray, emotion: str) -> np.ndarray:
        """One deterministic sequence, frame by frame on its own previous predictions.
        Shapes: audio (T, F) normalised log-mel rows at the model fps, beta0 (D,) -> (T, D) float32."""
        config, tau = self.config, self.config.exp.tau
        windows = torch.as_tensor(frame_windows(audio, config.audio_before, config.audio_after))[None]
        label = torch.tensor([emotion_index(emotion)])
        source = torch.as_tensor(np.asarray(beta0, np.float32))[None]
        static = self.conditioner.static_context(windows, source, label)[0]  # (T, C)
        out = torch.zeros(len(audio) + tau, len(self.names))
        present = torch.zeros(len(audio) + tau)
        for t in range(len(audio)):
            context = self.conditioner.frame_context(static[t:t + 1], out[None, t:t + tau], present[None, t:t + tau])
            frame = self.conditioner.standardize.inverse(self.head(context))[0]
            frame = torch.minimum(torch.maximum(frame, self.lower), self.upper)
            out[t + tau] = frame if self.lips is None else limit_lips(frame, self.lips)
            present[t + tau] = 1.0
        return out[tau:].numpy()


def _load_static(weight: Tensor, conditioner: Tensor) -> None:
    """The flow's static context layer from the regressor's, whose inputs are the flow's first
    ones (audio, β₀, emotion); the flow's take-style inputs start at zero, so the started flow
    ignores them until training. Shapes: weight (C, K + S), conditioner (C, K)."""
    if weight.shape[0] != conditioner.shape[0] or weight.shape[1] < conditioner.shape[1]:
        raise RegressorError(f"the regressor's static context layer {tuple(conditioner.shape)} does not "
                             f"fit this flow's {tuple(weight.shape)}")
    weight.zero_()
    weight[:, : conditioner.shape[1]] = conditioner


def _reframe(flow: ExpFlow, normalized: Tensor) -> Tensor:
    """Per-dimension standardised values (the head's output) in ``flow``'s own coordinates, which
    differ where it models the lip gap. Shapes: (..., D) -> (..., D)."""
    standardize = flow.standardize
    return standardize.coordinates(normalized * standardize.std + standardize.mean)


def train_regressor(
    sequences: Sequence[CoeffSequence], config: CoeffConfig, face: FaceModel, *, steps: int,
    batch_size: int = 64, window: int = 16, lr: float = 1e-3, seed: int = 0, show_progress: bool = True,
) -> tuple[MSERegressor, list[float]]:
    """Train on random windows of ``sequences`` with AdamW; returns the model (eval mode) and the
    mean training loss of every 100 steps (and of the last, shorter stretch). Batches and dropout come from ``seed`` alone."""
    model = MSERegressor(config, face, seed)
    model.set_statistics(torch.as_tensor(np.concatenate([s.exp for s in sequences])),
                         torch.as_tensor(np.stack([s.beta0 for s in sequences])))
    sampler = WindowSampler(sequences, config.exp.tau, window, config.audio_before, config.audio_after,
                            batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    rng = np.random.default_rng([seed, 1])
    generator = torch.Generator().manual_seed(seed)
    history: list[float] = []
    recent: list[float] = []
    model.train()
    for step in tqdm(range(1, steps + 1), desc="train regressor", disable=not show_progress):
        loss = model.window_loss(sampler.sample(rng), generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        recent.append(float(loss.detach()))
        if step % 100 == 0 or step == steps:
            history.append(float(np.mean(recent)))
            recent.clear()
    return model.eval(), history


def save_regressor(directory: str | Path, model: MSERegressor, training: dict[str, Any]) -> Path:
    """Write ``regressor.yaml`` and ``regressor.safetensors`` atomically; returns the folder."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    config = {"format": REGRESSOR_FORMAT, "version": 1, "face_model": model.face_model,
              "names": list(model.names), "model": model.config.to_dict(), "training": training}
    write_atomic(directory / REGRESSOR_WEIGHTS, lambda path: save_file(state, path))
    write_atomic(directory / REGRESSOR_CONFIG,
                 lambda path: Path(path).write_text(yaml.safe_dump(config, sort_keys=False)))
    return directory


def load_regressor(directory: str | Path, face: FaceModel) -> MSERegressor:
    """The regressor saved in ``directory`` for ``face`` (eval mode); `RegressorError` otherwise."""
    directory = Path(directory)
    try:
        config = yaml.safe_load((directory / REGRESSOR_CONFIG).read_text())
        state = load_file(directory / REGRESSOR_WEIGHTS)
    except (OSError, yaml.YAMLError, SafetensorError) as err:
        raise RegressorError(f"{directory} holds no readable regressor ({err})") from err
    if not isinstance(config, dict) or config.get("format") != REGRESSOR_FORMAT:
        raise RegressorError(f"{directory / REGRESSOR_CONFIG} is not a {REGRESSOR_FORMAT} config")
    if config.get("face_model") != face.id or tuple(config.get("names", ())) != tuple(face.names):
        raise RegressorError(f"the regressor in {directory} was trained for another face model")
    model = MSERegressor(CoeffConfig.from_dict(config["model"]), face)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise RegressorError(f"{directory / REGRESSOR_WEIGHTS} does not fit its config: {err}") from err
    return model.eval()
