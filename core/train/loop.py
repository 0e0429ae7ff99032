"""Training of the coefficient flows from a YAML config: what ``flowvq train coeff`` runs.

A run reads a dataset in the `core.formats.dataset` layout, fixes both flows' standardisation from every
training frame, trains ExpFlow and PoseFlow together with AdamW on random windows, validates on the
val split, checkpoints, and at the end builds the latent bank from the training split and writes
the weights. Under ``torchrun`` (RANK/WORLD_SIZE/LOCAL_RANK set) it trains with
DistributedDataParallel: each rank draws its own windows, gradients are averaged, and only rank 0
writes files and shows the progress bar.

The output directory holds::

    OUT/
      config.yaml, coeff.safetensors, latent_bank.safetensors   `core.coeff.weights` (the bank is
                         empty in intermediate checkpoints and filled at the end)
      trainer_state.pt   model and optimizer state, step, best validation loss, world size and the
                         training config: one file written atomically, so ``--resume`` never pairs
                         weights and optimizer state of different steps
      history.jsonl      one JSON object per event: {"event": "train" | "val", "step", "loss",
                         "exp_nll", "exp_con", "exp_rec", "pose_nll", "pose_con", "world_size", "seconds"}

Randomness depends on (seed, rank, step) only: step k's batch on rank r comes from a numpy
generator and its loss noise (dequantisation, data dropout, consistency latents) from a torch
generator, both seeded from ``SeedSequence([seed, r, k, stream])``. The step is therefore the whole
RNG state, and a resumed run draws exactly what an uninterrupted run would.

Processes, seeding, history and the trainer-state file are `core.train.common`'s, shared with the
image-generator trainers (`core.train.vq`).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from core.coeff.bank import build_latent_bank
from core.coeff.config import PRESETS, CoeffConfig
from core.coeff.model import CoeffModel
from core.coeff.weights import save_weights
from core.configparse import split_preset
from core.eval.regressor import load_regressor
from core.face import builtin
from core.face.model import FaceModel
from core.formats.dataset import CoeffSequence, WindowSampler, frame_batches, load_split, read_meta
from core.train.common import (
    HISTORY_FILE, STATE_FILE, Process, Record, TrainError, check_betas, check_float_minima, check_integer_minima,
    known_keys, load_yaml_config, output_folder, plain_config, process_group, read_history, read_trainer_state,
    resolve_path, resolve_paths, run_steps, stream_seed, to_device, wrap_ddp, write_trainer_state,
)

__all__ = [
    "TrainError", "TrainConfig", "LOSS_KEYS", "HISTORY_FILE", "STATE_FILE",
    "resolve_model", "load_train_config", "read_history", "train_coeff", "learning_rate",
]

LOSS_KEYS: tuple[str, ...] = ("loss", "exp_nll", "exp_con", "exp_rec", "pose_nll", "pose_con")
STATE_FORMAT = "flowvq-trainer-state"
STATE_VERSION = 1
_STATE_HEADER = {"format": STATE_FORMAT, "version": STATE_VERSION}

# Keys that may change between a checkpoint and its resumption: they do not touch the trajectory.
_RESUMABLE_CHANGES = frozenset(
    {"dataset", "extra_datasets", "out", "steps", "log_every", "val_every", "val_batches", "checkpoint_every",
     "bank_size"}
)
_INTEGER_MINIMA = {
    "steps": 1, "window": 1, "batch_size": 1, "seed": 0, "log_every": 1, "val_every": 1,
    "val_batches": 1, "checkpoint_every": 1, "bank_size": 1, "lr_decay_steps": 0, "extra_repeats": 1,
}
# key -> (minimum, whether the minimum itself is allowed)
_FLOAT_MINIMA = {"lr": (0.0, False), "weight_decay": (0.0, True), "grad_clip": (0.0, False)}
# Streams of SeedSequence([seed, rank, step, stream]).
_BATCH_STREAM, _NOISE_STREAM, _VAL_BATCH_STREAM, _VAL_NOISE_STREAM = range(4)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a coefficient training run needs; read strictly from YAML by `load_train_config`.

    dataset: the dataset folder (`core.formats.dataset` layout); out: the output folder (None: must be
    given to `train_coeff`); model: the `CoeffConfig` (see `resolve_model`); steps: optimiser steps;
    window: target frames per training window; batch_size: windows per step and rank; seed: model
    initialisation and every random stream; lr, weight_decay, betas: AdamW; lr_decay_steps: the last
    this many steps lower the learning rate from lr to 0 along a half cosine (0: constant);
    grad_clip: the maximal global gradient norm; log_every / val_every / checkpoint_every: steps
    between train-loss logs, validations and checkpoints (the last step always does all three);
    val_batches: fixed validation batches of ``batch_size`` windows; bank_size: training latents
    kept for manifold projection; extra_datasets: more dataset folders whose train split is trained
    on beside ``dataset``'s, each sequence ``extra_repeats`` times, and whose val split joins the
    validation (a speaker's videos from ``corpus from-videos --channels mouth`` beside the corpus);
    conditioner: a folder with MSE-regressor weights
    (`core.eval.regressor`, trained on the same face model) that a new run starts ExpFlow from
    (`MSERegressor.initialise_flow`: its conditioner, and its head as the flow's location), the
    flow analogue of starting from pretrained speech features; freeze_audio: keep ExpFlow's audio
    encoder fixed (sensible with a ``conditioner``, whose encoder MSE training made phonetic).
    """

    dataset: Path
    out: Path | None = None
    model: CoeffConfig = field(default_factory=CoeffConfig)
    steps: int = 20000
    window: int = 8
    batch_size: int = 32
    seed: int = 0
    lr: float = 2e-3
    lr_decay_steps: int = 0
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    log_every: int = 50
    val_every: int = 500
    val_batches: int = 8
    checkpoint_every: int = 1000
    bank_size: int = 4096
    conditioner: Path | None = None
    freeze_audio: bool = False
    extra_datasets: tuple[Path, ...] = ()
    extra_repeats: int = 1

    def __post_init__(self) -> None:
        check_integer_minima(self, _INTEGER_MINIMA)
        if not isinstance(self.extra_datasets, (list, tuple)):
            raise TrainError(f"extra_datasets must be a list of dataset folders, got {self.extra_datasets!r}")
        object.__setattr__(self, "extra_datasets", tuple(Path(folder) for folder in self.extra_datasets))
        if not isinstance(self.freeze_audio, bool):
            raise TrainError(f"freeze_audio must be true or false, got {self.freeze_audio!r}")
        check_float_minima(self, _FLOAT_MINIMA)
        check_betas(self)
        if self.lr_decay_steps > self.steps:
            raise TrainError(f"lr_decay_steps ({self.lr_decay_steps}) cannot exceed steps ({self.steps})")
        if not isinstance(self.model, CoeffConfig):
            raise TrainError(f"model must be a CoeffConfig, got {type(self.model).__name__}")
        object.__setattr__(self, "dataset", Path(self.dataset))
        for key in ("out", "conditioner"):
            if getattr(self, key) is not None:
                object.__setattr__(self, key, Path(getattr(self, key)))

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON ready); `from_dict` reads it back to an equal config."""
        return plain_config(self)

    @classmethod
    def from_dict(cls, data: Any, base: Path = Path(".")) -> "TrainConfig":
        """Strict: unknown keys and wrong types raise `TrainError`; ``dataset`` is required, the
        rest takes the defaults; relative ``dataset``/``out`` paths are resolved against ``base``.
        """
        values = known_keys(cls, data, required={"dataset": "the dataset folder, see core.formats.dataset"})
        values["model"] = resolve_model(values.get("model"))
        extra = values.get("extra_datasets", [])
        if isinstance(extra, list):
            values["extra_datasets"] = [resolve_path("extra_datasets", folder, base) for folder in extra]
        return cls(**resolve_paths(values, ("dataset", "out", "conditioner"), base))


def resolve_model(section: Any) -> CoeffConfig:
    """The model section: ``preset`` (a `core.coeff.config.PRESETS` name, default "default") plus
    `CoeffConfig` keys overriding it; ``exp``/``pose`` overrides change only the keys they name.
    None (no section) is the default preset.
    """
    preset, overrides = split_preset(section, PRESETS, "default", TrainError,
                                     keys="preset and CoeffConfig keys", label="model")
    merged = preset.to_dict()
    for key, value in overrides.items():
        nested = key in ("exp", "pose") and isinstance(value, dict)
        merged[key] = {**merged[key], **value} if nested else value
    return CoeffConfig.from_dict(merged)


def load_train_config(path: str | Path) -> TrainConfig:
    """Read a training YAML (see configs/coeff-tiny.yaml); errors name the file."""
    return load_yaml_config(path, TrainConfig.from_dict)


# ---------------------------------------------------------------------------------------------
# Data and validation
# ---------------------------------------------------------------------------------------------

def _load_dataset(config: TrainConfig, face: FaceModel) -> tuple[list[CoeffSequence], list[CoeffSequence]]:
    """The train and (possibly empty) val splits of ``config.dataset`` and its ``extra_datasets``
    (their train sequences ``extra_repeats`` times each), after checking every dataset fits face and model."""
    train, val = _load_splits(config.dataset, config, face)
    for folder in config.extra_datasets:
        extra_train, extra_val = _load_splits(folder, config, face)
        train += extra_train * config.extra_repeats
        val += extra_val
    return train, val


def _load_splits(dataset: Path, config: TrainConfig, face: FaceModel) -> tuple[list[CoeffSequence], list[CoeffSequence]]:
    """One dataset's train and (possibly empty) val splits, after checking it fits face and model."""
    meta = read_meta(dataset)
    if meta.face_model != face.id or meta.names != tuple(face.names):
        raise TrainError(
            f"dataset {dataset} was made for face model {meta.face_model!r} with "
            f"{len(meta.names)} expressions, but training uses {face.id!r} with {len(face.names)} "
            f"expressions{_first_difference(meta.names, face.names)}; re-export the dataset on this "
            "face model"
        )
    model = config.model
    if meta.fps != model.fps or meta.audio_width != model.audio_width:
        raise TrainError(
            f"dataset {dataset} has fps {meta.fps:g} and {meta.audio_width} audio numbers per frame but the model "
            f"expects fps {model.fps:g} and {model.audio_width}; set model.fps / model.audio_width to match"
        )
    return load_split(dataset, "train"), load_split(dataset, "val", required=False)


def _first_difference(names: Sequence[str], expected: Sequence[str]) -> str:
    """`` (first difference at index i: 'a' vs 'b')`` or "" when one list is a prefix of the other."""
    for index, (name, wanted) in enumerate(zip(names, expected)):
        if name != wanted:
            return f" (first difference at index {index}: {name!r} vs {wanted!r})"
    return ""


def _sampler(sequences: Sequence[CoeffSequence], config: TrainConfig) -> WindowSampler:
    """Random training windows of ``config.window`` frames, ``config.batch_size`` per batch."""
    model = config.model
    return WindowSampler(
        sequences, model.tau, config.window, model.audio_before, model.audio_after, config.batch_size
    )


class _LossModule(nn.Module):
    """`CoeffModel.loss` as a forward, so that DistributedDataParallel syncs its gradients."""

    def __init__(self, model: CoeffModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, Tensor], generator: torch.Generator) -> dict[str, Tensor]:
        return self.model.loss(batch, generator)


class _Validator:
    """Mean losses over ``val_batches`` fixed windows of the val split, with fixed loss noise."""

    def __init__(self, sequences: Sequence[CoeffSequence], config: TrainConfig, device: torch.device) -> None:
        sampler = _sampler(sequences, config)
        rng = np.random.default_rng(stream_seed(config.seed, 0, 0, _VAL_BATCH_STREAM))
        self.batches = [to_device(sampler.sample(rng), device) for _ in range(config.val_batches)]
        self.seed, self.device = stream_seed(config.seed, 0, 0, _VAL_NOISE_STREAM), device

    @torch.no_grad()
    def __call__(self, model: CoeffModel) -> dict[str, float]:
        generator = torch.Generator(self.device).manual_seed(self.seed)
        totals = torch.zeros(len(LOSS_KEYS), device=self.device)
        for batch in self.batches:
            losses = model.loss(batch, generator)
            totals += torch.stack([losses[key] for key in LOSS_KEYS])
        return dict(zip(LOSS_KEYS, (totals / len(self.batches)).tolist()))


# ---------------------------------------------------------------------------------------------
# Trainer state
# ---------------------------------------------------------------------------------------------

def _read_state(out: Path, config: TrainConfig, world_size: int, device: torch.device) -> dict[str, Any]:
    """The trainer state to resume from, after checking it belongs to this config and job size
    (with a learning-rate decay, ``steps`` places the decay, so it may not change either)."""
    resumable = _RESUMABLE_CHANGES - {"steps"} if config.lr_decay_steps else _RESUMABLE_CHANGES
    return read_trainer_state(
        out, config, header=_STATE_HEADER, what=f"{STATE_FORMAT} version {STATE_VERSION} file",
        resumable=resumable, world_size=world_size, device=device,
    )


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------

def train_coeff(
    config: TrainConfig | str | Path,
    out: str | Path | None = None,
    resume: bool = False,
    device: str = "auto",
) -> Path:
    """Train the coefficient flows as described by ``config`` (a `TrainConfig` or a YAML path) and
    return the weights folder (``out``, else ``config.out``), which `core.coeff.weights.load_weights`
    reads; rank 0 prints where the weights went. ``resume`` continues from the folder's
    trainer_state.pt; without it, a folder that already holds one is refused. ``device`` is one of
    `DEVICES`.
    """
    config = config if isinstance(config, TrainConfig) else load_train_config(config)
    out = output_folder(Path(out) if out is not None else config.out, resume)
    face = builtin()
    train, val = _load_dataset(config, face)
    with process_group(device) as process:
        state = _read_state(out, config, process.world_size, process.device) if resume else None
        model = CoeffModel(config.model, face.names, face.id, face.lower, face.upper, seed=config.seed)
        if state is None:
            model.set_statistics(*_statistics(train))
            if config.conditioner is not None:
                load_regressor(config.conditioner, face).initialise_flow(model.exp_flow)
        model.exp_flow.audio.requires_grad_(not config.freeze_audio)
        model.to(process.device)
        optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad],
            lr=config.lr, betas=config.betas, weight_decay=config.weight_decay,
        )
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        best = _fit(model, optimizer, config, train, val, out, process, state)
        if process.main:
            _finish(model, config, train, out, best, process.world_size)
    return out


def learning_rate(config: TrainConfig, step: int) -> float:
    """The learning rate of optimiser step ``step`` (0-based): ``config.lr``, lowered along a half
    cosine to 0 over the last ``config.lr_decay_steps`` steps (the first of them still at lr)."""
    decay_start = config.steps - config.lr_decay_steps
    if step < decay_start:
        return config.lr
    progress = (step - decay_start) / config.lr_decay_steps
    return 0.5 * config.lr * (1.0 + math.cos(math.pi * progress))


def _statistics(sequences: Sequence[CoeffSequence]) -> tuple[Tensor, ...]:
    """Every training frame, and every sequence's source expression, mean offset from it, emotion
    and intensity. Shapes: -> exp (sum T, D), pose (sum T, 6), beta0 (S, D), offsets (S, D),
    labels (S,), intensities (S,)."""
    exp = torch.from_numpy(np.concatenate([seq.exp for seq in sequences]))
    pose = torch.from_numpy(np.concatenate([seq.pose for seq in sequences]))
    beta0 = torch.from_numpy(np.stack([seq.beta0 for seq in sequences]))
    offsets = torch.from_numpy(np.stack([seq.offset for seq in sequences]))
    labels = torch.tensor([seq.label for seq in sequences])
    intensities = torch.tensor([seq.intensity for seq in sequences], dtype=torch.float64)
    return exp, pose, beta0, offsets, labels, intensities


def _fit(
    model: CoeffModel, optimizer: torch.optim.Optimizer, config: TrainConfig,
    train: Sequence[CoeffSequence], val: Sequence[CoeffSequence], out: Path, process: Process,
    state: dict[str, Any] | None,
) -> float | None:
    """The optimisation loop (`run_steps`) from the state's step (0 for a new run) to
    ``config.steps``; returns the best validation loss (None without a val split)."""
    best = [None if state is None else state["best_val"]]  # the loop's validations update it
    wrapped = wrap_ddp(_LossModule(model), process)
    sampler = _sampler(train, config)
    validator = _Validator(val, config, process.device) if val and process.main else None
    first = 0 if state is None else state["step"]

    def step(index: int) -> tuple[dict[str, Tensor], dict[str, Any]]:
        rng = np.random.default_rng(stream_seed(config.seed, process.rank, index, _BATCH_STREAM))
        batch = to_device(sampler.sample(rng), process.device)
        generator = torch.Generator(process.device).manual_seed(
            stream_seed(config.seed, process.rank, index, _NOISE_STREAM)
        )
        losses = wrapped(batch, generator)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, index)
        optimizer.step()
        return losses, {}

    def start(record: Record) -> None:
        if validator is not None and first == 0:
            record("val", validator(model))

    def validate(done: int, last: bool, record: Record) -> None:
        if validator is not None and (done % config.val_every == 0 or last):
            scores = validator(model)
            best[0] = scores["loss"] if best[0] is None else min(best[0], scores["loss"])
            record("val", scores)

    run_steps("coeff", LOSS_KEYS, config, out, process, first, step,
              lambda done: _checkpoint(model, optimizer, config, out, done, best[0], process.world_size),
              on_start=start, after_step=validate)
    return best[0]


def _checkpoint(
    model: CoeffModel, optimizer: torch.optim.Optimizer, config: TrainConfig, out: Path, step: int,
    best: float | None, world_size: int,
) -> None:
    """Weights (without a bank) for inspection, then the trainer state that --resume reads."""
    save_weights(out, model, training=_provenance(config, step, best, world_size))
    write_trainer_state(out, {
        **_STATE_HEADER, "step": step, "best_val": best, "world_size": world_size, "config": config.to_dict(),
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
    })


def _provenance(config: TrainConfig, step: int, best: float | None, world_size: int) -> dict[str, Any]:
    """The ``training`` entry of the weights' config.yaml."""
    return {"step": step, "best_val_loss": best, "world_size": world_size, "config": config.to_dict()}


def _finish(
    model: CoeffModel, config: TrainConfig, train: Sequence[CoeffSequence], out: Path, best: float | None,
    world_size: int,
) -> None:
    """Build the latent bank from the training split, write the final weights and say where."""
    settings = model.config
    batches = frame_batches(
        train, settings.tau, settings.audio_before, settings.audio_after, config.batch_size * config.window
    )
    size = build_latent_bank(model, batches, config.bank_size, config.seed)
    save_weights(out, model, training=_provenance(config, config.steps, best, world_size))
    print(f"train coeff: {config.steps} steps done; weights with a latent bank of {size} frames -> {out.resolve()}")
